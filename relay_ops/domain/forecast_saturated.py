"""A site that stays full, counted as its counter fills it (issue 16; docs/forecast.md, "A site
that stays full").

Pure Python, used by ``forecast.forecast``. The forecast's sums are those of a site with
endless shelves, and the van backlog (``van_backlog.carry_refused``) moves each day's expected
excess to the days after it: that keeps the mean of a site full day after day, but its band
thins every coming parcel's spread by the pickups of a site with room, while a full site's
extra parcel is not collected: it waits in the van. So the same expected counts are also run
day by day as the counter runs them (``saturated``), and the forecast keeps, from the first
day this model finds the site full, the larger mean and variance of the two (``keep_larger``).

The places wanted are convex in the rate (a higher rate may fill a site the expected one
leaves with room; a lower one only leaves places empty), so the counter is also run with
the rate turned up and down, its drift growing with the lead (``for_the_rate``): their
average is the mean, the run at the band's quantile its upper side, on the days those runs
find the site full.

What is on the shelves and never refused (the parcels on hand, and the flows' parcels: sent
from the site, producers' orders, ``forecast_flows``) is *stock*: its mean and variance are
the sums' own. What a full site turns away are the carriers' parcels (*arrivals*).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from relay_ops.domain.van_backlog import Presence

FULL = 1e-9  # a backlog above this is a site full that day


@dataclass(frozen=True)
class SiteCounts:
    """A site's forecast pieces per day: its stock (mean and variance of the parcels still
    on the shelves that no full site refuses), and the carriers' expected arrivals with their
    variance and the rate's error (the part of it that errs the same way on every day)."""

    stock_mean: Sequence[float]
    stock_var: Sequence[float]
    arrivals: Sequence[float]
    arrival_var: Sequence[float]
    arrival_error: Sequence[float]
    # The part of the arrivals the rate brings (not announced yet): what its drift moves.
    rate_arrivals: Sequence[float] = ()


@dataclass(frozen=True)
class Saturated:
    """Places wanted per day at a site whose shelves fill (mean and variance), the parcels
    left in the vans after each day's check-ins, and whether the site is full then."""

    mean: list[float]
    var: list[float]
    refused: list[float]
    full: list[bool]
    noise_var: list[float] = field(default_factory=list)  # var less the rate's error


def _on_shelves(counts: SiteCounts, placed: Sequence[float], presence: Presence,
                day: int) -> float:
    return counts.stock_mean[day] + sum(placed[p] * presence(p)[day] for p in range(day))


def _pickups_chance(placed: Sequence[float], presence: Presence, day: int) -> float:
    """The variance of the places the pickups free between ``day`` and the next: each day's
    placed parcels still there leave with their own chance (their presence's drop), as
    independent parcels do. Counted per arrival day, not as one share of the whole shelf: a
    shelf of parcels at their deadline (all leave) and fresh ones (few leave) frees a count
    that is nearly certain, and one shared rate would call it a coin toss for each and change
    with the mix, so that one parcel more could narrow the band. The stock's own departures
    are already in its variance (``SiteCounts.stock_var``)."""
    var = 0.0
    for p in range(day + 1):
        share = presence(p)
        if placed[p] <= 0.0 or share[day] <= 0.0:
            continue
        leaves = max(0.0, 1.0 - share[day + 1] / share[day])
        var += placed[p] * share[day] * leaves * (1.0 - leaves)
    return var


def saturated(counts: SiteCounts, capacity: Sequence[int], open_days: Sequence[bool],
              presence: Presence) -> Saturated:
    """The places wanted when the shelves fill, as the counter fills them: day by day, the
    van's backlog and the day's arrivals take the free places (capacity less what is still on
    the shelves), the rest stays in the van; placed parcels then leave as the site's own
    pickups make them (``presence``: the learned hazards). So once the site is full, what it
    turns over a day is what its pickups free, and the backlog grows by the arrivals beyond
    that, day after day, instead of each arrival leaving at the pace of a site with room.

    The variance follows each arrival day's parcels: while the site stays full from their day
    on, a parcel more or less is one more or less in the van on every later day (it does not
    leave), so its variance and the rate's error count whole, not thinned by pickups; the
    pickups' own chance adds up over the days the site stays full (each one freed a place
    the van took).
    """
    n = len(open_days)
    placed = [0.0] * n
    mean = [0.0] * n
    waiting = [0.0] * n  # in the vans after the day's check-ins
    full = [False] * n
    pickup_var = [0.0] * n  # the pickups' chance on day d, for a site full then
    backlog = 0.0
    for d in range(n):
        on_shelves = _on_shelves(counts, placed, presence, d)
        queue = backlog + counts.arrivals[d]
        mean[d] = on_shelves + queue
        if open_days[d]:
            placed[d] = min(queue, max(0.0, capacity[d] - on_shelves))
        backlog = queue - placed[d]
        full[d] = backlog > FULL
        if open_days[d] and full[d] and d + 1 < n:
            pickup_var[d] = _pickups_chance(placed, presence, d)
        waiting[d] = backlog
    var, noise_var = _variance(counts, open_days, full, pickup_var, presence)
    refused = [waiting[d] if open_days[d] else 0.0 for d in range(n)]
    return Saturated(mean=mean, var=var, refused=refused, full=full, noise_var=noise_var)


