"""The transactional outbox: work for other processes, written in the state change's transaction.

A row is never written without its state change and a state change never commits without its
rows. Dispatchers (the in-process runner, the RQ relay, the MQTT bridge) pick rows up after the
commit; receivers drop duplicates by ``dedupe_key``.

A job row goes ``pending`` → (``dispatched``: handed to RQ) → ``done``, or ``failed`` when
RQ gave up on it; the row stays the record of the work whatever Redis forgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import Session

from relay_ops.db.database import Database
from relay_ops.db.models import OutboxMessage
from relay_ops.metrics import JOBS

JOB = "job"
LOCKER_COMMAND = "locker_command"
PENDING, DISPATCHED, DONE, FAILED = "pending", "dispatched", "done", "failed"
OUTBOX = cast(Table, OutboxMessage.__table__)


def enqueue_job(
    session: Session, name: str, payload: dict[str, Any], dedupe_key: str, *, fresh: bool = False
) -> OutboxMessage:
    """Queue job ``name`` with ``payload`` (ids only, never personal data).

    ``fresh`` says the key cannot exist yet (it names a row just created), which saves a query.
    """
    message = OutboxMessage(kind=JOB, name=name, payload=payload, dedupe_key=dedupe_key)
    if fresh:
        session.add(message)
        return message
    return _add(session, message)


def enqueue_jobs(
    session: Session, name: str, jobs: list[tuple[dict[str, Any], str]]
) -> None:
    """Queue job ``name`` once per ``(payload, dedupe_key)``, in one INSERT, for keys that
    cannot exist yet (they name rows just created): no ORM object, no look-up first."""
    if jobs:
        session.execute(insert(OUTBOX).values([
            {"kind": JOB, "name": name, "payload": payload, "dedupe_key": key}
            for payload, key in jobs
        ]))


def enqueue_locker_command(
    session: Session,
    locker_code: str,
    name: str,
    payload: dict[str, Any],
    dedupe_key: str,
    expires_at: datetime,
) -> OutboxMessage:
    message = OutboxMessage(
        kind=LOCKER_COMMAND,
        name=name,
        target=locker_code,
        payload=payload,
        dedupe_key=dedupe_key,
        expires_at=expires_at,
    )
    return _add(session, message)


def _add(session: Session, message: OutboxMessage) -> OutboxMessage:
    existing = session.scalar(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == message.dedupe_key)
    )
    if existing is not None:
        return existing
    session.add(message)
    session.flush()
    return message


JobHandler = Callable[[dict[str, Any]], None]


def run_pending_jobs(
    db: Database,
    handlers: dict[str, JobHandler],
    now: Callable[[], datetime],
    limit: int = 100,
    retry_after: timedelta = timedelta(seconds=30),
) -> int:
    """Run due job rows in this process (the embedded default). Returns how many succeeded.

    Each row is claimed in its own transaction before its handler runs, so a crash mid-handler
    leaves it to be retried, and handlers are idempotent so a retry has one effect.
    """
    with db.read() as session:
        ids = session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.kind == JOB,
                OutboxMessage.status == "pending",
                OutboxMessage.available_at <= now(),
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
    done = 0
    for message_id in ids:
        done += _run_one(db, message_id, handlers, now, retry_after)
    return done


def _run_one(
    db: Database,
    message_id: int,
    handlers: dict[str, JobHandler],
    now: Callable[[], datetime],
    retry_after: timedelta,
) -> int:
    claimed = claim(db, message_id)
    if claimed is None:
        return 0
    name, payload = claimed
    try:
        run_handler(handlers, name, payload)
    except Exception as exc:  # a handler failure is recorded and retried later
        record_failure(db, message_id, exc, retry_at=lambda tries: now() + retry_after * tries)
        return 0
    mark_done(db, message_id, now())
    return 1


def run_handler(handlers: dict[str, JobHandler], name: str, payload: dict[str, Any]) -> None:
    """Run the job's handler, counted and timed for the metrics (both runners come here)."""
    handler = handlers.get(name)
    # A row's name is data: one no handler knows is not given a series of its own.
    label = name if handler is not None else "unknown"
    started = time.perf_counter()
    try:
        if handler is None:
            raise LookupError(f"no handler for job {name!r}")
        handler(payload)
    except BaseException:
        JOBS.runs.labels(label, "error").inc()
        raise
    finally:
        JOBS.seconds.labels(label).observe(time.perf_counter() - started)
    JOBS.runs.labels(label, "done").inc()


