"""The forecast's inputs counted in SQL are those of the parcels taken one by one (issue 15).

The forecast reads a site's parcels on hand and its history counted by local day in SQL
(``forecast._held``, ``forecast_learning``). The reference below is the row-by-row reading
it replaced, kept here as the oracle: on a history built to hit the corners (local days that
are not UTC days, the October clock change, the windows' edges, closing days, parcels
turned away at another site then checked in here, ended at another site, announced twice
or never, refused then checked in), both give the same counts, the same learned hazards
and rates, and the same forecast, on SQLite and on PostgreSQL. The history is written as
events; the parcels' rows get their firsts from the migration's backfill, as a database
from before them would.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from relay_ops.db.database import Database
from relay_ops.db.models import ClosingDay, DemandDay, Parcel, ParcelEvent, Site
from relay_ops.domain import forecast as model
from relay_ops.domain.lifecycle import State
from relay_ops.services import demand_index, forecast, forecast_learning, history
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from tests.conftest import Clock
from tests.integration.test_parcel_firsts import backfill_from_events
from tests.support import World

ENDINGS = ("pick_up", "expire", "declare_missing", "declare_damaged")


# ---------------------------------------------------------------- the reference: row by row


def reference_held(ctx: Ctx, session: Session, site: Site, today: date,
                   closed: model.ClosedOn) -> list[model.Held]:
    lag = timedelta(days=ctx.settings.forecast.return_lag_days)
    held = []
    rows = session.execute(select(Parcel.state, Parcel.checked_in_at, Parcel.holding_deadline)
                           .where(Parcel.site_id == site.id, Parcel.state.in_(forecast.HELD)))
    for state, checked_in_at, deadline in rows:
        start = ctx.local_day(checked_in_at) if checked_in_at else today
        age = len(model.open_ages(start, today - timedelta(days=1), closed))
        end = ctx.local_day(deadline) if deadline else today
        collectable = state == State.READY_FOR_PICKUP.value
        held.append(model.Held(age=age, pickup_until=end if collectable else None,
                               leaves_after=max(today, end + lag)))
    return held


def _window_start(ctx: Ctx, now: datetime) -> datetime:
    settings = ctx.settings.forecast
    return now - timedelta(days=max(settings.dwell_window_days, settings.arrival_window_days))


def reference_first_events(ctx: Ctx, session: Session, site: Site, actions: tuple[str, ...]
                           ) -> dict[int, tuple[str, datetime]]:
    came = select(ParcelEvent.parcel_id).where(
        ParcelEvent.site_id == site.id,
        ParcelEvent.action.in_(("check_in", history.CHECK_IN_REFUSED)),
        ParcelEvent.at >= _window_start(ctx, ctx.now()))
    rows = session.execute(select(ParcelEvent.parcel_id, ParcelEvent.action, ParcelEvent.at)
                           .where(ParcelEvent.parcel_id.in_(came),
                                  ParcelEvent.action.in_(actions))
                           .order_by(ParcelEvent.id))
    found: dict[int, tuple[str, datetime]] = {}
    for parcel_id, action, at in rows:
        found.setdefault(parcel_id, (action, at))
    return found


def reference_stays(ctx: Ctx, session: Session, site: Site, now: datetime) -> list[model.Stay]:
    today = ctx.local_day(now)
    since = today - timedelta(days=ctx.settings.forecast.dwell_window_days)
    check_ins = session.execute(select(ParcelEvent.parcel_id, ParcelEvent.at).where(
        ParcelEvent.site_id == site.id, ParcelEvent.action == "check_in",
        ParcelEvent.at >= _window_start(ctx, now)))
    recent = [(pid, ctx.local_day(at)) for pid, at in check_ins]
    endings = reference_first_events(ctx, session, site, ENDINGS)
    stays = []
    for pid, day in recent:
        if day < since:
            continue
        action, at = endings.get(pid, ("", None))
        stays.append(model.Stay(check_in=day,
                                ended=ctx.local_day(at) if at is not None else None,
                                picked_up=action == "pick_up"))
    return stays


def _reference_first_tries(session: Session) -> dict[int, tuple[datetime, int | None, str]]:
    """Each parcel's first attempt (check-in or refusal, in the order written): when, where,
    and which."""
    rows = session.execute(
        select(ParcelEvent.parcel_id, ParcelEvent.at, ParcelEvent.site_id, ParcelEvent.action)
        .where(ParcelEvent.action.in_(("check_in", history.CHECK_IN_REFUSED)))
        .order_by(ParcelEvent.id))
    first: dict[int, tuple[datetime, int | None, str]] = {}
    for parcel_id, at, site_id, action in rows:
        first.setdefault(parcel_id, (at, site_id, action))
    return first


def reference_first_attempts(ctx: Ctx, session: Session, site: Site, now: datetime
                             ) -> list[tuple[int, datetime]]:
    """Each parcel's first attempt, counted at the site where it happened, over the arrival
    window (and a day: its local days)."""
    since = now - timedelta(days=ctx.settings.forecast.arrival_window_days + 1)
    return sorted((pid, at) for pid, (at, site_id, _) in _reference_first_tries(session).items()
                  if site_id == site.id and at >= since)


def reference_arrival_rates(ctx: Ctx, session: Session, site: Site, now: datetime,
                            closed: model.ClosedOn) -> dict[str, Any]:
    settings = ctx.settings.forecast
    attempts = reference_first_attempts(ctx, session, site, now)
    today = ctx.local_day(now)
    since = today - timedelta(days=settings.arrival_window_days)
    recent = [(pid, at) for pid, at in attempts
              if since <= ctx.local_day(at) < today]
    if recent:
        since = max(since, min(ctx.local_day(at) for _, at in recent))
    per_day: dict[date, int] = defaultdict(int)
    for _, at in recent:
        per_day[ctx.local_day(at)] += 1
    open_days = model.open_ages(since, today - timedelta(days=1), closed)
    # The season's declared factors, read one by one: a day's count over its factor.
    factors = {row.day: row.factor for row in session.scalars(select(DemandDay))}
    daily = [per_day.get(day, 0) / factors.get(day, 1.0) for day in sorted(open_days)]
    ahead = [factors.get(today + timedelta(days=i), 1.0)
             for i in range(settings.horizon_days + 1)]
    rate = model.learn_arrival_rate(
        daily, settings.arrival_half_life_days, with_trend=settings.arrival_trend
    ).widened(settings.rate_uncertainty_factor)
    announced = reference_first_events(ctx, session, site, ("announce",))

    def start(day: date) -> datetime:
        return datetime.combine(day, time(0, 0), tzinfo=ctx.settings.timezone)

    def lead(pid: int, at: datetime) -> float | None:
        return ((start(ctx.local_day(at)) - announced[pid][1]).total_seconds() / 3600
                if pid in announced else None)

    leads = [lead(pid, at) for pid, at in recent]
    horizons = [(start(today + timedelta(days=i)) - now).total_seconds() / 3600
                for i in range(settings.horizon_days + 1)]
    seasoned = ahead != [1.0] * len(ahead)
    return {**rate.as_inputs(), "trend_damping": settings.trend_damping,
            "demand_index": tuple(ahead) if seasoned else (),
            "rate_drift": model.rate_drift(
                rate, settings.rate_drift, settings.rate_drift_with_trend,
                settings.rate_drift_with_season if seasoned else None),
            "lead_share": model.learn_lead_share(leads, horizons)}


# ---------------------------------------------------------------- a history with corners


def _event(session: Session, parcel: Parcel, action: str, at: datetime, site_id: int) -> None:
    session.add(ParcelEvent(parcel_id=parcel.id, at=at, action=action, to_state=parcel.state,
                            actor_kind="system", site_id=site_id, data={}))


def build_history(world: World, clock: Clock) -> None:
    """About 400 parcels over the last 70 days at the world's shop, with their events."""
    rng = random.Random(15)
    now = clock.now
    # Moments near local midnight (22:xx and 23:xx UTC are the next day in Paris, or not,
    # by season), at the windows' edges (56 and 29 days back, around now's time of day).
    hours = [0.2, 7.5, 9.0, 12.0, 21.9, 22.5, 23.2, 23.9]
    with world.ctx.db.transaction() as session:
        session.add_all([ClosingDay(site_id=world.shop_id, day=date(2026, 11, 11)),
                         ClosingDay(site_id=world.shop_id, day=date(2026, 10, 26))])
        manifests = [now - timedelta(days=d, hours=h) for d in range(1, 72, 3)
                     for h in (3.0, 14.5)]
        for n in range(400):
            back = rng.choice([rng.uniform(0, 70), 56 + rng.uniform(-0.6, 0.6),
                               29 + rng.uniform(-0.6, 0.6), rng.uniform(0, 1.2)])
            day = (now - timedelta(days=back)).date()
            moment = datetime.combine(day, time(0, 0), tzinfo=UTC) + timedelta(
                hours=rng.choice(hours) + rng.uniform(0, 0.09))
            if moment > now:
                moment = now - timedelta(minutes=rng.randint(1, 500))
            ending = rng.choice(["pick_up", "pick_up", "pick_up", "expire", "declare_damaged",
                                 None, None])
            state = {"pick_up": "picked_up", "expire": "expired", "declare_damaged": "damaged",
                     None: "ready_for_pickup"}[ending]
            deadline = rng.choice([moment + timedelta(days=10, hours=rng.uniform(0, 30)), None])
            parcel = Parcel(tracking_number=f"LEARN{n:07d}", site_id=world.shop_id, state=state,
                            checked_in_at=rng.choice([moment, moment, None]),
                            holding_deadline=deadline)
            session.add(parcel)
            session.flush()
            announced = rng.random()
            if announced < 0.7:  # a manifest's moment, shared by its parcels
                _event(session, parcel, "announce",
                       rng.choice([m for m in manifests if m < moment] or [moment]),
                       world.shop_id)
            elif announced < 0.8:  # announced on its own, then again
                first = moment - timedelta(hours=rng.uniform(0, 60))
                _event(session, parcel, "announce", first, world.shop_id)
                _event(session, parcel, "announce", first + timedelta(hours=1), world.shop_id)
            if rng.random() < 0.05:  # turned away at the other shop, then rerouted here
                _event(session, parcel, history.CHECK_IN_REFUSED,
                       moment - timedelta(hours=rng.uniform(41, 60)), world.other_shop_id)
                _event(session, parcel, "reroute", moment - timedelta(hours=40), world.shop_id)
            if rng.random() < 0.15:  # turned away first for lack of room
                _event(session, parcel, history.CHECK_IN_REFUSED,
                       moment - timedelta(hours=rng.uniform(2, 40)), world.shop_id)
            _event(session, parcel, "check_in", moment, world.shop_id)
            if ending is not None:
                end = min(now, moment + timedelta(days=rng.choice([0, 0, 1, 2, 3, 11]),
                                                  hours=rng.uniform(0, 10)))
                where = world.other_shop_id if rng.random() < 0.05 else world.shop_id
                _event(session, parcel, ending, end, where)
                if rng.random() < 0.1:  # a later ending never counts: the first one does
                    _event(session, parcel, "pick_up", end + timedelta(hours=1), world.shop_id)
        session.flush()
        # The parcels' firsts on their rows, as the migration reads them from the events.
        backfill_from_events(session)


