"""Reminders before the holding deadline: one message per deadline, per channel.

The reminder window opens ``reminder_before_hours`` before the deadline (per site kind, from
HOLDING_PERIODS). A parcel checked in after its window opened gets no reminder: its "ready"
message, sent moments ago, already gave the deadline. An extension moves the deadline, and the
new deadline earns its own reminder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from relay_ops.db.models import Parcel, Site
from relay_ops.domain.lifecycle import State
from relay_ops.services import notify
from relay_ops.services.context import Ctx

READY = State.READY_FOR_PICKUP.value


def send_due(ctx: Ctx, limit: int = 1000) -> list[int]:
    """Queue the reminders whose window is open. Safe to run anywhere, any time."""
    now = ctx.now()
    reminded = []
    for parcel_id in _candidates(ctx, now, limit):
        with ctx.db.transaction() as session:
            parcel = session.get(Parcel, parcel_id, with_for_update=True)
            # Re-checked under the lock: a pickup or an extension may have happened since.
            if parcel is None or not _window_open(ctx, parcel, now):
                continue
            assert parcel.holding_deadline is not None
            if notify.queue(session, parcel, "reminder", parcel.holding_deadline.isoformat()):
                reminded.append(parcel_id)
    return reminded


def _candidates(ctx: Ctx, now: datetime, limit: int) -> list[int]:
    ids: list[int] = []
    with ctx.db.read() as session:
        for kind, policy in ctx.settings.holding.items():
            horizon = now + timedelta(hours=policy.reminder_before_hours)
            ids += session.scalars(
                select(Parcel.id)
                .join(Site, Site.id == Parcel.site_id)
                .where(Site.kind == kind, Parcel.state == READY,
                       Parcel.holding_deadline > now, Parcel.holding_deadline <= horizon,
                       Parcel.personal_data_purged_at.is_(None))
                .order_by(Parcel.holding_deadline)
                .limit(limit)
            )
    return ids


def _window_open(ctx: Ctx, parcel: Parcel, now: datetime) -> bool:
    deadline, checked_in = parcel.holding_deadline, parcel.checked_in_at
    if parcel.state != READY or deadline is None or deadline <= now:
        return False
    opens = deadline - timedelta(hours=ctx.settings.holding[parcel.site.kind].reminder_before_hours)
    return opens <= now and (checked_in is None or checked_in < opens)
