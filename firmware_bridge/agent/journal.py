"""The locker's local journal: SQLite in WAL mode with synchronous=FULL.

It holds what must survive a power cut or `kill -9` at any instant:
- outgoing events (`outbox`), numbered per boot, kept until the backend's `ack` covers them;
- credential uses (`uses`), written BEFORE a door is told to open, so a credential is spent
  even if the process dies while the lock turns;
- processed commands (`commands`) with their result, so a duplicate gets the same answer;
- the synced credential set and its version, and small state (`meta`): keypad throttling,
  out-of-service flags.

Every write commits before the function returns; `atomic()` groups several writes in one
transaction (e.g. "mark spent" and "journal offline_pickup").
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from firmware_bridge.clock import wall_time
from firmware_bridge.protocol import EventEnvelope, encode

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS boots (
    ordinal INTEGER PRIMARY KEY AUTOINCREMENT,
    boot_id TEXT NOT NULL UNIQUE,
    started_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    acked_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS outbox (
    boot_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (boot_id, seq)
);
CREATE TABLE IF NOT EXISTS uses (
    credential_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    parcel_ref TEXT,
    compartment INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    used_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commands (
    msg_id TEXT PRIMARY KEY,
    corr_id TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_by_corr_id ON commands (corr_id);
CREATE TABLE IF NOT EXISTS credentials (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    document TEXT NOT NULL
);
"""

# Outcomes of a credential use. Only "opened" makes a credential spent for good: a use that
# failed (door jammed) or was interrupted (process killed) may be retried by the resident.
PENDING, OPENED, FAILED, INTERRUPTED = "pending", "opened", "failed", "interrupted"


@dataclass(frozen=True)
class Use:
    credential_id: str
    kind: str
    parcel_ref: str | None
    compartment: int
    outcome: str


@dataclass(frozen=True)
class CommandRecord:
    msg_id: str
    corr_id: str
    type: str
    status: str
    reason: str | None


@dataclass(frozen=True)
class StoredEvent:
    boot_id: str
    seq: int
    type: str
    payload: bytes


