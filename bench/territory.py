"""Territory replay: a generated rural territory (relay shops and parcel lockers) through a
November–December peak, day by day, through the service layer on SQLite, with and without
reroutes.

    /work/main/.venv/bin/python bench/territory.py            # both runs, ~Nov 2 to Dec 31
    /work/main/.venv/bin/python bench/territory.py --days 20 --mode reroute

What it reports (docs/benchmarks-territory.md): the forecast's error and calibration 1, 3 and
7 days ahead against the parcels on shelves and the places wanted (bench/territory_scoring.py);
the parcels waiting in the vans per day and how many days parcels waited for a shelf;
shop-days over capacity with and without rerouting, and how many of them the forecast flagged
days ahead; the share of parcels rerouted and the distance they moved; lockers full at
drop-off and where their parcels went; parcels grouped with the same recipient's (one shelf
or one door, one code); the time to forecast the whole territory. With ``--flows``, shops
also take parcels to send and producers' orders (bench/territory_flows.py), and the figures
say whether the scored shelf count holds them. With ``--policy full``, issue 16's no-room tools
are set up as an operator would (storage sites, no-room policies, season holding, temporary
shelves: bench/territory_policy.py) and scored; ``--policy both`` runs without, then with.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select

from bench import territory_policy
from bench.territory_flows import FRIDGE, SHOP_SERVICES, Flows
from bench.territory_policy import PolicyRun
from bench.territory_scoring import Sample, Vans, by_lead, demand_share, error_figures
from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import (
    Carrier,
    Parcel,
    ParcelEvent,
    PickupCredential,
    RerouteProposal,
    Site,
    SiteForecast,
)
from relay_ops.domain.errors import DomainError, SiteAtCapacity
from relay_ops.domain.geo import distance_km
from relay_ops.services import (
    accounts,
    checkin,
    checkin_registration,
    credentials,
    demand_index,
    expiry,
    forecast_sweep,
    locker_collection,
    locker_compartments,
    locker_dropoff,
    locker_events,
    locker_registry,
    locker_sync,
    manifests,
    pickup,
    reroute,
    sites,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role

PARIS = ZoneInfo("Europe/Paris")
TOWNS = [("chateaubriant", 47.7172, -1.3761), ("ancenis", 47.3653, -1.1772),
         ("nort", 47.4389, -1.4983)]
NETWORKS = ("Relais Colis", "Mondial Relay", "Pickup", "La Poste Relais")
CARRIERS = (("colis", "automatic"), ("express", "confirm"), ("relais", "confirm"))
TOWN_HOURS = {d: [["09:00", "12:30"], ["14:30", "19:00"]]
              for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
VILLAGE_HOURS = {d: [["08:00", "13:00"], ["16:00", "19:30"]]
                 for d in ("tue", "wed", "thu", "fri", "sat", "sun")}
LEADS = (1, 3, 7)
WARM_UP_DAYS = 14  # the first two weeks teach the model; its errors count after them


SPLIT_SHIPMENT = 0.10  # the next parcel of the same order: same carrier, recipient, day
REPEAT_RECIPIENT = 0.05  # a parcel for someone with another one at that site this week
LOCKER_MODEL = "standard-16"
# Parcel shapes sent to lockers (mm, any order): flat mail-order bags and boxes mostly; two flat
# ones stack in an S door (80 mm), an S and anything else do not.
LOCKER_SHAPES = (
    (0.45, (25, 40), (180, 300), (230, 350)),
    (0.35, (90, 170), (200, 350), (250, 450)),
    (0.20, (200, 380), (250, 370), (300, 600)),
)


def phone_of(number: str) -> str:
    """One recipient per parcel (the serial in the tracking number) unless the plan says the
    parcel is for someone with another parcel there (`Replay.plan`): parcels for one recipient
    at one site share a code and a shelf or door (docs/forecast.md, grouped parcels), which one
    phone for the whole territory would turn into one recipient per site."""
    return f"+336{int(number.removeprefix('TERR')) % 10**8:08d}"


@dataclass
class Shop:
    id: int
    code: str
    capacity: int
    base: float  # parcels a day outside the season
    first_day: float  # share collected the day they arrive
    lat: float
    lon: float
    open_days: frozenset[int]


@dataclass
class Locker:
    id: int
    code: str
    base: float
    first_day: float
    lat: float
    lon: float
    boot: str = "bench-boot"
    seq: int = 0


@dataclass(frozen=True)
class Planned:
    number: str
    carrier: str
    wave: str  # evening (the day before), morning (the same day) or none (unannounced)
    phone: str = ""
    dims: tuple[int, int, int] | None = None  # lockers' parcels are measured


@dataclass
class Stats:
    over_days: list[tuple[str, date]] = field(default_factory=list)
    shop_days: int = 0
    refused_checkins: int = 0
    # what a full counter decided for the parcels it refused (``reroute_at_site.full_at_counter``)
    counter_decisions: Counter[str] = field(default_factory=Counter)
    parcels: int = 0
    unannounced: int = 0
    saturation_notes: int = 0
    no_alternative: int = 0
    forecast_s: list[float] = field(default_factory=list)
    errors: dict[int, list[Sample]] = field(default_factory=by_lead)
    vans: Vans = field(default_factory=Vans)
    flagged_ahead: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    at_risk_days: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    locker_days: int = 0
    locker_days_full: list[tuple[str, date]] = field(default_factory=list)
    locker_deposits: int = 0
    locker_full_moved: int = 0
    locker_refused: int = 0  # stays in the van, tried again on the next round


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, day: date, hhmm: str) -> None:
        hour, minute = (int(x) for x in hhmm.split(":"))
        local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)
        self.now = local.astimezone(UTC)


def season(day: date) -> float:
    """Demand relative to October: a ramp to mid-December, Black Friday, a post-Christmas dip."""
    start, peak = date(day.year, 11, 1), date(day.year, 12, 10)
    factor = 1.0 + 0.9 * min(1.0, max(0.0, (day - start).days / (peak - start).days))
    if date(day.year, 11, 27) <= day <= date(day.year, 12, 2):
        factor += 0.3
    if date(day.year, 12, 23) <= day <= date(day.year, 12, 24):
        factor = 1.2
    if date(day.year, 12, 25) <= day <= date(day.year, 12, 27):
        factor = 0.5
    if day >= date(day.year, 12, 28):
        factor = 0.8
    return factor


# The season declared to the forecast (``relay-ops demand-index``), as (days moved, share of
# the rise above an ordinary day, days averaged): the bench's own, or as a network derives
# it from its year before (``demand_index.from_last_year``: 52 weeks back, so a date-fixed
# season comes a day early, each day the mean of the three centred on it).
DECLARED_SEASONS = {"exact": (0, 1.0, 1), "last-year": (1, 1.0, 3)}


def declared_season(day: date, shift: int = 0, scale: float = 1.0, smooth: int = 1) -> float:
    """``season`` as an operator would declare it: moved by ``shift`` days, its rise scaled
    by ``scale``, each day the mean of the ``smooth`` days centred on it."""
    half = smooth // 2
    around = [season(day + timedelta(days=shift + k)) for k in range(-half, half + 1)]
    return 1.0 + (sum(around) / len(around) - 1.0) * scale


def declare_season(ctx: Ctx, name: str, first: date, last: date) -> None:
    """Declare the season ``name`` (``DECLARED_SEASONS``) from ``first`` to ``last``."""
    shift, scale, smooth = DECLARED_SEASONS[name]
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    days = [(day, round(declared_season(day, shift, scale, smooth), 3)) for day in span]
    demand_index.declare(ctx, SYSTEM, days, source=f"bench {name}")


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def dwell(rng: random.Random, first_day: float) -> int:
    """Open days a parcel waits: the published shape (61 % the first day, 99 % within 3)."""
    rest = 1.0 - first_day
    u = rng.random()
    if u < first_day:
        return 0
    if u < first_day + rest * 0.72:
        return 1
    if u < 0.99:
        return 2
    return rng.randint(3, 14)  # the last 1 %: some never come and the parcel expires


# ---------------------------------------------------------------- territory


def build_territory(ctx: Ctx, rng: random.Random, load: float = 1.0, flows: bool = False
                    ) -> list[Shop]:
    specs: list[dict[str, Any]] = []
    for town, lat, lon in TOWNS:
        for i in range(3):
            specs.append(_spec(rng, f"{town}-{i}", lat + rng.uniform(-0.009, 0.009),
                               lon + rng.uniform(-0.012, 0.012), "town", TOWN_HOURS, (36, 60)))
        for v in range(4):
            angle, km = rng.uniform(0, 2 * math.pi), rng.uniform(4, 9)
            vlat = lat + km / 111 * math.sin(angle)
            vlon = lon + km / 75 * math.cos(angle)
            specs.append(_spec(rng, f"{town}-v{v}", vlat, vlon, "countryside", VILLAGE_HOURS,
                               (16, 28)))
            if v == 0:  # a bigger village with a second shop
                specs.append(_spec(rng, f"{town}-v{v}b", vlat + 0.006, vlon, "countryside",
                                   VILLAGE_HOURS, (16, 28)))
    shops = []
    for spec in specs:
        if flows:  # it sends parcels and keeps producers' orders cold (bench/territory_flows.py)
            spec["site"]["services"] = SHOP_SERVICES
            spec["site"]["locations"].append(dict(FRIDGE))
        view = sites.create_site(ctx, SYSTEM, spec["site"])
        shops.append(Shop(
            id=view["id"], code=spec["site"]["code"], capacity=spec["capacity"],
            base=spec["capacity"] * rng.uniform(0.22, 0.42) * load,
            first_day=rng.uniform(0.5, 0.7),
            lat=spec["site"]["latitude"], lon=spec["site"]["longitude"],
            open_days=frozenset(i for i, d in enumerate(
                ("mon", "tue", "wed", "thu", "fri", "sat", "sun")) if d in spec["hours"]),
        ))
    for code, policy in CARRIERS:
        accounts.create_carrier(ctx, SYSTEM, code=code, name=code.title(),
                                reroute_policy=policy)
    return shops


def build_lockers(ctx: Ctx, rng: random.Random, load: float = 1.0) -> list[Locker]:
    """One 16-door locker per town centre, open at all hours; its own random stream, so the
    shops' demand is the same as in a territory without lockers."""
    built = []
    for town, lat, lon in TOWNS:
        code = f"{town}-lk"
        view = locker_registry.register_locker(ctx, SYSTEM, {
            "code": code, "name": f"Consigne {town}", "locker_model": LOCKER_MODEL,
            "address": "Parking de la gare", "postcode": "44000", "city": town,
            "latitude": lat + 0.004, "longitude": lon - 0.004, "area": "town",
            "step_free_access": True})
        doors = len(view["compartments"])
        built.append(Locker(view["id"], code, doors * rng.uniform(0.25, 0.40) * load,
                            rng.uniform(0.6, 0.8), lat + 0.004, lon - 0.004))
    return built


