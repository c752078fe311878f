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

*Flows.* Parcels sent from the site and producers' orders are flows of their own
(``domain/forecast_flows.py``): their deposits per open day, lead shares and dwell are learned
apart, and their parcels on hand, announced and to come add to each day, shown apart in
``DayForecast.flows``. What the model learns is ``domain/forecast_learning.py``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from relay_ops.domain import forecast_flows as flow_model
from relay_ops.domain.forecast_learning import (
    MAX_AGE,
    MAX_SCAN_DAYS,
    MIN_DAYS_FOR_TREND,
    PRIOR_HAZARDS,
    ArrivalRate,
    ClosedOn,
    Counted,
    Stay,
    hazard_at,
    kinds,
    learn_arrival_rate,
    learn_hazards,
    learn_lead_share,
    never_closed,
    open_ages,
)
from relay_ops.domain.van_backlog import carry_refused

# The learning's names are the model's too (``model.Stay``, ``model.learn_hazards``...).
__all__ = [
    "ArrivalRate",
    "ClosedOn",
    "Counted",
    "hazard_at",
    "kinds",
    "learn_arrival_rate",
    "learn_hazards",
    "learn_lead_share",
    "MAX_AGE",
    "MAX_SCAN_DAYS",
    "MIN_DAYS_FOR_TREND",
    "never_closed",
    "open_ages",
    "PRIOR_HAZARDS",
    "Stay",
]

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
    # The site's other parcels (sent from it, producers' orders), each learned apart.
    flows: Sequence[flow_model.Flow] = ()

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
    # The flows' share of the day (part of ``predicted``), one per flow of the inputs.
    flows: tuple[flow_model.FlowDay, ...] = ()

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


def inbound_rate(inputs: SiteInputs) -> ArrivalRate:
    """The site's own check-in rate, as the inputs carry it."""
    level_var, covariance, trend_var = inputs.rate_var
    return ArrivalRate(level=inputs.baseline, trend=inputs.trend, dispersion=inputs.dispersion,
                       level_var=level_var, covariance=covariance, trend_var=trend_var)


def rate_at(rate: ArrivalRate, steps: float) -> float:
    """Expected arrivals on an open day ``steps`` trend steps ahead, never below zero."""
    return max(0.0, rate.level + rate.trend * steps)


def _rate_var_at(rate: ArrivalRate, steps: float) -> float:
    return max(0.0, rate.level_var + 2.0 * steps * rate.covariance
               + steps * steps * rate.trend_var)


def _lead_remaining(lead_share: Sequence[float], lead: int) -> float:
    if not lead_share:
        return 1.0
    return 1.0 - lead_share[min(lead, len(lead_share) - 1)]


@dataclass
class _Sums:
    """Each day's expected count at the peak and its variance, as the parcels add up."""

    inputs: SiteInputs
    days: list[date]
    mean: list[float]
    var: list[float]

    def bernoulli(self, p: float, presence: Sequence[float], count: int) -> list[float]:
        """``count`` parcels alike, each there with ``p`` times its presence; what they add."""
        added = [count * p * q for q in presence]
        for i, m in enumerate(added):
            self.mean[i] += m
            self.var[i] += m * (1.0 - p * presence[i])
        return added

    def stream(self, rate: ArrivalRate, lead_share: Sequence[float],
               presence_of: Callable[[date], list[float]]) -> tuple[list[float], list[float]]:
        """The parcels a rate brings that are not announced yet: (expected arrivals per day,
        what they add to each day's peak)."""
        inputs, days = self.inputs, self.days
        arrivals = [0.0] * len(days)
        added = [0.0] * len(days)
        rate_sd = [0.0] * len(days)  # the rate's own error, the same sign on every day
        ahead = 0  # open days after today
        for i, day in enumerate(days):
            if inputs.closed_on(day):
                continue
            steps = trend_steps(ahead, inputs.trend_damping)
            ahead += 1
            share = _lead_remaining(lead_share, i)
            if day == inputs.today:
                share *= inputs.today_remaining
            expected = rate_at(rate, steps) * share
            error = math.sqrt(_rate_var_at(rate, steps)) * share
            if expected <= 0.0 and error <= 0.0:
                continue
            arrivals[i] += expected
            for j, q in enumerate(presence_of(day)):
                added[j] += expected * q
                self.mean[j] += expected * q
                self.var[j] += rate.dispersion * expected * q
                rate_sd[j] += error * q
        # A rate estimated too low is too low for every coming day at once: those errors add
        # up in standard deviation, not in variance (each rate's apart: learned apart).
        for j, sd in enumerate(rate_sd):
            self.var[j] += sd * sd
        return arrivals, added


