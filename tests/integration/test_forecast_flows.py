"""The forecast predicts the site's other parcels (issue 17): those sent from it and
producers' orders deposited at it, each learned apart from the site's history.

Through the services, as a counter lives them: a shop whose only parcels are sent ones is
forecast to hold them, for as long as its carrier takes to collect them; an order announced
for tomorrow is counted once, in its flow, and orders are not the carriers' demand. Then the
flows' inputs counted in SQL against the parcels taken one by one (the reference), on a
history built to hit the corners, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import ClosingDay, Parcel, Producer, ProducerOrder, Site
from relay_ops.domain import forecast as model
from relay_ops.domain import forecast_flows as flows
from relay_ops.domain.lifecycle import State
from relay_ops.services import (
    forecast,
    forecast_flows,
    forecast_learning,
    outbound,
    producer_announcements,
    producer_counter,
    producers,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.support import World

COUNTER = Principal(Role.OPERATOR, name="counter")


def sending_shops(world: World) -> None:
    """Acme collects its own labels (ACME...) at both shops, which declare "send"."""
    for site_id in (world.shop_id, world.other_shop_id):
        assert world.operator.put(f"/sites/{site_id}/services",
                                  json={"services": ["receive", "send"]}).status_code == 200
        assert world.operator.put(f"/sites/{site_id}/carriers/acme",
                                  json={"collection_delay_hours": 24}).status_code == 200
    assert world.operator.put("/carriers/acme/label-networks",
                              json={"label_networks": ["prefix:ACME"]}).status_code == 200


def at(day: date, hour: int) -> datetime:
    """``hour`` o'clock in Paris on a December day (UTC+1)."""
    return datetime.combine(day, time(hour - 1), tzinfo=UTC)


def send_every_day(world: World, clock: Clock, site_id: int, per_day: int,
                   collected_after: int, days: int = 21) -> None:
    """Over the ``days`` before the clock's day: each open day senders leave ``per_day``
    parcels at 15:00, and the carrier, at 11:00, takes those left ``collected_after`` days
    before or earlier."""
    today = clock.now.date()
    waiting: list[tuple[date, str]] = []
    serial = 0
    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        if day.weekday() == 6:  # the shops close on Sundays
            continue
        clock.now = at(day, 11)
        due = [number for left, number in waiting if (day - left).days >= collected_after]
        if due:
            answers = outbound.collect(world.ctx, SYSTEM, site_id, due, [], carrier_code="acme")
            assert {a["status"] for a in answers} == {"collected"}, answers
            waiting = [(left, n) for left, n in waiting if n not in due]
        clock.now = at(day, 15)
        for _ in range(per_day):
            serial += 1
            number = f"ACME{site_id:02d}{serial:06d}"
            status, _ = outbound.drop_off(world.ctx, SYSTEM, site_id, number)
            assert status == 201
            waiting.append((day, number))
    clock.now = at(today, 10)


def forecast_of(world: World, site_id: int) -> tuple[model.SiteInputs, list[model.DayForecast]]:
    with world.ctx.db.read() as session:
        site = session.get(Site, site_id)
        assert site is not None
        inputs = forecast.inputs_for(world.ctx, session, site)
    return inputs, model.forecast(inputs)


def flow(inputs: model.SiteInputs, kind: str) -> flows.Flow:
    return next(f for f in inputs.flows if f.kind == kind)


def open_days_ahead(days: list[model.DayForecast]) -> list[model.DayForecast]:
    return [d for d in days[1:] if not d.closed]