def _variance(counts: SiteCounts, open_days: Sequence[bool], full: Sequence[bool],
              pickup_var: Sequence[float], presence: Presence
              ) -> tuple[list[float], list[float]]:
    """Each day's variance, and the part of it that is not the rate's error (the parcels'
    own chance: arrivals, pickups, stock)."""
    n = len(open_days)
    var = list(counts.stock_var)
    error = [0.0] * n
    for i in range(n):
        if counts.arrivals[i] <= 0.0 and counts.arrival_var[i] <= 0.0:
            continue
        # A parcel more arriving on day i waits while the site stays full, then gets in on
        # the first day with room and leaves from there.
        got_in = next((d for d in range(i, n) if open_days[d] and not full[d]), None)
        for j in range(i, n):
            share = 1.0 if got_in is None or j < got_in else presence(got_in)[j]
            var[j] += counts.arrival_var[i] * share * share
            error[j] += counts.arrival_error[i] * share
    for j in range(n):
        # each pickup of the days the site stayed full before j made room for the van
        d = j - 1
        while d >= 0 and full[d]:
            var[j] += pickup_var[d]
            d -= 1
    noise = list(var)
    for j in range(n):
        var[j] += error[j] * error[j]
    return var, noise


DRIFT_POWER = 2  # the rate's drift grows as the square of the lead (an unseen change of trend)


def rate_sd(counts: SiteCounts, drift: float) -> list[float]:
    """The carriers' rate's standard deviation on each coming day's arrivals, the same sign
    on every day: the learned line's error (``arrival_error``, from its sampling variances)
    and its **drift**. A season's rate turns where no line learned before can see it (a
    promotion, the end of a ramp): the line (level and trend) is the rate's first-order
    expansion, and what it leaves out, a change of the trend, moves the level by the square
    of the lead. So the rate of day ``i`` may be off by ``drift · i²`` of itself. Only what is
    not announced yet moves (``rate_arrivals``)."""
    rate = counts.rate_arrivals or [0.0] * len(counts.arrivals)
    return [e + drift * i ** DRIFT_POWER * r
            for i, (e, r) in enumerate(zip(counts.arrival_error, rate, strict=True))]


def _shifted(counts: SiteCounts, shift: Sequence[float]) -> SiteCounts:
    return replace(counts, arrivals=[a + s for a, s in zip(counts.arrivals, shift, strict=True)])


def _first_full(run: Saturated) -> int:
    return next((d for d, is_full in enumerate(run.full) if is_full), len(run.full))


def for_the_rate(mean: list[float], var: list[float], refused: list[float],
                 counts: SiteCounts, capacity: Sequence[int], open_days: Sequence[bool],
                 presence: Presence, z: float, drift: float) -> None:
    """The rate's error where the places wanted are not linear in it: the mean and the band
    of the days a higher rate would leave the site full (in place).

    A site with room turns over whatever comes; a full one keeps every parcel beyond its
    turnover in the van. So a rate a little higher than the learned one may fill a site the
    expected counts leave with room, and from then on every parcel counts whole, while a
    lower one only leaves places empty: the places wanted are convex in the rate.

    - *Mean*: the expected places wanted over the rate's error, not those of the expected
      rate: the average of the counter run with the rate one standard deviation up and one
      down (``rate_sd``; exact for a count quadratic in the rate), from the first day the
      higher one finds the site full.
    - *Band*: the counter run with the rate at its upper quantile (``z`` standard deviations
      up); its distance from the mean, over ``z``, is the rate's standard deviation of that
      day, beside the parcels' own chance in that run (``noise_var``), from the first day
      that run finds the site full.

    Where the counter with the rate turned up still finds room, nothing changes (a site with
    room is forecast as before).
    """
    sd = rate_sd(counts, drift)
    # one standard deviation each way, never more parcels off than are expected: the two
    # runs' arrivals average to the expected ones
    step = [min(s, a) for s, a in zip(sd, counts.arrivals, strict=True)]
    up = saturated(_shifted(counts, step), capacity, open_days, presence)
    down = saturated(_shifted(counts, [-s for s in step]), capacity, open_days, presence)
    for j in range(_first_full(up), len(mean)):
        expected = (up.mean[j] + down.mean[j]) / 2
        if expected > mean[j]:
            mean[j] = expected
            refused[j] = max(refused[j], (up.refused[j] + down.refused[j]) / 2)
    if z <= 0.0:
        return
    high = saturated(_shifted(counts, [z * s for s in sd]), capacity, open_days, presence)
    for j in range(_first_full(high), len(var)):
        spread = max(0.0, high.mean[j] - mean[j]) / z
        var[j] = max(var[j], high.noise_var[j] + spread * spread)


def keep_larger(mean: list[float], var: list[float], refused: list[float],
                full_site: Saturated) -> None:
    """Keep, in place, the larger mean (with its refusals) and variance of the two models,
    from the first day the saturated model finds the site full. Before it, and at a site it
    never finds full, both count the same parcels the same way (the saturated variance is
    then the smaller: its arrivals thin by their presence squared): nothing changes there."""
    first = next((d for d, is_full in enumerate(full_site.full) if is_full), len(mean))
    for i in range(first, len(mean)):
        if full_site.mean[i] > mean[i]:
            mean[i] = full_site.mean[i]
            refused[i] = max(refused[i], full_site.refused[i])
        var[i] = max(var[i], full_site.var[i])
