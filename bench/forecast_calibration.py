"""The occupancy forecast's calibration on saved inputs: replay a territory once, then score
the pure model (relay_ops/domain/forecast.py) on what it saw, with other settings, in seconds.

    # once (7-25 min): replay and keep every shop's 05:00 forecast inputs and actual peaks
    nice -n 10 /work/main/.venv/bin/python -m bench.forecast_calibration capture \\
        --start 2026-11-23 --days 13 --warm-up 8 --load 1.5 --seed 7 \\
        --out /tmp/forecast-inputs-load1.5-s7.pickle
    # then, as often as wanted: the model on those inputs, scored as the replay scores it
    /work/main/.venv/bin/python -m bench.forecast_calibration score \\
        /tmp/forecast-inputs-load1.5-s7.pickle --set rate_uncertainty_factor=9

``capture`` is ``bench/territory.py``'s replay (shops only, without reroutes: the forecast
then steers nothing but the holding periods' load rule), with the forecasts' inputs read
just before its 05:00 ``forecast_all`` (``services/forecast.inputs_for``, the same reads at
the same moment) and the shops' first attempts per open day (what the rate is learned from,
so a setting of the learning can be changed too). It also writes the replay's own figures
beside the inputs (``<out>.json``).

``score`` runs ``domain/forecast.forecast`` on each kept input, with ``--set NAME=VALUE``
overrides (``SiteInputs`` fields, and ``rate_uncertainty_factor``, ``trend_damping``,
``arrival_half_life_days``, ``arrival_trend``: the rate relearned from the kept counts), and
scores it per lead 1, 3, 7 days against the actual peaks with ``bench/territory_scoring``'s
``error_figures``, as the replay does: at the captured settings it gives the replay's own
figures to the digit (``--check`` says so). Several captures: each apart, then the seeds of
each load together.
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench import territory
from bench.territory_scoring import Sample, by_lead, error_figures
from relay_ops.db.models import Site
from relay_ops.domain import forecast as model
from relay_ops.domain.demand_index import DemandIndex
from relay_ops.services import forecast as forecasts
from relay_ops.services import forecast_learning as learning
from relay_ops.services.context import ForecastSettings

# The learning's settings a capture can be rescored with (the rest are SiteInputs fields).
LEARNING = ("rate_uncertainty_factor", "trend_damping", "arrival_half_life_days",
            "arrival_trend")
# The drift's settings: the model's ``rate_drift`` is one or the other, by the learned line.
DRIFT = ("rate_drift", "rate_drift_with_trend", "rate_drift_with_season")
# The season declared to the forecast (``domain/demand_index``): the bench's own season
# (``territory.season``), as a network would know it from a past year: its days moved by
# ``season_shift``, its rise above an ordinary day scaled by ``season_scale``, each day the
# mean of the ``season_smooth`` days centred on it (``demand_index.from_last_year``: 7).
SEASON = ("season_shift", "season_scale", "season_smooth")
CLOSED_DAYS_BACK, CLOSED_DAYS_AHEAD = 70, 60  # the calendar a kept input may ask about


@dataclass(frozen=True)
class ClosedDays:
    """A site's closing days around a forecast, kept as a set (the service's answer is a
    closure over the database, which cannot be saved)."""

    days: frozenset[date]

    def __call__(self, day: date) -> bool:
        return day in self.days


@dataclass
class Kept:
    """One shop's 05:00 forecast: its inputs (as fields), and its first attempts per open day."""

    site_id: int
    today: date
    inputs: dict[str, Any]
    daily: list[int]


def _closed_days(closed: model.ClosedOn, today: date) -> ClosedDays:
    days = (today + timedelta(days=i) for i in range(-CLOSED_DAYS_BACK, CLOSED_DAYS_AHEAD))
    return ClosedDays(frozenset(day for day in days if closed(day)))


