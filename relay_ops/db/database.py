"""The database handle: engines, sessions and the one-transaction-per-use-case helper.

SQLite serialises writers: every write transaction starts with ``BEGIN IMMEDIATE`` so two
check-ins never read the same free shelf (PostgreSQL gets row locks instead). Reads use a
second engine with ordinary deferred transactions so they never wait for a writer (WAL).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVarTuple

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from relay_ops.clock import Clock, system_clock
from relay_ops.db import local_date
from relay_ops.db.direct import Prebuilt
from relay_ops.db.keep_prepared import KeepsPreparedOnRollback

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Where a pooled connection finds the clock that stamps the rows it writes (models.stamp_now).
CLOCK_KEY = "relay_ops.clock"
# A pooled PostgreSQL connection is pinged before use only once it has sat idle this long
# (issue 15): a ping at every checkout was a round trip, and some CPU, per transaction of
# every request. A connection in steady use fails, if the server went away, at its next
# statement instead: the pool is then emptied (SQLAlchemy's "optimistic" disconnect
# handling) and `Database.read_once` tries its statement once more on a fresh connection.
PING_AFTER_IDLE_S = 10.0
# Where a pooled connection keeps when it went back to the pool (time.monotonic()).
IDLE_SINCE_KEY = "relay_ops.idle_since"

_Ts = TypeVarTuple("_Ts")


class Database:
    def __init__(
        self, url: str, clock: Clock = system_clock, *,
        ping_after_idle_s: float = PING_AFTER_IDLE_S, **engine_options: Any,
    ) -> None:
        self.url = url
        self.clock = clock
        self.is_sqlite = url.startswith("sqlite")
        self.ping_after_idle_s = ping_after_idle_s
        self.engine = self._make_engine(url, immediate=True, **engine_options)
        self.read_engine = (
            self._make_engine(url, immediate=False, **engine_options)
            if self.is_sqlite
            else self.engine
        )
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(self.read_engine, expire_on_commit=False)

    def _make_engine(self, url: str, *, immediate: bool, **options: Any) -> Engine:
        if not self.is_sqlite:
            # No JIT compilation: on analysed tables the forecast's statements over a big
            # shop's history (100,000 index lookups) pass PostgreSQL's jit_above_cost and
            # spent ~0.8 s each compiling, more than running (issue 15). Our statements are
            # short; JIT pays only on long analytical queries.
            options.setdefault("connect_args", {"options": "-c jit=off"})
            engine = create_engine(url, **options)
            _keep_prepared_on_rollback(engine)
            if not options.get("pool_pre_ping"):
                _ping_when_idle(engine, lambda: self.ping_after_idle_s)
        else:
            timeout = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            engine = create_engine(url, connect_args=timeout, **options)
            _configure_sqlite(engine, immediate=immediate)
        event.listen(engine, "connect", self._lend_clock)
        return engine

    def _lend_clock(self, _dbapi: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        # A lookup, not the function itself: the clock may be replaced after connecting.
        record.info[CLOCK_KEY] = self.now

    def now(self) -> Any:
        return self.clock()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Session]:
        """One unit of work: committed if the block ends normally, rolled back otherwise.

        ``durable=False``: on PostgreSQL the commit does not wait for its WAL to reach the disk
        (``synchronous_commit`` off for this transaction alone), which saves a flush; a crash
        of the database server within a fraction of a second may forget the whole transaction,
        never part of it. Only for writes whose loss the design absorbs (a locker's command
        counter: `locker_identity.take_counters`)."""
        with self._writer.begin() as session:
            if not durable and not self.is_sqlite:
                session.execute(text("SET LOCAL synchronous_commit = off"))
            yield session

    def read_once(
        self, statement: Prebuilt, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one read statement, on its own: no transaction around it on
        PostgreSQL (one round trip, the statement's own snapshot), a deferred one on SQLite.

        Tried once more if the connection turns out dead (the database restarted): a single
        read changes nothing, so trying it again is safe, and the pool, emptied by the
        failure, gives a fresh connection."""
        engine = self.read_engine if self.is_sqlite else self._autocommit
        try:
            return self._read_rows(engine, statement, params or {})
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            return self._read_rows(engine, statement, params or {})

    @staticmethod
    def _read_rows(
        engine: Engine, statement: Prebuilt, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        with engine.connect() as connection:
            return statement.run(connection, params)

    @functools.cached_property
    def _autocommit(self) -> Engine:
        # The same pool; each connection in autocommit for the time it is lent (the driver's
        # flag, set and reset without a round trip).
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def _ping_when_idle(engine: Engine, idle_after_s: Callable[[], float]) -> None:
    """Ping a pooled connection at checkout only if it sat idle ``idle_after_s`` seconds or
    more; a dead one empties the pool, and the pool connects afresh (SQLAlchemy's custom
    pessimistic handling: a ``DisconnectionError`` raised at checkout)."""

    @event.listens_for(engine, "checkin")
    def _went_idle(_dbapi: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[IDLE_SINCE_KEY] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi: DBAPIConnection, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.pop(IDLE_SINCE_KEY, None)
        if idle_since is None or time.monotonic() - idle_since < idle_after_s():
            return  # a new connection, or one in steady use
        try:
            engine.dialect.do_ping(dbapi)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(f"idle connection dead: {error}") from error


def _keep_prepared_on_rollback(engine: Engine) -> None:
    """Each new connection a :class:`KeepsPreparedOnRollback`, made with the dialect's own
    connection arguments, and the savepoints rolled back through it (a refused request's
    rollback, or a poisoned locker event's, no longer makes the connection plan every
    statement again)."""

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return KeepsPreparedOnRollback.connect(*cargs, **cparams)

    default = engine.dialect.do_rollback_to_savepoint

    def rollback_to_savepoint(connection: Connection, name: str) -> None:
        driver = connection.connection.driver_connection
        if isinstance(driver, KeepsPreparedOnRollback):
            driver.rollback_to_savepoint(name)
        else:
            default(connection, name)

    # The dialect sends the savepoint's rollback as a statement, whose tag (ROLLBACK) makes
    # psycopg drop what the connection prepared. This engine's dialect is its own instance.
    engine.dialect.do_rollback_to_savepoint = rollback_to_savepoint  # type: ignore[method-assign]


def session_now(session: Session) -> Any:
    """The clock of the Database this session writes to, for code that has no context."""
    return session.connection().info[CLOCK_KEY]()


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        local_date.register_on_sqlite(dbapi_connection)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
