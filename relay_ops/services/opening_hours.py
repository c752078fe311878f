"""A site's opening hours set by an operator: effective at once (``open_now``, the deadlines
of later check-ins); a shop that had none owes its waiting parcels their ready message, with
deadlines re-dated by the check-in's rules (:func:`resend_ready_after_hours_set`).

Above `sites`, which never reaches back to the check-in's rules.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Notification, Parcel, ParcelEvent, Site
from relay_ops.domain.holding import deadline_after
from relay_ops.domain.hours import opens_some_day, validate_site_hours
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history, notify
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import READY, iso
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.site_calendar import closed_on
from relay_ops.services.sites import site_row, site_view


def set_opening_hours(ctx: Ctx, actor: Principal, site_id: int, hours: object) -> dict[str, Any]:
    """New opening hours, effective at once (``open_now``, deadlines of later check-ins).

    Parcels waiting here whose ready message failed for want of hours (a shop created before
    hours were required) are owed that message again, with a deadline recomputed under the
    new hours: nobody was told the old one, which ran to the closed-run cap.
    """
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    checked = validate_site_hours(hours)
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        had_hours = opens_some_day(site.opening_hours)
        site.opening_hours = checked
        session.flush()
        if not had_hours:
            resend_ready_after_hours_set(ctx, session, site, actor)
        session.refresh(site)
        return site_view(site)


def resend_ready_after_hours_set(
    ctx: Ctx, session: Session, site: Site, actor: Principal
) -> list[int]:
    """A shop got its first opening hours: each parcel waiting there whose ready message
    failed for want of them gets a deadline counted from now under the new hours (nobody was
    told the old one) and is owed its ready message again. The parcels' ids."""
    now = ctx.now()
    failed = select(Notification.parcel_id).where(
        Notification.kind == "ready", Notification.status == "failed",
        Notification.error.startswith(notify.NO_OPENING_HOURS),
    )
    waiting = list(session.scalars(
        select(Parcel).where(Parcel.site_id == site.id, Parcel.state == READY,
                             Parcel.id.in_(failed))
        .order_by(Parcel.id).with_for_update()
    ))
    for parcel in waiting:
        days = _holding_days_given(session, parcel) or ctx.settings.holding[site.kind].days
        parcel.holding_deadline = deadline_after(
            now, days, ctx.settings.timezone, closed_on(session, site)
        )
        history.record(session, parcel, "deadline_reset", parcel.state, actor, now,
                       reason="the site's opening hours were set",
                       data={"deadline": iso(parcel.holding_deadline), "holding_days": days})
        # A new occurrence: the failed message stays in the record as it was.
        notify.queue(session, parcel, "ready", f"hours-set:{now.isoformat()}")
    return [p.id for p in waiting]


def _holding_days_given(session: Session, parcel: Parcel) -> int | None:
    """The holding period decided at check-in (its event says it): kept, only re-dated."""
    event = session.scalar(
        select(ParcelEvent)
        .where(ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == Action.CHECK_IN.value)
        .order_by(ParcelEvent.id.desc())
    )
    days = (event.data or {}).get("holding_days") if event is not None else None
    return int(days) if days else None
