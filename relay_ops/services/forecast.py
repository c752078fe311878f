"""Occupancy forecasts: read a site's parcels and events, run the model, store the days.

The model is ``relay_ops.domain.forecast`` (docs/forecast.md). This module only gathers its
inputs and keeps the result in ``site_forecasts``, one row per site and day, replaced each
time. It runs on every manifest announcement for the sites the manifest touches (inside that
transaction), when someone reads a site's forecast, and for every site from
``forecast_sweep.forecast_all``, the plain function the scheduler calls.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    ScalarSelect,
    Table,
    and_,
    cast,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relay_ops.db.local_date import local_date
from relay_ops.db.models import Location, Parcel, ParcelEvent, Site, SiteForecast
from relay_ops.domain import forecast as model
from relay_ops.domain import forecast_flows as flow_model
from relay_ops.domain import outbound, season
from relay_ops.domain.hours import ALWAYS_OPEN, DAYS
from relay_ops.domain.lifecycle import HELD_STATES, State
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import forecast_flows, history, reservations
from relay_ops.services import forecast_learning as learning
from relay_ops.services.context import Ctx
from relay_ops.services.site_calendar import closed_given, closing_days_of_sites
from relay_ops.services.site_locations import shelf_load
from relay_ops.services.sites import capacities, in_service_on, occupancy_of

HELD = [s.value for s in HELD_STATES]
LATE_ANNOUNCED_DAYS = 2  # an announced parcel this late may still come, at half the odds
# (one refused at the counter for lack of room is known to come back: full odds, see _announced)


def site_closed_on(session: Session, site: Site) -> model.ClosedOn:
    return sites_closed_on(session, [site])[site.id]


def sites_closed_on(session: Session, sites: Sequence[Site]) -> dict[int, model.ClosedOn]:
    """Each site's closed days (a closed site: every day), closing days read in one
    statement."""
    closing = closing_days_of_sites(session, [site.id for site in sites if site.status != "closed"])
    return {site.id: (lambda _day: True) if site.status == "closed"
            else closed_given(site, closing.get(site.id, set())) for site in sites}


def today_remaining(ctx: Ctx, site: Site, now: datetime) -> float:
    """The share of today's opening time still to come (pickups and arrivals left today)."""
    local = now.astimezone(ctx.settings.timezone)
    minute = local.hour * 60 + local.minute
    if site.opening_hours == ALWAYS_OPEN:
        return 1.0 - minute / (24 * 60)
    total = left = 0
    for start, end in site.opening_hours.get(DAYS[local.weekday()], []):
        a, b = _minutes(start), _minutes(end)
        total += b - a
        left += max(0, b - max(a, minute))
    return left / total if total else 0.0


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


# ---------------------------------------------------------------- inputs


def inputs_for(ctx: Ctx, session: Session, site: Site) -> model.SiteInputs:
    return inputs_of_sites(ctx, session, [site])[site.id]


def inputs_of_sites(ctx: Ctx, session: Session, sites: Sequence[Site]
                    ) -> dict[int, model.SiteInputs]:
    """Each site's forecast inputs, each part read in one statement for all of them: the
    reroute planner asks every neighbour of a full area at once (thirty sites' inputs read
    one by one were 480 statements, a fifth of a big manifest's time: docs/benchmarks.md).
    A site's inputs do not depend on the others read with it (a test says so)."""
    if not sites:
        return {}
    now = ctx.now()
    today = ctx.local_day(now)
    settings = ctx.settings.forecast
    closed = sites_closed_on(session, sites)
    held = _held(ctx, session, sites, today, closed)
    announced = _announced(ctx, session, sites, today, closed)
    places = capacities(session, sites)
    extra = temporary_capacity(session, sites, today, settings.horizon_days)
    # Places held here for proposals' parcels, still announced elsewhere (room promised).
    promised = reservations.promised_arrivals(ctx, session, sites, today)
    rates = learning.arrival_rates(ctx, session, sites, now, closed)
    hazards = learning.hazards(ctx, session, sites, now, closed)
    flows = forecast_flows.site_flows(
        ctx, session, sites, now, closed, {i: of_flows for i, (_, of_flows) in held.items()},
        {i: of_flows for i, (_, of_flows) in announced.items()})
    return {site.id: model.SiteInputs(
        today=today,
        capacity=places[site.id],
        extra_capacity=extra.get(site.id, {}),
        held=held[site.id][0],
        announced=announced[site.id][0] + promised.get(site.id, []),
        **rates[site.id],
        hazards=hazards[site.id],
        holding_days=ctx.settings.holding[site.kind].days,
        return_lag_days=settings.return_lag_days,
        today_remaining=today_remaining(ctx, site, now),
        closed_on=closed[site.id],
        horizon=settings.horizon_days,
        z=settings.band_z,
        flows=flows[site.id],
    ) for site in sites}


