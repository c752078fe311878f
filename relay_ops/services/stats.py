"""Statistics read from the parcel events (the audit log is the source of every figure).

A parcel *arrives* at a site when an event moves it from a state where it is not on the
premises into one where it is (a check-in), and *leaves* when an event moves it out of the held
states (pickup, return to the carrier, declared missing). Expiry or damage keep it on the
shelf. Occupancy at the end of a past day is today's count minus what arrived since plus what
left since, so no snapshot table is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select

from relay_ops.db.models import Parcel, ParcelEvent, ProducerOrder, Site
from relay_ops.domain.lifecycle import HELD_STATES, State
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import parcel_view
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.sites import occupancies

HELD = {s.value for s in HELD_STATES}
RETURNING = (State.EXPIRED.value, State.DAMAGED.value)


@dataclass(frozen=True)
class Day:
    day: date
    arrivals: int
    departures: int
    pickups: int
    held: int  # parcels on the premises at the end of the day


@dataclass(frozen=True)
class Series:
    days: list[Day]
    capacity: int


def visible_site_ids(ctx: Ctx, actor: Principal) -> list[int]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    with ctx.db.read() as session:
        ids = list(session.scalars(select(Site.id).order_by(Site.id)))
    if actor.role is Role.SHOPKEEPER:
        return [i for i in ids if i in actor.site_ids]
    return ids


def daily(ctx: Ctx, actor: Principal, site_ids: list[int] | None, days: int = 14) -> Series:
    """Per local day over the last ``days`` days: arrivals, departures, pickups, occupancy."""
    allowed = visible_site_ids(ctx, actor)
    chosen = allowed if site_ids is None else [i for i in site_ids if i in allowed]
    today = ctx.today()
    first = today - timedelta(days=days - 1)
    since = ctx.day_start(first)
    counts = {first + timedelta(days=i): [0, 0, 0] for i in range(days)}
    with ctx.db.read() as session:
        rooms = occupancies(session, session.scalars(select(Site).where(Site.id.in_(chosen)))
                            .all(), today).values()
        held_now = sum(room.held for room in rooms)
        capacity = sum(room.capacity for room in rooms)
        events = session.execute(
            select(ParcelEvent.at, ParcelEvent.from_state, ParcelEvent.to_state,
                   ParcelEvent.action)
            .where(ParcelEvent.site_id.in_(chosen), ParcelEvent.at >= since)
        )
        for at, before, after, action in events:
            bucket = counts.get(ctx.local_day(at))
            if bucket is None:  # a clock behind the events; ignore rather than fail
                continue
            if before not in HELD and after in HELD:
                bucket[0] += 1
            elif before in HELD and after not in HELD:
                bucket[1] += 1
                bucket[2] += action == "pick_up"
    return Series(days=_with_occupancy(counts, held_now), capacity=capacity)


def _with_occupancy(counts: dict[date, list[int]], held_now: int) -> list[Day]:
    result: list[Day] = []
    held = held_now
    for day in sorted(counts, reverse=True):
        arrivals, departures, pickups = counts[day]
        result.append(Day(day, arrivals, departures, pickups, max(0, held)))
        held = held - arrivals + departures  # the end of the day before
    result.reverse()
    return result


def watch_list(
    ctx: Ctx, actor: Principal, *, within_hours: int = 48, limit: int = 50
) -> dict[str, Any]:
    """Parcels about to expire, and parcels waiting to go back to their carrier."""
    site_ids = visible_site_ids(ctx, actor)
    horizon = ctx.now() + timedelta(hours=within_hours)
    with ctx.db.read() as session:
        expiring = session.scalars(
            select(Parcel)
            .where(Parcel.site_id.in_(site_ids), Parcel.state == State.READY_FOR_PICKUP.value,
                   Parcel.holding_deadline <= horizon)
            .order_by(Parcel.holding_deadline).limit(limit)
        )
        returning = session.scalars(
            select(Parcel)
            .where(Parcel.site_id.in_(site_ids), Parcel.state.in_(RETURNING))
            .order_by(Parcel.holding_deadline).limit(limit)
        )
        returned_week = session.scalar(
            select(func.count()).select_from(ParcelEvent).where(
                ParcelEvent.site_id.in_(site_ids), ParcelEvent.action == "collect",
                ParcelEvent.at >= ctx.now() - timedelta(days=7),
            )
        )
        return {
            "expiring": [parcel_view(p, actor) for p in expiring],
            "returning": [parcel_view(p, actor) for p in returning],
            "returned_last_7_days": int(returned_week or 0),
        }


# ---------------------------------------------------------------- volumes per flow and site

# Which event counts for which figure, by (action, the parcel's flow). A parcel's flow is
# "outbound" (sent from the site), "producer" (a producer's order) or "inbound" (a carrier's
# parcel for a resident); an event's site is where it happened.
FLOW_FIGURES: dict[tuple[str, str], str] = {
    ("check_in", "inbound"): "inbound_received",
    ("pick_up", "inbound"): "inbound_picked_up",
    ("drop_off", "outbound"): "outbound_sent",
    ("collect", "outbound"): "outbound_collected",
    ("check_in", "producer"): "producer_deposited",
    ("pick_up", "producer"): "producer_picked_up",
    ("collect", "producer"): "producer_taken_back",
    ("home_delivery_requested", "inbound"): "home_requested",
    ("home_delivery_requested", "producer"): "home_requested",
    ("deliver", "inbound"): "home_delivered",
    ("deliver", "producer"): "home_delivered",
}
FIGURES: tuple[str, ...] = tuple(dict.fromkeys(FLOW_FIGURES.values()))
PERIODS: tuple[str, ...] = ("today", "last_7_days")
WEEK = 7


def flow_volumes(ctx: Ctx, actor: Principal) -> dict[str, Any]:
    """Each site's volumes per flow (received and picked up, sent and collected, producers'
    orders deposited, collected and taken back, home deliveries asked for and delivered),
    today and over the last 7 local days (today included), from the parcel events."""
    require_role(actor, Role.OPERATOR)
    now = ctx.now()
    today = ctx.local_day(now)
    starts = {"today": ctx.day_start(today),
              "last_7_days": ctx.day_start(today - timedelta(days=WEEK - 1))}
    flow = case((Parcel.direction == "outbound", "outbound"),
                (ProducerOrder.parcel_id.is_not(None), "producer"), else_="inbound")
    is_today = case((ParcelEvent.at >= starts["today"], 1), else_=0)
    with ctx.db.read() as session:
        site_rows = list(session.execute(
            select(Site.id, Site.code, Site.name, Site.kind).order_by(Site.name, Site.id)))
        counted = session.execute(
            select(ParcelEvent.site_id, ParcelEvent.action, flow, is_today, func.count())
            .join(Parcel, Parcel.id == ParcelEvent.parcel_id)
            .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
            .where(ParcelEvent.at >= starts["last_7_days"], ParcelEvent.at <= now,
                   ParcelEvent.action.in_({action for action, _ in FLOW_FIGURES}))
            .group_by(ParcelEvent.site_id, ParcelEvent.action, flow, is_today)
        )
        per_site = {site_id: _zeros() for site_id, *_ in site_rows}
        totals = _zeros()
        for site_id, action, kind, today_flag, n in counted:
            figure = FLOW_FIGURES.get((action, kind))
            if figure is None or site_id not in per_site:
                continue
            for period in PERIODS if today_flag else PERIODS[1:]:
                per_site[site_id][period][figure] += n
                totals[period][figure] += n
    return {
        "periods": {p: {"from": starts[p].isoformat(), "to": now.isoformat()} for p in PERIODS},
        "figures": list(FIGURES),
        "sites": [{"id": site_id, "code": code, "name": name, "kind": kind, **per_site[site_id]}
                  for site_id, code, name, kind in site_rows],
        "totals": totals,
    }


def _zeros() -> dict[str, dict[str, int]]:
    return {period: dict.fromkeys(FIGURES, 0) for period in PERIODS}
