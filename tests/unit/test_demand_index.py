"""The season's shape declared to the forecast (``domain/demand_index.py``)."""

import math
from dataclasses import replace
from datetime import date, timedelta

import pytest

from relay_ops.domain.demand_index import DemandIndex, check_factor
from relay_ops.domain.errors import ValidationFailed
from relay_ops.domain.forecast import SiteInputs, forecast, learn_arrival_rate

TUESDAY = date(2026, 12, 1)


def test_a_uniform_season_is_the_rate_times_its_factor() -> None:
    """Every coming day at twice an ordinary day's demand: the forecast of a site whose
    ordinary rate is 20 is that of a rate of 40 known as well (its error doubled too), down
    to the full days (30 places) where the van's backlog and the rate's drift count."""
    ordinary = SiteInputs(today=TUESDAY, capacity=30, baseline=20.0, rate_var=(4.0, 0.0, 0.0),
                          hazards=(0.5,), rate_drift=0.05)
    doubled = forecast(replace(ordinary, demand_index=(2.0,) * 8))
    assert all(d.demand_factor == 2.0 for d in doubled)  # the answer says so, day by day
    as_ordinary_days = [replace(d, demand_factor=1.0) for d in doubled]
    assert as_ordinary_days == forecast(replace(ordinary, baseline=40.0,
                                                rate_var=(16.0, 0.0, 0.0)))
    assert as_ordinary_days != forecast(ordinary)


def test_each_day_gets_its_own_factor() -> None:
    inputs = SiteInputs(today=TUESDAY, capacity=1000, baseline=20.0)
    season = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.5, 3.0)
    days = forecast(replace(inputs, demand_index=season))
    assert [d.arrivals for d in days] == [20.0 * f for f in season]
    assert days[5].predicted == forecast(inputs)[5].predicted  # the days before: unchanged


def test_the_rate_is_learned_on_an_ordinary_days_counts() -> None:
    """Counts that doubled because the season did are an ordinary level, not a trend."""
    days = [TUESDAY - timedelta(days=10 - i) for i in range(10)]
    season = DemandIndex({day: 1.0 + 0.1 * i for i, day in enumerate(days)})
    counts = [(day, 20.0 * season.on(day)) for day in days]
    rate = learn_arrival_rate(season.ordinary(counts))
    assert math.isclose(rate.level, 20.0) and abs(rate.trend) < 1e-9
    assert learn_arrival_rate([c for _, c in counts]).trend > 1.5  # as a line: a ramp


def test_days_never_declared_are_ordinary() -> None:
    season = DemandIndex({TUESDAY + timedelta(days=3): 2.5})
    assert season.on(TUESDAY) == 1.0
    assert season.ahead(TUESDAY, 7) == (1.0, 1.0, 1.0, 2.5, 1.0, 1.0, 1.0, 1.0)
    assert season.ahead(TUESDAY + timedelta(days=4), 7) == ()  # none ahead: ordinary
    assert season.ordinary([(TUESDAY, 4), (TUESDAY + timedelta(days=3), 5)]) == [4.0, 2.0]


@pytest.mark.parametrize("factor", [0.0, -1.0, 0.04, 10.5, math.inf, math.nan])
def test_a_factor_no_season_has_is_refused(factor: float) -> None:
    with pytest.raises(ValidationFailed):
        check_factor(factor)


@pytest.mark.parametrize("factor", [0.05, 0.5, 1.0, 2.3, 10.0])
def test_a_seasons_factor_is_accepted(factor: float) -> None:
    assert check_factor(factor) == factor
