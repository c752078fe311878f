"""Queueing messages to residents: a notification row per channel, and a job to send it.

Both are written in the caller's transaction. The row's unique ``dedupe_key`` makes a second
request for the same message a no-op, so a message is owed once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relay_ops import outbox
from relay_ops.db.models import Notification, Parcel
from relay_ops.domain.errors import NotFound
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role

SEND_JOB = "notifications.send"
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


def queue(session: Session, parcel: Parcel, kind: str, occurrence: str = "") -> list[Notification]:
    """Owe the recipient a ``kind`` message; ``occurrence`` tells repeated kinds apart."""
    keys = {ch: f"{parcel.id}:{kind}:{occurrence}:{ch}" for ch in channels_for(parcel)}
    if not keys:
        return []
    # The unique key decides, in the INSERT itself: a message already owed is skipped by
    # ON CONFLICT DO NOTHING, and only the rows written come back (no SELECT before).
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    queued = list(session.scalars(
        insert(Notification).values([
            {"parcel_id": parcel.id, "kind": kind, "channel": channel, "dedupe_key": key}
            for channel, key in keys.items()
        ]).on_conflict_do_nothing(index_elements=[Notification.dedupe_key])
        .returning(Notification)
    ))
    for notification in queued:
        # A fresh notification id cannot have a job yet: no need to look for one.
        outbox.enqueue_job(
            session, SEND_JOB, {"notification_id": notification.id}, f"notify:{notification.id}",
            fresh=True,
        )
    return queued


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