def declare_a_season(world: World, today: date) -> None:
    """A December ramp declared over part of the window and the horizon (the other days
    stay ordinary), as an operator would."""
    days = [(today + timedelta(days=i), 1.0 + 0.04 * (i + 20)) for i in range(-20, 5)]
    demand_index.declare(world.ctx, Principal(Role.OPERATOR, user_id=1), days, source="test")


@pytest.mark.parametrize("hour, season", [(9.0, False), (22.7, False), (9.0, True)])
def test_counted_in_sql_the_inputs_are_those_of_the_parcels_one_by_one(
        world: World, clock: Clock, hour: float, season: bool) -> None:
    clock.now = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=hour)
    build_history(world, clock)
    if season:
        declare_a_season(world, world.ctx.local_day(clock.now))
    ctx, now = world.ctx, clock.now
    today = ctx.local_day(now)
    with ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        closed = forecast.site_closed_on(session, site)
        held, _ = forecast._held(ctx, session, [site], today, {site.id: closed})[site.id]
        stays = forecast_learning.stays(ctx, session, [site], now)[site.id]
        rates = forecast_learning.arrival_rates(ctx, session, [site], now,
                                                {site.id: closed})[site.id]
        hazards = forecast_learning.hazards(ctx, session, [site], now,
                                            {site.id: closed})[site.id]
        inputs = forecast.inputs_for(ctx, session, site)

        expected_held = reference_held(ctx, session, site, today, closed)
        expected_stays = reference_stays(ctx, session, site, now)
        expected_rates = reference_arrival_rates(ctx, session, site, now, closed)
        other = session.get(Site, world.other_shop_id)
        assert other is not None
        for where in (site, other):
            assert (sorted(forecast_learning.first_attempts(ctx, session, where, now))
                    == reference_first_attempts(ctx, session, where, now))
        rerouted_here = len(reference_first_attempts(ctx, session, other, now))
        parcels = session.scalar(select(func.count()).select_from(Parcel))
    assert held == Counter(expected_held) and len(held) < len(expected_held)
    assert stays == Counter(expected_stays) and len(stays) < len(expected_stays)
    assert rates == expected_rates
    prior = model.PRIOR_HAZARDS["shop"]
    assert hazards == model.learn_hazards(expected_stays, prior, today, closed,
                                          ctx.settings.forecast.prior_weight)
    assert len(expected_held) > 100 and len(expected_stays) > 200 and parcels == 400
    assert rerouted_here > 5  # the other shop's demand: turned away there, checked in here
    assert 0 < rates["lead_share"][1] < 1 and rates["baseline"] > 0  # a history, not zeros
    assert bool(rates["demand_index"]) == season  # the declared days reach the forecast
    one_by_one = model.forecast(model.SiteInputs(**{
        **{f: getattr(inputs, f) for f in inputs.__dataclass_fields__},
        "held": expected_held, "hazards": hazards, **expected_rates}))
    assert model.forecast(inputs) == one_by_one


@pytest.mark.postgres
def test_postgresql_connections_do_not_compile_statements_just_in_time(pg_url: str) -> None:
    """On analysed tables the statements above, over a big shop's history, pass PostgreSQL's
    jit_above_cost and spent ~0.8 s each compiling (docs/benchmarks.md, issue 15)."""
    db = Database(pg_url)
    try:
        with db.read() as session:
            assert session.scalar(text("SHOW jit")) == "off"
    finally:
        db.dispose()
