"""The season's shape, declared by the operator: how much demand each day brings relative to
an ordinary day (1.0), network-wide (docs/forecast.md, "The season's shape").

A rate learned from a site's last weeks cannot see a season's rise before it comes: on the
territory replay the forecasts a week ahead fell short by about a third through the December
ramp, with the rise carried by a wide band instead of by the mean. A network knows its season
from its own past years (or its carriers' peak forecasts). Declared as a factor per day, the
forecast learns the site's rate on counts divided by their day's factor (the site's ordinary
demand) and multiplies each coming day's rate by that day's factor.

Pure Python, like ``domain/forecast.py``; the service layer reads the declared days
(``services/demand_index.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from relay_ops.domain.errors import ValidationFailed

ORDINARY = 1.0  # a day nothing was declared for
MIN_FACTOR, MAX_FACTOR = 0.05, 10.0  # a factor beyond these is a typing error, not a season


def check_factor(factor: float) -> float:
    """A declared day's factor, refused when it cannot be a season's."""
    if not math.isfinite(factor) or not MIN_FACTOR <= factor <= MAX_FACTOR:
        raise ValidationFailed(
            f"a day's demand factor is between {MIN_FACTOR} and {MAX_FACTOR} "
            "(1.0: an ordinary day)",
            field="factor",
        )
    return factor


@dataclass(frozen=True)
class DemandIndex:
    """The declared factor of each day; every other day is an ordinary one."""

    factors: Mapping[date, float] = field(default_factory=dict)

    def on(self, day: date) -> float:
        return self.factors.get(day, ORDINARY)

    def ordinary(self, counted: Sequence[tuple[date, float]]) -> list[float]:
        """Counts per day as an ordinary day would have brought them (divided by the day's
        factor): what a site's rate is learned from."""
        return [count / self.on(day) for day, count in counted]

    def ahead(self, today: date, horizon: int) -> tuple[float, ...]:
        """The factor of today and each of the ``horizon`` days after (``SiteInputs``);
        empty when none is declared, which the model reads as ordinary days."""
        days = [today + timedelta(days=i) for i in range(horizon + 1)]
        if not any(day in self.factors for day in days):
            return ()
        return tuple(self.on(day) for day in days)


def factor_ahead(factors: Sequence[float], i: int) -> float:
    """Day ``i``'s factor in ``SiteInputs.demand_index`` (none declared: ordinary)."""
    return factors[i] if i < len(factors) else ORDINARY
