"""What a site's forecast learns from its own history: the pickup hazards (dwell times) and
the demand (arrival rate, lead shares), read from its parcels (docs/forecast.md).

Each is read in one statement that counts the site's parcels alike in SQL, grouped by local
day (and by the moment of the announcement for the lead shares; a manifest's parcels share
it): the model learns from counts, so a shop with 100,000 parcels in its windows sends a few
hundred rows, not 100,000 for Python to convert one by one (issue 15). What it groups by is
on the parcel's row, kept there by ``history.keep_firsts`` with the events that make it (first
attempt and where, first check-in, first announcement, first ending): no parcel's events are
looked up, which cost ~5 µs a parcel and a lookup, a second or more at 100,000 parcels. The
counts are exactly those of the events taken one by one:
``tests/integration/test_forecast_learning.py`` compares the two on the same history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from relay_ops.db.local_date import local_date
from relay_ops.db.models import DemandDay, Parcel, ProducerOrder, Site
from relay_ops.domain import forecast as model
from relay_ops.domain.demand_index import DemandIndex
from relay_ops.domain.geo import distance_km
from relay_ops.services import history
from relay_ops.services.context import Ctx
from relay_ops.services.site_calendar import closed_given, closing_days_of_sites
from relay_ops.services.sites import capacities, in_box_around

ENDINGS = history.ENDINGS
ATTEMPTS = history.ATTEMPTS


def is_order() -> ColumnElement[bool]:
    """A producer's order (a parcel of no carrier with its ``producer_orders`` row): a flow of
    its own (``forecast_flows``), not the site's demand from carriers. The carrier is tested
    first, so the lookup runs for parcels of no carrier only."""
    order = select(ProducerOrder.parcel_id).where(ProducerOrder.parcel_id == Parcel.id)
    return Parcel.carrier_id.is_(None) & order.exists()


def window_start(ctx: Ctx, now: datetime) -> datetime:
    """The start of the longer of the two learning windows (dwell times, arrival rate)."""
    settings = ctx.settings.forecast
    return now - timedelta(days=max(settings.dwell_window_days, settings.arrival_window_days))


# ---------------------------------------------------------------- dwell times


def stays(ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime
          ) -> dict[int, dict[model.Stay, int]]:
    """Each site's stays over the window, counted: each parcel checked in there paired with
    its first ending event (pickup, expiry, refusal, loss, damage; none while it is still on
    the shelf). A parcel on a shelf never moves (``reroute``: an announced parcel only), so
    the site's parcels are those it checked in."""
    zone = ctx.settings.timezone
    checked_in = local_date(Parcel.first_check_in_at, zone)
    ended = local_date(Parcel.ended_at, zone)
    rows = session.execute(
        select(Parcel.site_id, checked_in, ended, Parcel.ending, func.count())
        .where(Parcel.site_id.in_([site.id for site in sites]),
               Parcel.first_check_in_at >= window_start(ctx, now), ~is_order())
        .group_by(Parcel.site_id, checked_in, ended, Parcel.ending)
    )
    since = ctx.local_day(now) - timedelta(days=ctx.settings.forecast.dwell_window_days)
    counted: dict[int, Counter[model.Stay]] = {site.id: Counter() for site in sites}
    for site_id, day, end, action, count in rows:
        if day >= since:
            stay = model.Stay(check_in=day, ended=end, picked_up=action == "pick_up")
            counted[site_id][stay] += count
    return {site_id: dict(stays) for site_id, stays in counted.items()}


def hazards(
    ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime,
    closed: Mapping[int, model.ClosedOn],
) -> dict[int, tuple[float, ...]]:
    settings = ctx.settings.forecast
    counted = stays(ctx, session, sites, now)
    return {site.id: model.learn_hazards(
        counted[site.id], model.PRIOR_HAZARDS.get(site.kind, model.PRIOR_HAZARDS["shop"]),
        ctx.local_day(now), closed[site.id], settings.prior_weight) for site in sites}


# ---------------------------------------------------------------- demand


