"""Occupancy forecasts: read a site's parcels and events, run the model, store the days.

The model is ``relay_ops.domain.forecast`` (docs/forecast.md). This module only gathers its
inputs and keeps the result in ``site_forecasts``, one row per site and day, replaced each
time. It runs on every manifest announcement for the sites the manifest touches (inside that
transaction), when someone reads a site's forecast, and for every site from
:func:`forecast_all`, the plain function the scheduler calls.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, ScalarSelect, Select, and_, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from relay_ops.db.models import Location, Parcel, ParcelEvent, Site, SiteForecast
from relay_ops.domain import forecast as model
from relay_ops.domain import season
from relay_ops.domain.hours import ALWAYS_OPEN, DAYS
from relay_ops.domain.lifecycle import HELD_STATES, State
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import history, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.sites import closed_on, in_service_on, occupancy_of, shelf_load

HELD = [s.value for s in HELD_STATES]
ENDINGS = ("pick_up", "expire", "declare_missing", "declare_damaged")
LATE_ANNOUNCED_DAYS = 2  # an announced parcel this late may still come, at half the odds
# (one refused at the counter for lack of room is known to come back: full odds, see _announced)


def local_day(ctx: Ctx, moment: datetime) -> date:
    return moment.astimezone(ctx.settings.timezone).date()


def site_closed_on(session: Session, site: Site) -> model.ClosedOn:
    if site.status == "closed":
        return lambda _day: True
    return closed_on(session, site)


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
    now = ctx.now()
    today = local_day(ctx, now)
    settings = ctx.settings.forecast
    closed = site_closed_on(session, site)
    check_ins = _check_ins(ctx, session, site, now)
    return model.SiteInputs(
        today=today,
        capacity=occupancy_of(session, site).capacity,
        extra_capacity=temporary_capacity(session, site, today, settings.horizon_days),
        held=_held(ctx, session, site, today, closed),
        # Places held here for proposals' parcels, still announced elsewhere (room promised).
        announced=_announced(ctx, session, site, today, closed)
        + reservations.promised_arrivals(ctx, session, site, today),
        **_arrival_rates(ctx, session, site, _first_attempts(ctx, session, site, now), now,
                         closed),
        hazards=_hazards(ctx, session, site, check_ins, today, closed),
        holding_days=ctx.settings.holding[site.kind].days,
        return_lag_days=settings.return_lag_days,
        today_remaining=today_remaining(ctx, site, now),
        closed_on=closed,
        horizon=settings.horizon_days,
        z=settings.band_z,
    )


def temporary_capacity(session: Session, site: Site, today: date, horizon: int
                       ) -> dict[date, int]:
    """The places a shop's temporary shelves add on each forecast day (only within their
    dates: docs/forecast.md, "Season capacity")."""
    if site.kind != "shop":
        return {}
    shelves = session.execute(
        select(Location.capacity, Location.valid_from, Location.valid_until).where(
            Location.site_id == site.id, Location.active.is_(True),
            ~in_service_on(None), in_service_on(today) | (Location.valid_from > today),
        )
    ).all()
    days = [today + timedelta(days=i) for i in range(horizon + 1)]
    return {day: sum(c for c, first, last in shelves if season.in_service(first, last, day))
            for day in days}


def _held(
    ctx: Ctx, session: Session, site: Site, today: date, closed: model.ClosedOn
) -> list[model.Held]:
    lag = timedelta(days=ctx.settings.forecast.return_lag_days)
    held = []
    rows = session.execute(
        select(Parcel.state, Parcel.checked_in_at, Parcel.holding_deadline).where(
            Parcel.site_id == site.id, Parcel.state.in_(HELD)
        )
    )
    ages: dict[date, int] = {}  # parcels checked in the same day have the same age
    for state, checked_in_at, deadline in rows:
        start = local_day(ctx, checked_in_at) if checked_in_at else today
        if start not in ages:
            ages[start] = len(model.open_ages(start, today - timedelta(days=1), closed))
        age = ages[start]
        end = local_day(ctx, deadline) if deadline else today
        collectable = state == State.READY_FOR_PICKUP.value
        held.append(model.Held(
            age=age, pickup_until=end if collectable else None,
            leaves_after=max(today, end + lag),
        ))
    return held


def _announced(
    ctx: Ctx, session: Session, site: Site, today: date, closed: model.ClosedOn
) -> list[model.Arrival]:
    """The parcels announced for the site and not yet checked in, each on the day it should
    come: its expected day; the next open day after its last refusal at the counter (the
    carrier brings it back, full odds); a day or two late, today at half odds; later, never."""
    show = ctx.settings.forecast.show_rate
    arrivals = []
    # Refusals are few: grouped once and joined, not looked up per announced parcel (a
    # correlated subquery went quadratic on fresh tables whose statistics said "empty").
    refusals = (
        select(ParcelEvent.parcel_id, func.max(ParcelEvent.at).label("at"))
        .where(ParcelEvent.site_id == site.id, ParcelEvent.action == history.CHECK_IN_REFUSED)
        .group_by(ParcelEvent.parcel_id)
        .subquery()
    )
    rows = session.execute(
        select(Parcel.expected_date, Parcel.created_at, refusals.c.at)
        .outerjoin(refusals, refusals.c.parcel_id == Parcel.id)
        .where(Parcel.site_id == site.id, Parcel.state == State.ANNOUNCED.value)
    )
    for expected, created_at, refused_at in rows:
        day = expected or local_day(ctx, created_at) + timedelta(days=1)
        back = None
        if refused_at is not None:
            back = model.next_open_day(local_day(ctx, refused_at) + timedelta(days=1), closed)
        if back is not None and back >= today:
            arrivals.append(model.Arrival(back, show))
        elif day >= today:
            arrivals.append(model.Arrival(day, show))
        elif (today - day).days <= LATE_ANNOUNCED_DAYS:
            arrivals.append(model.Arrival(today, show / 2))
    return arrivals


def _window_start(ctx: Ctx, now: datetime) -> datetime:
    """The start of the longer of the two learning windows (dwell times, arrival rate)."""
    settings = ctx.settings.forecast
    return now - timedelta(days=max(settings.dwell_window_days, settings.arrival_window_days))


def _check_in_events(ctx: Ctx, site: Site, now: datetime) -> Select[int, datetime]:
    return select(ParcelEvent.parcel_id, ParcelEvent.at).where(
        ParcelEvent.site_id == site.id,
        ParcelEvent.action == "check_in",
        ParcelEvent.at >= _window_start(ctx, now),
    )


def _check_ins(
    ctx: Ctx, session: Session, site: Site, now: datetime
) -> list[tuple[int, datetime]]:
    """(parcel id, moment) of the site's check-ins over the longer of the two windows."""
    return [(parcel_id, at) for parcel_id, at in session.execute(_check_in_events(ctx, site, now))]


