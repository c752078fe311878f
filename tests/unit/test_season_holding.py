"""Adaptive holding (the look-ahead rule, the floor, the earlier reminder) and season
capacity (temporary shelves' dates, extra places per period): the pure rules."""

from __future__ import annotations

import math
from datetime import date, timedelta

import pytest

from relay_ops.domain.errors import PeriodOver, ValidationFailed
from relay_ops.domain.holding import AdaptiveHolding, holding_days, reminder_hours
from relay_ops.domain.season import (
    MAX_PERIOD_DAYS,
    MAX_PLACES,
    DayNeed,
    Outlook,
    Shortfall,
    check_temporary_shelf,
    extra_places,
    in_service,
    share_overflow,
    shortfall,
    storage_needs,
)

RULES = AdaptiveHolding.from_config(
    {}, {"threshold": 0.9, "days": {"shop": 6, "locker": 2}, "look_ahead": True,
         "reminder_before_hours": {"shop": 96, "locker": 24}},
    {"shop": 4, "locker": 2},
)
DAY = date(2026, 12, 10)


def test_a_day_at_risk_within_the_standard_period_shortens_it_and_brings_the_reminder_forward(
) -> None:
    decision = holding_days("shop", 10, DAY, 0.5, RULES, risk_day=date(2026, 12, 14))
    assert (decision.days, decision.rule) == (6, "forecast")
    assert decision.risk_day == date(2026, 12, 14)
    assert decision.reminder_before_hours == 96
    assert decision.shortened


def test_a_day_at_risk_beyond_the_standard_period_or_before_check_in_changes_nothing() -> None:
    later = holding_days("shop", 10, DAY, 0.5, RULES, risk_day=date(2026, 12, 21))
    assert (later.days, later.rule, later.reminder_before_hours) == (10, "standard", None)
    edge = holding_days("shop", 10, DAY, 0.5, RULES, risk_day=date(2026, 12, 20))
    assert edge.rule == "forecast"
    before = holding_days("shop", 10, DAY, 0.5, RULES, risk_day=date(2026, 12, 9))
    assert before.rule == "standard"
    assert not holding_days("shop", 10, DAY, None, RULES).shortened


def test_look_ahead_off_keeps_the_standard_period() -> None:
    rules = AdaptiveHolding.from_config({}, {"threshold": 0.9, "days": {"shop": 6}})
    decision = holding_days("shop", 10, DAY, 0.5, rules, risk_day=date(2026, 12, 11))
    assert (decision.days, decision.rule) == (10, "standard")


def test_todays_load_wins_over_the_look_ahead_and_says_so() -> None:
    decision = holding_days("shop", 10, DAY, 0.95, RULES, risk_day=date(2026, 12, 12))
    assert (decision.days, decision.rule, decision.risk_day) == (6, "load", None)
    assert decision.reminder_before_hours == 96


def test_the_floor_holds_whatever_the_rules_ask() -> None:
    harsh = AdaptiveHolding.from_config(
        {"shop": [{"from": "12-01", "to": "12-24", "days": 2}]},
        {"threshold": 0.9, "days": {"shop": 1, "locker": 1}, "look_ahead": True,
         "reminder_before_hours": {"shop": 200}},
        {"shop": 4, "locker": 2},
    )
    overflow = holding_days("shop", 10, DAY, 0.99, harsh)
    assert (overflow.days, overflow.rule) == (4, "load")
    # The reminder comes at most (days - 1) days before the deadline: a day after check-in.
    assert overflow.reminder_before_hours == 72
    assert holding_days("shop", 10, DAY, 0.1, harsh).days == 4  # the season's 2 days
    assert holding_days("locker", 3, DAY, 0.99, harsh).days == 2
    # ...but never above the standard period.
    assert holding_days("locker", 1, DAY, 0.99, harsh).days == 1


def test_a_floor_below_one_day_is_refused_when_the_settings_load() -> None:
    with pytest.raises(ValueError):
        AdaptiveHolding.from_config({}, {}, {"shop": 0})