def _first_attempts_since(ctx: Ctx, site_ids: list[int], now: datetime
                          ) -> ColumnElement[bool]:
    """The condition on a parcel whose first attempt was at the site, over the arrival window:
    its check-in, or its first refusal for lack of room if it was turned away before.

    Demand, not what a full site let in: a full site's check-ins are its free places, and a
    rate learned from them alone says a full site has less demand the fuller it gets. Each
    parcel counts once, where and when it first came: one turned away here and rerouted is
    this site's demand, not its new site's."""
    since = now - timedelta(days=ctx.settings.forecast.arrival_window_days + 1)
    return (Parcel.first_attempt_site_id.in_(site_ids) & (Parcel.first_attempt_at >= since)
            & ~is_order())


def first_attempts(
    ctx: Ctx, session: Session, site: Site, now: datetime
) -> list[tuple[int, datetime]]:
    """The first attempts one by one (the forecast itself reads them counted)."""
    rows = session.execute(
        select(Parcel.id, Parcel.first_attempt_at)
        .where(_first_attempts_since(ctx, [site.id], now))
    )
    return [(parcel_id, at) for parcel_id, at in rows if at is not None]  # all, by the where


def _attempts_by_day(
    ctx: Ctx, session: Session, site: Site, now: datetime
) -> list[tuple[date, datetime | None, int]]:
    """(local day, moment of the parcel's first announcement or None, parcels) of the first
    attempts over the arrival window."""
    return _attempts_by_site_and_day(ctx, session, [site.id], now).get(site.id, [])


def arrival_rates(
    ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime,
    closed: Mapping[int, model.ClosedOn],
) -> dict[int, dict[str, Any]]:
    """Level, trend and lead shares of each site's demand: its first attempts per open day,
    oldest first, up to yesterday, and how long before their day they were announced."""
    counted = _attempts_by_site_and_day(ctx, session, [site.id for site in sites], now)
    index = demand_index(ctx, session, now)
    settings = ctx.settings.forecast
    season = index.ahead(ctx.local_day(now), settings.horizon_days)
    learnt = {site.id: rate_and_leads(ctx, now, closed[site.id], counted.get(site.id, []),
                                      index, opened=first_day_of_service(ctx, site))
              for site in sites}
    # Not one open day yet: no demand learned is not no demand (docs/forecast.md).
    borrowed = neighbours_demand(ctx, session, [site for site in sites
                                                if learnt[site.id][0].days == 0], now, index)
    rates = {}
    for site in sites:
        rate, lead_share = borrowed.get(site.id) or learnt[site.id]
        rates[site.id] = {
            **rate.as_inputs(), "trend_damping": settings.trend_damping,
            "demand_index": season,
            "rate_drift": model.rate_drift(
                rate, settings.rate_drift, settings.rate_drift_with_trend,
                settings.rate_drift_with_season if season else None),
            "lead_share": lead_share}
    return rates


def first_day_of_service(ctx: Ctx, site: Site) -> date:
    """The day after the site was created: on that day no carrier could announce it a
    parcel, so it is no day of its demand (a shop registered on a Sunday morning and open
    that day would otherwise count a Sunday without parcels)."""
    return ctx.local_day(site.created_at) + timedelta(days=1)


def demand_index(ctx: Ctx, session: Session, now: datetime) -> DemandIndex:
    """The season's factors declared over the arrival window and the horizon
    (``services/demand_index``)."""
    settings = ctx.settings.forecast
    today = ctx.local_day(now)
    rows = session.execute(
        select(DemandDay.day, DemandDay.factor).where(DemandDay.day.between(
            today - timedelta(days=settings.arrival_window_days),
            today + timedelta(days=settings.horizon_days)))
    )
    return DemandIndex({day: factor for day, factor in rows})