def _first_attempts(
    ctx: Ctx, session: Session, site: Site, now: datetime
) -> list[tuple[int, datetime]]:
    """(parcel id, moment) of each parcel's first attempt at the site over the arrival window:
    its check-in, or its first refusal for lack of room if it was turned away before.

    Demand, not what a full site let in: a full site's check-ins are its free places, and a
    rate learned from them alone says a full site has less demand the fuller it gets."""
    since = now - timedelta(days=ctx.settings.forecast.arrival_window_days + 1)
    rows = session.execute(
        select(ParcelEvent.parcel_id, func.min(ParcelEvent.at)).where(
            ParcelEvent.site_id == site.id,
            ParcelEvent.action.in_(("check_in", history.CHECK_IN_REFUSED)),
            ParcelEvent.at >= since,
        ).group_by(ParcelEvent.parcel_id)
    )
    return [(parcel_id, at) for parcel_id, at in rows]


def _first_events(
    ctx: Ctx, session: Session, site: Site, actions: Iterable[str]
) -> dict[int, tuple[str, datetime]]:
    """The earliest event among ``actions`` of each parcel that came to the site (checked in,
    or refused for lack of room: a first attempt) within the windows, in one statement: the
    parcels are named by a subquery, not by a list of ids (100,000 ids cost seconds of
    parameter handling, issue 15)."""
    came = select(ParcelEvent.parcel_id).where(
        ParcelEvent.site_id == site.id,
        ParcelEvent.action.in_(("check_in", history.CHECK_IN_REFUSED)),
        ParcelEvent.at >= _window_start(ctx, ctx.now()),
    )
    rows = session.execute(
        select(ParcelEvent.parcel_id, ParcelEvent.action, ParcelEvent.at)
        .where(ParcelEvent.parcel_id.in_(came), ParcelEvent.action.in_(list(actions)))
        .order_by(ParcelEvent.id)
    )
    found: dict[int, tuple[str, datetime]] = {}
    for parcel_id, action, at in rows:
        found.setdefault(parcel_id, (action, at))
    return found


def _hazards(
    ctx: Ctx, session: Session, site: Site, check_ins: list[tuple[int, datetime]], today: date,
    closed: model.ClosedOn,
) -> tuple[float, ...]:
    settings = ctx.settings.forecast
    since = today - timedelta(days=settings.dwell_window_days)
    recent = [(pid, local_day(ctx, at)) for pid, at in check_ins]
    recent = [(pid, day) for pid, day in recent if day >= since]
    endings = _first_events(ctx, session, site, ENDINGS)
    stays = []
    for pid, day in recent:
        action, at = endings.get(pid, ("", None))
        stays.append(model.Stay(
            check_in=day,
            ended=local_day(ctx, at) if at is not None else None,
            picked_up=action == "pick_up",
        ))
    prior = model.PRIOR_HAZARDS.get(site.kind, model.PRIOR_HAZARDS["shop"])
    return model.learn_hazards(stays, prior, today, closed, settings.prior_weight)


