"""Occupancy forecast of one site: how many parcels it will hold on each of the coming days.

Pure Python, no database: the service layer reads the site's parcels and events and hands
plain values to :func:`forecast`. The model is written down in ``docs/forecast.md``; in short:

*The quantity.* For each day ``t`` (today, then the next ``horizon`` days) the forecast gives
the parcels on hand **at the day's peak**: those still held from the evening before plus the
day's arrivals. Vans deliver before most residents come, so this is what the shelves (or the
compartments) must hold at once; it is compared with the site's capacity. When the site is
full it is the places *wanted*: those on the shelves plus the parcels refused that day, which
wait in the vans and come back (``van_backlog``); the shelves then hold the capacity
(``DayForecast.on_shelves``).

*Departures.* A parcel ready for pickup leaves on an open day with the site's pickup hazard
``h(k)``, where ``k`` is its age in *open* days (0 on its check-in day): nobody collects on a
closing day, so closing days pause ageing. ``h`` is learned from the site's own stays
(check-in → pickup, expiry or loss) over a sliding window, as a discrete Kaplan–Meier hazard
shrunk towards a prior with ``prior_weight`` pseudo-parcels per age, so a new site starts from
the published figures (61 % collected the first day, 99 % within three days; lockers faster)
and moves to its own behaviour as parcels accumulate. A parcel not collected by its deadline
day expires and waits ``return_lag_days`` for its carrier before it frees its place; expired
and damaged parcels only leave that way.

*Arrivals.* Each announced parcel arrives on its expected day (moved to the next open day if
the site is closed) with probability ``show_rate``. On top of those, the site's baseline of
check-ins per open day (announced or not: a weighted line through recent open days, its
level today plus a damped trend for the days ahead) contributes the share not yet
announced at that lead time: ``baseline · (1 − F(L))``,
where ``F(L)`` is the learned share of check-ins announced ``L`` hours or more before the start
of their day, ``L`` being the time from now to the start of the forecast day. Tomorrow
is mostly announced already; a week ahead almost nothing is, and the baseline carries it.
Unannounced parcels (never in a manifest) are part of ``1 − F(0)``.

*Uncertainty.* Each parcel held or announced is a Bernoulli trial (still on hand or not), so
its variance ``p(1 − p)`` carries the spread of the dwell-time distribution; the baseline's
survivors are Poisson (a thinned Poisson stays Poisson) with the variance inflated by the
observed over-dispersion of daily arrivals; the error of the rate itself (the line's
sampling variance, widened by a calibrated factor) is common to all the days, so it adds up
in standard deviation. The band is ``mean ± z·σ`` rounded outwards and clipped at zero; a
day is *at risk* when the upper bound exceeds the capacity.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, TypeVar

from relay_ops.domain.van_backlog import carry_refused

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
    """

    level: float = 0.0
    trend: float = 0.0  # check-ins per open day, per open day
    dispersion: float = 1.0
    level_var: float = 0.0
    covariance: float = 0.0
    trend_var: float = 0.0

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
    daily: Sequence[int], half_life_days: float = 14.0, *, with_trend: bool = True
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
    if not with_trend or n < MIN_DAYS_FOR_TREND or sxx <= 0:
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
        return ArrivalRate(level=max(level, 0.0), trend=slope)
    s2 = sum(wi * r * r for wi, r in zip(w, residuals, strict=True)) / total * n / (n - fitted)
    mean = sum(daily) / n
    return ArrivalRate(
        level=level, trend=slope,
        dispersion=max(1.0, s2 / mean) if mean > 0 else 1.0,
        level_var=s2 * sum(ci * ci for ci in c),
        covariance=s2 * sum(ci * di for ci, di in zip(c, d, strict=True)),
        trend_var=s2 * sum(di * di for di in d),
    )


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


# ---------------------------------------------------------------- forecasting


@dataclass(frozen=True)
class Held:
    """A parcel on the site now.

    ``age`` counts open days since its check-in day; it may be collected on open days up to
    ``pickup_until`` (its deadline day; None when it waits for its carrier: expired, damaged)
    and is gone, at the latest, at the end of ``leaves_after``.
    """

    age: int
    pickup_until: date | None
    leaves_after: date


@dataclass(frozen=True)
class Arrival:
    """An announced parcel expected on ``day``, arriving at all with ``probability``."""

    day: date
    probability: float = 1.0