def rate_and_leads(
    ctx: Ctx, now: datetime, closed: model.ClosedOn,
    counted: list[tuple[date, datetime | None, int]], index: DemandIndex | None = None,
    opened: date | None = None,
) -> tuple[model.ArrivalRate, tuple[float, ...]]:
    """The rate per open day over the arrival window, up to yesterday, and the lead shares,
    of parcels counted by (local day they came, moment of their announcement or None): the
    site's first attempts, or a flow's deposits (``forecast_flows``). With the season's
    ``index``, the rate is an ordinary day's (each day's count over its factor)."""
    settings = ctx.settings.forecast
    today = ctx.local_day(now)
    since = today - timedelta(days=settings.arrival_window_days)
    recent = [row for row in counted if since <= row[0] < today]
    daily = counted_per_open_day(ctx, now, closed, counted, opened)
    rate = model.learn_arrival_rate(
        (index or DemandIndex()).ordinary(daily), settings.arrival_half_life_days,
        with_trend=settings.arrival_trend,
    ).widened(settings.rate_uncertainty_factor)
    return rate, model.learn_lead_share(_leads(ctx, now, recent),
                                        hours_until_each_day(ctx, now))


def per_open_day(
    ctx: Ctx, now: datetime, closed: model.ClosedOn,
    counted: list[tuple[date, datetime | None, int]], opened: date | None = None,
) -> list[int]:
    """The parcels counted on each open day of the arrival window, oldest first, up to
    yesterday: what the rate is learned from (bench/forecast_calibration.py keeps them)."""
    return [count for _, count in counted_per_open_day(ctx, now, closed, counted, opened)]


def counted_per_open_day(
    ctx: Ctx, now: datetime, closed: model.ClosedOn,
    counted: list[tuple[date, datetime | None, int]], opened: date | None = None,
) -> list[tuple[date, int]]:
    """Each open day of the arrival window, oldest first, up to yesterday, with its count;
    from the first parcel's day, or without any from ``opened`` (the site's first day)."""
    today = ctx.local_day(now)
    since = today - timedelta(days=ctx.settings.forecast.arrival_window_days)
    recent = [row for row in counted if since <= row[0] < today]
    if recent:
        # Days before the site's first parcel are not days without parcels (a new site).
        since = max(since, min(day for day, _, _ in recent))
    elif opened is not None:
        since = max(since, opened)
    per_day: Counter[date] = Counter()
    for day, _, count in recent:
        per_day[day] += count
    open_days = model.open_ages(since, today - timedelta(days=1), closed)
    return [(day, per_day.get(day, 0)) for day in sorted(open_days)]


def first_attempts_per_open_day(
    ctx: Ctx, session: Session, site: Site, now: datetime, closed: model.ClosedOn
) -> list[int]:
    """The site's first attempts on each open day of the arrival window (``per_open_day``)."""
    return per_open_day(ctx, now, closed, _attempts_by_day(ctx, session, site, now),
                        first_day_of_service(ctx, site))


# ---------------------------------------------------------------- a site without history

# A site without a day of history is forecast from its nearest sites of its kind within
# reach: a village's shops share its demand per place more than a city's do.
PRIOR_SITES = 12
PRIOR_REACH_KM = 30.0


def neighbours_demand(
    ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime, index: DemandIndex
) -> dict[int, tuple[model.ArrivalRate, tuple[float, ...]]]:
    """The rate and lead shares of each site without a day of history: its places times the
    first attempts per place its neighbours learned (``model.network_rate``, the spread
    between them its level's uncertainty), and their lead shares pooled; a site with no
    neighbour with a history is left out. One statement per site (its nearest), then four
    for all of them, whatever the neighbours and their parcels."""
    if not sites:
        return {}
    around = {site.id: _nearest_of_kind(session, site) for site in sites}
    neighbours = _sites(session, {i for ids in around.values() for i in ids})
    counted = _attempts_by_site_and_day(ctx, session, sorted(neighbours), now)
    places = capacities(session, [*neighbours.values(), *sites])
    closing = closing_days_of_sites(session, sorted(neighbours))
    settings = ctx.settings.forecast
    # Each neighbour's own level, learned once however many new sites it is near.
    learnt: dict[int, float | None] = {}

    def level_of(other: Site) -> float | None:
        if other.id not in learnt:
            learnt[other.id] = None
            rows = counted.get(other.id)
            if not rows:
                return None  # a neighbour without parcels in the window says nothing
            # Its open days as it counts them for itself (``arrival_rates``).
            closed = closed_given(other, closing.get(other.id, set()))
            daily = counted_per_open_day(ctx, now, closed, rows, first_day_of_service(ctx, other))
            if daily:
                learnt[other.id] = model.learn_arrival_rate(
                    index.ordinary(daily), settings.arrival_half_life_days,
                    with_trend=settings.arrival_trend).level
        return learnt[other.id]

    borrowed = {}
    for site in sites:
        levels: list[tuple[float, int]] = []
        pooled: list[tuple[date, datetime | None, int]] = []
        for other in (neighbours[i] for i in sorted(around[site.id])):
            level = level_of(other)
            if level is not None:
                levels.append((level, places[other.id]))
                pooled += counted[other.id]
        network = model.network_rate(levels)
        if network is not None:
            lead_share = model.learn_lead_share(_leads(ctx, now, pooled),
                                                hours_until_each_day(ctx, now))
            borrowed[site.id] = (network.for_places(places[site.id]), lead_share)
    return borrowed


