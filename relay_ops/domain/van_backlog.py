"""Parcels a full site turns away wait in the van and come back: the forecast of *wanted* places.

Pure Python, used by ``forecast.forecast`` (docs/forecast.md, "What is predicted"). Without it
the forecast is that of a site with endless shelves: every arrival is placed and may be
collected that very day. A full site refuses instead; the refused parcel is collected by
nobody, waits in the van and asks for a place again on the next open day. So once a site is
full, each day's excess is carried over whole, not thinned by pickups, and a backlog builds.

Each open day, the expected excess over capacity ``E[(X − C)⁺]`` (``X`` normal with the day's
mean and variance) is turned away, never more than the parcels that arrive that day (those on
the shelves stay). Those parcels are then counted as *waiting* (present, 1) until the next
open day and as arriving that day afterwards, instead of as arrived on the day they were
refused; the difference is added to the later days. Their count's uncertainty travels with
them: the share of the day's variance that lies above capacity, ``P(X > C) · Var(X)``.

A full site refuses unannounced parcels too; the check-in keeps each as a parcel announced
there (``services/checkin.py``), so they are among the refused parcels counted here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

Presence = Callable[[int], Sequence[float]]  # arrival on day i -> P(still there) on each day


def expected_excess(mean: float, variance: float, capacity: float) -> tuple[float, float]:
    """``E[(X − C)⁺]`` and ``P(X > C)`` for ``X`` normal(mean, variance)."""
    if variance <= 0.0:
        return max(0.0, mean - capacity), 1.0 if mean > capacity else 0.0
    sd = math.sqrt(variance)
    a = (mean - capacity) / sd
    over = 0.5 * math.erfc(-a / math.sqrt(2.0))
    density = math.exp(-a * a / 2.0) / math.sqrt(2.0 * math.pi)
    return max(0.0, (mean - capacity) * over + sd * density), over


def carry_refused(
    mean: list[float], var: list[float], arrivals: Sequence[float], capacity: int,
    open_days: Sequence[bool], presence: Presence,
) -> list[float]:
    """Add, in place, the parcels refused each open day to the days after it; return the
    expected parcels refused per day (the van backlog that day).

    Never lowers a day (a refused parcel is there, waiting, at least as much as it would have
    been on a shelf) and never counts a parcel twice on one day (its presence stays ≤ 1).
    """
    n = len(mean)
    brought_back = [0.0] * n
    refused = [0.0] * n
    # How the parcels brought back on this day are counted by now: as arrived on the day they
    # were refused, then waiting (the larger of the two on each day). It depends on the days
    # only, never on how many, so more parcels never means a smaller shift.
    carried: list[float] | None = None
    for d in range(n):
        if not open_days[d]:
            continue
        placed = list(presence(d))
        if carried is not None:
            placed = [max(a, b) for a, b in zip(placed, carried, strict=True)]
        back = next((j for j in range(d + 1, n) if open_days[j]), None)
        later = presence(back) if back is not None else [0.0] * n
        waiting = [1.0 if back is None or j < back else later[j] for j in range(n)]
        carried = [max(a, b) for a, b in zip(placed, waiting, strict=True)]
        excess, over = expected_excess(mean[d], var[d], capacity)
        # never more than the day's arrivals (the placed parcels stay), nor than the places
        # wanted (a normal count's upper tail may say more when the mean is small)
        turned = min(excess, arrivals[d] + brought_back[d], max(0.0, mean[d]))
        if turned <= 0.0:
            continue
        refused[d] = turned
        spread = over * var[d]
        for j in range(d + 1, n):
            shift = max(0.0, waiting[j] - placed[j])
            mean[j] += turned * shift
            var[j] += spread * shift
        if back is not None:
            brought_back[back] += turned
    return refused
