"""One in-process job runner per deployment: a lock in the database the runners share.

Every gunicorn worker of the embedded default (``JOBS_IN_PROCESS=true``) starts a runner; the
one holding this lock runs the jobs and the sweeps, the others stand by and take over when it
is released, which happens by itself when its process dies. Two runners must not run at once:
they would run the same due row twice (the in-process runner claims rows, it does not lease
them).

PostgreSQL: a session-level advisory lock on a connection the active runner keeps. SQLite: an
``flock`` on a file next to the database (its users share a host); an in-memory database has a
single process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from typing import Protocol

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from relay_ops.db.database import Database

NAME = "relay_ops.jobs-runner"
# pg_try_advisory_lock takes a bigint: this name's, the same in every process.
PG_KEY = int.from_bytes(hashlib.sha256(NAME.encode()).digest()[:8], "big", signed=True)


class RunnerLock(Protocol):
    def acquire(self) -> bool:
        """True while this process holds the lock (taken now or still held)."""

    def release(self) -> None: ...

    def held_elsewhere(self) -> bool:
        """Another process holds it (a probe by a process that holds nothing)."""


def for_database(db: Database) -> RunnerLock:
    if not db.is_sqlite:
        return AdvisoryLock(db)
    path = db.engine.url.database
    if not path or path == ":memory:":
        return ProcessLock()
    return FileLock(f"{path}.jobs-runner.lock")


class AdvisoryLock:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.connection: Connection | None = None

    def acquire(self) -> bool:
        try:
            if self.connection is not None:
                # The lock lives as long as the session: a session that answers still holds it.
                self.connection.execute(text("SELECT 1"))
                self.connection.commit()
                return True
            self.connection = self.db.engine.connect()
            held = bool(self.connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                               {"key": PG_KEY}))
            self.connection.commit()
        except SQLAlchemyError:
            held = False  # the database is away: the lock went with the session
        if not held:
            self._close()
        return held

    def release(self) -> None:
        if self.connection is not None:
            try:
                self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_KEY})
                self.connection.commit()
            except SQLAlchemyError:
                pass  # gone with the session anyway
        self._close()

    def held_elsewhere(self) -> bool:
        with self.db.engine.connect() as connection:
            free = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": PG_KEY}))
            if free:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_KEY})
            connection.commit()
        return not free

    def _close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.invalidate()  # never back to the pool with a lock on it
                self.connection.close()
            except SQLAlchemyError:
                pass
            self.connection = None


class FileLock:
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        if self.fd is None:
            self.fd = self._try_lock()
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the flock
            self.fd = None

    def held_elsewhere(self) -> bool:
        fd = self._try_lock()
        if fd is None:
            return True
        os.close(fd)
        return False

    def _try_lock(self) -> int | None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd


class ProcessLock:
    """An in-memory SQLite database lives in one process: its runner is the only one."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass

    def held_elsewhere(self) -> bool:
        return False
