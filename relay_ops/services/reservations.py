"""Room promised is room held (issue 16.1): a place at a site, for one day, for one parcel a
reroute sends there.

A reroute (an automatic move, an accepted proposal, a full locker's parcel sent on) holds one
place at its destination for the parcel's day; a proposal awaiting its carrier holds one at
its first option. At a locker the place is a door of the parcel's size, held until the place
lapses (:func:`lapses_at`, ``locker_reservations.hold_door``); the planner counts a door for
each place held there without one (:func:`awaiting_a_door`). Three readers count the held
places (docs/forecast.md, "Room promised is room held"):

- the destination's forecast (:func:`promised_arrivals`): only the places of parcels still
  announced elsewhere (proposals), since a parcel moved there is announced there already;
- the reroute planner (``reroute_planner.Planner``), through that forecast, before it promises more;
- the check-in (:func:`reserved_here`, :func:`reservation_day`, :func:`keep_room`): a parcel
  without a reservation may not take a place held for a rerouted parcel expected that day; a
  reserved parcel's check-in uses its reservation.

A held place stops counting as soon as its parcel is no longer announced (checked in,
cancelled, returned: every reader joins the parcel), and the periodic sweep
(:func:`sweep`, ``place-reservations`` in the scheduler) writes it down: lapsed when the
parcel did not come by its day plus ``FORECAST.reservation_grace_days``; used or released
when the parcel left the announced state. A parcel rerouted again releases its earlier place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, PlaceReservation, RerouteProposal, Site
from relay_ops.domain import forecast as model
from relay_ops.domain import reservations as rule
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.shelves import no_room

HELD, USED, LAPSED, RELEASED = "held", "used", "lapsed", "released"
ANNOUNCED = State.ANNOUNCED.value


def _live() -> Any:
    """Held, and its parcel still announced: the places that count."""
    return and_(PlaceReservation.status == HELD, Parcel.state == ANNOUNCED)


# ---------------------------------------------------------------- holding and releasing


def hold(
    ctx: Ctx, session: Session, parcel: Parcel, site: Site, day: date,
    proposal: RerouteProposal | None, reason: str | None = None, *, first: bool = False,
    flush: bool = True,
) -> PlaceReservation:
    """One place at ``site`` on ``day`` for ``parcel`` (sent there by ``proposal``, or kept
    at the depot until that day: ``reason`` says why); a place it held elsewhere is released
    (a parcel rerouted again keeps one promise, the last). ``first``: the parcel was
    announced in this transaction and holds no place yet, so there is none to release (a
    manifest's hundreds of proposals skip an UPDATE each). ``flush`` False: written (with
    its proposal, if that is new too) at the session's next flush, which any read of the
    places does first."""
    if not first:
        release_parcel(ctx, session, parcel.id)
    reservation = PlaceReservation(
        site_id=site.id, day=day, parcel_id=parcel.id, proposal=proposal,
        reason=reason or (proposal.reason if proposal is not None else "held"), status=HELD,
        created_at=ctx.now(),
    )
    session.add(reservation)
    if flush:
        session.flush()
    return reservation


# These UPDATEs set the places they change in the session from the ids the database returns
# ("fetch"), not by testing the WHERE clause against every object the session holds (the
# default, "evaluate"): a manifest's session holds thousands (70 holds took 0.5 s of a
# 5,000-parcel announcement for a full area).
_SYNC_FROM_ROWS = {"synchronize_session": "fetch"}


def release_parcel(ctx: Ctx, session: Session, parcel_id: int) -> None:
    session.execute(
        update(PlaceReservation)
        .where(PlaceReservation.parcel_id == parcel_id, PlaceReservation.status == HELD)
        .values(status=RELEASED, decided_at=ctx.now()),
        execution_options=_SYNC_FROM_ROWS,
    )


def release_proposal(ctx: Ctx, session: Session, proposal: RerouteProposal) -> None:
    """The proposal is decided: the place it held at its first option is free (an accepted
    proposal then holds one at the site chosen)."""
    session.execute(
        update(PlaceReservation)
        .where(PlaceReservation.proposal_id == proposal.id, PlaceReservation.status == HELD)
        .values(status=RELEASED, decided_at=ctx.now()),
        execution_options=_SYNC_FROM_ROWS,
    )


def use(ctx: Ctx, session: Session, parcel_id: int, site_id: int) -> None:
    """The parcel was checked in where its place was held."""
    session.execute(
        update(PlaceReservation)
        .where(PlaceReservation.parcel_id == parcel_id, PlaceReservation.site_id == site_id,
               PlaceReservation.status == HELD)
        .values(status=USED, decided_at=ctx.now()),
        execution_options=_SYNC_FROM_ROWS,
    )


def for_proposal(session: Session, proposal_id: int) -> PlaceReservation | None:
    return session.scalar(
        select(PlaceReservation).where(PlaceReservation.proposal_id == proposal_id)
        .order_by(PlaceReservation.id.desc())
    )


def view(session: Session, reservation: PlaceReservation | None) -> dict[str, Any] | None:
    if reservation is None:
        return None
    site = session.get(Site, reservation.site_id)
    return {
        "id": reservation.id, "site": site.code if site else None,
        "day": reservation.day.isoformat(), "status": reservation.status,
    }


# ---------------------------------------------------------------- the readers


def promised_arrivals(
    ctx: Ctx, session: Session, sites: Sequence[Site], today: date
) -> dict[int, list[model.Arrival]]:
    """The forecast's arrivals for places held at each site for parcels still announced at
    another site (proposals awaiting their carrier): a parcel moved here is announced here
    and counted as such, never twice. A day already past but within the grace counts today.
    By site, those with none left out."""
    grace = ctx.settings.forecast.reservation_grace_days
    show = ctx.settings.forecast.show_rate
    rows = session.execute(
        select(PlaceReservation.site_id, PlaceReservation.day)
        .join(Parcel, Parcel.id == PlaceReservation.parcel_id)
        .where(PlaceReservation.site_id.in_([site.id for site in sites]), _live(),
               Parcel.site_id != PlaceReservation.site_id,
               PlaceReservation.day >= today - timedelta(days=grace))
        .order_by(PlaceReservation.site_id, PlaceReservation.day)
    )
    arrivals: dict[int, list[model.Arrival]] = defaultdict(list)
    for site_id, day in rows:
        arrivals[site_id].append(model.Arrival(max(day, today), show))
    return dict(arrivals)


def reserved_per_day(ctx: Ctx, session: Session, site_id: int) -> dict[date, int]:
    """Places held at the site per day from today on, for the operator's forecast view."""
    rows = session.execute(
        select(PlaceReservation.day, func.count())
        .join(Parcel, Parcel.id == PlaceReservation.parcel_id)
        .where(PlaceReservation.site_id == site_id, _live(),
               PlaceReservation.day >= ctx.today())
        .group_by(PlaceReservation.day)
    )
    counts: dict[date, int] = defaultdict(int)
    for day, count in rows:
        counts[day] += count
    return dict(counts)