def temporary_capacity(session: Session, sites: Sequence[Site], today: date, horizon: int
                       ) -> dict[int, dict[date, int]]:
    """The places a shop's (or a storage site's) temporary shelves add on each forecast day
    (only within their dates: docs/forecast.md, "Season capacity"), by site; none for a
    locker."""
    shelved = [site.id for site in sites if has_shelves(site.kind)]
    if not shelved:
        return {}
    shelves: dict[int, list[tuple[int, date | None, date | None]]] = {i: [] for i in shelved}
    for site_id, places, first, last in session.execute(
        select(Location.site_id, Location.capacity, Location.valid_from, Location.valid_until)
        .where(Location.site_id.in_(shelved), Location.active.is_(True),
               ~in_service_on(None), in_service_on(today) | (Location.valid_from > today))
    ):
        shelves[site_id].append((places, first, last))
    days = [today + timedelta(days=i) for i in range(horizon + 1)]
    return {site_id: {day: sum(c for c, first, last in rows
                               if season.in_service(first, last, day)) for day in days}
            for site_id, rows in shelves.items()}


OnHand = tuple[dict[model.Held, int], dict[str, Counter[int]]]  # the site's own, and its flows'


def _held(
    ctx: Ctx, session: Session, sites: Sequence[Site], today: date,
    closed: dict[int, model.ClosedOn],
) -> dict[int, OnHand]:
    """Each site's parcels on hand, counted by kind: parcels in the same state checked in on
    the same local day with the same deadline day are alike, so SQL counts them (a shop's
    100,000 parcels on hand are a few hundred kinds, issue 15). The site's own parcels apart
    from its flows' (sent from it, producers' orders), which leave by their own learned
    dwell: those are counted by their age in open days, per flow."""
    lag = timedelta(days=ctx.settings.forecast.return_lag_days)
    zone = ctx.settings.timezone
    checked_in = local_date(Parcel.checked_in_at, zone)
    deadline = local_date(Parcel.holding_deadline, zone)
    order = learning.is_order()
    keys = (Parcel.site_id, Parcel.state, checked_in, deadline, Parcel.direction, order)
    rows = session.execute(
        select(*keys, func.count())
        .where(Parcel.site_id.in_([site.id for site in sites]), Parcel.state.in_(HELD))
        .group_by(*keys)
        .order_by(*keys)  # the same sums in the same order each time
    )
    counted: dict[int, tuple[Counter[model.Held], dict[str, Counter[int]]]] = {
        site.id: (Counter(), {kind: Counter() for kind in flow_model.KINDS}) for site in sites}
    for site_id, state, start, end, direction, is_order, count in rows:
        held, flows_held = counted[site_id]
        start, end = start or today, end or today
        age = len(model.open_ages(start, today - timedelta(days=1), closed[site_id]))
        kind = flow_kind(direction, is_order)
        if kind is not None:
            flows_held[kind][age] += count
            continue
        collectable = state == State.READY_FOR_PICKUP.value
        held[model.Held(
            age=age, pickup_until=end if collectable else None,
            leaves_after=max(today, end + lag),
        )] += count
    return {site_id: (dict(held), flows_held) for site_id, (held, flows_held) in counted.items()}