class CapturingReplay(territory.Replay):
    """The territory replay, keeping each shop's forecast inputs before the 05:00 run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept: list[Kept] = []

    def forecast_all(self, day: date) -> None:
        now = self.ctx.now()
        with self.ctx.db.read() as session:
            for shop in self.shops:
                site = session.get(Site, shop.id)
                assert site is not None
                inputs = forecasts.inputs_for(self.ctx, session, site)
                closed = forecasts.site_closed_on(session, site)
                daily = learning.first_attempts_per_open_day(self.ctx, session, site, now, closed)
                as_fields = {f.name: getattr(inputs, f.name) for f in fields(inputs)}
                as_fields["closed_on"] = _closed_days(closed, inputs.today)
                self.kept.append(Kept(shop.id, inputs.today, as_fields, daily))
        super().forecast_all(day)


def capture(args: argparse.Namespace) -> None:
    commit = _commit()  # the code replayed (HEAD may move while it runs)
    made: list[CapturingReplay] = []

    def make(*a: Any, **k: Any) -> CapturingReplay:
        made.append(CapturingReplay(*a, **k))
        return made[-1]

    with tempfile.TemporaryDirectory() as workdir:
        result = territory.run("baseline", args.start, args.days, args.seed, Path(workdir),
                               args.warm_up, args.load, with_lockers=False, make_replay=make)
    [replay] = made
    settings = replay.ctx.settings.forecast
    saved = {
        "meta": {"start": args.start, "days": args.days, "warm_up": args.warm_up,
                 "load": args.load, "seed": args.seed, "warm": replay.warm,
                 "commit": commit,
                 "learning": {name: getattr(settings, name) for name in LEARNING}},
        "kept": replay.kept,
        "actuals": replay.actuals,
        "predictions": replay.predictions,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wb") as out:
        pickle.dump(saved, out)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["forecast_error"], indent=2))


def _commit() -> str:
    run = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=False)
    return run.stdout.strip()


class _Unpickler(pickle.Unpickler):
    """This module's classes, whether the capture ran it as ``-m`` (``__main__``) or not."""

    def find_class(self, module: str, name: str) -> Any:
        own = {"Kept": Kept, "ClosedDays": ClosedDays}
        if module == "__main__" and name in own:
            return own[name]
        return super().find_class(module, name)


def load(path: Path) -> dict[str, Any]:
    with gzip.open(path, "rb") as saved:
        return _Unpickler(saved).load()  # a file this tool wrote


def inputs_of(kept: Kept, captured: Mapping[str, Any], overrides: Mapping[str, Any],
              relearn: bool = False, morning: Sequence[Kept] = ()) -> model.SiteInputs:
    """The kept inputs with ``overrides``; a learning setting (or ``relearn``: the learning's
    code changed) relearns the rate from the kept counts (``learn_arrival_rate``, widened as
    ``services/forecast_learning`` widens it), or for a shop without a day of history from
    the other shops of its ``morning`` (:func:`borrowed_rate`). A drift setting, or a capture
    made before the drift was kept, sets the model's drift by the learned line
    (``model.rate_drift``)."""
    known = {f.name for f in fields(model.SiteInputs)}  # an older capture may keep others
    fields_ = {k: v for k, v in kept.inputs.items() if k in known}
    fields_.update((k, v) for k, v in overrides.items() if k not in LEARNING + DRIFT + SEASON)
    learning_ = {**captured, **{k: v for k, v in overrides.items() if k in LEARNING}}
    seasoned = any(k in SEASON for k in overrides)
    if seasoned:
        fields_["demand_index"] = season_of(kept, overrides).ahead(kept.today,
                                                                   kept.inputs["horizon"])
    rate = model.learn_arrival_rate(
        ordinary_daily(kept, overrides), learning_["arrival_half_life_days"],
        with_trend=learning_["arrival_trend"],
    ).widened(learning_["rate_uncertainty_factor"])
    if not kept.daily:
        rate = borrowed_rate(kept, morning, learning_, overrides) or rate
    if relearn or seasoned or learning_ != captured:
        fields_.update(rate.as_inputs(), trend_damping=learning_["trend_damping"])
    if (relearn or seasoned or "rate_drift" not in kept.inputs
            or any(k in DRIFT for k in overrides)):
        drift = {**_drift_settings(), **{k: v for k, v in overrides.items() if k in DRIFT}}
        fields_["rate_drift"] = model.rate_drift(
            rate, drift["rate_drift"], drift["rate_drift_with_trend"],
            drift["rate_drift_with_season"] if fields_.get("demand_index") else None)
    return model.SiteInputs(**fields_)


def season_of(kept: Kept, overrides: Mapping[str, Any]) -> DemandIndex:
    return declared_season(kept.today, overrides.get("season_shift", 0.0),
                           overrides.get("season_scale", 1.0), overrides.get("season_smooth", 1.0))


def ordinary_daily(kept: Kept, overrides: Mapping[str, Any]) -> Sequence[float]:
    """The kept first attempts per open day, each over its declared season's factor when a
    season is set (as ``services/forecast_learning`` divides them)."""
    if not any(k in SEASON for k in overrides):
        return kept.daily
    days = open_days_before(kept.today, len(kept.daily), kept.inputs["closed_on"])
    return season_of(kept, overrides).ordinary(list(zip(days, kept.daily, strict=True)))