def test_a_shop_sending_parcels_every_day_is_forecast_to_hold_them(
        world: World, clock: Clock) -> None:
    """Bourg's senders leave 2 parcels a day, taken the next morning: every coming open day
    starts with the day before's 2 on the shelf. Without the sent flow the forecast of a
    shop with no other parcel is 0."""
    sending_shops(world)
    send_every_day(world, clock, world.shop_id, per_day=2, collected_after=1)
    inputs, days = forecast_of(world, world.shop_id)
    sent = flow(inputs, flows.SENT)
    assert 1.6 < sent.rate.level < 2.4 and inputs.baseline == 0.0
    assert sum(sent.held.values()) == 2 and days[0].predicted >= 2  # yesterday's, on hand
    ahead = open_days_ahead(days)
    assert len(ahead) == 6
    for day in ahead:
        assert 1.5 < day.predicted < 2.6, day
        (share,) = [f for f in day.flows if f.kind == flows.SENT]
        assert share.present == day.predicted and share.deposits > 1.5
    # the other shop sends nothing: nothing is forecast there
    _, elsewhere = forecast_of(world, world.other_shop_id)
    assert all(d.predicted == 0 for d in elsewhere)
    # the forecast's answer shows the flow apart
    answer = world.shopkeeper.get(f"/sites/{world.shop_id}/forecast").json
    tomorrow = answer["days"][1]
    assert tomorrow["flows"]["sent"]["on_shelves"] == tomorrow["predicted"] > 1.5
    assert tomorrow["flows"]["orders"] == {"deposits": 0.0, "on_shelves": 0.0}


def test_the_dwell_is_learned_from_the_collection_times(world: World, clock: Clock) -> None:
    """The same senders, two carriers' habits: Bourg's carrier takes the parcels the next
    morning, Voisin's three calendar days later (two or three open days' deposits on the
    shelf at each peak): Voisin is forecast to hold two to three times Bourg's."""
    sending_shops(world)
    send_every_day(world, clock, world.shop_id, per_day=2, collected_after=1)
    send_every_day(world, clock, world.other_shop_id, per_day=2, collected_after=3)
    fast_inputs, fast = forecast_of(world, world.shop_id)
    slow_inputs, slow = forecast_of(world, world.other_shop_id)
    fast_h, slow_h = flow(fast_inputs, flows.SENT).hazards, flow(slow_inputs, flows.SENT).hazards
    # none leaves the day it is left; the fast carrier's take them at age 1, the slow one's
    # at 3 (or 2, when a Sunday falls between)
    assert fast_h[0] < 0.1 and slow_h[0] < 0.1
    assert fast_h[1] > 0.8 and slow_h[1] < 0.4 and slow_h[3] > 0.6
    quick, late = open_days_ahead(fast), open_days_ahead(slow)
    for q, s in zip(quick, late, strict=True):
        assert s.predicted > q.predicted + 1.5, (q, s)
    assert 2.0 < sum(d.predicted for d in late) / sum(d.predicted for d in quick) < 3.2


def order_every_day(world: World, clock: Clock, days: int = 14) -> Principal:
    """Each open day one producer's 2 orders, announced at 20:00 the evening before, brought
    at 10:00 and picked up by their recipients at 17:00; none today; tomorrow's announced
    tonight, which is when the forecast is made."""
    view = producers.create_producer(world.ctx, SYSTEM, code="ferme", name="Ferme")
    farm = Principal(Role.PRODUCER, producer_id=view["id"])
    today = clock.now.date()
    serial = 0

    def announce_for(day: date) -> list[str]:
        nonlocal serial
        clock.now = at(day - timedelta(days=1), 20)
        references = []
        for _ in range(2):
            serial += 1
            references.append(f"CMD-{serial}")
            producer_announcements.announce(world.ctx, farm, producer_announcements.Order(
                reference=references[-1], site="bourg", phone=f"+3361100{serial:04d}"))
        return references

    for back in range(days, 0, -1):
        day = today - timedelta(days=back)
        if day.weekday() == 6:
            continue
        references = announce_for(day)
        clock.now = at(day, 10)
        ids = [producer_counter.deposit(world.ctx, COUNTER, world.shop_id, ref)[1]["parcel"]["id"]
               for ref in references]
        clock.now = at(day, 17)
        for parcel_id in ids:
            assert world.pick_up(code=world.code_of(parcel_id)).status_code == 200
    announce_for(today + timedelta(days=1))  # the clock stays at 20:00 tonight
    return farm