def flow_kind(direction: str, is_order: bool | None) -> str | None:
    """The flow a parcel belongs to (``domain/forecast_flows``), None for a carrier's parcel
    delivered to the site."""
    if direction == outbound.DIRECTION:
        return flow_model.SENT
    return flow_model.ORDERS if is_order else None


Announced = tuple[list[model.Arrival], dict[str, list[flow_model.FlowArrival]]]


def _announced(
    ctx: Ctx, session: Session, sites: Sequence[Site], today: date,
    closed: dict[int, model.ClosedOn],
) -> dict[int, Announced]:
    """Each site's parcels announced and not yet checked in, each on the day it should
    come: its expected day; the next open day after its last refusal at the counter (the
    carrier brings it back, full odds), or its expected day if later (held at the depot after
    the refusal); a day or two late, today at half odds; later, never.
    A producer's order (announced the evening before its day) and a parcel to send at a
    locker (its drop-off code) go to their flows, by the same days and odds."""
    show = ctx.settings.forecast.show_rate
    ids = [site.id for site in sites]
    found: dict[int, Announced] = {site_id: ([], {}) for site_id in ids}
    # Refusals are few: grouped once and joined, not looked up per announced parcel (a
    # correlated subquery went quadratic on fresh tables whose statistics said "empty").
    # A refusal counts at the site that refused it, where the parcel is still announced.
    refusals = (
        select(ParcelEvent.parcel_id, ParcelEvent.site_id, func.max(ParcelEvent.at).label("at"))
        .where(ParcelEvent.site_id.in_(ids), ParcelEvent.action == history.CHECK_IN_REFUSED)
        .group_by(ParcelEvent.parcel_id, ParcelEvent.site_id)
        .subquery()
    )
    rows = session.execute(
        select(Parcel.site_id, Parcel.expected_date, Parcel.created_at, refusals.c.at,
               Parcel.direction, learning.is_order())
        .outerjoin(refusals, and_(refusals.c.parcel_id == Parcel.id,
                                  refusals.c.site_id == Parcel.site_id))
        .where(Parcel.site_id.in_(ids), Parcel.state == State.ANNOUNCED.value)
    )
    for site_id, expected, created_at, refused_at, direction, is_order in rows:
        day = expected or ctx.local_day(created_at) + timedelta(days=1)
        back = None
        if refused_at is not None:
            # the next open day after its refusal, or the later day it is held until
            back = max(day, model.next_open_day(ctx.local_day(refused_at) + timedelta(days=1),
                                                closed[site_id]))
        if back is not None and back >= today:
            arrival = model.Arrival(back, show)
        elif day >= today:
            arrival = model.Arrival(day, show)
        elif (today - day).days <= LATE_ANNOUNCED_DAYS:
            arrival = model.Arrival(today, show / 2)
        else:
            continue
        arrivals, flows_announced = found[site_id]
        kind = flow_kind(direction, is_order)
        if kind is None:
            arrivals.append(arrival)
        else:
            flows_announced.setdefault(kind, []).append(
                flow_model.FlowArrival(arrival.day, arrival.probability))
    return found


def _first_attempts(
    ctx: Ctx, session: Session, site: Site, now: datetime
) -> list[tuple[int, datetime]]:
    """Each parcel's first attempt at the site over the arrival window, one by one
    (``forecast_learning.first_attempts``; the forecast reads them counted)."""
    return learning.first_attempts(ctx, session, site, now)


# ---------------------------------------------------------------- computing and storing


def compute(ctx: Ctx, session: Session, site: Site) -> list[model.DayForecast]:
    return model.forecast(inputs_for(ctx, session, site))


def refresh(ctx: Ctx, session: Session, site: Site) -> list[model.DayForecast]:
    """Compute and store a site's forecast in the caller's transaction."""
    days = compute(ctx, session, site)
    store(ctx, session, site, days)
    return days


def store(ctx: Ctx, session: Session, site: Site, days: list[model.DayForecast]) -> None:
    store_sites(ctx, session, {site.id: days})


