"""The commands owed to a locker: rows of the outbox (kind ``locker_command``) written in the
transaction of the state change that needs them, claimed by the MQTT bridge to publish.

Nothing here knows MQTT: the bridge publishes what `claim_commands` hands it and reports the
locker's answers back through :mod:`relay_ops.services.locker_events`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from relay_ops import outbox
from relay_ops.db.models import Compartment, LockerLink, OutboxMessage, Parcel, Site
from relay_ops.services.context import Ctx

COMMAND_OPEN = "open_compartment"
# Outbox statuses of locker commands: pending -> sent -> accepted -> done | failed;
# expired (never executed), superseded (a newer credential sync replaced it).
# session.info key: this transaction wrote a locker command (the bridge publishes at once)
COMMANDS_QUEUED = "relay_ops.locker_commands_queued"


def queue_command(
    ctx: Ctx, session: Session, site: Site, name: str, body: dict[str, Any], now: datetime,
    *, ttl_s: int | None = None, dedupe: str | None = None,
) -> OutboxMessage:
    """Owe the locker a command (published by the bridge after this transaction commits)."""
    corr_id = str(uuid.uuid4())
    ttl = ttl_s if ttl_s is not None else ctx.settings.locker.open_ttl_s
    message = outbox.enqueue_locker_command(
        session, site.code, name, {"body": body}, dedupe or f"{name}:{site.code}:{corr_id}",
        now + timedelta(seconds=ttl),
    )
    if message.corr_id is None:
        message.corr_id = corr_id
    session.info[COMMANDS_QUEUED] = True
    return message


@dataclass(frozen=True)
class CommandToSend:
    id: int
    locker: str
    name: str
    body: dict[str, Any]
    corr_id: str
    expires_at: datetime
    # the counter reserved for this publication in the claim's own transaction
    # (`claim_commands(..., with_counters=True)`); None: the publisher takes one
    ctr: int | None = None


def reserve_counters(session: Session, code: str, count: int) -> int | None:
    """Reserve ``count`` consecutive command counters for locker ``code`` in the caller's
    transaction; returns the first (None: no such locker). One atomic statement: bridges
    publishing for the same locker never share a counter."""
    site_id = select(Site.id).where(Site.code == code, Site.kind == "locker")
    last = session.scalar(
        update(LockerLink).where(LockerLink.site_id == site_id.scalar_subquery())
        .values(command_counter=LockerLink.command_counter + count)
        .returning(LockerLink.command_counter)
    )
    return None if last is None else int(last) - count + 1


def commands_to_send(
    ctx: Ctx, *, resend_after_s: float = 5.0, limit: int = 200, locker: str | None = None,
    online_only: bool = True,
) -> list[CommandToSend]:
    """Claim the locker commands due for (re)publication and mark them sent.

    Pending rows are due at once; sent rows that no locker answered (no ``accepted``) are due
    again after ``resend_after_s``, until they expire. A process that dies after this call and
    before publishing loses nothing: the rows come due again. Expired rows are closed here.
    Commands for a locker known offline wait in the outbox (protocol section 8): published
    into the broker's queue they could run late, when nobody stands at the door any more.
    """
    with ctx.db.transaction() as session:
        return claim_commands(session, ctx.now(), resend_after_s=resend_after_s, limit=limit,
                              locker=locker, online_only=online_only)


def claim_commands(
    session: Session, now: datetime, *, resend_after_s: float = 5.0, limit: int = 200,
    locker: str | None = None, online_only: bool = True,
) -> list[CommandToSend]:
    """`commands_to_send` inside the caller's transaction (the bridge claims the commands an
    event produced in that event's transaction: one commit less between a scan and its door)."""
    expired = update(OutboxMessage).where(
        OutboxMessage.kind == outbox.LOCKER_COMMAND,
        OutboxMessage.status.in_(("pending", "sent")), OutboxMessage.expires_at < now)
    if locker is not None:
        expired = expired.where(OutboxMessage.target == locker)
    session.execute(expired.values(status="expired"))
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.kind == outbox.LOCKER_COMMAND,
            (OutboxMessage.status == "pending")
            | ((OutboxMessage.status == "sent")
               & (OutboxMessage.dispatched_at < now - timedelta(seconds=resend_after_s))),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if locker is not None:
        query = query.where(OutboxMessage.target == locker)
    if online_only:
        query = query.where(OutboxMessage.target.in_(
            select(Site.code).join(LockerLink, LockerLink.site_id == Site.id)
            .where(LockerLink.online.is_(True))))
    due: list[CommandToSend] = []
    for row in session.scalars(query):
        row.status, row.dispatched_at, row.attempts = "sent", now, row.attempts + 1
        assert row.target and row.corr_id and row.expires_at
        due.append(CommandToSend(row.id, row.target, row.name, dict(row.payload["body"]),
                                 row.corr_id, row.expires_at))
    return due


def open_door(ctx: Ctx, session: Session, site: Site, box: Compartment, purpose: str,
          parcel: Parcel | None, now: datetime, **extra: Any) -> OutboxMessage:
    body: dict[str, Any] = {"purpose": purpose, "compartment": box.number}
    if parcel is not None:
        body["parcel_ref"] = parcel.tracking_number
    body.update({k: v for k, v in extra.items() if v is not None})
    return queue_command(ctx, session, site, COMMAND_OPEN, body, now)