def test_orders_are_a_flow_of_their_own_counted_once(world: World, clock: Clock) -> None:
    """Orders come through the check-in, but they are not the carriers' demand: they are
    learned as their own flow, announced the evening before, so tomorrow's two announced
    orders count once (not again in a rate that took them for unannounced parcels)."""
    order_every_day(world, clock)
    inputs, days = forecast_of(world, world.shop_id)
    orders = flow(inputs, flows.ORDERS)
    assert inputs.baseline == 0.0 and not inputs.announced  # no carrier's parcel
    assert 1.7 < orders.rate.level < 2.3
    assert orders.lead_share[1] > 0.9  # tomorrow's are announced by now: the rate adds little
    assert [a.day for a in orders.announced] == [clock.now.date() + timedelta(days=1)] * 2
    # picked up the day they come: a day's orders are on the shelf at its peak only
    assert orders.hazards[0] > 0.8
    tomorrow = days[1]
    (share,) = [f for f in tomorrow.flows if f.kind == flows.ORDERS]
    assert 1.9 < share.deposits < 2.3 and share.present == tomorrow.predicted
    assert 1.9 < tomorrow.predicted < 2.3, tomorrow


# ---------------------------------------------------------------- counted in SQL, or one by one


def reference_flow(ctx: Ctx, session: Session, site: Site, kind: str,
                   closed: model.ClosedOn) -> flows.Flow:
    """The flow's rate, lead shares and dwell from its parcels read one by one (local days
    in Python), by the model's own functions."""
    now = ctx.now()
    settings = ctx.settings.forecast
    zone = ctx.settings.timezone
    today = now.astimezone(zone).date()
    query = select(Parcel, ProducerOrder).outerjoin(
        ProducerOrder, ProducerOrder.parcel_id == Parcel.id).where(Parcel.site_id == site.id)
    deposits = []  # (deposit day, left day or None, announced at or None)
    for parcel, order in session.execute(query):
        if kind == flows.SENT and parcel.direction == "outbound":
            moment, announced = parcel.checked_in_at, parcel.announced_at
        elif kind == flows.ORDERS and order is not None:
            moment, announced = parcel.first_check_in_at, order.announced_at
        else:
            continue
        if moment is None or moment < now - timedelta(days=max(
                settings.dwell_window_days, settings.arrival_window_days)):
            continue
        left = parcel.closed_at.astimezone(zone).date() if parcel.closed_at else None
        deposits.append((moment.astimezone(zone).date(), left, announced))
    since = today - timedelta(days=settings.arrival_window_days)
    recent = [d for d in deposits if since <= d[0] < today]
    if recent:
        since = max(since, min(d[0] for d in recent))
    per_day: dict[date, int] = defaultdict(int)
    for day, _, _ in recent:
        per_day[day] += 1
    daily = [per_day.get(day, 0) for day in sorted(
        model.open_ages(since, today - timedelta(days=1), closed))]
    rate = model.learn_arrival_rate(daily, settings.arrival_half_life_days,
                                    with_trend=settings.arrival_trend
                                    ).widened(settings.rate_uncertainty_factor)

    def start(day: date) -> datetime:
        return datetime.combine(day, time(0, 0), tzinfo=zone)

    leads = [(start(day) - announced).total_seconds() / 3600 if announced else None
             for day, _, announced in recent]
    horizons = [(start(today + timedelta(days=i)) - now).total_seconds() / 3600
                for i in range(settings.horizon_days + 1)]
    dwell_since = today - timedelta(days=settings.dwell_window_days)
    stays = [model.Stay(check_in=day, ended=left, picked_up=left is not None)
             for day, left, _ in deposits if day >= dwell_since]
    return flows.Flow(kind=kind, rate=rate, lead_share=model.learn_lead_share(leads, horizons),
                      hazards=model.learn_hazards(stays, flows.PRIOR_FLOW_HAZARDS[kind], today,
                                                  closed, settings.prior_weight),
                      after_peak=kind == flows.SENT)