def reserved_here(since: date | ColumnElement[date], today: date | ColumnElement[date]
                  ) -> ScalarSelect[int]:
    """Places held at the site (the outer query's ``Site``) for parcels addressed there and
    still expected today (held for a day from ``since``, :func:`reserved_since`, to
    ``today``): a column the check-in's site lock carries, no statement of its own. Values
    or bound parameters (the check-in builds its statement once)."""
    return (
        select(func.count()).select_from(PlaceReservation)
        .join(Parcel, Parcel.id == PlaceReservation.parcel_id)
        .where(PlaceReservation.site_id == Site.id, Parcel.site_id == Site.id, _live(),
               PlaceReservation.day >= since, PlaceReservation.day <= today)
        .correlate(Site)
        .scalar_subquery()
    )


def reserved_since(ctx: Ctx, today: date) -> date:
    """The first day whose held places still count today: a rerouted parcel may come a few
    days late (``reservation_grace_days``)."""
    return today - timedelta(days=ctx.settings.forecast.reservation_grace_days)


def lapses_at(ctx: Ctx, day: date) -> datetime:
    """When a place held for ``day`` stops counting: the start of the local day after its
    grace (the sweep's ``lapsed``, :func:`reserved_since`). A locker's door held for a
    rerouted parcel is reserved until then (``locker_reservations.hold_door``): one lapse."""
    grace = ctx.settings.forecast.reservation_grace_days
    return ctx.day_start(day + timedelta(days=grace + 1)).astimezone(ctx.now().tzinfo)


