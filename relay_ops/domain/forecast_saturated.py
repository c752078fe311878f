"""A site that stays full, counted as its counter fills it (issue 16; docs/forecast.md, "A site
that stays full").

Pure Python, used by ``forecast.forecast``. The forecast's sums are those of a site with
endless shelves, and the van backlog (``van_backlog.carry_refused``) moves each day's expected
excess to the days after it: that keeps the mean of a site full day after day, but its band
thins every coming parcel's spread by the pickups of a site with room, while a full site's
extra parcel is not collected: it waits in the van. So the same expected counts are also run
day by day as the counter runs them (``saturated``), and the forecast keeps, from the first
day this model finds the site full, the larger mean and variance of the two (``keep_larger``).

What is on the shelves and never refused (the parcels on hand, and the flows' parcels: sent
from the site, producers' orders, ``forecast_flows``) is *stock*: its mean and variance are
the sums' own. What a full site turns away are the carriers' parcels (*arrivals*).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def _on_shelves(counts: SiteCounts, placed: Sequence[float], presence: Presence,
                day: int) -> float:
    return counts.stock_mean[day] + sum(placed[p] * presence(p)[day] for p in range(day))


def saturated(counts: SiteCounts, capacity: Sequence[int], open_days: Sequence[bool],
              presence: Presence, drift: float = 0.0) -> Saturated:
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
    the van took). ``drift``: the rate's own drift away from the learned line (``_drift``).
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
            stock = on_shelves + placed[d]
            leaving = max(0.0, stock - _on_shelves(counts, placed, presence, d + 1))
            pickup_var[d] = leaving * (1.0 - leaving / stock) if stock > 0 else 0.0
        waiting[d] = backlog
    var = _variance(counts, open_days, full, pickup_var, presence, drift)
    refused = [waiting[d] if open_days[d] else 0.0 for d in range(n)]
    return Saturated(mean=mean, var=var, refused=refused, full=full)


def _variance(counts: SiteCounts, open_days: Sequence[bool], full: Sequence[bool],
              pickup_var: Sequence[float], presence: Presence, drift: float = 0.0
              ) -> list[float]:
    n = len(open_days)
    var = list(counts.stock_var)
    error = [0.0] * n
    # drifting[j][i]: the rate's parcels of day i still counted on day j
    drifting = [[0.0] * n for _ in range(n)]
    for i in range(n):
        if counts.arrivals[i] <= 0.0 and counts.arrival_var[i] <= 0.0:
            continue
        # A parcel more arriving on day i waits while the site stays full, then gets in on
        # the first day with room and leaves from there.
        got_in = next((d for d in range(i, n) if open_days[d] and not full[d]), None)
        from_rate = counts.rate_arrivals[i] if counts.rate_arrivals else 0.0
        for j in range(i, n):
            share = 1.0 if got_in is None or j < got_in else presence(got_in)[j]
            var[j] += counts.arrival_var[i] * share * share
            error[j] += counts.arrival_error[i] * share
            drifting[j][i] = from_rate * share
    for j in range(n):
        var[j] += error[j] * error[j] + _drift(drifting[j], drift)
        # each pickup of the days the site stayed full before j made room for the van
        d = j - 1
        while d >= 0 and full[d]:
            var[j] += pickup_var[d]
            d -= 1
    return var


def _drift(counted: Sequence[float], drift: float) -> float:
    """The variance the rate's drift adds to a day that still counts ``counted[i]`` of the
    rate's parcels of day ``i``.

    The learned line (level and damped trend) is the rate's best guess, but a season's rate
    turns where no line learned before can see it (a promotion, the end of a ramp). So the
    rate of day ``i`` is taken as the line's times ``1 + D(i)``, ``D`` a random walk from
    today: ``Var D(i) = drift² · i``, ``Cov(D(i), D(k)) = drift² · min(i, k)``. A full site keeps
    every day's parcels in its van, so the day's count is ``Σ counted[i] · D(i)`` and its
    variance ``drift² · Σ_m (Σ_{i ≥ m} counted[i])²``: it grows with the lead faster than the
    days' own spread. Only the saturated model counts it: at a site with room the rate's
    parcels of a day leave within a day or two, where the line's own error (widened by the
    calibrated factor) already holds it.
    """
    if drift <= 0.0:
        return 0.0
    total, tail = 0.0, 0.0
    for m in range(len(counted) - 1, 0, -1):
        tail += counted[m]
        total += tail * tail
    return drift * drift * total


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