def _arrival_rates(
    ctx: Ctx, session: Session, site: Site, attempts: list[tuple[int, datetime]], now: datetime,
    closed: model.ClosedOn,
) -> dict[str, Any]:
    """Level, trend and lead shares of the site's demand: its first attempts per open day."""
    settings = ctx.settings.forecast
    recent, daily = daily_check_ins(ctx, attempts, now, closed)
    rate = model.learn_arrival_rate(
        daily, settings.arrival_half_life_days, with_trend=settings.arrival_trend
    ).widened(settings.rate_uncertainty_factor)
    announced = _first_events(ctx, session, site, ("announce",))
    leads = [
        (_day_start(ctx, local_day(ctx, at)) - announced[pid][1]).total_seconds() / 3600
        if pid in announced else None
        for pid, at in recent
    ]
    return {
        **rate.as_inputs(),
        "trend_damping": settings.trend_damping,
        "lead_share": model.learn_lead_share(leads, _hours_until_each_day(ctx, now)),
    }


def daily_check_ins(
    ctx: Ctx, check_ins: list[tuple[int, datetime]], now: datetime, closed: model.ClosedOn
) -> tuple[list[tuple[int, datetime]], list[int]]:
    """The window's check-ins (or first attempts), and their count per open day, oldest
    first, up to yesterday."""
    today = local_day(ctx, now)
    since = today - timedelta(days=ctx.settings.forecast.arrival_window_days)
    recent = [(pid, at) for pid, at in check_ins if since <= local_day(ctx, at) < today]
    if recent:
        # Days before the site's first parcel are not days without parcels (a new site).
        since = max(since, min(local_day(ctx, at) for _, at in recent))
    per_day: dict[date, int] = defaultdict(int)
    for _, at in recent:
        per_day[local_day(ctx, at)] += 1
    open_days = model.open_ages(since, today - timedelta(days=1), closed)
    return recent, [per_day.get(day, 0) for day in sorted(open_days)]


def _day_start(ctx: Ctx, day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=ctx.settings.timezone)


def _hours_until_each_day(ctx: Ctx, now: datetime) -> list[float]:
    """Hours from now to the start of each forecast day (negative for today: begun)."""
    today = local_day(ctx, now)
    return [
        (_day_start(ctx, today + timedelta(days=i)) - now).total_seconds() / 3600
        for i in range(ctx.settings.forecast.horizon_days + 1)
    ]


# ---------------------------------------------------------------- computing and storing


def compute(ctx: Ctx, session: Session, site: Site) -> list[model.DayForecast]:
    return model.forecast(inputs_for(ctx, session, site))


def refresh(ctx: Ctx, session: Session, site: Site) -> list[model.DayForecast]:
    """Compute and store a site's forecast in the caller's transaction."""
    days = compute(ctx, session, site)
    store(ctx, session, site, days)
    return days


def store(ctx: Ctx, session: Session, site: Site, days: list[model.DayForecast]) -> None:
    if not days:
        return
    now = ctx.now()
    rows = [
        {"site_id": site.id, "day": d.day, "computed_at": now, "predicted": d.predicted,
         "low": d.low, "high": d.high, "capacity": d.capacity, "arrivals": d.arrivals,
         "closed": d.closed, "at_risk": d.at_risk}
        for d in days
    ]
    # An upsert, because two announcements for one site may store at the same time.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(SiteForecast).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["site_id", "day"],
        set_={k: statement.excluded[k] for k in rows[0] if k not in ("site_id", "day")},
    )
    session.execute(statement)


def forecast_site(ctx: Ctx, site_id: int) -> list[model.DayForecast]:
    """Recompute and store one site's forecast, in its own transaction."""
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id)
        if site is None:
            return []
        return refresh(ctx, session, site)


def forecast_all(ctx: Ctx) -> dict[str, int]:
    """Recompute every site's forecast: the periodic job (one transaction per site, so one
    site's failure does not hold the others back)."""
    with ctx.db.read() as session:
        ids = list(session.scalars(select(Site.id).order_by(Site.id)))
    at_risk = 0
    for site_id in ids:
        days = forecast_site(ctx, site_id)
        at_risk += sum(d.at_risk for d in days)
    return {"sites": len(ids), "days_at_risk": at_risk}


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
