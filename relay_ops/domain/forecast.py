"""Occupancy forecast of one site: how many parcels it will hold on each of the coming days.

Pure Python, no database: the service layer reads the site's parcels and events and hands
plain values to :func:`forecast`. The model is written down in ``docs/forecast.md``; in short:

*The quantity.* For each day ``t`` (today, then the next ``horizon`` days) the forecast gives
the parcels on hand **at the day's peak**: those still held from the evening before plus the
day's arrivals. Vans deliver before most residents come, so this is what the shelves (or the
compartments) must hold at once; it is compared with the site's capacity.

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
check-ins per open day (announced or not, an exponentially weighted mean over recent open
days) contributes the share not yet announced at that lead time: ``baseline · (1 − F(L))``,
where ``F(L)`` is the learned share of check-ins announced ``L`` hours or more before the start
of their day, ``L`` being the time from now to the start of the forecast day. Tomorrow
is mostly announced already; a week ahead almost nothing is, and the baseline carries it.
Unannounced parcels (never in a manifest) are part of ``1 − F(0)``.

*Uncertainty.* Each parcel held or announced is a Bernoulli trial (still on hand or not), so
its variance ``p(1 − p)`` carries the spread of the dwell-time distribution; the baseline's
survivors are Poisson (a thinned Poisson stays Poisson) with the variance inflated by the
observed over-dispersion of daily arrivals. The band is ``mean ± z·σ`` rounded outwards and
clipped at zero; a day is *at risk* when the upper bound exceeds the capacity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

ClosedOn = Callable[[date], bool]

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
    stays: Sequence[Stay],
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
    for stay in stays:
        last = stay.ended if stay.ended is not None else today - timedelta(days=1)
        if stay.ended is not None and not stay.picked_up:
            last = stay.ended - timedelta(days=1)
        ages = open_ages(stay.check_in, min(last, today), closed_on)
        for age in ages.values():
            if age <= MAX_AGE:
                at_risk[age] += 1
        if stay.picked_up and stay.ended is not None and ages:
            # A pickup recorded on a closed day (an exception) counts on the last open day.
            age = max(ages.values())
            if age <= MAX_AGE:
                picked[age] += 1
    return tuple(
        (picked[k] + prior_weight * hazard_at(prior, k)) / (at_risk[k] + prior_weight)
        for k in range(MAX_AGE + 1)
    )


def learn_arrivals(daily: Sequence[int], half_life_days: float = 7.0) -> tuple[float, float]:
    """(rate, dispersion) of check-ins per open day, oldest day first.

    The rate is exponentially weighted so a season's ramp-up shows within a week or two; the
    dispersion is variance over mean (1 for Poisson), never below 1.
    """
    if not daily:
        return 0.0, 1.0
    decay = 0.5 ** (1.0 / half_life_days)
    weights = [decay ** (len(daily) - 1 - i) for i in range(len(daily))]
    rate = sum(w * n for w, n in zip(weights, daily, strict=True)) / sum(weights)
    mean = sum(daily) / len(daily)
    if len(daily) < 2 or mean <= 0:
        return rate, 1.0
    var = sum((n - mean) ** 2 for n in daily) / (len(daily) - 1)
    return rate, max(1.0, var / mean)


def learn_lead_share(
    leads_hours: Sequence[float | None], horizons_hours: Sequence[float]
) -> tuple[float, ...]:
    """``F``: for each horizon, the share of check-ins announced at least that many hours
    before the start of the day they arrived (negative: announced that same day). ``None`` is
    a parcel that was never announced.

    Measured from the start of the arrival day, not from the check-in: it does not depend on
    when the van comes, and a manifest sent at 20:00 for the next day counts as announced for
    a forecast made at 21:00, not for one made at 05:00 that morning.
    """
    if not leads_hours:
        return ()
    n = len(leads_hours)
    return tuple(
        sum(1 for lead in leads_hours if lead is not None and lead >= horizon) / n
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
    held: Sequence[Held] = ()
    announced: Sequence[Arrival] = ()
    baseline: float = 0.0  # expected check-ins per open day, announced or not
    dispersion: float = 1.0
    # Per day of the forecast (0 = today): the share of its check-ins announced by now.
    lead_share: Sequence[float] = ()
    hazards: Sequence[float] = PRIOR_HAZARDS["shop"]
    holding_days: int = 10
    return_lag_days: int = 2
    today_remaining: float = 1.0  # share of today's pickups and arrivals still to come
    closed_on: ClosedOn = never_closed
    horizon: int = 7
    z: float = 1.645


@dataclass(frozen=True)
class DayForecast:
    day: date
    predicted: float
    low: int
    high: int
    capacity: int
    closed: bool
    arrivals: float

    @property
    def at_risk(self) -> bool:
        return self.high > self.capacity

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


def _lead_remaining(inputs: SiteInputs, lead: int) -> float:
    share = inputs.lead_share
    if not share:
        return 1.0
    return 1.0 - share[min(lead, len(share) - 1)]


def forecast(inputs: SiteInputs) -> list[DayForecast]:
    """Predicted parcels on hand at each day's peak, today and the next ``horizon`` days."""
    days = [inputs.today + timedelta(days=i) for i in range(inputs.horizon + 1)]
    mean = [0.0] * len(days)
    var = [0.0] * len(days)
    arrivals = [0.0] * len(days)

    def add_bernoulli(p: float, presence: list[float]) -> None:
        for i, q in enumerate(presence):
            mean[i] += p * q
            var[i] += p * q * (1.0 - p * q)

    for parcel in inputs.held:
        add_bernoulli(
            1.0,
            _presence(inputs, inputs.today, parcel.age, parcel.pickup_until,
                      parcel.leaves_after, days),
        )
    for arrival in inputs.announced:
        day = next_open_day(max(arrival.day, inputs.today), inputs.closed_on)
        if day > days[-1]:
            continue
        add_bernoulli(arrival.probability, _arrival_presence(inputs, day, days))
        arrivals[days.index(day)] += arrival.probability
    for i, day in enumerate(days):
        if inputs.closed_on(day) or inputs.baseline <= 0:
            continue
        expected = inputs.baseline * _lead_remaining(inputs, i)
        if day == inputs.today:
            expected *= inputs.today_remaining
        arrivals[i] += expected
        for j, q in enumerate(_arrival_presence(inputs, day, days)):
            mean[j] += expected * q
            var[j] += inputs.dispersion * expected * q
    return [
        _day(inputs, day, mean[i], var[i], arrivals[i]) for i, day in enumerate(days)
    ]


def _arrival_presence(inputs: SiteInputs, day: date, days: Sequence[date]) -> list[float]:
    deadline = deadline_day(day, inputs.holding_days, inputs.closed_on)
    leaves = deadline + timedelta(days=inputs.return_lag_days)
    return _presence(inputs, day, 0, deadline, leaves, days)


def _day(inputs: SiteInputs, day: date, mean: float, var: float, arrivals: float) -> DayForecast:
    spread = inputs.z * math.sqrt(max(var, 0.0))
    return DayForecast(
        day=day,
        predicted=round(max(mean, 0.0), 3),
        low=max(0, math.floor(mean - spread)),
        high=max(0, math.ceil(mean + spread)),
        capacity=inputs.capacity,
        closed=inputs.closed_on(day),
        arrivals=round(arrivals, 3),
    )