def locker_dims(rng: random.Random) -> tuple[int, int, int]:
    shares = [shape[0] for shape in LOCKER_SHAPES]
    _, high, wide, deep = rng.choices(LOCKER_SHAPES, weights=shares)[0]
    return rng.randint(*high), rng.randint(*wide), rng.randint(*deep)


def _spec(rng: random.Random, code: str, lat: float, lon: float, area: str,
          hours: dict[str, Any], capacity_range: tuple[int, int]) -> dict[str, Any]:
    capacity = rng.randint(*capacity_range)
    return {"capacity": capacity, "hours": hours, "site": {
        "code": code, "name": f"Relais {code}", "kind": "shop", "network": rng.choice(NETWORKS),
        "address": "1 place de l'Église", "postcode": "44000", "city": code.split("-")[0],
        "latitude": lat, "longitude": lon, "area": area, "opening_hours": hours,
        "step_free_access": rng.random() < 0.7,
        "locations": [{"label": "A1", "size_class": "L", "capacity": capacity}],
    }}


# ---------------------------------------------------------------- the replay


def recipient_code(session: Any, parcel_id: int) -> PickupCredential | None:
    """The recipient's live code covering the parcel (its own, or one it shares)."""
    return next((c for c in credentials.live_credentials(session, parcel_id)
                 if c.holder == "recipient"), None)