def test_the_earlier_reminder_never_falls_on_the_check_in_day() -> None:
    assert reminder_hours("shop", 6, RULES) == 96
    assert reminder_hours("shop", 4, RULES) == 72
    assert reminder_hours("locker", 2, RULES) == 24
    assert reminder_hours("locker", 1, RULES) is None  # no room for an earlier one
    assert reminder_hours("unknown", 5, RULES) is None


def test_a_temporary_shelf_counts_only_within_its_dates() -> None:
    first, last = date(2026, 12, 1), date(2026, 12, 24)
    assert not in_service(first, last, date(2026, 11, 30))
    assert in_service(first, last, first)
    assert in_service(first, last, last)
    assert not in_service(first, last, date(2026, 12, 25))
    assert in_service(None, None, date(1999, 1, 1))


@pytest.mark.parametrize(("first", "last", "places"), [
    (date(2026, 12, 24), date(2026, 12, 1), 10),  # reversed
    (date(2026, 12, 1), date(2026, 12, 1) + timedelta(
        days=MAX_PERIOD_DAYS), 10),  # longer than a season
    (date(2026, 12, 1), date(2026, 12, 24), 0),
    (date(2026, 12, 1), date(2026, 12, 24), MAX_PLACES + 1),
])
def test_a_bad_temporary_shelf_is_refused(first: date, last: date, places: int) -> None:
    with pytest.raises(ValidationFailed):
        check_temporary_shelf(first, last, places, today=date(2026, 12, 5))


def test_a_period_already_over_is_refused_as_a_business_rule() -> None:
    """Not an invalid request (422): the same body was valid until the period ended."""
    with pytest.raises(PeriodOver) as refused:
        check_temporary_shelf(date(2026, 11, 1), date(2026, 11, 30), 10,
                              today=date(2026, 12, 5))
    assert refused.value.status == 409 and not isinstance(refused.value, ValidationFailed)


def test_a_fair_temporary_shelf_passes() -> None:
    check_temporary_shelf(date(2026, 12, 1), date(2026, 12, 24), 40, today=date(2026, 12, 5))


def test_extra_places_per_period_take_each_day_out_of_risk() -> None:
    days = [DayNeed(date(2026, 12, d), high, cap) for d, high, cap in [
        (10, 18, 20), (11, 23, 20), (12, 27, 20), (13, 21, 20), (14, 20, 20),
        (15, 19, 20), (16, 25, 22),
    ]]
    periods = extra_places(days)
    assert [(p.first.day, p.last.day, p.places) for p in periods] == [(11, 13, 7), (16, 16, 3)]
    assert periods[0].per_day == ((date(2026, 12, 11), 3), (date(2026, 12, 12), 7),
                                  (date(2026, 12, 13), 1))
    # With the recommended places added on each period's days, no day is at risk any more.
    added = {d: p.places for p in periods for d, _ in p.per_day}
    assert all(n.high <= n.capacity + added.get(n.day, 0) for n in days)


def test_no_overflow_no_recommendation_and_gaps_split_periods() -> None:
    assert extra_places([DayNeed(date(2026, 12, 1), 5, 20)]) == []
    assert extra_places([]) == []
    split = extra_places([DayNeed(date(2026, 12, 1), 30, 20), DayNeed(date(2026, 12, 3), 25, 20)])
    assert [(p.first.day, p.places) for p in split] == [(1, 10), (3, 5)]