def awaiting_a_door(ctx: Ctx, session: Session, site_id: int) -> list[Parcel]:
    """The parcels a place is held for at the locker ``site_id`` that hold no door of it
    yet, first promised first: a proposal's parcel, still announced at its first site, and
    a parcel held at the depot until a later day (a moved parcel holds its door at once).
    Each needs a door when it comes, so the planner counts them against the free doors."""
    return list(session.scalars(
        select(Parcel).join(PlaceReservation, PlaceReservation.parcel_id == Parcel.id)
        .where(PlaceReservation.site_id == site_id, _live(),
               PlaceReservation.day >= reserved_since(ctx, ctx.today()),
               or_(Parcel.site_id != site_id, Parcel.compartment_id.is_(None)))
        .order_by(PlaceReservation.id)
    ))


def reservation_day(site_id: int | ColumnElement[int]) -> ScalarSelect[date]:
    """The day of the place held at the site for the outer query's ``Parcel`` (NULL: none):
    a column the check-in's parcel lookup carries. A value or a bound parameter (the
    check-in builds its statement once)."""
    return (
        select(PlaceReservation.day)
        .where(PlaceReservation.parcel_id == Parcel.id, PlaceReservation.site_id == site_id,
               PlaceReservation.status == HELD)
        .order_by(PlaceReservation.id.desc()).limit(1)
        .correlate(Parcel)
        .scalar_subquery()
    )


def keep_room(
    ctx: Ctx, session: Session, site: Site, parcel_class: str, reserved: int
) -> None:
    """Refuse (:class:`SiteAtCapacity`) a parcel without a reservation that would take one of
    the ``reserved`` places held for rerouted parcels expected today. Free places from the
    shelf counters the check-in already read."""
    if reserved <= 0:
        return
    free = sum(max(0, loc.capacity - loc.held) for loc in site.locations if loc.active)
    if not rule.keeps_room_for_others(free, reserved):
        raise no_room(ctx, session, site, parcel_class, kept_for_reroutes=reserved)


# ---------------------------------------------------------------- the sweep


def sweep(ctx: Ctx) -> dict[str, int]:
    """Write down what no longer counts: places whose parcel did not come by its day plus the
    grace (lapsed), whose parcel was checked in where its place was held (used) or left the
    announced state otherwise (released). Safe to run twice or at once (plain UPDATEs)."""
    today, now = ctx.today(), ctx.now()
    grace = ctx.settings.forecast.reservation_grace_days
    gone = exists().where(Parcel.id == PlaceReservation.parcel_id, Parcel.state != ANNOUNCED)
    checked_in_here = exists().where(
        Parcel.id == PlaceReservation.parcel_id, Parcel.state != ANNOUNCED,
        Parcel.site_id == PlaceReservation.site_id, Parcel.checked_in_at.is_not(None))
    counts = {}
    with ctx.db.transaction() as session:
        for status, condition in (
            (USED, checked_in_here),
            (RELEASED, gone),
            (LAPSED, PlaceReservation.day < today - timedelta(days=grace)),
        ):
            result = session.execute(
                update(PlaceReservation)
                .where(PlaceReservation.status == HELD, condition)
                .values(status=status, decided_at=now)
                .execution_options(synchronize_session=False)
            )
            counts[status] = int(getattr(result, "rowcount", 0) or 0)
    return counts