class Replay:
    def __init__(self, ctx: Ctx, clock: Clock, shops: list[Shop], rng: random.Random,
                 warm: date, lockers_: list[Locker] | None = None,
                 extra: random.Random | None = None) -> None:
        self.ctx, self.clock, self.shops, self.rng = ctx, clock, shops, rng
        self.lockers = lockers_ or []
        self.shops_only = lockers_ is None  # the first figure sets: one recipient per parcel
        # lockers' demand and repeat recipients draw from their own stream: the shops' own
        # demand and pickup delays stay those of a territory without them
        self.extra = extra or random.Random(0)
        self.phones: dict[str, str] = {}
        self.recent: dict[str, list[tuple[date, str]]] = defaultdict(list)
        self.warm = warm  # forecast errors count from this day (the model learns before)
        self.start = warm  # the first day replayed (set by run)
        self.stats = Stats()
        self.serial = 0
        self.carriers: dict[str, Principal] = {}
        with ctx.db.read() as session:
            for carrier in session.scalars(select(Carrier)):
                self.carriers[carrier.code] = Principal(Role.CARRIER, carrier_id=carrier.id)
        self.dwell: dict[int, int] = {}
        self.age: dict[int, int] = defaultdict(int)
        self.planned: dict[date, dict[str, list[Planned]]] = defaultdict(dict)
        self.predictions: dict[tuple[int, date, int], tuple[float, int, int, bool, int]] = {}
        # (site id, day) -> (on shelves, wanted) at the peak: what the forecasts are scored on
        self.actuals: dict[tuple[int, date], tuple[int, int]] = {}
        self.flows: Flows | None = None  # sent parcels and producer orders (--flows)
        self.policy: PolicyRun | None = None  # issue 16's no-room tools (--policy full)
        self.sent_on: list[tuple[str, str]] = []  # (shop, number) a full counter sent there

    def opens(self, shop: Shop, day: date) -> bool:
        return day.weekday() in shop.open_days

    def plan(self, day: date) -> None:
        """Tomorrow's demand per shop: (tracking number, carrier, wave) with wave evening,
        morning or unannounced."""
        for shop in self.shops:
            if not self.opens(shop, day):
                continue
            parcels_: list[Planned] = []
            for _ in range(poisson(self.rng, shop.base * season(day))):
                self.serial += 1
                u = self.rng.random()
                wave = "evening" if u < 0.75 else "morning" if u < 0.9 else "none"
                number = f"TERR{self.serial:09d}"
                parcels_.append(self._split_or(parcels_, Planned(
                    number, self.rng.choice(CARRIERS)[0], wave,
                    self._recipient(shop.code, number, day))))
            self.planned[day][shop.code] = parcels_
        for locker in self.lockers:
            planned = []
            for _ in range(poisson(self.extra, locker.base * season(day))):
                self.serial += 1
                number = f"TERR{self.serial:09d}"
                wave = "evening" if self.extra.random() < 0.85 else "morning"
                planned.append(self._split_or(planned, Planned(
                    number, self.extra.choice(CARRIERS)[0], wave,
                    self._recipient(locker.code, number, day), locker_dims(self.extra))))
            self.planned[day][locker.code] = planned

    def _split_or(self, planned: list[Planned], new: Planned) -> Planned:
        """Now and then the next parcel of the order planned just before (an order shipped in
        several parcels): the same carrier, recipient and announcement."""
        if not self.shops_only and planned and self.extra.random() < SPLIT_SHIPMENT:
            before = planned[-1]
            self.phones[new.number] = before.phone
            return replace(new, carrier=before.carrier, wave=before.wave, phone=before.phone)
        return new

    def _recipient(self, site: str, number: str, day: date) -> str:
        """A new recipient, or now and then one with another parcel at the site this week."""
        if self.shops_only:
            return phone_of(number)
        recent = [phone for d, phone in self.recent[site] if (day - d).days <= 3]
        self.recent[site] = [(d, ph) for d, ph in self.recent[site] if (day - d).days <= 3]
        phone = (self.extra.choice(recent) if recent and self.extra.random() < REPEAT_RECIPIENT
                 else phone_of(number))
        self.recent[site].append((day, phone))
        self.phones[number] = phone
        return phone

    def announce(self, day: date, wave: str) -> None:
        per_carrier: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for code, planned in self.planned[day].items():
            for p in planned:
                if p.wave == wave:
                    item: dict[str, Any] = {"tracking_number": p.number, "site": code,
                                            "recipient": {"phone": p.phone}}
                    if p.dims:
                        item["dimensions_mm"] = list(p.dims)
                    elif self.policy:  # home delivery depends on it (bench/territory_policy.py)
                        item["size_class"] = territory_policy.size_class_of(p.number)
                    per_carrier[p.carrier].append(item)
        for carrier, items in per_carrier.items():
            principal = self.carriers[carrier]
            body = {"reference": f"{carrier}-{day}-{wave}", "expected_date": day.isoformat(),
                    "parcels": items}
            _, answer = manifests.announce(self.ctx, principal, body)
            self.stats.parcels += answer["accepted"]
            for result in answer["parcels"]:
                self._after_announce(principal, result)

    def _after_announce(self, principal: Principal, result: dict[str, Any]) -> None:
        if "saturation" not in result:
            return
        self.stats.saturation_notes += 1
        offer = result["reroute"]
        if self.policy:
            self.policy.noted(offer)
        if offer["status"] == "no-alternative":
            self.stats.no_alternative += 1
        elif offer["status"] == "proposed":
            # These carriers take the nearest proposal; a full one is refused.
            try:
                reroute.decide(self.ctx, principal, result["parcel_id"],
                               site_code=offer["options"][0]["site"], refuse=False)
            except DomainError:
                reroute.decide(self.ctx, principal, result["parcel_id"], site_code=None,
                               refuse=True)

    def forecast_all(self, day: date) -> None:
        started = time.perf_counter()
        forecast_sweep.forecast_all(self.ctx)
        self.stats.forecast_s.append(time.perf_counter() - started)
        with self.ctx.db.read() as session:
            for row in session.scalars(select(SiteForecast).where(SiteForecast.day > day)):
                lead = (row.day - day).days
                if lead in LEADS:
                    self.predictions[(row.site_id, row.day, lead)] = (
                        row.predicted, row.low, row.high, row.at_risk, row.capacity)

    def check_ins(self, day: date) -> None:
        for shop in self.shops:
            if not self.opens(shop, day):
                continue
            with self.ctx.db.read() as session:
                numbers = list(session.scalars(
                    select(Parcel.tracking_number).where(
                        Parcel.site_id == shop.id, Parcel.state == "announced",
                        Parcel.expected_date <= day).order_by(Parcel.id)))
            fresh = [(p.number, p.carrier) for p in self.planned[day].get(shop.code, [])
                     if p.wave == "none"]
            self.stats.unannounced += len(fresh)
            # The van hands over first what was refused before, oldest refusal first,
            # announced or not (a sort is stable: the others keep their order). An unannounced
            # parcel refused is kept by the check-in as a parcel announced here: it comes back
            # among ``numbers``.
            first = {n: i for i, n in enumerate(self.stats.vans.first_refused)}
            queue: list[tuple[str, str | None]] = [*((n, None) for n in numbers), *fresh]
            queue.sort(key=lambda item: first.get(item[0], len(first)))
            refused = 0
            for number, carrier in queue:
                if not self._check_in(shop, number, carrier, day):
                    refused += 1
            self.stats.refused_checkins += refused
            self._observe(shop, day, refused)
        self._sent_on_today(day)
        self._count_vans(day)

    def _count_vans(self, day: date) -> None:
        """Parcels in the vans after the day's rounds: refused and not taken since."""
        waiting = self.stats.vans.first_refused.values()
        lockers = {locker.code for locker in self.lockers}
        at_lockers = sum(1 for site, _ in waiting if site in lockers)
        self.stats.vans.per_day.append((day, len(waiting) - at_lockers, at_lockers))

    def _today(self) -> date:
        return self.clock.now.astimezone(PARIS).date()

    def _check_in(self, shop: Shop, number: str, carrier: str | None = None,
                  day: date | None = None) -> bool:
        day = day or self._today()
        try:
            answer = checkin.check_in(
                self.ctx, SYSTEM, shop.id, number, accept_unannounced=carrier is not None,
                recipient=checkin_registration.Recipient(
                    phone=self.phones.get(number, phone_of(number))) if carrier else None,
                carrier_code=carrier)
        except SiteAtCapacity as refusal:
            self.stats.vans.refused(shop.code, number, day)
            self._follow(number, refusal.extra.get("reroute"))
            return False  # stays in the van: tried again on the next round (or as decided)
        self.stats.vans.checked_in(number, day)
        parcel_id = answer["parcel"]["id"]
        self.dwell[parcel_id] = dwell(self.rng, shop.first_day)
        return True

    def _follow(self, number: str, decision: dict[str, Any] | None) -> None:
        """The driver does what the refusal decided (``reroute_at_site.full_at_counter``): another
        shop's counter today, a town hall (``territory_policy``'s round), the depot until the
        day its resident is told, or the carrier's home round."""
        if decision is None:
            return
        self.stats.counter_decisions[decision["status"]] += 1
        if decision["status"] == "automatic":
            self.sent_on.append((decision["site"], number))
        elif decision["status"] == "hold-at-depot":
            self.stats.vans.told.add(number)
        elif decision["status"] == "home-delivery":
            self.stats.vans.delivered_home(number)

    def _sent_on_today(self, day: date) -> None:
        """The parcels a full counter sent to another shop, left there the same round."""
        shops = {shop.code: shop for shop in self.shops}
        sent, self.sent_on = self.sent_on, []
        for code, number in sent:
            shop = shops.get(code)
            if shop is None:
                continue
            with self.ctx.db.read() as session:
                waiting = session.scalar(select(Parcel.id).where(
                    Parcel.tracking_number == number, Parcel.state == "announced",
                    Parcel.site_id == shop.id))
            if waiting is not None:
                self._check_in(shop, number, None, day)

    def _observe(self, shop: Shop, day: date, refused: int) -> None:
        with self.ctx.db.read() as session:
            site = session.get(Site, shop.id)
            assert site is not None
            held = sites.occupancy_of(session, site).held
        wanted = held + refused  # what the shop would hold if it had room
        self.actuals[(shop.id, day)] = (held, wanted)
        self.stats.shop_days += 1
        if refused:
            self.stats.over_days.append((shop.code, day))
        for lead in LEADS if day >= self.warm else ():
            prediction = self.predictions.get((shop.id, day, lead))
            if prediction is None:
                continue
            predicted, low, high, at_risk, capacity = prediction
            self.stats.errors[lead].append(Sample(predicted, low, high, capacity, held, wanted))
            self.stats.at_risk_days[lead] += at_risk
            if refused and at_risk:
                self.stats.flagged_ahead[lead] += 1

    def pickups(self, day: date) -> None:
        for shop in self.shops:
            if not self.opens(shop, day):
                continue
            with self.ctx.db.read() as session:
                ready = list(session.execute(
                    select(Parcel.id, Parcel.tracking_number).where(
                        Parcel.site_id == shop.id, Parcel.state == "ready_for_pickup")))
            for parcel_id, number in ready:
                if self.age[parcel_id] < self.dwell.get(parcel_id, 0):
                    self.age[parcel_id] += 1
                elif (code := self._code(parcel_id)) is not None:
                    # the code hands over the recipient's other parcels here too
                    pickup.pick_up(self.ctx, SYSTEM, shop.id, tracking_number=number,
                                    code=code)

    def _code(self, parcel_id: int) -> str | None:
        """The parcel's live code; None once it left with another parcel of its group."""
        with self.ctx.db.read() as session:
            credential = recipient_code(session, parcel_id)
            return credentials.code_of(self.ctx, credential) if credential else None

    def returns(self, day: date) -> None:
        """Carriers take back what expired two days ago or earlier (the model's return lag)."""
        cutoff = self.clock.now - timedelta(days=2)
        shop_ids = [shop.id for shop in self.shops]
        with self.ctx.db.read() as session:
            rows = list(session.execute(
                select(Parcel.site_id, Parcel.tracking_number, Parcel.carrier_id).where(
                    Parcel.state == "expired", Parcel.holding_deadline <= cutoff,
                    Parcel.site_id.in_(shop_ids),
                    Parcel.carrier_id.is_not(None))))  # producers take back their orders
        by_key: dict[tuple[int, int], list[str]] = defaultdict(list)
        for site_id, number, carrier_id in rows:
            by_key[(site_id, carrier_id)].append(number)
        for (site_id, carrier_id), numbers in by_key.items():
            expiry.collect(self.ctx, Principal(Role.CARRIER, carrier_id=carrier_id), site_id,
                            numbers)

    # ------------------------------------------------------------ lockers

    def _event(self, locker: Locker, type_: str, **body: Any) -> None:
        """The locker's own event, as its agent would journal and send it."""
        locker.seq += 1
        locker_events.apply_event(self.ctx, locker.code, locker.boot, locker.seq, type_, body,
                                  self.ctx.now())

    def locker_rounds(self, day: date) -> None:
        """Each carrier's van opens a drop-off session and scans its parcels due: a door opens
        and closes on each; a full locker answers with where the parcel goes instead."""
        for locker in self.lockers:
            with self.ctx.db.read() as session:
                due = list(session.execute(
                    select(Parcel.id, Parcel.tracking_number, Parcel.carrier_id).where(
                        Parcel.site_id == locker.id, Parcel.state == "announced",
                        Parcel.expected_date <= day).order_by(Parcel.id)))
            by_carrier: dict[int, list[tuple[int, str]]] = defaultdict(list)
            for parcel_id, number, carrier_id in due:
                by_carrier[carrier_id].append((parcel_id, number))
            turned_away = 0
            for carrier_id, items in by_carrier.items():
                turned_away += self._drop_off(locker, carrier_id, items)
            self.stats.locker_days += 1
            if turned_away:
                self.stats.locker_days_full.append((locker.code, day))

    def _drop_off(self, locker: Locker, carrier_id: int, items: list[tuple[int, str]]) -> int:
        who = Principal(Role.CARRIER, carrier_id=carrier_id)
        session_id = locker_dropoff.open_session(self.ctx, who, locker.id)["id"]
        turned_away = 0
        for parcel_id, number in items:
            try:
                answer = locker_dropoff.deposit(self.ctx, who, session_id, number)
            except locker_compartments.ParcelDoesNotFit:
                self.stats.locker_refused += 1  # stays in the van: the next round tries again
                self.stats.vans.refused(locker.code, number, self._today())
                turned_away += 1
                continue
            if answer["status"] == "rerouted":
                self.stats.locker_full_moved += 1
                turned_away += 1
                continue
            box = answer["compartment"]
            self._event(locker, "door_opened", compartment=box, purpose="deposit")
            self._event(locker, "door_closed", compartment=box, occupied=True)
            self.stats.locker_deposits += 1
            self.stats.vans.checked_in(number, self._today())
            self.dwell[parcel_id] = dwell(self.extra, locker.first_day)
        locker_dropoff.close_session(self.ctx, who, session_id)
        return turned_away

    def locker_pickups(self, day: date) -> None:
        """Residents come any day; a door shared by one recipient's parcels is emptied when
        the first of them is wanted (they are together behind one code)."""
        for locker in self.lockers:
            with self.ctx.db.read() as session:
                rows = list(session.execute(
                    select(Parcel.id, Parcel.compartment_id).where(
                        Parcel.site_id == locker.id, Parcel.state == "ready_for_pickup")
                    .order_by(Parcel.id)))
            doors: dict[int, list[int]] = defaultdict(list)
            for parcel_id, compartment_id in rows:
                doors[compartment_id].append(parcel_id)
            for inside in doors.values():
                if any(self.age[p] >= self.dwell.get(p, 0) for p in inside):
                    self._pick_up_door(locker, inside[0])
                else:
                    for p in inside:
                        self.age[p] += 1

    def _pick_up_door(self, locker: Locker, parcel_id: int) -> None:
        with self.ctx.db.read() as session:
            parcel = session.get(Parcel, parcel_id)
            assert parcel is not None and parcel.compartment is not None
            box = parcel.compartment.number
            credential = recipient_code(session, parcel_id)
            assert credential is not None
            credential_id = locker_sync.pin_credential_id(credential)
        self._event(locker, "door_opened", compartment=box, purpose="pickup",
                    credential_id=credential_id)
        self._event(locker, "door_closed", compartment=box, occupied=False)

    def locker_returns(self) -> None:
        """Carriers take back, door by door, what expired two days ago or earlier."""
        cutoff = self.clock.now - timedelta(days=2)
        for locker in self.lockers:
            with self.ctx.db.read() as session:
                carriers = set(session.scalars(select(Parcel.carrier_id).where(
                    Parcel.site_id == locker.id, Parcel.state == "expired",
                    Parcel.holding_deadline <= cutoff)))
            for carrier_id in sorted(carriers):
                who = Principal(Role.CARRIER, carrier_id=carrier_id)
                session_id = locker_dropoff.open_session(self.ctx, who, locker.id)["id"]
                locker_collection.start_collection(self.ctx, who, session_id)
                while (box := self._next_collection_door(locker, carrier_id)) is not None:
                    self._event(locker, "door_opened", compartment=box, purpose="collection")
                    self._event(locker, "door_closed", compartment=box, occupied=False)
                locker_dropoff.close_session(self.ctx, who, session_id)

    def _next_collection_door(self, locker: Locker, carrier_id: int) -> int | None:
        with self.ctx.db.read() as session:
            parcel = session.scalar(select(Parcel).where(
                Parcel.site_id == locker.id, Parcel.carrier_id == carrier_id,
                Parcel.state.in_(("expired", "damaged")), Parcel.compartment_id.is_not(None))
                .order_by(Parcel.id).limit(1))
            return parcel.compartment.number if parcel and parcel.compartment else None

    def day(self, day: date) -> None:
        self.clock.at(day, "05:00")
        self.forecast_all(day)
        policy = self.policy
        if policy:  # the operator reads the dashboard's season-capacity recommendation
            self.clock.at(day, "05:30")
            policy.season_shelves(day)
        self.clock.at(day, "06:30")
        self.announce(day, "morning")
        self.clock.at(day, "09:00")
        self.locker_rounds(day)  # before the shops: a full locker's parcel may go to one
        self.clock.at(day, "09:30")
        self.check_ins(day)
        if policy:
            policy.check_ins(day)
        flows = self.flows
        if flows:
            flows.measure(day)
            self.clock.at(day, "10:00")
            flows.deposit_orders(day)
        self.clock.at(day, "11:00")
        self.returns(day)
        self.locker_returns()
        if policy:
            policy.returns()
        if flows:
            flows.collect_sent(day)
            flows.take_back_orders()
            self.clock.at(day, "15:00")
            flows.deposit_sent(day)
        self.clock.at(day, "17:00")
        self.pickups(day)
        self.locker_pickups(day)
        if policy:
            policy.pickups(day)
        self.clock.at(day, "20:00")
        self.plan(day + timedelta(days=1))
        self.announce(day + timedelta(days=1), "evening")
        if flows:
            flows.announce_orders(day + timedelta(days=1))
        self.clock.at(day + timedelta(days=1), "00:30")
        expiry.expire_overdue(self.ctx, limit=100_000)