@dataclass(frozen=True)
class SiteInputs:
    today: date
    capacity: int
    held: Counted[Held] = ()
    announced: Sequence[Arrival] = ()
    baseline: float = 0.0  # expected check-ins per open day today, announced or not
    dispersion: float = 1.0
    trend: float = 0.0  # change of the baseline per open day ahead
    trend_damping: float = 1.0  # each further open day adds this share of the previous step
    # Sampling (co)variances of the baseline and trend: (level, level×trend, trend).
    rate_var: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Per day of the forecast (0 = today): the share of its check-ins announced by now.
    lead_share: Sequence[float] = ()
    hazards: Sequence[float] = PRIOR_HAZARDS["shop"]
    holding_days: int = 10
    return_lag_days: int = 2
    today_remaining: float = 1.0  # share of today's pickups and arrivals still to come
    closed_on: ClosedOn = never_closed
    horizon: int = 7
    z: float = 1.645
    # Places in service on some days only (a shop's temporary shelves), on top of ``capacity``.
    extra_capacity: Mapping[date, int] = field(default_factory=dict)

    def capacity_on(self, day: date) -> int:
        return self.capacity + self.extra_capacity.get(day, 0)


@dataclass(frozen=True)
class DayForecast:
    day: date
    predicted: float
    low: int
    high: int
    capacity: int
    closed: bool
    arrivals: float
    refused: float = 0.0  # expected parcels turned away that day, waiting in the vans

    @property
    def at_risk(self) -> bool:
        return self.high > self.capacity

    @property
    def on_shelves(self) -> tuple[float, int, int]:
        """The parcels that will be on the shelves (predicted, low, high): the places wanted,
        capped by the capacity, since a full site refuses the rest."""
        cap = self.capacity
        return min(self.predicted, float(cap)), min(self.low, cap), min(self.high, cap)

    @property
    def over(self) -> bool:
        return self.predicted > self.capacity


def next_open_day(day: date, closed_on: ClosedOn) -> date:
    for _ in range(MAX_SCAN_DAYS):
        if not closed_on(day):
            return day
        day += timedelta(days=1)
    return day


def deadline_day(arrival: date, holding_days: int, closed_on: ClosedOn) -> date:
    """The same rule as ``holding.deadline_after``, on local days."""
    return next_open_day(arrival + timedelta(days=holding_days), closed_on)


def _presence(
    inputs: SiteInputs, start: date, age: int, pickup_until: date | None, leaves_after: date,
    days: Sequence[date],
) -> list[float]:
    """Probability that a parcel present at ``start`` (age ``age``) is there at each day's peak.

    Days before ``start`` get 0. It survives an open day ``d ≤ pickup_until`` with
    ``1 − h(age)`` (today only with the share of the day still to come), and is gone after
    ``leaves_after``.
    """
    out: list[float] = []
    alive = 1.0
    for day in days:
        if day < start:
            out.append(0.0)
            continue
        out.append(alive)
        if day >= leaves_after:
            alive = 0.0
        elif not inputs.closed_on(day):
            if pickup_until is not None and day <= pickup_until:
                h = hazard_at(inputs.hazards, age)
                if day == inputs.today:
                    h *= inputs.today_remaining
                alive *= 1.0 - h
            age += 1
    return out


def trend_steps(ahead: int, damping: float) -> float:
    """How many times the trend applies ``ahead`` open days after today: ``ahead`` with no
    damping, less with it (a season's ramp does not go on forever)."""
    return float(ahead) if damping >= 1.0 else sum(damping ** k for k in range(1, ahead + 1))


def baseline_at(inputs: SiteInputs, steps: float) -> float:
    """Expected check-ins on an open day ``steps`` trend steps ahead, never below zero."""
    return max(0.0, inputs.baseline + inputs.trend * steps)


def _rate_var_at(inputs: SiteInputs, steps: float) -> float:
    level, covariance, trend = inputs.rate_var
    return max(0.0, level + 2.0 * steps * covariance + steps * steps * trend)


def _lead_remaining(inputs: SiteInputs, lead: int) -> float:
    share = inputs.lead_share
    if not share:
        return 1.0
    return 1.0 - share[min(lead, len(share) - 1)]