class Journal:
    def __init__(
        self,
        path: str | Path,
        clock: Callable[[], float] = wall_time,
        encode: Callable[[EventEnvelope], bytes] = encode,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        # how an event is stored: signed by the agent, exactly as it is sent and resent
        self.encode = encode
        self._lock = threading.RLock()
        self._depth = 0
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; one connection shared by the
        # agent's threads, serialised by the lock.
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def _now(self) -> str:
        return datetime.fromtimestamp(self.clock(), UTC).isoformat()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """One transaction for everything inside; nested calls join the outer one."""
        with self._lock:
            outermost = self._depth == 0
            if outermost:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outermost:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outermost:
                self._db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> Any:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, *args: Any) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- boots and events --------------------------------------------------------------------

    def start_boot(self) -> str:
        boot_id = str(uuid.uuid4())
        with self.atomic():
            self._db.execute(
                "INSERT INTO boots (boot_id, started_at) VALUES (?, ?)", (boot_id, self._now())
            )
        return boot_id

    def append_event(self, boot_id: str, build: Callable[[int], EventEnvelope]) -> EventEnvelope:
        """Give the next seq of `boot_id` to `build(seq)` and store the event it returns."""
        with self.atomic():
            (last,) = self._db.execute(
                "SELECT last_seq FROM boots WHERE boot_id = ?", (boot_id,)
            ).fetchone()
            envelope = build(last + 1)
            self._db.execute(
                "INSERT INTO outbox (boot_id, seq, type, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (boot_id, envelope.seq, envelope.type, self.encode(envelope), self._now()),
            )
            self._db.execute(
                "UPDATE boots SET last_seq = ? WHERE boot_id = ?", (envelope.seq, boot_id)
            )
        return envelope

    def last_seq(self, boot_id: str) -> int:
        row = self._one("SELECT last_seq FROM boots WHERE boot_id = ?", boot_id)
        return int(row[0]) if row else 0

    def acked_seq(self, boot_id: str) -> int:
        row = self._one("SELECT acked_seq FROM boots WHERE boot_id = ?", boot_id)
        return int(row[0]) if row else 0

    def unacked_events(self, limit: int = 10_000) -> list[StoredEvent]:
        """Oldest first: earlier boots, then by seq."""
        rows = self._all(
            "SELECT o.boot_id, o.seq, o.type, o.payload FROM outbox o"
            " JOIN boots b ON b.boot_id = o.boot_id ORDER BY b.ordinal, o.seq LIMIT ?",
            limit,
        )
        return [StoredEvent(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def events_in_range(self, boot_id: str, from_seq: int, to_seq: int) -> list[StoredEvent]:
        rows = self._all(
            "SELECT boot_id, seq, type, payload FROM outbox"
            " WHERE boot_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            boot_id,
            from_seq,
            to_seq,
        )
        return [StoredEvent(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def unacked_after(self, boot_id: str, seq: int, limit: int) -> list[StoredEvent]:
        """Unacknowledged events after (boot_id, seq) in the resend order."""
        rows = self._all(
            "SELECT o.boot_id, o.seq, o.type, o.payload FROM outbox o"
            " JOIN boots b ON b.boot_id = o.boot_id"
            " WHERE (b.ordinal, o.seq) > ((SELECT ordinal FROM boots WHERE boot_id = ?), ?)"
            " ORDER BY b.ordinal, o.seq LIMIT ?",
            boot_id, seq, limit,
        )
        return [StoredEvent(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def unacked_through(self, boot_id: str, seq: int) -> int:
        """How many unacknowledged events come up to (boot_id, seq) in the resend order."""
        return int(self._one(
            "SELECT COUNT(*) FROM outbox o JOIN boots b ON b.boot_id = o.boot_id"
            " WHERE (b.ordinal, o.seq) <= ((SELECT ordinal FROM boots WHERE boot_id = ?), ?)",
            boot_id, seq,
        )[0])

    def holds_other_boots(self, boot_id: str) -> bool:
        """Unacknowledged entries of another boot than `boot_id` are in the journal."""
        return self._one("SELECT 1 FROM outbox WHERE boot_id != ? LIMIT 1", boot_id) is not None

    def unacked_count(self) -> int:
        return int(self._one("SELECT COUNT(*) FROM outbox")[0])

    def ack(self, boot_id: str, seq: int) -> int:
        """The backend committed every event of `boot_id` up to `seq`: drop them."""
        with self.atomic():
            deleted = self._db.execute(
                "DELETE FROM outbox WHERE boot_id = ? AND seq <= ?", (boot_id, seq)
            ).rowcount
            self._db.execute(
                "UPDATE boots SET acked_seq = MAX(acked_seq, MIN(?, last_seq)) WHERE boot_id = ?",
                (seq, boot_id),
            )
        return int(deleted)

    # --- credential uses ---------------------------------------------------------------------

    def record_use(
        self, credential_id: str, kind: str, parcel_ref: str | None, compartment: int
    ) -> None:
        """Mark a credential as being used, before the door is told to open."""
        with self.atomic():
            self._db.execute(
                "INSERT INTO uses (credential_id, kind, parcel_ref, compartment, outcome, used_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (credential_id) DO UPDATE SET"
                " outcome = excluded.outcome, used_at = excluded.used_at,"
                " compartment = excluded.compartment",
                (credential_id, kind, parcel_ref, compartment, PENDING, self._now()),
            )

    def set_use_outcome(self, credential_id: str, outcome: str) -> None:
        with self.atomic():
            self._db.execute(
                "UPDATE uses SET outcome = ? WHERE credential_id = ?", (outcome, credential_id)
            )

    def use_of(self, credential_id: str) -> Use | None:
        row = self._one(
            "SELECT credential_id, kind, parcel_ref, compartment, outcome FROM uses"
            " WHERE credential_id = ?",
            credential_id,
        )
        return Use(*row) if row else None

    def uses_with_outcome(self, outcome: str) -> list[Use]:
        rows = self._all(
            "SELECT credential_id, kind, parcel_ref, compartment, outcome FROM uses"
            " WHERE outcome = ? ORDER BY used_at",
            outcome,
        )
        return [Use(*row) for row in rows]

    # --- commands ----------------------------------------------------------------------------

    def command_record(self, msg_id: str, corr_id: str) -> CommandRecord | None:
        """The record of this message, or of another message of the same transaction."""
        row = self._one(
            "SELECT msg_id, corr_id, type, status, reason FROM commands"
            " WHERE msg_id = ? OR corr_id = ? ORDER BY msg_id = ? DESC LIMIT 1",
            msg_id,
            corr_id,
            msg_id,
        )
        return CommandRecord(*row) if row else None

    def record_command(
        self, msg_id: str, corr_id: str, type_: str, status: str, reason: str | None
    ) -> None:
        with self.atomic():
            self._db.execute(
                "INSERT INTO commands (msg_id, corr_id, type, status, reason, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (msg_id) DO UPDATE SET"
                " status = excluded.status, reason = excluded.reason",
                (msg_id, corr_id, type_, status, reason, self._now()),
            )

    def commands_with_status(self, status: str) -> list[CommandRecord]:
        rows = self._all(
            "SELECT msg_id, corr_id, type, status, reason FROM commands WHERE status = ?", status
        )
        return [CommandRecord(*row) for row in rows]

    # --- credentials and small state ---------------------------------------------------------

    def credentials(self) -> tuple[int, str] | None:
        row = self._one("SELECT version, document FROM credentials WHERE id = 1")
        return (int(row[0]), str(row[1])) if row else None

    def store_credentials(self, version: int, document: str) -> None:
        with self.atomic():
            self._db.execute(
                "INSERT INTO credentials (id, version, document) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version,"
                " document = excluded.document",
                (version, document),
            )

    def get_meta(self, key: str, default: T) -> T | Any:
        row = self._one("SELECT value FROM meta WHERE key = ?", key)
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value: object) -> None:
        with self.atomic():
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
