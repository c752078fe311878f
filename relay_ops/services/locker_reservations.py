"""Doors reserved ahead of the carrier's visit: reserved for parcels whose expected day is
near (after a manifest, and by the sweep), released when their time is over or the parcel
will not come (rerouted). Each change reaches the locker in a credential sync."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, Parcel, Site
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import (
    allocate,
    is_advance_reservation,
    link_of,
    locked_locker,
    reserved_parcels,
    settle,
    shares_with,
)
from relay_ops.services.locker_sync import (
    deposit_reservation,
    deposit_reservation_id,
    queue_sync,
    sender_credential,
)
from relay_ops.services.principal import SYSTEM, Principal


def _reservation_horizon(ctx: Ctx, now: datetime) -> date | None:
    days = ctx.settings.locker.advance_reservation_days
    if days < 0:
        return None
    return ctx.local_day(now) + timedelta(days=days)


def _advance_reservation_end(ctx: Ctx, parcel: Parcel, now: datetime) -> datetime:
    """Held until the end of the day after the expected day (local time): a van that is late
    by a day still finds its doors; after that they go back to everyone."""
    today = ctx.local_day(now)
    day = max(parcel.expected_date or today, today) + timedelta(days=2)
    return ctx.day_start(day).astimezone(now.tzinfo)


def _due_parcels(ctx: Ctx, session: Session, horizon: date, site_id: int | None = None
                 ) -> Any:
    """Announced parcels expected between yesterday and the horizon, without a door: older
    ones had their reservation and lost it (it lapsed), the app's drop-off serves them."""
    since = horizon - timedelta(days=ctx.settings.locker.advance_reservation_days + 1)
    query = select(Parcel).where(
        Parcel.state == State.ANNOUNCED.value, Parcel.compartment_id.is_(None),
        Parcel.expected_date.is_not(None), Parcel.expected_date <= horizon,
        Parcel.expected_date >= since, Parcel.carrier_id.is_not(None))
    if site_id is not None:
        query = query.where(Parcel.site_id == site_id)
    return query


def lockers_with_advance_work(ctx: Ctx, session: Session, now: datetime) -> list[int]:
    lapsed = select(Compartment.site_id).where(
        Compartment.state == "reserved", Compartment.reserved_session_id.is_(None),
        Compartment.reserved_until.is_not(None), Compartment.reserved_until <= now)
    ids = set(session.scalars(lapsed))
    horizon = _reservation_horizon(ctx, now)
    if horizon is not None:
        due = _due_parcels(ctx, session, horizon).with_only_columns(Parcel.site_id).join(
            Site, Site.id == Parcel.site_id).where(Site.kind == "locker").distinct()
        ids |= set(session.scalars(due))
    return sorted(ids)


def reserve_ahead(ctx: Ctx, session: Session, site: Site, now: datetime
                  ) -> list[dict[str, Any]]:
    """Reserve, in advance, the smallest fitting free compartment for each parcel announced
    to this locker whose expected day is near (LOCKER_ADVANCE_RESERVATION_DAYS). The caller
    holds the locker's lock and syncs the returned reservations to the locker. A parcel that
    finds no room now is tried again by the next sweep; at the door the online drop-off
    (with its full-locker reroute) still works for it."""
    horizon = _reservation_horizon(ctx, now)
    if horizon is None:
        return []
    added = []
    for parcel in session.scalars(_due_parcels(ctx, session, horizon, site.id)
                                  .order_by(Parcel.expected_date, Parcel.id)):
        box = _reserve_door(ctx, session, site, parcel, _advance_reservation_end(ctx, parcel, now),
                            SYSTEM, now)
        if box is not None:
            added.append(deposit_reservation(ctx, site, parcel, box))
    return added