def _nearest_of_kind(session: Session, site: Site) -> list[int]:
    """The ids of the site's nearest ``PRIOR_SITES`` open sites of its kind within
    ``PRIOR_REACH_KM``."""
    rows = session.execute(
        select(Site.id, Site.latitude, Site.longitude).where(
            Site.kind == site.kind, Site.id != site.id, Site.status != "closed",
            in_box_around(site.latitude, site.longitude, PRIOR_REACH_KM))
    )
    ranked = sorted((distance_km(site.latitude, site.longitude, lat, lon), site_id)
                    for site_id, lat, lon in rows)
    return [site_id for km, site_id in ranked if km <= PRIOR_REACH_KM][:PRIOR_SITES]


def _sites(session: Session, ids: set[int]) -> dict[int, Site]:
    """The sites of ``ids``, by id."""
    if not ids:
        return {}
    return {site.id: site for site in session.scalars(
        select(Site).where(Site.id.in_(sorted(ids))))}


def _attempts_by_site_and_day(
    ctx: Ctx, session: Session, site_ids: list[int], now: datetime
) -> dict[int, list[tuple[date, datetime | None, int]]]:
    """The first attempts of each of ``site_ids`` over the arrival window, counted by (local
    day, moment of the parcel's first announcement or None), in one statement: a site's own
    (``_attempts_by_day``) or its neighbours' (``neighbours_demand``)."""
    if not site_ids:
        return {}
    day = local_date(Parcel.first_attempt_at, ctx.settings.timezone)
    rows = session.execute(
        select(Parcel.first_attempt_site_id, day, Parcel.announced_at, func.count())
        .where(_first_attempts_since(ctx, site_ids, now))
        .group_by(Parcel.first_attempt_site_id, day, Parcel.announced_at)
    )
    counted: dict[int, list[tuple[date, datetime | None, int]]] = {}
    for site_id, when, announced_at, count in rows:
        if site_id is not None:  # all, by the where
            counted.setdefault(site_id, []).append((when, announced_at, count))
    return counted


def _leads(
    ctx: Ctx, now: datetime, counted: list[tuple[date, datetime | None, int]]
) -> Counter[float | None]:
    """Hours from each parcel's announcement to the start of its day (None: never announced),
    over the arrival window up to yesterday."""
    today = ctx.local_day(now)
    since = today - timedelta(days=ctx.settings.forecast.arrival_window_days)
    leads: Counter[float | None] = Counter()
    for day, announced_at, count in counted:
        if since <= day < today:
            lead = None
            if announced_at is not None:
                lead = (ctx.day_start(day) - announced_at).total_seconds() / 3600
            leads[lead] += count
    return leads


def hours_until_each_day(ctx: Ctx, now: datetime) -> list[float]:
    """Hours from now to the start of each forecast day (negative for today: begun)."""
    today = ctx.local_day(now)
    return [
        (ctx.day_start(today + timedelta(days=i)) - now).total_seconds() / 3600
        for i in range(ctx.settings.forecast.horizon_days + 1)
    ]