def test_a_shops_overflow_is_split_evenly_between_the_storage_sites_it_reaches() -> None:
    d1, d2 = date(2026, 12, 2), date(2026, 12, 3)
    reach = {("bourg", d1): ["salle", "loin"], ("bourg", d2): ["salle"],
             ("voisin", d1): ["salle"], ("voisin", d2): []}
    shares = share_overflow(
        {"bourg": {d1: Shortfall(3, 4), d2: Shortfall(4, 1)},
         "voisin": {d1: Shortfall(2, 1), d2: Shortfall(5, 0)}},
        lambda shop, day: reach[(shop, day)])
    # half of bourg's to each room: half the mean, a quarter of the variance
    assert shares.to_storage == {"salle": {d1: Shortfall(1.5 + 2, 1 + 1), d2: Shortfall(4, 1)},
                                 "loin": {d1: Shortfall(1.5, 1)}}
    assert shares.unserved == {"voisin": {d2: Shortfall(5, 0)}}  # nothing within reach


def test_no_shortfall_asks_nothing_of_any_storage_site() -> None:
    d1 = date(2026, 12, 2)
    shares = share_overflow({"bourg": {d1: Shortfall()}}, lambda shop, day: ["salle"])
    assert shares.to_storage == {} and shares.unserved == {}


def test_the_shortfall_is_the_forecasts_tail_beyond_the_places() -> None:
    # certain (no spread): what is over, or nothing
    assert shortfall(21, 21, 15, 1.645) == Shortfall(6, 0)
    assert shortfall(9, 9, 15, 1.645) == Shortfall(0, 0)
    # a mean at the capacity, one standard deviation: E[max(0, X)] = φ(0) = 0.399 of a
    # standard normal, and E[max(0, X)²] = 1/2
    at = shortfall(15, 15 + 1.645, 15, 1.645)
    assert math.isclose(at.mean, 1 / math.sqrt(2 * math.pi), rel_tol=1e-9)
    assert math.isclose(at.var, 0.5 - 1 / (2 * math.pi), rel_tol=1e-9)
    # far over: the gap, with the whole spread; far under: nothing left
    over = shortfall(40, 40 + 1.645 * 3, 15, 1.645)
    assert math.isclose(over.mean, 25, rel_tol=1e-9) and math.isclose(over.var, 9, rel_tol=1e-6)
    assert shortfall(5, 5 + 1.645, 15, 1.645) == Shortfall()  # 10 sd under: none at all
    assert shortfall(12.5, 14, 15, 1.645) == Shortfall()  # 2.7 sd under: 0.0013, negligible
    assert Shortfall(0.3, 0.0).places(1.645) == 0 and Shortfall(0.5, 0.0).places(0.0) == 1


def test_a_storage_sites_days_take_its_share_beside_its_own_at_the_mean_or_the_band() -> None:
    d1, d2, d3 = (date(2026, 12, 2) + timedelta(days=i) for i in range(3))
    own = [Outlook(d1, 1, 1, 3), Outlook(d2, 2, 2, 3), Outlook(d3, 0, 0, 3)]
    shares = {d1: Shortfall(1.5, 0), d2: Shortfall(2.0, 4.0)}
    expected = storage_needs(own, shares, 0.0)
    assert [(n.high, n.missing) for n in expected] == [(3, 0), (4, 1), (0, 0)]
    assert [(p.first, p.places) for p in extra_places(expected)] == [(d2, 1)]
    upper = storage_needs(own, shares, 1.645)
    # d2: 4 expected and a spread of 2 (its own certain): 4 + 1.645 · 2 = 7.29 → 7 places
    assert [(n.high, n.missing) for n in upper] == [(3, 0), (7, 4), (0, 0)]


def test_independent_shops_need_less_room_together_than_their_upper_bounds_added() -> None:
    """Ten shops each 2 over on average with a spread of 3: at the band's quantile the room
    needs the sum of the means plus 1.645 · √10 · 3, not ten times each one's quantile."""
    day = date(2026, 12, 2)
    one = Shortfall(2.0, 9.0)
    shares = share_overflow({i: {day: one} for i in range(10)}, lambda shop, d: ["salle"])
    [need] = storage_needs([Outlook(day, 0, 0, 0)], shares.to_storage["salle"], 1.645)
    assert need.high == round(20 + 1.645 * math.sqrt(90))  # 35.6: 36
    assert need.high < 10 * one.places(1.645)  # 10 × 7 = 70