def _reserve_door(ctx: Ctx, session: Session, site: Site, parcel: Parcel, until: datetime,
                  actor: Principal, now: datetime, **why: Any) -> Compartment | None:
    """The door the drop-off would give the parcel (:func:`allocate`: a door of its
    recipient's, else the smallest free one it fits), reserved ahead until ``until``; None
    when no door takes it now."""
    box, _reason = allocate(ctx, session, site, parcel, until)
    if box is None:
        return None
    shared = shares_with(session, box)
    box.state, box.reserved_session_id = "reserved", None
    # a door already reserved ahead keeps its end: the locker knows its reservations by it
    box.reserved_until = box.reserved_until if box.reserved_until else until
    parcel.compartment_id = box.id
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number,
                            "advance": True, "until": box.reserved_until.isoformat(), **why}
    if shared:
        data["shared_with"] = shared
    history.record(session, parcel, "compartment_reserved", parcel.state, actor, now, data=data)
    return box


def hold_door(ctx: Ctx, session: Session, parcel: Parcel, site: Site, day: date,
              actor: Principal) -> Compartment | None:
    """Room promised is room held at a locker: a parcel a reroute sends here holds, from now
    until its place lapses (``reservations.lapses_at``: its day plus the grace), the door the
    drop-off would give it, reserved ahead like a door for a parcel due soon. The carrier's
    deposit opens that door (online or offline: the locker learns it as a deposit
    reservation, so no other deposit takes it); the lapse sweep frees it. None: no door of
    the locker takes the parcel now (the caller refuses the reroute)."""
    locked_locker(session, site.id)  # doors and credential versions change under its lock
    box = _reserve_door(ctx, session, site, parcel, reservations.lapses_at(ctx, day), actor,
                        ctx.now(), reroute=True)
    if box is not None:
        queue_sync(ctx, session, site, link_of(session, site),
                   reservations=[deposit_reservation(ctx, site, parcel, box)])
    return box


def reserve_ahead_at(ctx: Ctx, session: Session, site_ids: set[int]) -> None:
    """After a manifest: the lockers it names reserve for their parcels due soon (one
    credential version per locker, not one per parcel)."""
    now = ctx.now()
    for site_id in sorted(site_ids):
        site = session.get(Site, site_id, with_for_update=True)
        if site is None or site.kind != "locker":
            continue
        added = reserve_ahead(ctx, session, site, now)
        if added:
            queue_sync(ctx, session, site, link_of(session, site), reservations=added)


def release_lapsed_reservations(session: Session, site: Site, now: datetime) -> list[str]:
    released = []
    for box in session.scalars(select(Compartment).where(
            Compartment.site_id == site.id, Compartment.state == "reserved",
            Compartment.reserved_session_id.is_(None), Compartment.reserved_until.is_not(None),
            Compartment.reserved_until <= now)):
        for parcel in reserved_parcels(session, box):
            released.append(deposit_reservation_id(parcel, box))
            parcel.compartment_id = None
            if (dead := sender_credential(session, parcel)) is not None:
                dead.revoked_at = now  # a drop-off's code dies with its door (locker_sending)
            history.record(session, parcel, "reservation_released", parcel.state, SYSTEM, now,
                           reason="advance reservation over", data={"compartment": box.number})
        box.reserved_until = None
        settle(session, box)
    return released


def release_advance_reservation(ctx: Ctx, session: Session, parcel: Parcel, site: Site,
                                actor: Principal, reason: str) -> None:
    """A parcel that will not come to this locker (rerouted...) gives its door back, and the
    locker forgets the reservation."""
    if parcel.compartment_id is None:
        return
    box = session.get(Compartment, parcel.compartment_id)
    if box is None or not is_advance_reservation(box) or box.site_id != site.id:
        return
    session.get(Site, site.id, with_for_update=True)  # credential versions are per locker
    reservation_id = deposit_reservation_id(parcel, box)
    parcel.compartment_id = None
    history.record(session, parcel, "reservation_released", parcel.state, actor, ctx.now(),
                   reason=reason, data={"compartment": box.number})
    if not reserved_parcels(session, box):  # another parcel of the recipient's still comes
        box.reserved_until = None
        if box.state == "reserved":
            settle(session, box)
    queue_sync(ctx, session, site, link_of(session, site), released=[reservation_id])