def reroute_figures(ctx: Ctx, shops: list[Shop]) -> dict[str, Any]:
    """Reroutes at announce time, and apart those of parcels a full locker sent on."""
    with ctx.db.read() as session:
        full = list(session.execute(
            select(RerouteProposal.distance_km, Site.kind)
            .join(Site, Site.id == RerouteProposal.to_site_id)
            .where(RerouteProposal.reason.like("%full at drop-off%"))))
        rows = list(session.execute(
            select(RerouteProposal.status, RerouteProposal.distance_km)
            .where(RerouteProposal.reason.not_like("%full at drop-off%"))))
        refused_after = _refused_at_destination(session)
    moved = [km for status, km in rows if status in ("automatic", "accepted") and km is not None]
    gone = [km for km, _ in full if km is not None]
    refused = sum(1 for full_locker in refused_after.values() if not full_locker)
    return {
        "from_full_lockers": {
            "moved": len(full), "to_lockers": sum(1 for _, kind in full if kind == "locker"),
            "to_shops": sum(1 for _, kind in full if kind == "shop"),
            "distance_km_mean": round(statistics.mean(gone), 2) if gone else None,
            "distance_km_max": round(max(gone), 2) if gone else None,
        },
        "proposals": len(rows),
        "by_status": {s: sum(1 for st, _ in rows if st == s) for s in {st for st, _ in rows}},
        "moved": len(moved),
        # moved parcels refused at least once at the shop they were sent to (issue 16.1)
        "refused_at_destination": refused,
        "refused_at_destination_pct": round(100 * refused / len(moved), 1) if moved else None,
        "from_full_lockers_refused_at_destination": sum(refused_after.values()),
        "distance_km_mean": round(statistics.mean(moved), 2) if moved else None,
        "distance_km_p95": round(sorted(moved)[int(0.95 * (len(moved) - 1))], 2) if moved else None,
        "distance_km_max": round(max(moved), 2) if moved else None,
    }


