"""Territory replay: a generated rural territory through a November–December peak, day by day,
through the service layer on SQLite, with and without reroutes.

    /work/main/.venv/bin/python bench/territory.py            # both runs, ~Nov 2 to Dec 31
    /work/main/.venv/bin/python bench/territory.py --days 20 --mode reroute

What it reports (docs/benchmarks-territory.md): the forecast's error 1, 3 and 7 days ahead;
shop-days over capacity with and without rerouting, and how many of them the forecast flagged
days ahead; the share of parcels rerouted and the distance they moved; the time to forecast
the whole territory.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, select

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import (
    Carrier,
    CredentialParcel,
    Parcel,
    PickupCredential,
    RerouteProposal,
    Site,
    SiteForecast,
)
from relay_ops.domain.errors import DomainError, SiteAtCapacity
from relay_ops.domain.geo import distance_km
from relay_ops.services import accounts, manifests, parcels, reroute, sites
from relay_ops.services import forecast as forecasts
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


def phone_of(number: str) -> str:
    """One recipient per parcel (the serial in the tracking number): parcels for one
    recipient at one shop share a code and a shelf (docs/forecast.md, grouped parcels), which
    one phone for the whole territory would turn into one recipient per shop."""
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


@dataclass(frozen=True)
class Planned:
    number: str
    carrier: str
    wave: str  # evening (the day before), morning (the same day) or none (unannounced)


@dataclass
class Stats:
    over_days: list[tuple[str, date]] = field(default_factory=list)
    shop_days: int = 0
    refused_checkins: int = 0
    parcels: int = 0
    unannounced: int = 0
    saturation_notes: int = 0
    no_alternative: int = 0
    forecast_s: list[float] = field(default_factory=list)
    errors: dict[int, list[tuple[float, int, int, int]]] = field(
        default_factory=lambda: defaultdict(list))  # lead -> (predicted, low, high, actual)
    flagged_ahead: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    at_risk_days: dict[int, int] = field(default_factory=lambda: defaultdict(int))


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


def build_territory(ctx: Ctx, rng: random.Random, load: float = 1.0) -> list[Shop]:
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


class Replay:
    def __init__(self, ctx: Ctx, clock: Clock, shops: list[Shop], rng: random.Random,
                 warm: date) -> None:
        self.ctx, self.clock, self.shops, self.rng = ctx, clock, shops, rng
        self.warm = warm  # forecast errors count from this day (the model learns before)
        self.stats = Stats()
        self.serial = 0
        self.carriers: dict[str, Principal] = {}
        with ctx.db.read() as session:
            for carrier in session.scalars(select(Carrier)):
                self.carriers[carrier.code] = Principal(Role.CARRIER, carrier_id=carrier.id)
        self.dwell: dict[int, int] = {}
        self.age: dict[int, int] = defaultdict(int)
        self.planned: dict[date, dict[str, list[Planned]]] = defaultdict(dict)
        self.predictions: dict[tuple[int, date, int], tuple[float, int, int, bool]] = {}

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
                parcels_.append(Planned(f"TERR{self.serial:09d}",
                                        self.rng.choice(CARRIERS)[0], wave))
            self.planned[day][shop.code] = parcels_

    def announce(self, day: date, wave: str) -> None:
        per_carrier: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for code, planned in self.planned[day].items():
            for p in planned:
                if p.wave == wave:
                    per_carrier[p.carrier].append({
                        "tracking_number": p.number, "site": code,
                        "recipient": {"phone": phone_of(p.number)}})
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
        forecasts.forecast_all(self.ctx)
        self.stats.forecast_s.append(time.perf_counter() - started)
        with self.ctx.db.read() as session:
            for row in session.scalars(select(SiteForecast).where(SiteForecast.day > day)):
                lead = (row.day - day).days
                if lead in LEADS:
                    self.predictions[(row.site_id, row.day, lead)] = (
                        row.predicted, row.low, row.high, row.at_risk)

    def check_ins(self, day: date) -> None:
        for shop in self.shops:
            if not self.opens(shop, day):
                continue
            with self.ctx.db.read() as session:
                numbers = list(session.scalars(
                    select(Parcel.tracking_number).where(
                        Parcel.site_id == shop.id, Parcel.state == "announced",
                        Parcel.expected_date <= day).order_by(Parcel.id)))
            unannounced = [(p.number, p.carrier) for p in self.planned[day].get(shop.code, [])
                           if p.wave == "none"]
            refused = 0
            for number in numbers:
                refused += not self._check_in(shop, number)
            for number, carrier in unannounced:
                self.stats.unannounced += 1
                refused += not self._check_in(shop, number, carrier)
            self.stats.refused_checkins += refused
            self._observe(shop, day, refused)

    def _check_in(self, shop: Shop, number: str, carrier: str | None = None) -> bool:
        try:
            answer = parcels.check_in(
                self.ctx, SYSTEM, shop.id, number, accept_unannounced=carrier is not None,
                recipient=parcels.Recipient(phone=phone_of(number)) if carrier else None,
                carrier_code=carrier)
        except SiteAtCapacity:
            return False  # stays in the van: tried again on the next round
        parcel_id = answer["parcel"]["id"]
        self.dwell[parcel_id] = dwell(self.rng, shop.first_day)
        return True

    def _observe(self, shop: Shop, day: date, refused: int) -> None:
        with self.ctx.db.read() as session:
            site = session.get(Site, shop.id)
            assert site is not None
            held = sites.occupancy_of(session, site).held
        actual = held + refused  # what the shop would hold if it had room
        self.stats.shop_days += 1
        if refused:
            self.stats.over_days.append((shop.code, day))
        for lead in LEADS if day >= self.warm else ():
            prediction = self.predictions.get((shop.id, day, lead))
            if prediction is None:
                continue
            predicted, low, high, at_risk = prediction
            self.stats.errors[lead].append((predicted, low, high, actual))
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
                if self.age[parcel_id] >= self.dwell.get(parcel_id, 0):
                    parcels.pick_up(self.ctx, SYSTEM, shop.id, tracking_number=number,
                                    code=self._code(parcel_id))
                else:
                    self.age[parcel_id] += 1

    def _code(self, parcel_id: int) -> str:
        with self.ctx.db.read() as session:
            credential = session.scalar(select(PickupCredential).join(
                CredentialParcel, CredentialParcel.credential_id == PickupCredential.id).where(
                CredentialParcel.parcel_id == parcel_id, PickupCredential.holder == "recipient",
                PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None)))
            assert credential is not None
            return parcels.code_of(self.ctx, credential)

    def returns(self, day: date) -> None:
        """Carriers take back what expired two days ago or earlier (the model's return lag)."""
        cutoff = self.clock.now - timedelta(days=2)
        with self.ctx.db.read() as session:
            rows = list(session.execute(
                select(Parcel.site_id, Parcel.tracking_number, Parcel.carrier_id).where(
                    Parcel.state == "expired", Parcel.holding_deadline <= cutoff)))
        by_key: dict[tuple[int, int], list[str]] = defaultdict(list)
        for site_id, number, carrier_id in rows:
            by_key[(site_id, carrier_id)].append(number)
        for (site_id, carrier_id), numbers in by_key.items():
            parcels.collect(self.ctx, Principal(Role.CARRIER, carrier_id=carrier_id), site_id,
                            numbers)

    def day(self, day: date) -> None:
        self.clock.at(day, "05:00")
        self.forecast_all(day)
        self.clock.at(day, "06:30")
        self.announce(day, "morning")
        self.clock.at(day, "09:30")
        self.check_ins(day)
        self.clock.at(day, "11:00")
        self.returns(day)
        self.clock.at(day, "17:00")
        self.pickups(day)
        self.clock.at(day, "20:00")
        self.plan(day + timedelta(days=1))
        self.announce(day + timedelta(days=1), "evening")
        self.clock.at(day + timedelta(days=1), "00:30")
        parcels.expire_overdue(self.ctx, limit=100_000)


def reroute_figures(ctx: Ctx, shops: list[Shop]) -> dict[str, Any]:
    with ctx.db.read() as session:
        rows = list(session.execute(select(RerouteProposal.status, RerouteProposal.distance_km)))
    moved = [km for status, km in rows if status in ("automatic", "accepted") and km is not None]
    return {
        "proposals": len(rows),
        "by_status": {s: sum(1 for st, _ in rows if st == s) for s in {st for st, _ in rows}},
        "moved": len(moved),
        "distance_km_mean": round(statistics.mean(moved), 2) if moved else None,
        "distance_km_p95": round(sorted(moved)[int(0.95 * (len(moved) - 1))], 2) if moved else None,
        "distance_km_max": round(max(moved), 2) if moved else None,
    }


def error_figures(stats: Stats) -> dict[str, Any]:
    figures = {}
    for lead in LEADS:
        samples = stats.errors.get(lead, [])
        if not samples:
            continue
        abs_err = [abs(p - a) for p, _, _, a in samples]
        figures[f"{lead}d"] = {
            "samples": len(samples),
            "mean_actual_parcels": round(statistics.mean(a for *_, a in samples), 1),
            "mae_parcels": round(statistics.mean(abs_err), 2),
            "bias_parcels": round(statistics.mean(p - a for p, _, _, a in samples), 2),
            "mape_pct": round(100 * statistics.mean(
                abs(p - a) / a for p, _, _, a in samples if a), 1),
            "band_coverage_pct": round(100 * statistics.mean(
                1.0 if lo <= a <= hi else 0.0 for _, lo, hi, a in samples), 1),
        }
    return figures


def run(mode: str, start: date, days: int, seed: int, workdir: Path,
        warm_up: int = WARM_UP_DAYS, load: float = 1.0) -> dict[str, Any]:
    rng = random.Random(seed)
    db_path = workdir / f"territory-{mode}.sqlite3"
    db_path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{db_path}")
    migrate.upgrade(engine)
    engine.dispose()
    config: dict[str, Any] = {"DATABASE_URL": f"sqlite:///{db_path}", "LOG_LEVEL": "WARNING",
                              "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024}
    if mode == "baseline":  # the same service, but nowhere to send a parcel
        config["FORECAST"] = {"reroute_radius_km": {"town": 0.0, "countryside": 0.0}}
    app = create_app(config)
    clock = Clock()
    clock.at(start - timedelta(days=1), "08:00")
    base_ctx: Ctx = app.extensions["relay_ops"]
    ctx = Ctx(db=base_ctx.db, settings=base_ctx.settings, clock=clock)
    shops = build_territory(ctx, rng, load)
    warm = start + timedelta(days=warm_up)
    replay = Replay(ctx, clock, shops, rng, warm)
    replay.plan(start)
    clock.at(start - timedelta(days=1), "20:00")
    replay.announce(start, "evening")
    began = time.perf_counter()
    for i in range(days):
        replay.day(start + timedelta(days=i))
    elapsed = time.perf_counter() - began
    stats = replay.stats
    over_peak = [(c, d) for c, d in stats.over_days if d >= warm]
    result = {
        "mode": mode, "start": start.isoformat(), "days": days, "seed": seed, "load": load,
        "shops": len(shops), "towns": len(TOWNS),
        "parcels_announced": stats.parcels, "parcels_unannounced": stats.unannounced,
        "shop_days": stats.shop_days,
        "shop_days_over_capacity": len(stats.over_days),
        "shop_days_over_capacity_after_warm_up": len(over_peak),
        "refused_checkins": stats.refused_checkins,
        "over_capacity_flagged_ahead": {f"{k}d": stats.flagged_ahead.get(k, 0) for k in LEADS},
        "days_flagged_at_risk": {f"{k}d": stats.at_risk_days.get(k, 0) for k in LEADS},
        "saturation_notes": stats.saturation_notes,
        "no_alternative": stats.no_alternative,
        "reroutes": reroute_figures(ctx, shops),
        "forecast_error": error_figures(stats),
        "forecast_all_seconds": {
            "median": round(statistics.median(stats.forecast_s), 3),
            "max": round(max(stats.forecast_s), 3),
        },
        "replay_seconds": round(elapsed, 1),
        "nearest_neighbour_km": round(statistics.mean(
            min(distance_km(a.lat, a.lon, b.lat, b.lon) for b in shops if b is not a)
            for a in shops), 2),
    }
    base_ctx.db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 2))
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--mode", choices=("both", "reroute", "baseline"), default="both")
    parser.add_argument("--load", type=float, default=1.0,
                        help="multiplies every shop's demand (1.0: the hot territory)")
    parser.add_argument("--warm-up", type=int, default=WARM_UP_DAYS,
                        help="days the model learns before its errors are counted")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    modes = ("baseline", "reroute") if args.mode == "both" else (args.mode,)
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for mode in modes:
            result = run(mode, args.start, args.days, args.seed, Path(workdir), args.warm_up,
                         args.load)
            print(json.dumps(result, indent=2))
            results.append(result)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    (args.out / f"territory-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
