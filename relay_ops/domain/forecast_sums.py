"""The occupancy forecast's sums (``forecast.forecast``): each day's expected count at the peak
and its variance, as parcels alike and arrival rates add to them; and how a rate reaches the
days ahead (its level, its damped trend, the share of its parcels not announced yet).

Pure Python, like ``domain/forecast.py`` (docs/forecast.md, "Uncertainty").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from relay_ops.domain.demand_index import factor_ahead
from relay_ops.domain.forecast_learning import ArrivalRate

if TYPE_CHECKING:
    from relay_ops.domain.forecast import SiteInputs


def trend_steps(ahead: int, damping: float) -> float:
    """How many times the trend applies ``ahead`` open days after today: ``ahead`` with no
    damping, less with it (a season's ramp does not go on forever)."""
    return float(ahead) if damping >= 1.0 else sum(damping ** k for k in range(1, ahead + 1))


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
class Sums:
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

    def stream(
        self, rate: ArrivalRate, lead_share: Sequence[float],
        presence_of: Callable[[date], list[float]], season: Sequence[float] = (),
    ) -> tuple[list[float], list[float], list[float]]:
        """The parcels a rate brings that are not announced yet: (expected arrivals per day,
        what they add to each day's peak, the rate's error on each day's arrivals). The rate
        is an ordinary day's; ``season`` is each day's factor (``domain/demand_index``)."""
        inputs, days = self.inputs, self.days
        arrivals = [0.0] * len(days)
        added = [0.0] * len(days)
        errors = [0.0] * len(days)
        rate_sd = [0.0] * len(days)  # the rate's own error, the same sign on every day
        ahead = 0  # open days after today
        for i, day in enumerate(days):
            if inputs.closed_on(day):
                continue
            steps = trend_steps(ahead, inputs.trend_damping)
            ahead += 1
            share = _lead_remaining(lead_share, i) * factor_ahead(season, i)
            if day == inputs.today:
                share *= inputs.today_remaining
            expected = rate_at(rate, steps) * share
            error = math.sqrt(_rate_var_at(rate, steps)) * share
            if expected <= 0.0 and error <= 0.0:
                continue
            arrivals[i] += expected
            errors[i] += error
            for j, q in enumerate(presence_of(day)):
                added[j] += expected * q
                self.mean[j] += expected * q
                self.var[j] += rate.dispersion * expected * q
                rate_sd[j] += error * q
        # A rate estimated too low is too low for every coming day at once: those errors add
        # up in standard deviation, not in variance (each rate's apart: learned apart).
        for j, sd in enumerate(rate_sd):
            self.var[j] += sd * sd
        return arrivals, added, errors