def _refused_at_destination(session: Any) -> dict[int, bool]:
    """Parcels refused at the counter of the site a reroute sent them to, after the move:
    parcel id -> whether that reroute came from a full locker."""
    rows = session.execute(
        select(RerouteProposal.parcel_id, RerouteProposal.reason)
        .join(ParcelEvent, (ParcelEvent.parcel_id == RerouteProposal.parcel_id)
              & (ParcelEvent.site_id == RerouteProposal.to_site_id)
              & (ParcelEvent.at >= RerouteProposal.decided_at))
        .where(RerouteProposal.status.in_(("automatic", "accepted")),
               ParcelEvent.action == "check_in_refused"))
    return {parcel_id: "full at drop-off" in reason for parcel_id, reason in rows}


def grouping_figures(ctx: Ctx) -> dict[str, int]:
    """Parcels that joined a recipient's code at a shop, or a recipient's door at a locker."""
    with ctx.db.read() as session:
        events = list(session.execute(
            select(ParcelEvent.action, ParcelEvent.data, Site.kind)
            .join(Site, Site.id == ParcelEvent.site_id)
            .where(ParcelEvent.action.in_(("check_in", "compartment_reserved",
                                           "deadline_extended")))))
    return {
        "shop_parcels_grouped": sum(1 for a, d, k in events
                                    if a == "check_in" and k == "shop" and d.get("grouped_with")),
        "locker_parcels_sharing_a_door": sum(1 for a, d, k in events
                                             if a == "check_in" and k == "locker"
                                             and d.get("shared_with")),
        "locker_deadlines_extended": sum(1 for a, _, _ in events if a == "deadline_extended"),
    }


