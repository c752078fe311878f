"""Queueing messages to residents: a notification row per channel, and a job to send it.

Both are written in the caller's transaction. The row's unique ``dedupe_key`` makes a second
request for the same message a no-op, so a message is owed once.
"""

from __future__ import annotations

import functools
import typing
from typing import Any

from sqlalchemy import (
    CTE,
    JSON,
    Executable,
    Insert,
    Integer,
    Select,
    String,
    Table,
    bindparam,
    cast,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy import insert as insert_into
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relay_ops import outbox
from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import Notification, Parcel
from relay_ops.domain.errors import NotFound
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role

SEND_JOB = "notifications.send"
# A Core handle on the table: the hot path writes rows, not ORM objects.
NOTIFICATIONS = typing.cast(Table, Notification.__table__)
# How a message that failed for want of the site's opening hours begins its error; setting
# the hours finds these messages by it and owes them again (opening_hours.set_opening_hours).
NO_OPENING_HOURS = "the site has no opening hours"


def channels_for(parcel: Parcel) -> list[str]:
    channels = []
    if parcel.recipient_email:
        channels.append("email")
    if parcel.recipient_phone:
        channels.append("sms")
    return channels


def queue(session: Session, parcel: Parcel, kind: str, occurrence: str = "") -> int:
    """Owe the recipient a ``kind`` message; ``occurrence`` tells repeated kinds apart.
    How many messages were newly owed (0: already owed, or no address to send it to)."""
    channels = channels_for(parcel)
    if not channels:
        return 0
    dialect = session.get_bind().dialect.name
    params: dict[str, Any] = {"parcel_id": parcel.id, "kind": kind}
    for i, channel in enumerate(channels):
        params[f"channel_{i}"] = channel
        params[f"key_{i}"] = f"{parcel.id}:{kind}:{occurrence}:{channel}"
    if dialect == "postgresql":
        # The messages and their send jobs in one round trip: the jobs are selected from the
        # rows the CTE wrote, so a message already owed gets no second job.
        return len(_owe_on_postgresql(len(channels)).rows(session, params))
    statement = _owe_statement(dialect, len(channels))
    ids = [notification_id for notification_id, _ in session.execute(statement, params)]
    # A fresh notification id cannot have a job yet: no need to look for one.
    outbox.enqueue_jobs(session, SEND_JOB, [
        ({"notification_id": notification_id}, f"notify:{notification_id}")
        for notification_id in ids
    ])
    return len(ids)


@functools.lru_cache(maxsize=4)
def _owe_on_postgresql(channels: int) -> Prebuilt:
    """The statement of :func:`_owe_statement` run on the driver's cursor (db/direct.py)."""
    return Prebuilt(lambda: _owe_statement("postgresql", channels))


@functools.lru_cache(maxsize=8)
def _owe_statement(dialect: str, channels: int) -> Executable:
    """The statement owing a message on ``channels`` channels, built once (bound values:
    ``parcel_id``, ``kind``, ``channel_<i>``, ``key_<i>``): a request neither builds it nor
    compiles it. The unique key decides, in the INSERT itself: a message already owed is
    skipped by ON CONFLICT DO NOTHING, and only the rows written come back (no SELECT
    before)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    owed = insert(NOTIFICATIONS).from_select(
        ["parcel_id", "kind", "channel", "dedupe_key"], _rows(channels),
    ).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(
        NOTIFICATIONS.c.id, NOTIFICATIONS.c.created_at)
    return _with_send_jobs(owed.cte("owed")) if dialect == "postgresql" else owed


def _rows(channels: int) -> Select[Any]:
    """The notification rows as a SELECT of bound values (one per channel, UNION ALL): unlike a
    multi-row VALUES, SQLAlchemy caches its compiled form. Selected from a subquery so the
    INSERT can add the columns' defaults; ``WHERE true``: SQLite's upsert needs a WHERE after
    a SELECT."""
    rows = union_all(*(
        select(bindparam("parcel_id", type_=Integer).label("parcel_id"),
               bindparam("kind", type_=String).label("kind"),
               bindparam(f"channel_{i}", type_=String).label("channel"),
               bindparam(f"key_{i}", type_=String).label("key"))
        for i in range(channels)
    )).subquery("rows")
    return select(rows.c.parcel_id, rows.c.kind, rows.c.channel, rows.c.key).where(true())


def _with_send_jobs(owed: CTE) -> Insert:
    """``INSERT INTO outbox … SELECT`` a send job for each row of ``owed`` (the notifications
    written: id, created_at), with the payload and key ``outbox.enqueue_job`` would give it,
    due when the notification was stamped (the clock's time, as every row default)."""
    jobs = select(
        literal(outbox.JOB), literal(SEND_JOB),
        func.json_build_object("notification_id", owed.c.id).cast(JSON),
        literal("notify:").concat(cast(owed.c.id, String)),
        literal(outbox.PENDING), literal(0), owed.c.created_at, owed.c.created_at,
    )
    return (
        insert_into(outbox.OUTBOX)
        .from_select(["kind", "name", "payload", "dedupe_key", "status", "attempts",
                      "created_at", "available_at"], jobs, include_defaults=False)
        .add_cte(owed)
        .returning(outbox.OUTBOX.c.id)
    )


def notification_view(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "kind": notification.kind,
        "channel": notification.channel,
        "status": notification.status,
        "attempts": notification.attempts,
        "provider_id": notification.provider_id,
        "provider_response": notification.provider_response,
        "error": notification.error,
        "created_at": notification.created_at.isoformat(),
        "sent_at": notification.sent_at.isoformat() if notification.sent_at else None,
    }


def for_parcel(ctx: Ctx, actor: Principal, parcel_id: int) -> list[dict[str, Any]]:
    """Every message owed for a parcel and what became of it (operators only: provider
    answers may quote the recipient's address)."""
    require_role(actor, Role.OPERATOR)
    with ctx.db.read() as session:
        if session.get(Parcel, parcel_id) is None:
            raise NotFound(f"no parcel {parcel_id}")
        rows = session.scalars(
            select(Notification).where(Notification.parcel_id == parcel_id)
            .order_by(Notification.id)
        )
        return [notification_view(n) for n in rows]
