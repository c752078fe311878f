"""What the occupancy forecast learns from a site's history (docs/forecast.md): the pickup
hazards by open-day age (Kaplan–Meier, shrunk towards a prior), the arrival rate (a weighted
line: level and trend) and the lead shares of announcements; with the calendar of open days
they are counted on.

Pure Python, no database, like ``domain/forecast.py`` (which re-exports these names, the
model's one vocabulary): the service layer counts the inputs in SQL
(``services/forecast_learning.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, TypeVar

ClosedOn = Callable[[date], bool]
T = TypeVar("T", bound=Hashable)
# Many parcels with the same facts: one by one, or each kind once with how many share it
# (the service layer counts them in SQL: a site's 100,000 parcels are a few hundred kinds).
Counted = Sequence[T] | Mapping[T, int]


def kinds(items: Counted[T]) -> Mapping[T, int]:
    """Each distinct item with its count."""
    return items if isinstance(items, Mapping) else Counter(items)

# Published pickup delays (DESIGN 1b): counters 61 % the first day, 99 % within three days,
# the remaining 1 % trickling out until the deadline; lockers (7 h average against 22 h at a
# counter) faster. As hazards by open-day age: h0 = P(day 0), h1 = P(day 1) / P(still there)...
PRIOR_HAZARDS: dict[str, tuple[float, ...]] = {
    "shop": (0.61, 0.28 / 0.39, 0.10 / 0.11, 0.5),
    "locker": (0.80, 0.17 / 0.20, 0.02 / 0.03, 0.5),
}
MAX_AGE = 40  # open days; no holding period with its extension is longer
MAX_SCAN_DAYS = 120  # a stay longer than this in calendar days is data noise


def never_closed(_day: date) -> bool:
    return False


def hazard_at(hazards: Sequence[float], age: int) -> float:
    """The pickup hazard at ``age``; the last value holds for every older age."""
    return hazards[min(age, len(hazards) - 1)] if hazards else 0.0


# ---------------------------------------------------------------- learning


@dataclass(frozen=True)
class Stay:
    """One parcel's time at the site, as the events tell it (local days).

    ``ended`` is the day it stopped being collectable (picked up, expired, lost, damaged);
    None while it is still ready for pickup.
    """

    check_in: date
    ended: date | None = None
    picked_up: bool = False


def open_ages(start: date, end: date, closed_on: ClosedOn) -> dict[date, int]:
    """Open days from ``start`` to ``end`` inclusive, with their age in open days."""
    ages: dict[date, int] = {}
    day, age = start, 0
    for _ in range(MAX_SCAN_DAYS):
        if day > end:
            break
        if not closed_on(day):
            ages[day] = age
            age += 1
        day += timedelta(days=1)
    return ages


def learn_hazards(
    stays: Counted[Stay],
    prior: Sequence[float],
    today: date,
    closed_on: ClosedOn,
    prior_weight: float = 20.0,
) -> tuple[float, ...]:
    """Pickup hazard by open-day age: Kaplan–Meier counts shrunk towards ``prior``.

    A parcel is at risk on each open day it was still there for the day's pickups; a pickup
    is a departure at that age; an expiry or a loss censors it (it was at risk before that
    day, not on it); a parcel still ready is at risk until yesterday (today is not over).
    """
    at_risk = [0] * (MAX_AGE + 1)
    picked = [0] * (MAX_AGE + 1)
    for stay, count in kinds(stays).items():
        last = stay.ended if stay.ended is not None else today - timedelta(days=1)
        if stay.ended is not None and not stay.picked_up:
            last = stay.ended - timedelta(days=1)
        ages = open_ages(stay.check_in, min(last, today), closed_on)
        for age in ages.values():
            if age <= MAX_AGE:
                at_risk[age] += count
        if stay.picked_up and stay.ended is not None and ages:
            # A pickup recorded on a closed day (an exception) counts on the last open day.
            age = max(ages.values())
            if age <= MAX_AGE:
                picked[age] += count
    return tuple(
        (picked[k] + prior_weight * hazard_at(prior, k)) / (at_risk[k] + prior_weight)
        for k in range(MAX_AGE + 1)
    )


@dataclass(frozen=True)
class ArrivalRate:
    """Check-ins per open day as learned from the window: a level (today's) and a trend.

    ``level_var``, ``covariance`` and ``trend_var`` are the sampling variances of the two
    estimates, so the forecast can say how much less it knows of the rate a week out than
    today; ``dispersion`` is the day-to-day variance around the fitted line over its mean.
    ``days`` is the open days it was learned from, ``trend_learned`` whether they were enough
    for a trend (``MIN_DAYS_FOR_TREND``): a line without one is flat, whatever the season.
    """

    level: float = 0.0
    trend: float = 0.0  # check-ins per open day, per open day
    dispersion: float = 1.0
    level_var: float = 0.0
    covariance: float = 0.0
    trend_var: float = 0.0
    days: int = 0
    trend_learned: bool = False

    def widened(self, factor: float) -> ArrivalRate:
        """The same rate with its sampling (co)variances multiplied by ``factor``.

        Those variances hold if check-ins follow a line; a season's turning points (Black
        Friday, the end of the ramp, Christmas) do not, and a band built on them alone
        under-covers a week out. The factor is calibrated on the territory replay.
        """
        return replace(self, level_var=self.level_var * factor,
                       covariance=self.covariance * factor, trend_var=self.trend_var * factor)

    def as_inputs(self) -> dict[str, Any]:
        return {"baseline": self.level, "trend": self.trend, "dispersion": self.dispersion,
                "rate_var": (self.level_var, self.covariance, self.trend_var)}


MIN_DAYS_FOR_TREND = 7  # fewer open days say nothing reliable about a slope


def learn_arrival_rate(
    daily: Sequence[float], half_life_days: float = 14.0, *, with_trend: bool = True
) -> ArrivalRate:
    """Level and trend of check-ins per open day, oldest day first (the last is yesterday).

    A weighted least-squares line over open days, the weights halving every
    ``half_life_days`` back, evaluated at today: unlike a weighted mean, whose value is that
    of ten or so days ago, it keeps up with a season's ramp. The variances are those of the
    line's coefficients, from its weighted residuals; the dispersion is the residual variance
    over the mean (1 for Poisson), never below 1.
    """
    n = len(daily)
    if n == 0:
        return ArrivalRate()
    decay = 0.5 ** (1.0 / half_life_days)
    w = [decay ** (n - i) for i in range(n)]
    x = [float(i - n) for i in range(n)]  # yesterday is -1, today 0
    total = sum(w)
    x_mean = sum(wi * xi for wi, xi in zip(w, x, strict=True)) / total
    y_mean = sum(wi * yi for wi, yi in zip(w, daily, strict=True)) / total
    sxx = sum(wi * (xi - x_mean) ** 2 for wi, xi in zip(w, x, strict=True))
    trend_learned = with_trend and n >= MIN_DAYS_FOR_TREND and sxx > 0
    if not trend_learned:
        slope, d = 0.0, [0.0] * n
    else:
        d = [wi * (xi - x_mean) / sxx for wi, xi in zip(w, x, strict=True)]
        slope = sum(di * yi for di, yi in zip(d, daily, strict=True))
    level = y_mean - slope * x_mean
    # The estimates are linear in the counts: level = sum(c·y), trend = sum(d·y).
    c = [wi / total - x_mean * di for wi, di in zip(w, d, strict=True)]
    residuals = [yi - level - slope * xi for yi, xi in zip(daily, x, strict=True)]
    fitted = 1 if slope == 0.0 else 2
    if n <= fitted:
        # No residual to measure the line's error: one day's count is a Poisson draw, whose
        # variance its own value estimates (at least 1: a day without parcels proves little).
        return ArrivalRate(level=max(level, 0.0), trend=slope, days=n,
                           level_var=max(level, 1.0), trend_learned=trend_learned)
    s2 = sum(wi * r * r for wi, r in zip(w, residuals, strict=True)) / total * n / (n - fitted)
    mean = sum(daily) / n
    return ArrivalRate(
        level=level, trend=slope,
        dispersion=max(1.0, s2 / mean) if mean > 0 else 1.0,
        level_var=s2 * sum(ci * ci for ci in c),
        covariance=s2 * sum(ci * di for ci, di in zip(c, d, strict=True)),
        trend_var=s2 * sum(di * di for di in d),
        days=n, trend_learned=trend_learned,
    )


@dataclass(frozen=True)
class NetworkRate:
    """First attempts per open day and per place at the sites around one, as each learned
    its own (``learn_arrival_rate``): what a site without a day of history is forecast with.

    ``per_place_var`` is how much one site's rate per place differs from the others' (their
    spread, plus the error of their mean): a new site may be any of them."""

    per_place: float
    per_place_var: float
    sites: int

    def for_places(self, places: int) -> ArrivalRate:
        """The rate of a site of ``places`` places: flat (nothing is known of its trend), its
        level's variance the network's spread at its size."""
        return ArrivalRate(level=self.per_place * places,
                           level_var=self.per_place_var * places * places)


def network_rate(levels: Sequence[tuple[float, int]]) -> NetworkRate | None:
    """From (learned level, places) of the sites around with a history: the pooled rate per
    place (their arrivals over their places, so a big shop is not outvoted by a kiosk) and its
    spread between sites. None: no site with places to learn from. A single site says
    nothing of the spread: its rate counts as uncertain as its own value."""
    usable = [(level, places) for level, places in levels if places > 0]
    if not usable:
        return None
    per_place = sum(level for level, _ in usable) / sum(places for _, places in usable)
    n = len(usable)
    if n == 1:
        spread = per_place * per_place
    else:
        spread = sum((level / places - per_place) ** 2 for level, places in usable) / (n - 1)
    return NetworkRate(per_place=per_place, per_place_var=spread * (1.0 + 1.0 / n), sites=n)


def rate_drift(rate: ArrivalRate, without_trend: float, with_trend: float,
               with_season: float | None = None) -> float:
    """How far the rate may turn from its learned line (``SiteInputs.rate_drift``).

    A line learned without a trend (too few days) is flat: on a season's ramp the drift
    stands for all the trend it cannot see. Once the line has a trend, the trend's own error
    is counted (``trend_var``) and the drift is only the trend turning, which asks much less
    (docs/forecast.md, "When the rate turns": the band over-covers a week ahead with the
    first drift on 12 to 17 days of history). ``with_season``: the drift of a flat line when
    the coming days have a declared season, whose factors carry the ramp the line cannot
    see (None: no season declared)."""
    if rate.trend_learned:
        return with_trend
    return without_trend if with_season is None else with_season


def learn_lead_share(
    leads_hours: Counted[float | None], horizons_hours: Sequence[float]
) -> tuple[float, ...]:
    """``F``: for each horizon, the share of check-ins announced at least that many hours
    before the start of the day they arrived (negative: announced that same day). ``None`` is
    a parcel that was never announced.

    Measured from the start of the arrival day, not from the check-in: it does not depend on
    when the van comes, and a manifest sent at 20:00 for the next day counts as announced for
    a forecast made at 21:00, not for one made at 05:00 that morning.
    """
    counted = kinds(leads_hours)
    n = sum(counted.values())
    if not n:
        return ()
    return tuple(
        sum(count for lead, count in counted.items() if lead is not None and lead >= horizon)
        / n
        for horizon in horizons_hours
    )
