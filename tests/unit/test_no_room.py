"""The no-room policy's pure rules: which policy applies, well-formed steps, home delivery by
contract, the day a held parcel is expected; storage sites' seasons."""

from dataclasses import dataclass
from datetime import date

import pytest

from relay_ops.domain import no_room as rules
from relay_ops.domain.errors import ValidationFailed
from relay_ops.domain.site_kinds import checked_season, has_shelves, in_season, season_of


@dataclass(frozen=True)
class Policy:
    name: str
    scope: rules.Scope


def test_a_carriers_own_policy_beats_the_networks_and_a_site_beats_an_area() -> None:
    everywhere = Policy("all", rules.Scope(None, None, None))
    town = Policy("town", rules.Scope(None, None, "town"))
    site = Policy("site", rules.Scope(None, 7, None))
    carrier = Policy("carrier", rules.Scope(3, None, None))
    policies = [everywhere, town, site, carrier]
    assert rules.applicable(policies, 3, 7, "town") is carrier
    assert rules.applicable(policies, 4, 7, "town") is site
    assert rules.applicable(policies, 4, 8, "town") is town
    assert rules.applicable(policies, 4, 8, "countryside") is everywhere
    assert rules.applicable([town], 4, 8, "countryside") is None
    assert rules.applicable([Policy("other", rules.Scope(5, None, None))], 4, 8, "town") is None


def test_each_scope_has_its_own_key() -> None:
    keys = {rules.Scope(c, s, a).key() for c in (None, 1) for s, a in
            ((None, None), (2, None), (None, "town"), (None, "countryside"))}
    assert len(keys) == 8


@pytest.mark.parametrize("steps", [[], ["hold", "hold"], ["storage", "fly"]])
def test_bad_steps_are_refused(steps: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        rules.checked_steps(steps)


def test_good_steps_keep_their_order() -> None:
    assert rules.checked_steps(["home", "storage", "hold"]) == ["home", "storage", "hold"]


def test_a_scope_names_one_site_or_one_known_area() -> None:
    with pytest.raises(ValidationFailed):
        rules.checked_scope(rules.Scope(None, 1, "town"))
    with pytest.raises(ValidationFailed):
        rules.checked_scope(rules.Scope(None, None, "moon"))


def test_home_delivery_follows_the_contracts_size_classes() -> None:
    assert rules.home_allowed([], None) and rules.home_allowed([], "XL")
    assert rules.home_allowed(["S", "M"], "S")
    assert not rules.home_allowed(["S", "M"], "L")
    assert not rules.home_allowed(["S"], None)  # an unknown size is not assumed small


@dataclass(frozen=True)
class Day:
    day: date
    closed: bool = False
    at_risk: bool = False


def test_a_held_parcel_is_expected_the_first_open_day_with_room_after_its_own() -> None:
    days = [Day(date(2026, 12, 2)), Day(date(2026, 12, 3), at_risk=True),
            Day(date(2026, 12, 4), closed=True), None, Day(date(2026, 12, 6))]
    assert rules.first_day_with_room(days, after=date(2026, 12, 2)) == date(2026, 12, 6)
    assert rules.first_day_with_room(days[:4], after=date(2026, 12, 2)) is None


def test_storage_sites_have_shelves_and_a_season() -> None:
    assert has_shelves("shop") and has_shelves("storage") and not has_shelves("locker")
    assert in_season(None, None, date(2026, 1, 1))
    assert in_season(date(2026, 12, 1), date(2026, 12, 31), date(2026, 12, 31))
    assert not in_season(date(2026, 12, 1), None, date(2026, 11, 30))
    assert not in_season(None, date(2026, 12, 31), date(2027, 1, 1))
    checked_season("storage", date(2026, 12, 1), date(2026, 12, 1))
    with pytest.raises(ValidationFailed):
        checked_season("storage", date(2026, 12, 2), date(2026, 12, 1))
    with pytest.raises(ValidationFailed):
        checked_season("shop", date(2026, 12, 1), None)
    assert season_of("storage", {"from": "2026-12-01", "to": None}) == (date(2026, 12, 1), None)
    assert season_of("shop", None) == (None, None)
    with pytest.raises(ValidationFailed, match="not a day"):
        season_of("storage", {"from": "soon"})
