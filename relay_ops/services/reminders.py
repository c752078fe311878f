"""Reminders before the holding deadline: one message per deadline, per channel.

The reminder window opens ``reminder_before_hours`` before the deadline (per site kind, from
HOLDING_PERIODS), or earlier when the parcel's holding period was shortened for overflow (the
lead decided at check-in and kept on the parcel, docs/forecast.md "Adaptive holding"). A
parcel checked in after its window opened gets no reminder: its "ready" message, sent moments
ago, already gave the deadline. An extension moves the deadline, and the new deadline earns
its own reminder (with the same lead).
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
    due: list[tuple[datetime, int]] = []
    with ctx.db.read() as session:
        for kind, policy in ctx.settings.holding.items():
            # Wide enough for the earlier reminders too; each parcel's own lead decides.
            earlier = ctx.settings.adaptive_holding.reminder_before_hours.get(kind, 0)
            horizon = now + timedelta(hours=max(policy.reminder_before_hours, earlier))
            rows = session.execute(
                select(Parcel.id, Parcel.holding_deadline, Parcel.reminder_before_hours)
                .join(Site, Site.id == Parcel.site_id)
                .where(Site.kind == kind, Parcel.state == READY,
                       Parcel.holding_deadline > now, Parcel.holding_deadline <= horizon,
                       Parcel.personal_data_purged_at.is_(None))
            )
            for parcel_id, deadline, lead in rows:
                hours = policy.reminder_before_hours if lead is None else lead
                if deadline is not None and deadline - timedelta(hours=hours) <= now:
                    due.append((deadline, parcel_id))
    return [parcel_id for _, parcel_id in sorted(due)[:limit]]


def _window_open(ctx: Ctx, parcel: Parcel, now: datetime) -> bool:
    deadline, checked_in = parcel.holding_deadline, parcel.checked_in_at
    if parcel.state != READY or deadline is None or deadline <= now:
        return False
    opens = deadline - timedelta(hours=lead_hours(ctx, parcel))
    return opens <= now and (checked_in is None or checked_in < opens)


def lead_hours(ctx: Ctx, parcel: Parcel) -> int:
    """How long before its deadline a parcel is reminded: its own lead if its check-in
    brought the reminder forward, else its site kind's."""
    if parcel.reminder_before_hours is not None:
        return parcel.reminder_before_hours
    return ctx.settings.holding[parcel.site.kind].reminder_before_hours
