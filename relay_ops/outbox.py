"""The transactional outbox: work for other processes, written in the state change's transaction.

A row is never written without its state change and a state change never commits without its
rows. Dispatchers (the in-process runner, the RQ relay, the MQTT bridge) pick rows up after the
commit; receivers drop duplicates by ``dedupe_key``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.database import Database
from relay_ops.db.models import OutboxMessage, utcnow

JOB = "job"
LOCKER_COMMAND = "locker_command"


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
    now: Callable[[], datetime] = utcnow,
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
    with db.transaction() as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status != "pending":
            return 0
        name, payload = message.name, dict(message.payload)
    handler = handlers.get(name)
    try:
        if handler is None:
            raise LookupError(f"no handler for job {name!r}")
        handler(payload)
    except Exception as exc:  # a handler failure is recorded and retried later
        with db.transaction() as session:
            message = session.get(OutboxMessage, message_id)
            assert message is not None
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            message.available_at = now() + retry_after * message.attempts
        return 0
    with db.transaction() as session:
        message = session.get(OutboxMessage, message_id)
        assert message is not None
        message.status = "done"
        message.attempts += 1
        message.dispatched_at = now()
    return 1