def store_sites(ctx: Ctx, session: Session, days: Mapping[int, list[model.DayForecast]]
                ) -> None:
    """Store each site's forecast days (by site id), replacing those stored, in one
    statement compiled once per process: the rows go as parameters, not in its text (a
    manifest stores thirty sites' weeks)."""
    now = ctx.now()
    rows = [
        {"site_id": site_id, "day": d.day, "computed_at": now, "predicted": d.predicted,
         "low": d.low, "high": d.high, "capacity": d.capacity, "arrivals": d.arrivals,
         "closed": d.closed, "at_risk": d.at_risk}
        for site_id, site_days in sorted(days.items()) for d in site_days
    ]
    if rows:
        session.execute(_upsert(session.get_bind().dialect.name), rows)


def _upsert(dialect: str) -> Insert:
    """An upsert, because two announcements for one site may store at the same time."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = SiteForecast.__table__
    assert isinstance(table, Table)
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=["site_id", "day"],
        set_={k: statement.excluded[k] for k in STORED},
    )


STORED = ("computed_at", "predicted", "low", "high", "capacity", "arrivals", "closed", "at_risk")


def forecast_site(ctx: Ctx, site_id: int) -> list[model.DayForecast]:
    """Recompute and store one site's forecast, in its own transaction."""
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id)
        if site is None:
            return []
        return refresh(ctx, session, site)


@dataclass(frozen=True)
class Stored:
    """The stored forecast's ratio for a day as read (None: no forecast stored), and its
    first day at risk of overflow from that day on (None: none within the period asked)."""

    ratio: float | None
    risk_day: date | None = None


def stored_day(session: Session, site_id: int, day: date) -> SiteForecast | None:
    return session.scalar(
        select(SiteForecast).where(and_(SiteForecast.site_id == site_id, SiteForecast.day == day))
    )


def stored_ratio(day: date | ColumnElement[date]) -> ScalarSelect[float]:
    """The stored forecast's peak over capacity for ``day``, as a column a query of sites can
    carry (NULL when there is none): a check-in reads it with the shop it locks."""
    # In floating point on both databases (an integer capacity would make it NUMERIC).
    return select(SiteForecast.predicted / cast(SiteForecast.capacity, Float)).where(
        SiteForecast.site_id == Site.id, SiteForecast.day == day, SiteForecast.capacity != 0,
    ).scalar_subquery()


def first_risk_day(
    first: date | ColumnElement[date], last: date | ColumnElement[date]
) -> ScalarSelect[date]:
    """The stored forecast's first day at risk between ``first`` and ``last``, as a column
    a query of sites can carry (NULL: none): the look-ahead holding rule's input."""
    return select(func.min(SiteForecast.day)).where(
        SiteForecast.site_id == Site.id, SiteForecast.day >= first, SiteForecast.day <= last,
        SiteForecast.at_risk.is_(True),
    ).scalar_subquery()


def risk_day(ctx: Ctx, session: Session, site: Site, day: date, days: int) -> date | None:
    """The site's first stored day at risk within ``days`` days from ``day``."""
    return session.scalar(
        select(first_risk_day(day, day + timedelta(days=days))).where(Site.id == site.id))


def load_ratio(
    ctx: Ctx, session: Session, site: Site, day: date, *, stored: Stored | None = None
) -> float | None:
    """The stored forecast's peak over capacity for ``day``, else today's actual fill.
    ``stored``: that ratio already read (:func:`stored_ratio`), which saves reading it here."""
    if stored is None:
        row = stored_day(session, site.id, day)
        stored = Stored(row.predicted / row.capacity if row is not None and row.capacity
                        else None)
    if stored.ratio is not None:
        return stored.ratio
    # A shop's fill from its shelf counters, not a count of its held parcels: this runs at
    # every check-in (issue 15). A locker's doors are few: counted as before.
    occupancy = shelf_load(site, day) if has_shelves(site.kind) else occupancy_of(session, site)
    return occupancy.held / occupancy.capacity if occupancy.capacity else None