def build_flows_history(world: World, clock: Clock) -> int:
    """About 300 sent parcels and orders over the last 70 days at the world's shop, at
    moments near local midnight and the windows' edges, some on the shelf still, some
    announced; carriers' parcels of no carrier that are not orders; the other shop's own.
    Written as rows (their columns are what the flows read)."""
    rng = random.Random(17)
    now = clock.now
    hours = [0.2, 7.5, 9.0, 14.0, 21.9, 22.5, 23.2, 23.9]
    with world.ctx.db.transaction() as session:
        session.add(ClosingDay(site_id=world.shop_id, day=date(2026, 11, 11)))
        producer = Producer(code="ferme", name="Ferme")
        session.add(producer)
        session.flush()
        for n in range(300):
            back = rng.choice([rng.uniform(0, 70), 56 + rng.uniform(-0.6, 0.6),
                               29 + rng.uniform(-0.6, 0.6), rng.uniform(0, 1.2)])
            day = (now - timedelta(days=back)).date()
            moment = datetime.combine(day, time(0), tzinfo=UTC) + timedelta(
                hours=rng.choice(hours) + rng.uniform(0, 0.09))
            moment = min(moment, now - timedelta(minutes=rng.randint(1, 500)))
            left = rng.choice([None, moment + timedelta(hours=rng.uniform(1, 90))])
            left = left if left is None or left < now else None
            kind = rng.choice(["sent", "order", "order", "no-carrier"])
            site_id = world.other_shop_id if rng.random() < 0.1 else world.shop_id
            parcel = Parcel(tracking_number=f"FLOW{n:07d}", site_id=site_id,
                            direction="outbound" if kind == "sent" else "inbound",
                            state=("collected" if kind == "sent" else "picked_up") if left
                            else ("awaiting_collection" if kind == "sent"
                                  else State.READY_FOR_PICKUP.value),
                            checked_in_at=moment, first_check_in_at=None if kind == "sent"
                            else moment, closed_at=left,
                            announced_at=moment - timedelta(hours=rng.uniform(1, 30))
                            if kind == "sent" and rng.random() < 0.3 else None)
            if kind != "sent":  # its check-in was its first attempt (an order's too)
                parcel.first_attempt_at, parcel.first_attempt_site_id = moment, site_id
            session.add(parcel)
            session.flush()
            if kind == "order":
                session.add(ProducerOrder(
                    parcel_id=parcel.id, producer_id=producer.id, reference=f"R{n}",
                    announced_at=moment - timedelta(hours=rng.uniform(2, 40)),
                    fingerprint=""))
    return 300


def test_counted_in_sql_the_flows_are_those_of_the_parcels_one_by_one(
        world: World, clock: Clock) -> None:
    clock.now = datetime(2026, 12, 1, 21, 40, tzinfo=UTC)  # 22:40 in Paris
    build_flows_history(world, clock)
    ctx, now = world.ctx, clock.now
    with ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        closed = forecast.site_closed_on(session, site)
        inputs = forecast.inputs_for(ctx, session, site)
        for kind in flows.KINDS:
            expected = reference_flow(ctx, session, site, kind, closed)
            read = forecast_flows.sent_deposits if kind == flows.SENT else \
                forecast_flows.order_deposits
            deposits = read(ctx, session, [site], now)[site.id]
            learned = forecast_flows.learned(ctx, kind, deposits, now, closed)
            assert learned == expected
            if kind == flows.SENT:  # counted alike (an order's announcement is its own)
                assert len(deposits) < sum(count for *_, count in deposits)
                assert 0 < learned.lead_share[0] < 1  # some announced at a locker, most not
            else:
                assert learned.lead_share[0] == 1  # every order announced before it came
            assert learned.rate.level > 0 and learned.hazards != flows.PRIOR_FLOW_HAZARDS[kind]
            held = Counter(
                len(model.open_ages(ctx.local_day(p.checked_in_at),
                                    ctx.local_day(now)
                                    - timedelta(days=1), closed))
                for p, o in session.execute(
                    select(Parcel, ProducerOrder).outerjoin(
                        ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
                    .where(Parcel.site_id == site.id, Parcel.closed_at.is_(None)))
                if (p.direction == "outbound") == (kind == flows.SENT)
                and (kind == flows.SENT or o is not None))
            assert flow(inputs, kind).held == held and sum(held.values()) > 10
        # the parcels of no carrier that are no orders are the site's own demand, as before;
        # the orders are not
        attempts = {pid for pid, _ in forecast_learning.first_attempts(ctx, session, site, now)}
        own = set(session.scalars(select(Parcel.id).outerjoin(
            ProducerOrder, ProducerOrder.parcel_id == Parcel.id).where(
            Parcel.site_id == site.id, Parcel.direction == "inbound",
            ProducerOrder.parcel_id.is_(None))))
    assert attempts and attempts <= own
    assert sum(model.kinds(inputs.held).values()) > 5 and inputs.baseline > 0