def claim(db: Database, message_id: int) -> tuple[str, dict[str, Any]] | None:
    """The job's name and payload, or None if it is done (or gone): a second run is a no-op.

    The attempt is counted here, as the run starts, and nowhere else: a run whose process dies
    (a worker killed mid-send) records neither success nor failure, yet it was a run. One
    UPDATE … RETURNING: it locks the row as SELECT … FOR UPDATE did, in one round trip.
    """
    with db.transaction() as session:
        row = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status != DONE)
            .values(attempts=OutboxMessage.attempts + 1)
            .returning(OutboxMessage.name, OutboxMessage.payload),
            execution_options={"synchronize_session": False},
        ).one_or_none()
    return None if row is None else (row.name, dict(row.payload))


def mark_done(db: Database, message_id: int, at: datetime) -> None:
    """The job done; its wait since the commit that queued it goes to the metrics (both
    times on the database's clock)."""
    with db.transaction() as session:
        row = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status=DONE, last_error=None,
                    dispatched_at=func.coalesce(OutboxMessage.dispatched_at, at))
            .returning(OutboxMessage.name, OutboxMessage.created_at),
            execution_options={"synchronize_session": False},
        ).one_or_none()
    if row is not None:
        JOBS.commit_to_done.labels(row.name).observe(
            max(0.0, (at - row.created_at).total_seconds()))


def record_failure(
    db: Database,
    message_id: int,
    error: BaseException | str,
    *,
    final: bool = False,
    retry_at: Callable[[int], datetime] | None = None,
) -> None:
    """Note a failed run: the error for the operator, and ``failed`` once nobody will retry."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    with db.transaction() as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status == DONE:
            return
        message.last_error = text[:2000]
        if final:
            message.status = FAILED
        if retry_at is not None:
            message.available_at = retry_at(message.attempts)


def due_for_dispatch(db: Database, at: datetime, limit: int = 500) -> list[int]:
    """Committed job rows not yet handed to a queue, oldest first."""
    with db.read() as session:
        return list(session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.kind == JOB, OutboxMessage.status == PENDING,
                   OutboxMessage.available_at <= at)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ))


def mark_dispatched(db: Database, message_ids: list[int], at: datetime) -> None:
    if not message_ids:
        return
    with db.transaction() as session:
        # Only pending rows: a fast worker may already have marked one done.
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(message_ids), OutboxMessage.status == PENDING)
            .values(status=DISPATCHED, dispatched_at=at)
        )


def dispatched_before(db: Database, cutoff: datetime, limit: int = 1000) -> list[int]:
    """Rows handed to a queue before ``cutoff`` and still not done."""
    with db.read() as session:
        return list(session.scalars(
            select(OutboxMessage.id)
            .where(OutboxMessage.kind == JOB, OutboxMessage.status == DISPATCHED,
                   OutboxMessage.dispatched_at <= cutoff)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ))


def touch_dispatched(db: Database, message_id: int, at: datetime) -> None:
    """Handed over again (a re-dispatch of a row Redis lost)."""
    with db.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.status == DISPATCHED)
            .values(dispatched_at=at)
        )


def revive(message: OutboxMessage, at: datetime, *, handed_over: bool) -> None:
    """An operator's retry: the row (locked by the caller) is owed again. ``handed_over``: its
    RQ job is requeued after the commit, so the row is ``dispatched`` (the relay must not hand
    it over a second time); otherwise the in-process runner picks it up as ``pending``."""
    if handed_over:
        message.status, message.dispatched_at = DISPATCHED, at
    else:
        message.status, message.available_at = PENDING, at


def counts(db: Database) -> dict[str, Any]:
    """Job rows per status, and how long the oldest undone one has waited."""
    with db.read() as session:
        undone, oldest = _undone(session)
        done = session.scalar(select(func.count()).where(OutboxMessage.kind == JOB,
                                                         OutboxMessage.status == DONE))
    result: dict[str, Any] = {PENDING: undone[PENDING], DISPATCHED: undone[DISPATCHED],
                              DONE: int(done or 0), FAILED: undone[FAILED]}
    result["oldest_waiting_since"] = oldest.isoformat() if oldest else None
    return result


def waiting(db: Database) -> tuple[dict[str, int], datetime | None]:
    """Job rows not done, per status, and when the oldest pending or dispatched one was
    written: cheap however many rows are done (the status index skips them), so the metrics
    read it at every scrape and readiness when degraded."""
    with db.read() as session:
        return _undone(session)


def _undone(session: Session) -> tuple[dict[str, int], datetime | None]:
    undone = (PENDING, DISPATCHED, FAILED)
    by_status = dict(session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.kind == JOB, OutboxMessage.status.in_(undone))
        .group_by(OutboxMessage.status)
    ).all())
    oldest = session.scalar(
        select(func.min(OutboxMessage.created_at))
        .where(OutboxMessage.kind == JOB, OutboxMessage.status.in_((PENDING, DISPATCHED)))
    )
    return {status: int(by_status.get(status, 0)) for status in undone}, oldest