def borrowed_rate(kept: Kept, morning: Sequence[Kept], learning_: Mapping[str, Any],
                  overrides: Mapping[str, Any]) -> model.ArrivalRate | None:
    """``forecast_learning.neighbours_demand`` on the other shops forecast the same morning
    with a day of history or more: the territory is one area (the service takes the nearest
    12 of its kind within 30 km)."""
    levels = [
        (model.learn_arrival_rate(ordinary_daily(other, overrides),
                                  learning_["arrival_half_life_days"],
                                  with_trend=learning_["arrival_trend"]).level,
         other.inputs["capacity"])
        for other in morning if other is not kept and other.daily
    ]
    network = model.network_rate(levels)
    return network.for_places(kept.inputs["capacity"]) if network else None


def declared_season(today: date, shift: float, scale: float, smooth: float = 1.0
                    ) -> DemandIndex:
    """The bench's season as declared to the forecast, around ``today`` (its learning window
    and horizon), moved by ``shift`` days, its rise scaled by ``scale`` and each day the mean
    of the ``smooth`` days centred on it."""
    days = [today + timedelta(days=i) for i in range(-CLOSED_DAYS_BACK, CLOSED_DAYS_AHEAD)]
    return DemandIndex({day: territory.declared_season(day, round(shift), scale, int(smooth))
                        for day in days})


def open_days_before(today: date, count: int, closed: ClosedDays) -> list[date]:
    """The last ``count`` open days before ``today``, oldest first: the days of a capture's
    first attempts per open day (``forecast_learning.per_open_day``)."""
    days: list[date] = []
    day = today
    while len(days) < count:
        day -= timedelta(days=1)
        if not closed(day):
            days.append(day)
    return days[::-1]


def _drift_settings() -> dict[str, float]:
    """The product's drift settings (``FORECAST``)."""
    settings = ForecastSettings()
    return {name: getattr(settings, name) for name in DRIFT}


def samples(saved: Mapping[str, Any], overrides: Mapping[str, Any],
            leads: Sequence[int] = territory.LEADS, relearn: bool = False
            ) -> dict[int, list[Sample]]:
    """Each kept forecast rerun with ``overrides``, scored as the replay scores it: the shop
    days from the end of the warm-up, against the actual peaks."""
    errors = by_lead()
    for lead, _, sample in scored(saved, overrides, leads, relearn):
        errors[lead].append(sample)
    return errors


def scored(saved: Mapping[str, Any], overrides: Mapping[str, Any],
           leads: Sequence[int] = territory.LEADS, relearn: bool = False
           ) -> Iterable[tuple[int, date, Sample]]:
    """:func:`samples` one by one, with their lead and the day forecast."""
    meta, actuals = saved["meta"], saved["actuals"]
    mornings: dict[date, list[Kept]] = {}
    for kept in saved["kept"]:
        mornings.setdefault(kept.today, []).append(kept)
    for kept in saved["kept"]:
        days = model.forecast(inputs_of(kept, meta["learning"], overrides, relearn,
                                        mornings[kept.today]))
        for day in days:
            lead = (day.day - kept.today).days
            actual = actuals.get((kept.site_id, day.day))
            if lead not in leads or actual is None or day.day < meta["warm"]:
                continue
            held, wanted = actual
            yield lead, day.day, Sample(day.predicted, day.low, day.high, day.capacity, held,
                                        wanted)


def by_day(saved: Mapping[str, Any], overrides: Mapping[str, Any], lead: int,
           relearn: bool = False) -> list[str]:
    """Per day forecast ``lead`` days before: its shop-days, how many were above and below
    the band, and the mean error against the places wanted (a week ahead, one peak day can
    hold every miss: the figures over all days do not say which)."""
    days: dict[date, list[Sample]] = {}
    for _, day, sample in scored(saved, overrides, (lead,), relearn):
        days.setdefault(day, []).append(sample)
    lines = []
    for day, found in sorted(days.items()):
        above = sum(1 for x in found if x.wanted > x.high)
        below = sum(1 for x in found if x.wanted < x.low)
        error = statistics.fmean(x.predicted - x.wanted for x in found)
        wanted = statistics.fmean(x.wanted for x in found)
        lines.append(f"  {day:%a %d %b} lead {lead}d: {len(found)} shop-days, above the band "
                     f"{above}, below {below}; mean wanted {wanted:.1f}, mean error "
                     f"{error:+.1f}")
    return lines