def forecast(inputs: SiteInputs) -> list[DayForecast]:
    """Predicted places wanted at each day's peak (on hand, plus refused and waiting in the
    vans when the site is full), today and the next ``horizon`` days."""
    days = [inputs.today + timedelta(days=i) for i in range(inputs.horizon + 1)]
    sums = _Sums(inputs, days, [0.0] * len(days), [0.0] * len(days))
    arrivals = [0.0] * len(days)
    # Parcels alike (same age and dates, same arrival day and odds) have the same presence:
    # computed once per kind, a site's 100,000 parcels on hand are a few dozen kinds.
    for parcel, count in kinds(inputs.held).items():
        sums.bernoulli(1.0, _presence(inputs, inputs.today, parcel.age, parcel.pickup_until,
                                      parcel.leaves_after, days), count)
    for arrival, count in Counter(inputs.announced).items():
        day = next_open_day(max(arrival.day, inputs.today), inputs.closed_on)
        if day > days[-1]:
            continue
        sums.bernoulli(arrival.probability, _arrival_presence(inputs, day, days), count)
        arrivals[days.index(day)] += count * arrival.probability
    expected, _ = sums.stream(inbound_rate(inputs), inputs.lead_share,
                              lambda day: _arrival_presence(inputs, day, days))
    arrivals = [a + e for a, e in zip(arrivals, expected, strict=True)]
    by_flow = [_add_flow(sums, flow) for flow in inputs.flows]
    # What is predicted is the places *wanted*: a full site's refused parcels wait in the van
    # and ask again the next open day (domain/van_backlog.py). The flows' parcels take places
    # like the others; what a full site turns away are the carriers' parcels (``arrivals``).
    profiles: dict[int, list[float]] = {}

    def presence(i: int) -> list[float]:
        if i not in profiles:
            profiles[i] = _arrival_presence(inputs, days[i], days)
        return profiles[i]

    mean, var = sums.mean, sums.var
    refused = carry_refused(mean, var, arrivals, inputs.capacity,
                            [not inputs.closed_on(day) for day in days], presence)
    return [
        _day(inputs, day, mean[i], var[i], arrivals[i], refused[i],
             tuple(each[i] for each in by_flow))
        for i, day in enumerate(days)
    ]


def _add_flow(sums: _Sums, flow: flow_model.Flow) -> list[flow_model.FlowDay]:
    """A flow's parcels on hand, announced and to come (``domain/forecast_flows.py``)."""
    inputs, days = sums.inputs, sums.days

    def presence(start: date, age: int = 0, *, deposited: bool = True) -> list[float]:
        return flow_model.presence(flow, start, age, days, inputs.closed_on, inputs.today,
                              inputs.today_remaining, deposited=deposited)

    present = [0.0] * len(days)
    deposits = [0.0] * len(days)
    for age, count in kinds(flow.held).items():
        added = sums.bernoulli(1.0, presence(inputs.today, age, deposited=False), count)
        present = [a + b for a, b in zip(present, added, strict=True)]
    for arrival, count in Counter(flow.announced).items():
        day = next_open_day(max(arrival.day, inputs.today), inputs.closed_on)
        if day > days[-1]:
            continue
        added = sums.bernoulli(arrival.probability, presence(day), count)
        present = [a + b for a, b in zip(present, added, strict=True)]
        deposits[days.index(day)] += count * arrival.probability
    expected, added = sums.stream(flow.rate, flow.lead_share, presence)
    return [flow_model.FlowDay(flow.kind, round(deposits[i] + expected[i], 3),
                          round(present[i] + added[i], 3)) for i in range(len(days))]


def _arrival_presence(inputs: SiteInputs, day: date, days: Sequence[date]) -> list[float]:
    deadline = deadline_day(day, inputs.holding_days, inputs.closed_on)
    leaves = deadline + timedelta(days=inputs.return_lag_days)
    return _presence(inputs, day, 0, deadline, leaves, days)


def _day(inputs: SiteInputs, day: date, mean: float, var: float, arrivals: float,
         refused: float = 0.0, by_flow: tuple[flow_model.FlowDay, ...] = ()) -> DayForecast:
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
        flows=by_flow,
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
