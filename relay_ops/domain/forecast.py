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

*A site that stays full* (``domain/forecast_saturated.py``). The same expected counts are
also run as the counter fills the shelves (the van's backlog and the day's arrivals take the
places the pickups free); from the first day that finds the site full, the larger mean and
variance are kept, the band counting each later arrival and the rate's error whole; and it
is run with the rate turned up and down (its error and a drift growing with the lead): the
places wanted are convex in the rate, so that gives the mean and band of the days a higher
rate would fill the site (``forecast_saturated.for_the_rate``). An unannounced parcel a
full site refused is kept by its check-in as announced there, so it comes back with the
announced ones it refused.

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
from relay_ops.domain.demand_index import factor_ahead
from relay_ops.domain.forecast_learning import (
    MAX_AGE,
    MAX_SCAN_DAYS,
    MIN_DAYS_FOR_TREND,
    PRIOR_HAZARDS,
    ArrivalRate,
    ClosedOn,
    Counted,
    NetworkRate,
    Stay,
    hazard_at,
    kinds,
    learn_arrival_rate,
    learn_hazards,
    learn_lead_share,
    network_rate,
    never_closed,
    open_ages,
    rate_drift,
)
from relay_ops.domain.forecast_saturated import (
    SiteCounts,
    for_the_rate,
    keep_larger,
    saturated,
)
from relay_ops.domain.forecast_sums import Sums
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
    "NetworkRate",
    "network_rate",
    "never_closed",
    "open_ages",
    "PRIOR_HAZARDS",
    "rate_drift",
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
    """An announced parcel expected on ``day`` (a full site turned it away before: the day its
    carrier brings it back), arriving at all with ``probability``."""

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
    # How far the rate may drift from its learned line (relative to the rate, by day i
    # ahead ``rate_drift · i²``, one standard deviation): counted on the days a higher
    # rate would leave the site full (forecast_saturated.for_the_rate).
    rate_drift: float = 0.0
    # The season's factor of each forecast day (0 = today) against an ordinary day, the one
    # the rate was learned for (``domain/demand_index.py``); empty: ordinary days.
    demand_index: Sequence[float] = ()

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
    # The season's factor of the day the rate was multiplied by (``demand_index``).
    demand_factor: float = 1.0

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


def inbound_rate(inputs: SiteInputs) -> ArrivalRate:
    """The site's own check-in rate, as the inputs carry it."""
    level_var, covariance, trend_var = inputs.rate_var
    return ArrivalRate(level=inputs.baseline, trend=inputs.trend, dispersion=inputs.dispersion,
                       level_var=level_var, covariance=covariance, trend_var=trend_var)


def forecast(inputs: SiteInputs) -> list[DayForecast]:
    """Predicted places wanted at each day's peak (on hand, plus refused and waiting in the
    vans when the site is full), today and the next ``horizon`` days."""
    days = [inputs.today + timedelta(days=i) for i in range(inputs.horizon + 1)]
    sums = Sums(inputs, days, [0.0] * len(days), [0.0] * len(days))
    # Every parcel arriving on a day (announced, expected, brought back) has that day's
    # presence: computed once per day.
    profiles: dict[date, list[float]] = {}

    def presence_on(day: date) -> list[float]:
        if day not in profiles:
            profiles[day] = _arrival_presence(inputs, day, days)
        return profiles[day]

    def presence(i: int) -> list[float]:
        return presence_on(days[i])

    # Parcels alike (same age and dates, same arrival day and odds) have the same presence:
    # computed once per kind, a site's 100,000 parcels on hand are a few dozen kinds.
    for parcel, count in kinds(inputs.held).items():
        sums.bernoulli(1.0, _presence(inputs, inputs.today, parcel.age, parcel.pickup_until,
                                      parcel.leaves_after, days), count)
    held_mean, held_var = list(sums.mean), list(sums.var)
    arrivals, arrival_var = _announced_arrivals(sums, presence)
    expected, _, errors = sums.stream(inbound_rate(inputs), inputs.lead_share, presence_on,
                                      inputs.demand_index)
    arrivals = [a + e for a, e in zip(arrivals, expected, strict=True)]
    arrival_var = [v + inputs.dispersion * e for v, e in zip(arrival_var, expected, strict=True)]
    before_flows = list(sums.mean), list(sums.var)
    by_flow = [_add_flow(sums, flow) for flow in inputs.flows]
    # The flows' parcels take places like the parcels on hand and no full site refuses them:
    # both are the saturated model's stock.
    stock_mean = [h + m - b for h, m, b in zip(held_mean, sums.mean, before_flows[0], strict=True)]
    stock_var = [h + v - b for h, v, b in zip(held_var, sums.var, before_flows[1], strict=True)]
    # What is predicted is the places *wanted*: a full site's refused parcels wait in the van
    # and ask again the next open day (domain/van_backlog.py). What a full site turns away
    # are the carriers' parcels (``arrivals``).
    mean, var = sums.mean, sums.var
    open_days = [not inputs.closed_on(day) for day in days]
    refused = carry_refused(mean, var, arrivals, inputs.capacity, open_days, presence)
    # A site that stays full: the van's backlog grows by what comes beyond what the shelves
    # turn over, and every parcel of it is there until it gets in (domain/forecast_saturated).
    counts = SiteCounts(stock_mean, stock_var, arrivals, arrival_var, errors, expected)
    capacity = [inputs.capacity_on(day) for day in days]
    full_site = saturated(counts, capacity, open_days, presence)
    keep_larger(mean, var, refused, full_site)
    # A rate a little higher may fill the site: the mean and band of those days hold it.
    for_the_rate(mean, var, refused, counts, capacity, open_days, presence, inputs.z,
                 inputs.rate_drift)
    return [
        _day(inputs, day, mean[i], var[i], arrivals[i], refused[i],
             tuple(each[i] for each in by_flow))
        for i, day in enumerate(days)
    ]


def _announced_arrivals(
    sums: Sums, presence: Callable[[int], list[float]]
) -> tuple[list[float], list[float]]:
    """The carriers' announced parcels (those a full site refused among them, coming back):
    (expected arrivals per day, their variance)."""
    inputs, days = sums.inputs, sums.days
    arrivals = [0.0] * len(days)
    arrival_var = [0.0] * len(days)
    for arrival, count in Counter(inputs.announced).items():
        day = next_open_day(max(arrival.day, inputs.today), inputs.closed_on)
        if day > days[-1]:
            continue
        i = days.index(day)
        p = arrival.probability
        sums.bernoulli(p, presence(i), count)
        arrivals[i] += count * p
        arrival_var[i] += count * p * (1.0 - p)
    return arrivals, arrival_var


def _add_flow(sums: Sums, flow: flow_model.Flow) -> list[flow_model.FlowDay]:
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
    expected, added, _ = sums.stream(flow.rate, flow.lead_share, presence)
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
        demand_factor=factor_ahead(inputs.demand_index, (day - inputs.today).days),
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