def check(saved: Mapping[str, Any]) -> int:
    """Kept forecasts rerun as captured that differ from what the replay stored."""
    differ = 0
    for kept in saved["kept"]:
        for day in model.forecast(inputs_of(kept, saved["meta"]["learning"], {})):
            lead = (day.day - kept.today).days
            stored = saved["predictions"].get((kept.site_id, day.day, lead))
            if stored is not None and stored[:3] != (day.predicted, day.low, day.high):
                differ += 1
    return differ


def figures(captures: Iterable[Mapping[str, Any]], overrides: Mapping[str, Any],
            relearn: bool = False) -> dict[str, Any]:
    """``error_figures`` of the captures together."""
    errors = by_lead()
    for saved in captures:
        for lead, scored in samples(saved, overrides, relearn=relearn).items():
            errors[lead].extend(scored)
    return error_figures(errors, territory.LEADS)


def table(name: str, scored: Mapping[str, Any]) -> list[str]:
    lines = []
    for lead, f in scored.items():
        w, s = f["wanted"], f["on_shelves"]
        lines.append(
            f"{name:<22} {lead:>3} n={w['samples']:<4} mean {w['mean_actual_parcels']:>6.1f} "
            f"MAE {w['mae_parcels']:>6.2f} bias {w['bias_pct_of_mean']:>6.1f}% "
            f"band {w['band_coverage_pct']:>5.1f}% above {w['above_band_pct']:>5.1f}% "
            f"below {w['below_band_pct']:>4.1f}% | shelves bias {s['bias_pct_of_mean']:>6.1f}% "
            f"band {s['band_coverage_pct']:>5.1f}%")
    return lines


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        out[name] = (value.lower() == "true") if value.lower() in ("true", "false") \
            else float(value)
    return out


def score(args: argparse.Namespace) -> None:
    saved = [load(path) for path in args.captures]
    overrides = parse_overrides(args.set)
    lines, result = [], {}
    for one in saved:
        meta = one["meta"]
        name = f"load{meta['load']}-s{meta['seed']}"
        if args.check:
            print(f"{name}: {check(one)} kept forecasts differ from the replay's")
        if args.time:
            print(f"{name}: {1000 * timing(one, overrides):.2f} ms per site forecast")
        result[name] = figures([one], overrides, args.relearn)
        lines += table(name, result[name])
        if args.by_day:
            lines += by_day(one, overrides, args.by_day, args.relearn)
    by_load: dict[float, list[dict[str, Any]]] = {}
    for one in saved:
        by_load.setdefault(one["meta"]["load"], []).append(one)
    for load_, ones in by_load.items():  # the seeds of one load pooled
        if len(ones) > 1:
            name = f"load{load_}-together"
            result[name] = figures(ones, overrides, args.relearn)
            lines += table(name, result[name])
    print(f"overrides {overrides or 'none'}{', relearnt' if args.relearn else ''}")
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"overrides": overrides, "figures": result},
                                        indent=2) + "\n")


def timing(saved: Mapping[str, Any], overrides: Mapping[str, Any]) -> float:
    """Median seconds of one site forecast over the kept inputs (the model alone)."""
    spent = []
    for kept in saved["kept"]:
        inputs = inputs_of(kept, saved["meta"]["learning"], overrides)
        began = time.perf_counter()
        model.forecast(inputs)
        spent.append(time.perf_counter() - began)
    return statistics.median(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cap = sub.add_parser("capture", help="replay once and keep the forecasts' inputs")
    cap.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 23))
    cap.add_argument("--days", type=int, default=13)
    cap.add_argument("--warm-up", type=int, default=8)
    cap.add_argument("--load", type=float, default=1.5)
    cap.add_argument("--seed", type=int, default=7)
    cap.add_argument("--out", type=Path, required=True, help="the inputs (gzipped pickle)")
    sc = sub.add_parser("score", help="rerun the model on kept inputs and score it")
    sc.add_argument("captures", type=Path, nargs="+")
    sc.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    sc.add_argument("--check", action="store_true",
                    help="say how many rerun forecasts differ from the replay's own")
    sc.add_argument("--relearn", action="store_true",
                    help="relearn the rate from the kept counts with the code as it is now")
    sc.add_argument("--json", type=Path, help="write the figures there")
    sc.add_argument("--by-day", type=int, metavar="LEAD",
                    help="also score each day forecast LEAD days before, apart")
    sc.add_argument("--time", action="store_true",
                    help="also time the model alone (median ms per site forecast)")
    args = parser.parse_args()
    {"capture": capture, "score": score}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