def run(mode: str, start: date, days: int, seed: int, workdir: Path,
        warm_up: int = WARM_UP_DAYS, load: float = 1.0, with_lockers: bool = True,
        progress: Path | None = None, flows: bool = False, policy: str = "none",
        make_replay: Callable[..., Replay] | None = None, storage_growth: int = 0,
        season_declared: str = "none") -> dict[str, Any]:
    """One replay; ``make_replay`` builds it in place of :class:`Replay` (with its
    arguments), e.g. one that keeps the forecasts' inputs (bench/forecast_calibration.py)."""
    rng = random.Random(seed)
    db_path = workdir / f"territory-{mode}-{policy}.sqlite3"
    db_path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{db_path}")
    migrate.upgrade(engine)
    engine.dispose()
    config: dict[str, Any] = {"DATABASE_URL": f"sqlite:///{db_path}", "LOG_LEVEL": "WARNING",
                              "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024}
    if mode == "baseline":  # the same service, but nowhere to send a parcel
        config["FORECAST"] = {"reroute_radius_km": {"town": 0.0, "countryside": 0.0}}
    config.update(territory_policy.config(policy))
    app = create_app(config)
    clock = Clock()
    clock.at(start - timedelta(days=1), "08:00")
    base_ctx: Ctx = app.extensions["relay_ops"]
    ctx = Ctx(db=base_ctx.db, settings=base_ctx.settings, clock=clock)
    shops = build_territory(ctx, rng, load, flows)
    if season_declared != "none":
        declare_season(ctx, season_declared, start - timedelta(days=70),
                       start + timedelta(days=days + 10))
    extra = random.Random(seed + 10_000)
    built = build_lockers(ctx, extra, load) if with_lockers else []
    warm = start + timedelta(days=warm_up)
    replay = (make_replay or Replay)(ctx, clock, shops, rng, warm,
                                     built if with_lockers else None, extra)
    replay.start = start
    if policy == "full":  # its own random stream: the shops' pickups stay those of a run without
        replay.policy = PolicyRun(replay, random.Random(seed + 30_000),
                                  storage_growth=storage_growth)
        replay.policy.setup(TOWNS, start.year)
    replay.plan(start)
    clock.at(start - timedelta(days=1), "20:00")
    replay.announce(start, "evening")
    if flows:  # their own random stream: the shops' planned parcels stay those of a run without
        replay.flows = Flows(replay, random.Random(seed + 20_000))
        replay.flows.setup()
        replay.flows.announce_orders(start)
    began = time.perf_counter()
    for i in range(days):
        replay.day(start + timedelta(days=i))
        if progress is not None:  # the figures so far, day by day: a long run can be cut
            figures = results_of(replay, mode, seed, load, i + 1, time.perf_counter() - began)
            progress.write_text(json.dumps(figures, indent=2) + "\n")
    result = results_of(replay, mode, seed, load, days, time.perf_counter() - began)
    result["season_declared"] = season_declared
    base_ctx.db.dispose()
    return result


def results_of(replay: Replay, mode: str, seed: int, load: float, days: int, elapsed: float
               ) -> dict[str, Any]:
    """The run's figures after its first ``days`` days."""
    ctx, shops, built, stats = replay.ctx, replay.shops, replay.lockers, replay.stats
    start = replay.start
    over_peak = [(c, d) for c, d in stats.over_days if d >= replay.warm]
    flows = {"flows": replay.flows.figures()} if replay.flows else {}
    last = start + timedelta(days=days - 1)
    policy = {"policy": replay.policy.figures(last)} if replay.policy else {}
    return {
        "mode": mode, "no_room_policy": "full" if replay.policy else "none",
        "start": start.isoformat(), "days": days, "seed": seed, "load": load,
        "shops": len(shops), "towns": len(TOWNS),
        "parcels_announced": stats.parcels, "parcels_unannounced": stats.unannounced,
        "shop_days": stats.shop_days,
        "shop_days_over_capacity": len(stats.over_days),
        "shop_days_over_capacity_after_warm_up": len(over_peak),
        "refused_checkins": stats.refused_checkins,
        "counter_decisions": dict(sorted(stats.counter_decisions.items())),
        "over_capacity_flagged_ahead": {f"{k}d": stats.flagged_ahead.get(k, 0) for k in LEADS},
        "days_flagged_at_risk": {f"{k}d": stats.at_risk_days.get(k, 0) for k in LEADS},
        "saturation_notes": stats.saturation_notes,
        "no_alternative": stats.no_alternative,
        "reroutes": reroute_figures(ctx, shops),
        "lockers": {
            "lockers": len(built), "locker_days": stats.locker_days,
            "locker_days_full": len(stats.locker_days_full),
            "deposits": stats.locker_deposits, "moved_when_full": stats.locker_full_moved,
            "refused_when_full": stats.locker_refused,
        },
        "grouping": grouping_figures(ctx),
        "forecast_error": error_figures(stats.errors, LEADS),
        "vans": stats.vans.figures(start + timedelta(days=days - 1)),
        "demand_share_of_capacity": demand_share(
            shops, season, date(start.year, 12, 10), date(start.year, 11, 1)),
        "forecast_all_seconds": {
            "median": round(statistics.median(stats.forecast_s), 3),
            "max": round(max(stats.forecast_s), 3),
        },
        "replay_seconds": round(elapsed, 1),
        "nearest_neighbour_km": round(statistics.mean(
            min(distance_km(a.lat, a.lon, b.lat, b.lon) for b in shops if b is not a)
            for a in shops), 2),
        **flows,
        **policy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 2))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=("both", "reroute", "baseline"), default="both")
    parser.add_argument("--load", type=float, default=1.0,
                        help="multiplies every shop's and locker's demand; a shop's daily "
                             "arrivals are 22-42 %% of its places outside the season, x1.9 at "
                             "the peak, times this (1.5: 63-120 %% at the peak, 2.0: 84-160 %%)")
    parser.add_argument("--warm-up", type=int, default=WARM_UP_DAYS,
                        help="days the model learns before its errors are counted")
    parser.add_argument("--shops-only", action="store_true",
                        help="no lockers and one recipient per parcel: the territory of the "
                             "first figure sets (docs/benchmarks-territory.md)")
    parser.add_argument("--flows", action="store_true",
                        help="shops also take parcels to send (15 %% of their arrivals) and "
                             "producers' orders (bench/territory_flows.py)")
    parser.add_argument("--policy", choices=(*territory_policy.POLICIES, "both"), default="none",
                        help="full: storage sites, no-room policies, season holding and "
                             "temporary shelves set up as an operator would "
                             "(bench/territory_policy.py); both: each mode without, then with")
    parser.add_argument("--storage-growth", type=int, default=0, metavar="PLACES",
                        help="with --policy full: the operator adds to each town hall the "
                             "places the overflow storage recommendation asks for, at most "
                             "this many on any day (0: the rooms stay as built)")
    parser.add_argument("--season", choices=("none", *DECLARED_SEASONS), default="none",
                        help="declare the season's shape to the forecast (relay-ops "
                             "demand-index): the bench's own (exact) or as derived from a "
                             "year before (last-year: a day early, three days averaged)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--progress", type=Path,
                        help="write the figures so far to this file after each day")
    args = parser.parse_args()
    modes = ("baseline", "reroute") if args.mode == "both" else (args.mode,)
    policies = territory_policy.POLICIES if args.policy == "both" else (args.policy,)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as workdir:
        for mode in modes:
            by_policy = {}
            for policy in policies:
                result = run(mode, args.start, args.days, args.seed, Path(workdir),
                             args.warm_up, args.load, not args.shops_only,
                             _progress(args.progress, policy, len(policies)), args.flows,
                             policy, storage_growth=args.storage_growth,
                             season_declared=args.season)
                print(json.dumps(result, indent=2))
                results.append(result)
                by_policy[policy] = result
            if len(by_policy) == 2:  # the goal: full's shop-days over capacity vs none's
                comparison = {"mode": mode, "comparison": territory_policy.over_capacity_ratio(
                    by_policy["none"], by_policy["full"])}
                print(json.dumps(comparison, indent=2))
                results.append(comparison)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (args.out / f"territory-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")


def _progress(path: Path | None, policy: str, policies: int) -> Path | None:
    """One progress file per policy when both run."""
    if path is None or policies == 1:
        return path
    return path.with_name(f"{path.stem}-{policy}{path.suffix}")


if __name__ == "__main__":
    main()
