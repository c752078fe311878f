"""``--policy full`` for the territory replay (bench/territory.py): issue 16's no-room tools set
up through the services as an operator would, replayed, and scored (docs/overflow.md,
docs/forecast.md "Season capacity" and "Adaptive holding", docs/benchmarks-territory.md).

What the operator does, once before the first day:

- opens one **overflow storage site per town** (the town hall's room, the mairie's staff at
  its counter: ``STORAGE_PLACES`` places, Monday to Saturday 09:00-12:00 and 16:00-18:30,
  for the season 20 November - 31 December); from the town centre it is within reach of the
  town's shops (2 km) and of its villages (10 km);
- sets the **no-room policies**: for every carrier and everywhere, ``storage`` then ``hold``
  at the depot; for the carriers whose contract delivers small parcels at home
  (``HOME_CARRIERS``), ``storage``, ``hold``, then ``home`` for sizes S and M;
- turns on the **season holding period** (``HOLDING_SEASONS``: 5 days at shops and storage
  sites from 20 November to 24 December; the load rule of ``HOLDING_LOAD`` is on by default,
  in both runs);

and each morning after the 05:00 forecast, reads the **season-capacity recommendation**
(``services.season.recommendations``, the dashboard's) and declares a temporary shelf at each
shop for each period it recommends, capped at ``SHELF_SHARE`` of the shop's places on any
day (a shop has so much floor); then, with ``storage_growth`` (``--storage-growth PLACES``),
reads the **overflow storage recommendation** (``services.season.storage_recommendations``)
and declares at each town hall the places it recommends for each period, at most
``storage_growth`` more on any day (a second room, a container; 0: the rooms stay as built).

The replay honours what the policy decides: a parcel sent to a storage site is announced
there and checked in at its counter on its day, and its resident collects it there; a parcel
held at the depot has its expected day moved, so the van brings it that day (the check-ins take
every announced parcel due); a parcel the carrier delivers home leaves the network. Carriers
announce each parcel's size class (their label printers know it; the shops' shelves are all
size L, so it changes nothing at a shop's counter), drawn from its tracking number so the
replay's random streams stay those of a run without a policy.
"""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from relay_ops.db.models import Location, NoRoomDecision, Parcel, ParcelEvent, Site
from relay_ops.domain.errors import SiteAtCapacity
from relay_ops.domain.season import Outlook, Shortfall, storage_needs
from relay_ops.services import (
    accounts,
    checkin,
    expiry,
    forecast_views,
    no_room_policies,
    pickup,
    season,
    sites,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role

if TYPE_CHECKING:  # territory.py imports this module
    from bench.territory import Replay

POLICIES = ("none", "full")
STORAGE_PLACES = 80  # a town hall's meeting room with trestle tables: 80 parcels
STORAGE_HOURS = {d: [["09:00", "12:00"], ["16:00", "18:30"]]
                 for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
STORAGE_FIRST_DAY = 0.5  # residents come to the town hall a little later than to their shop
SHELF_SHARE = 0.30  # temporary shelves add at most 30 % of a shop's places on any day
SHELF_PREFIX = "SAISON"
ROOM_PREFIX = "SALLE"  # places added to a town hall
HOME_CARRIERS = ("colis", "express")  # contracts that deliver small parcels at home
HOME_SIZES = ["S", "M"]
HOLDING_SEASONS = {kind: [{"from": "11-20", "to": "12-24", "days": 5}]
                   for kind in ("shop", "storage")}
SIZE_MIX = (("S", 5), ("M", 3), ("L", 2))  # of ten parcels


def config(policy: str) -> dict[str, Any]:
    """The settings a policy adds to the app's configuration."""
    return {"HOLDING_SEASONS": HOLDING_SEASONS} if policy == "full" else {}


def size_class_of(number: str) -> str:
    """A parcel's size class, from its tracking number's serial (no random draw)."""
    tenth = int(number.removeprefix("TERR")) * 7 % 10
    for size, share in SIZE_MIX:
        if tenth < share:
            return size
        tenth -= share
    raise AssertionError("SIZE_MIX adds up to ten")


@dataclass
class Storage:
    id: int
    code: str
    open_days: frozenset[int]
    peak_fill: int = 0
    refused: int = 0


@dataclass
class PolicyRun:
    """The operator's setup, its part of each replayed day, and its figures."""

    replay: Replay
    rng: random.Random  # the storage sites' pickups: the shops' stream stays untouched
    operator: Principal = field(default_factory=lambda: Principal(Role.OPERATOR))
    storages: list[Storage] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    declared: dict[tuple[int, date], int] = field(default_factory=lambda: defaultdict(int))
    shelves: list[tuple[int, date, date, int]] = field(default_factory=list)
    shelf_peak: int = 0
    over_per_day: dict[date, int] = field(default_factory=lambda: defaultdict(int))
    storage_growth: int = 0  # places a town hall may add for a period (0: none)
    storage_shelves: list[tuple[int, date, date, int]] = field(default_factory=list)
    # (storage id, morning, day, places missing that day) as each morning's recommendation
    # said, and each storage site's parcels held after each day's check-ins
    storage_asked: list[tuple[int, date, date, int]] = field(default_factory=list)
    storage_expected: list[tuple[int, date, date, int]] = field(default_factory=list)
    storage_fill: dict[tuple[int, date], int] = field(default_factory=dict)
    storage_mornings: list[date] = field(default_factory=list)

    @property
    def ctx(self) -> Ctx:
        return self.replay.ctx

    # ------------------------------------------------------------ setup

    def setup(self, towns: list[tuple[str, float, float]], year: int) -> None:
        user = accounts.create_user(self.ctx, SYSTEM, username="bench-operator",
                                    password="bench-operator-pass", role="operator")
        self.operator = Principal(Role.OPERATOR, user_id=int(str(user["id"])))
        for town, lat, lon in towns:
            code = f"{town}-mairie"
            view = sites.create_site(self.ctx, self.operator, {
                "code": code, "kind": "storage", "name": f"Salle de la mairie, {town}",
                "address": "Place de la Mairie", "postcode": "44000", "city": town,
                "latitude": lat + 0.001, "longitude": lon + 0.001, "area": "town",
                "opening_hours": STORAGE_HOURS, "step_free_access": True,
                "locations": [{"label": "T1", "size_class": "L",
                               "capacity": STORAGE_PLACES}],
                "season": {"from": f"{year}-11-20", "to": f"{year}-12-31"}})
            self.storages.append(Storage(view["id"], code, frozenset(range(6))))
        no_room_policies.set_policy(self.ctx, self.operator, {
            "carrier": None, "site": None, "area": None, "steps": ["storage", "hold"]})
        for carrier in HOME_CARRIERS:
            no_room_policies.set_policy(self.ctx, self.operator, {
                "carrier": carrier, "site": None, "area": None,
                "steps": ["storage", "hold", "home"], "home_size_classes": HOME_SIZES})

    # ------------------------------------------------------------ each day

    def noted(self, offer: dict[str, Any]) -> None:
        """A parcel flagged by saturation at announce time: what became of it."""
        self.outcomes[offer["status"]] += 1

    def season_shelves(self, day: date) -> None:
        """The operator reads the season-capacity recommendation and declares the shelves."""
        caps = {shop.id: max(1, round(SHELF_SHARE * shop.capacity))
                for shop in self.replay.shops}
        for rec in season.recommendations(self.ctx, self.operator):
            for period in rec["periods"]:
                self._declare(rec["id"], day, period, caps[rec["id"]], self.shelves)
        if self.storage_growth > 0:
            self._grow_storage(day)

    def _grow_storage(self, day: date) -> None:
        """The operator reads the overflow storage recommendation (after the shops'
        shelves: what they cannot take) and adds the places to the town halls."""
        forecasts = forecast_views.overview(self.ctx, self.operator)
        answer = season.storage_recommendations(self.ctx, self.operator, forecasts)
        own_days = {site["id"]: site["days"] for site in forecasts}
        self.storage_mornings.append(day)
        for rec in answer["storage"]:
            own = own_days[rec["id"]]
            z = self.ctx.settings.forecast.band_z
            self.storage_asked += _beyond_the_room(rec["id"], day, rec["overflow"], own, z)
            self.storage_expected += _beyond_the_room(rec["id"], day, rec["overflow"], own, 0.0)
            for period in rec["periods"]:
                self._declare(rec["id"], day, period, self.storage_growth,
                              self.storage_shelves)

    def _declare(self, site_id: int, day: date, period: dict[str, Any], cap: int,
                 declared: list[tuple[int, date, date, int]]) -> None:
        """A temporary shelf at ``site_id`` for a recommended period (from today on), of its
        places, at most ``cap`` places added on any of its days; noted in ``declared``."""
        first = max(date.fromisoformat(period["from"]), day)
        last = date.fromisoformat(period["until"])
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        if not days:
            return
        places = min(int(period["places"]),
                     min(cap - self.declared[(site_id, d)] for d in days))
        if places <= 0:
            return
        # the shops' shelves apart from the rooms' (``figures`` counts the parcels on them)
        prefix = SHELF_PREFIX if declared is self.shelves else ROOM_PREFIX
        label = f"{prefix}-{len(declared) + 1}"
        season.declare_temporary_shelf(self.ctx, self.operator, site_id,
                                       season.TemporaryShelf(label, "L", places, first, last))
        declared.append((site_id, first, last, places))
        for d in days:
            self.declared[(site_id, d)] += places

    def check_ins(self, day: date) -> None:
        """The van leaves at the town hall what the storage step sent there for the day (and
        what it refused before); the mairie's staff scan each parcel in."""
        for storage in self.storages:
            if day.weekday() not in storage.open_days:
                continue
            with self.ctx.db.read() as session:
                numbers = list(session.scalars(select(Parcel.tracking_number).where(
                    Parcel.site_id == storage.id, Parcel.state == "announced",
                    Parcel.expected_date <= day).order_by(Parcel.id)))
            for number in numbers:
                try:
                    answer = checkin.check_in(self.ctx, SYSTEM, storage.id, number)
                except SiteAtCapacity:
                    storage.refused += 1
                    continue
                vans = self.replay.stats.vans
                if number in vans.first_refused:  # a full counter sent it here: out of the van
                    vans.checked_in(number, day)
                parcel_id = answer["parcel"]["id"]
                self.replay.dwell[parcel_id] = _dwell(self.rng)
            held = self._held(storage.id)
            storage.peak_fill = max(storage.peak_fill, held)
            self.storage_fill[(storage.id, day)] = held
        self.shelf_peak = max(self.shelf_peak, self._on_temporary_shelves())
        self.over_per_day[day] = sum(1 for _, d in self.replay.stats.over_days if d == day)

    def pickups(self, day: date) -> None:
        for storage in self.storages:
            if day.weekday() not in storage.open_days:
                continue
            with self.ctx.db.read() as session:
                ready = list(session.execute(select(Parcel.id, Parcel.tracking_number).where(
                    Parcel.site_id == storage.id, Parcel.state == "ready_for_pickup")))
            for parcel_id, number in ready:
                if self.replay.age[parcel_id] < self.replay.dwell.get(parcel_id, 0):
                    self.replay.age[parcel_id] += 1
                elif (code := self.replay._code(parcel_id)) is not None:
                    pickup.pick_up(self.ctx, SYSTEM, storage.id, tracking_number=number,
                                   code=code)

    def returns(self) -> None:
        """Carriers take back from the town halls what expired two days ago or earlier."""
        cutoff = self.ctx.now() - timedelta(days=2)
        with self.ctx.db.read() as session:
            rows = list(session.execute(select(
                Parcel.site_id, Parcel.tracking_number, Parcel.carrier_id).where(
                Parcel.state == "expired", Parcel.holding_deadline <= cutoff,
                Parcel.site_id.in_([s.id for s in self.storages]),
                Parcel.carrier_id.is_not(None))))
        by_key: dict[tuple[int, int | None], list[str]] = defaultdict(list)
        for site_id, number, carrier_id in rows:
            by_key[(site_id, carrier_id)].append(number)
        for (site_id, carrier_id), numbers in by_key.items():
            expiry.collect(self.ctx, Principal(Role.CARRIER, carrier_id=carrier_id), site_id,
                           numbers)

    def _held(self, site_id: int) -> int:
        with self.ctx.db.read() as session:
            site = session.get(Site, site_id)
            assert site is not None
            return sites.occupancy_of(session, site).held

    def _on_temporary_shelves(self) -> int:
        with self.ctx.db.read() as session:
            return int(session.scalar(select(func.coalesce(func.sum(Location.held), 0)).where(
                Location.valid_from.is_not(None))) or 0)

    # ------------------------------------------------------------ figures

    def figures(self, end: date) -> dict[str, Any]:
        with self.ctx.db.read() as session:
            decisions = list(session.execute(select(
                NoRoomDecision.step, NoRoomDecision.parcel_id, NoRoomDecision.day,
                NoRoomDecision.hold_until, Parcel.state, Parcel.site_id,
                Parcel.expected_date).join(Parcel, Parcel.id == NoRoomDecision.parcel_id)))
            checked_in: dict[int, Any] = dict(list(session.execute(
                select(ParcelEvent.parcel_id, func.min(ParcelEvent.at))
                .where(ParcelEvent.action == "check_in").group_by(ParcelEvent.parcel_id)).tuples()))
            # the check-in event names the shelf the parcel was put on
            on_shelves = sum(1 for data in session.scalars(
                select(ParcelEvent.data).where(ParcelEvent.action == "check_in"))
                if str((data or {}).get("location", "")).startswith(SHELF_PREFIX))
            states: dict[str, int] = dict(list(session.execute(
                select(Parcel.state, func.count()).group_by(Parcel.state)).tuples()))
        tz = self.ctx.settings.timezone
        day_in = {pid: at.astimezone(tz).date() if at.tzinfo else at.date()
                  for pid, at in checked_in.items()}
        return {
            "storage": self._storage_figures(decisions, day_in),
            "held_at_depot": _held_figures(decisions, day_in, end),
            "home_by_carrier": {
                "decided": sum(1 for d in decisions if d[0] == "home"),
                "in_state_home_by_carrier": int(states.get("home_by_carrier", 0)),
            },
            "undecided": sum(1 for d in decisions if d[0] == "none"),
            "answers_at_announce": dict(sorted(self.outcomes.items())),
            "season_capacity": {
                "shelves_declared": len(self.shelves),
                "places_declared_max": max((p for *_, p in self.shelves), default=0),
                "place_days_declared": sum(p * ((min(last, end) - first).days + 1)
                                           for _, first, last, p in self.shelves
                                           if first <= end),
                "parcels_put_on_temporary_shelves": on_shelves,
                "peak_on_temporary_shelves": self.shelf_peak,
            },
            "lost": _lost(decisions, {s.id for s in self.storages}),
            "parcels_by_state": {str(k): int(v) for k, v in sorted(states.items())},
            "shop_days_over_capacity_per_day": {
                d.isoformat(): n for d, n in sorted(self.over_per_day.items())},
        }

    def _recommended_vs_used(self) -> dict[str, Any]:
        """How the overflow storage recommendation compared with what the rooms then held,
        1, 3 and 7 days ahead (meaningful with a growth large enough not to cap the use)."""
        return {basis: {f"{lead}d": _asked_vs_used(asked, self.storage_fill,
                                                   self.storage_mornings, lead)
                        for lead in (1, 3, 7)}
                for basis, asked in (("upper", self.storage_asked),
                                     ("expected", self.storage_expected))}

    def _storage_figures(self, decisions: list[Any], day_in: dict[int, date]
                         ) -> dict[str, Any]:
        sent = [d for d in decisions if d[0] == "storage"]
        return {
            "sites": len(self.storages), "places_each": STORAGE_PLACES,
            "parcels_sent": len(sent),
            "checked_in": sum(1 for d in sent if d[1] in day_in),
            "picked_up": sum(1 for d in sent if d[4] == "picked_up"),
            "on_shelves_at_end": sum(1 for d in sent if d[4] == "ready_for_pickup"),
            "expired_or_returned": sum(1 for d in sent if d[4] in ("expired", "returned")),
            "not_brought_yet": sum(1 for d in sent if d[4] == "announced"),
            "refused_at_storage_counter": sum(s.refused for s in self.storages),
            "peak_fill": {s.code: s.peak_fill for s in self.storages},
            "growth_allowed": self.storage_growth,
            "recommended_vs_used": self._recommended_vs_used(),
            "places_added": [{"site": next(s.code for s in self.storages if s.id == sid),
                              "from": first.isoformat(), "until": last.isoformat(),
                              "places": places}
                             for sid, first, last, places in self.storage_shelves],
        }


def _beyond_the_room(sid: int, morning: date, overflow: list[dict[str, Any]],
                     own: list[dict[str, Any]], z: float) -> list[tuple[int, date, date, int]]:
    """Per day ahead, the places beyond the room's own (``STORAGE_PLACES``) that the
    recommendation read this morning asks for, whatever was added already: its own forecast
    plus its share of the shops' overflow (the answer's mean and spread), as
    ``domain.season.storage_needs`` reads them at ``z`` (0: the expected count)."""
    shares = {date.fromisoformat(d["day"]): Shortfall(d["parcels"], d["spread"] ** 2)
              for d in overflow}
    outlook = [Outlook(date.fromisoformat(d["day"]), d["predicted"], d["high"], d["capacity"])
               for d in own]
    return [(sid, morning, need.day, max(0, need.high - STORAGE_PLACES))
            for need in storage_needs(outlook, shares, z)]


def _asked_vs_used(asked: list[tuple[int, date, date, int]],
                   fill: dict[tuple[int, date], int], mornings: list[date],
                   lead: int) -> dict[str, Any]:
    """The places beyond a room's own that the recommendation asked ``lead`` days ahead
    (those added already and those it said were missing), beside those the room held beyond
    its own that day (its fill less ``STORAGE_PLACES``), for each room and each morning it
    was read, on the room's open days within the run."""
    said = {(sid, morning, day): missing for sid, morning, day, missing in asked}
    pairs = [(said.get((sid, morning, day), 0), max(0, held - STORAGE_PLACES))
             for morning in mornings for (sid, day), held in fill.items()
             if (day - morning).days == lead]
    if not pairs:
        return {"days": 0}
    return {
        "days": len(pairs),
        "asked_mean": round(statistics.mean(a for a, _ in pairs), 1),
        "used_mean": round(statistics.mean(u for _, u in pairs), 1),
        "used_max": max(u for _, u in pairs),
        "asked_at_least_used_pct": round(100 * sum(a >= u for a, u in pairs) / len(pairs), 1),
    }


def _held_figures(decisions: list[Any], day_in: dict[int, date], end: date) -> dict[str, Any]:
    held = [d for d in decisions if d[0] == "hold"]
    waits = [(day_in[d[1]] - d[2]).days for d in held if d[1] in day_in]
    return {
        "parcels": len(held),
        "checked_in": len(waits),
        "checked_in_on_their_day": sum(1 for d in held if day_in.get(d[1]) == d[3]),
        "checked_in_later": sum(1 for d in held if d[1] in day_in and day_in[d[1]] > d[3]),
        "still_at_depot_or_in_van": sum(1 for d in held if d[4] == "announced"),
        "hold_days_mean": round(statistics.mean((d[3] - d[2]).days for d in held), 2)
        if held else None,
        "wait_days_mean": round(statistics.mean(waits), 2) if waits else None,
        "wait_days_max": max(waits, default=0),
        "due_after_the_last_day": sum(1 for d in held if d[3] > end),
    }


def _lost(decisions: list[Any], storage_ids: set[int]) -> int:
    """Decided parcels not where their decision put them: a storage parcel away from the
    storage sites, a held one away from its site or announced for another day than its hold,
    a home one not gone home."""
    lost = 0
    for step, _, _, hold_until, state, site_id, expected in decisions:
        if step == "storage":
            lost += site_id not in storage_ids
        elif step == "hold":
            lost += state == "announced" and expected != hold_until
        elif step == "home":
            lost += state != "home_by_carrier"
    return lost


def _dwell(rng: random.Random) -> int:
    """Open days a parcel waits at the town hall: later than at a shop (it is further)."""
    u = rng.random()
    if u < STORAGE_FIRST_DAY:
        return 0
    if u < STORAGE_FIRST_DAY + (1 - STORAGE_FIRST_DAY) * 0.72:
        return 1
    return 2 if u < 0.99 else rng.randint(3, 14)


def over_capacity_ratio(none: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """Shop-days over capacity with the full policy against without any (issue 16's goal:
    at most 25 % at load 1.5), and the refusals avoided."""
    key = "shop_days_over_capacity"
    base, with_policy = none[key], full[key]
    return {
        "shop_days_over_capacity": {"none": base, "full": with_policy},
        "ratio_pct": round(100 * with_policy / base, 1) if base else None,
        "goal_pct": 25,
        "refused_checkins": {"none": none["refused_checkins"],
                             "full": full["refused_checkins"]},
        "refusals_avoided": none["refused_checkins"] - full["refused_checkins"],
    }