def forecast(inputs: SiteInputs) -> list[DayForecast]:
    """Predicted places wanted at each day's peak (on hand, plus refused and waiting in the
    vans when the site is full), today and the next ``horizon`` days."""
    days = [inputs.today + timedelta(days=i) for i in range(inputs.horizon + 1)]
    mean = [0.0] * len(days)
    var = [0.0] * len(days)
    arrivals = [0.0] * len(days)

    def add_bernoulli(p: float, presence: list[float], count: int) -> None:
        for i, q in enumerate(presence):
            mean[i] += count * p * q
            var[i] += count * p * q * (1.0 - p * q)

    # Parcels alike (same age and dates, same arrival day and odds) have the same presence:
    # computed once per kind, a site's 100,000 parcels on hand are a few dozen kinds.
    for parcel, count in kinds(inputs.held).items():
        add_bernoulli(
            1.0,
            _presence(inputs, inputs.today, parcel.age, parcel.pickup_until,
                      parcel.leaves_after, days),
            count,
        )
    for arrival, count in Counter(inputs.announced).items():
        day = next_open_day(max(arrival.day, inputs.today), inputs.closed_on)
        if day > days[-1]:
            continue
        add_bernoulli(arrival.probability, _arrival_presence(inputs, day, days), count)
        arrivals[days.index(day)] += count * arrival.probability
    rate_sd = [0.0] * len(days)  # the rate's own error, the same sign on every day
    ahead = 0  # open days after today
    for i, day in enumerate(days):
        if inputs.closed_on(day):
            continue
        steps = trend_steps(ahead, inputs.trend_damping)
        ahead += 1
        share = _lead_remaining(inputs, i)
        if day == inputs.today:
            share *= inputs.today_remaining
        expected = baseline_at(inputs, steps) * share
        error = math.sqrt(_rate_var_at(inputs, steps)) * share
        if expected <= 0.0 and error <= 0.0:
            continue
        arrivals[i] += expected
        for j, q in enumerate(_arrival_presence(inputs, day, days)):
            mean[j] += expected * q
            var[j] += inputs.dispersion * expected * q
            rate_sd[j] += error * q
    # A rate estimated too low is too low for every coming day at once: those errors add up
    # in standard deviation, not in variance.
    for j, sd in enumerate(rate_sd):
        var[j] += sd * sd
    # What is predicted is the places *wanted*: a full site's refused parcels wait in the van
    # and ask again the next open day (domain/van_backlog.py).
    profiles: dict[int, list[float]] = {}

    def presence(i: int) -> list[float]:
        if i not in profiles:
            profiles[i] = _arrival_presence(inputs, days[i], days)
        return profiles[i]

    refused = carry_refused(mean, var, arrivals, inputs.capacity,
                            [not inputs.closed_on(day) for day in days], presence)
    return [
        _day(inputs, day, mean[i], var[i], arrivals[i], refused[i]) for i, day in enumerate(days)
    ]


def _arrival_presence(inputs: SiteInputs, day: date, days: Sequence[date]) -> list[float]:
    deadline = deadline_day(day, inputs.holding_days, inputs.closed_on)
    leaves = deadline + timedelta(days=inputs.return_lag_days)
    return _presence(inputs, day, 0, deadline, leaves, days)


def _day(inputs: SiteInputs, day: date, mean: float, var: float, arrivals: float,
         refused: float = 0.0) -> DayForecast:
    spread = inputs.z * math.sqrt(max(var, 0.0))
    return DayForecast(
        day=day,
        predicted=round(max(mean, 0.0), 3),
        low=max(0, math.floor(mean - spread)),
        high=max(0, math.ceil(mean + spread)),
        capacity=inputs.capacity_on(day),
        closed=inputs.closed_on(day),
        arrivals=round(arrivals, 3),
        refused=round(refused, 3),
    )


# ---------------------------------------------------------------- where a reroute goes


def reroute_cost(high: int, capacity: int, km: float, reach_km: float,
                 distance_weight: float = 0.5) -> float:
    """How bad a candidate site is for one more rerouted parcel: its forecast load (the upper
    band with the parcel, over its capacity) plus ``distance_weight`` times the distance over
    the reach. Lower is better. The load term keeps reroutes off the biggest, already busy
    shop when a less loaded one is barely farther; the distance term keeps a far site from
    winning over a near one that is nearly as free (docs/forecast.md, "Where a reroute goes").
    """
    load = high / capacity if capacity > 0 else math.inf
    return load + distance_weight * (km / reach_km if reach_km > 0 else 0.0)
