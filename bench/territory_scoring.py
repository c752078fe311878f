"""Scoring of the territory replay (bench/territory.py) when shops are full: the forecast
against both actuals, its calibration, and the parcels waiting in the vans.

Two actuals per shop-day, after the morning check-ins (docs/forecast.md, "What is predicted"):

- **on shelves**: the parcels the shop holds at its peak (never more than its capacity);
- **wanted**: on shelves plus the parcels refused that day for lack of room (they wait in the
  van and come back): the places the shop would have needed.

The forecast predicts *wanted* (its band is for it); its prediction for the shelves is the
same figures capped by the capacity (``DayForecast.on_shelves``).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

LONG_WAIT_DAYS = 2  # a parcel in a van longer than this: the goal is none untold


@dataclass(frozen=True)
class Sample:
    """One shop-day scored: the forecast made ``lead`` days before, and what happened."""

    predicted: float
    low: int
    high: int
    capacity: int
    on_shelves: int
    wanted: int


def score(samples: list[Sample], actual: str) -> dict[str, Any]:
    """MAE, bias (in parcels and in % of the mean actual peak) and the 90 % band's coverage,
    against ``actual`` ("wanted", or "on_shelves": the prediction capped by the capacity)."""
    pairs = []
    for s in samples:
        if actual == "wanted":
            pairs.append((s.predicted, s.low, s.high, s.wanted))
        else:
            cap = s.capacity
            pairs.append((min(s.predicted, cap), min(s.low, cap), min(s.high, cap),
                          s.on_shelves))
    mean_actual = statistics.mean(a for *_, a in pairs)
    bias = statistics.mean(p - a for p, _, _, a in pairs)
    return {
        "samples": len(pairs),
        "mean_actual_parcels": round(mean_actual, 1),
        "mae_parcels": round(statistics.mean(abs(p - a) for p, _, _, a in pairs), 2),
        "bias_parcels": round(bias, 2),
        "bias_pct_of_mean": round(100 * bias / mean_actual, 1) if mean_actual else None,
        "mape_pct": round(100 * statistics.mean(
            abs(p - a) / a for p, _, _, a in pairs if a), 1) if any(a for *_, a in pairs)
        else None,
        "band_coverage_pct": round(100 * statistics.mean(
            1.0 if lo <= a <= hi else 0.0 for _, lo, hi, a in pairs), 1),
        "below_band_pct": round(100 * statistics.mean(
            1.0 if a < lo else 0.0 for _, lo, _, a in pairs), 1),
        "above_band_pct": round(100 * statistics.mean(
            1.0 if a > hi else 0.0 for _, _, hi, a in pairs), 1),
    }


def error_figures(errors: dict[int, list[Sample]], leads: tuple[int, ...]) -> dict[str, Any]:
    """Per lead: the figures against *wanted* at the top (what the forecast predicts, as the
    earlier result files), and both actuals apart."""
    figures: dict[str, Any] = {}
    for lead in leads:
        samples = errors.get(lead, [])
        if not samples:
            continue
        wanted = score(samples, "wanted")
        figures[f"{lead}d"] = {**wanted, "wanted": wanted,
                               "on_shelves": score(samples, "on_shelves"),
                               "days_over_capacity": sum(s.wanted > s.on_shelves
                                                         for s in samples)}
    return figures


@dataclass
class Vans:
    """Parcels turned away for lack of room, waiting in the vans until a shop takes them.

    ``first_refused``: tracking number -> (shop, the day it was first refused); ``waits``:
    days from a parcel's first attempt to its check-in (0 for the parcels taken at once);
    ``told``: the parcels whose resident was told a day (held at the depot after a refusal).
    """

    first_refused: dict[str, tuple[str, date]] = field(default_factory=dict)
    waits: list[int] = field(default_factory=list)
    untold_waits: list[int] = field(default_factory=list)
    per_day: list[tuple[date, int, int]] = field(default_factory=list)  # day, shops, lockers
    told: set[str] = field(default_factory=set)

    def refused(self, shop: str, number: str, day: date) -> None:
        self.first_refused.setdefault(number, (shop, day))

    def checked_in(self, number: str, day: date) -> None:
        first = self.first_refused.pop(number, None)
        wait = (day - first[1]).days if first else 0
        self.waits.append(wait)
        if number not in self.told:
            self.untold_waits.append(wait)

    def delivered_home(self, number: str) -> None:
        """Refused, then taken home by its carrier: out of the vans, never on a shelf."""
        self.first_refused.pop(number, None)

    def figures(self, end: date) -> dict[str, Any]:
        still = [(end - day).days for _, day in self.first_refused.values()]
        spread = Counter(min(w, 5) for w in self.waits)
        shops = [n for _, n, _ in self.per_day]
        return {
            "in_vans_per_day": [{"day": d.isoformat(), "shops": s, "lockers": lk}
                                for d, s, lk in self.per_day],
            "in_vans_max": max(shops, default=0),
            "in_vans_mean": round(statistics.mean(shops), 1) if shops else 0.0,
            "in_vans_at_end": shops[-1] if shops else 0,
            "days_waited_before_a_shelf": {
                ("5+" if k == 5 else str(k)): spread[k] for k in sorted(spread)},
            "checked_in_after_waiting": sum(1 for w in self.waits if w > 0),
            "still_in_vans_at_end": len(still),
            f"waited_more_than_{LONG_WAIT_DAYS}_days": sum(
                1 for w in [*self.waits, *still] if w > LONG_WAIT_DAYS),
            f"waited_more_than_{LONG_WAIT_DAYS}_days_untold": sum(
                1 for w in [*self.untold_waits, *(
                    (end - day).days for n, (_, day) in self.first_refused.items()
                    if n not in self.told)] if w > LONG_WAIT_DAYS),
            "longest_wait_days": max([*self.waits, *still], default=0),
        }


def demand_share(shops: list[Any], season: Any, peak: date, outside: date) -> dict[str, Any]:
    """Expected daily arrivals over shelf places per shop, outside the season and at its
    peak (what ``--load`` does: it multiplies every shop's demand)."""
    def share(day: date) -> list[float]:
        ratios = [shop.base * season(day) / shop.capacity for shop in shops]
        return [round(100 * min(ratios)), round(100 * max(ratios))]

    return {"outside_season_pct": share(outside), "peak_pct": share(peak)}


def by_lead() -> dict[int, list[Sample]]:
    return defaultdict(list)
