"""The outbound lifecycle and which carrier takes a label from a site (domain/outbound.py)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_ops.domain import outbound
from relay_ops.domain.errors import (
    CarrierChoiceNeeded,
    InvalidTransition,
    LabelNotCollectedHere,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import FINAL_STATES, HELD_STATES, Action, State

S10_FR = "RR123456785FR"  # check digit 5
S10_DE = "RR123456785DE"


def test_sent_parcel_path_from_the_counter_to_the_carrier() -> None:
    state = outbound.next_state(State.DROPPED_OFF, Action.ACCEPT_OUTBOUND)
    assert state is State.AWAITING_COLLECTION
    assert outbound.next_state(state, Action.COLLECT) is State.COLLECTED


def test_a_refused_parcel_goes_back_to_its_sender() -> None:
    refused = outbound.next_state(State.AWAITING_COLLECTION, Action.REFUSE)
    assert refused is State.REFUSED
    assert outbound.next_state(refused, Action.HAND_BACK) is State.RETURNED
    with pytest.raises(InvalidTransition):
        outbound.next_state(refused, Action.COLLECT)


def test_every_outbound_held_state_can_be_declared_lost() -> None:
    for state in outbound.HELD:
        assert outbound.next_state(state, Action.DECLARE_MISSING) is State.LOST


def test_a_damaged_parcel_still_goes_with_the_carrier_or_back_to_its_sender() -> None:
    damaged = outbound.next_state(State.AWAITING_COLLECTION, Action.DECLARE_DAMAGED)
    assert damaged is State.DAMAGED
    assert outbound.next_state(damaged, Action.COLLECT) is State.COLLECTED
    assert outbound.next_state(damaged, Action.HAND_BACK) is State.RETURNED


def test_inbound_actions_mean_nothing_to_a_sent_parcel() -> None:
    for action in (Action.CHECK_IN, Action.PICK_UP, Action.EXPIRE, Action.EXTEND):
        for state in outbound.HELD:
            with pytest.raises(InvalidTransition) as err:
                outbound.next_state(state, action)
            assert err.value.extra == {"state": state.value, "action": action.value}


def test_outbound_held_and_final_states_are_the_lifecycle_s() -> None:
    # Occupancy counts lifecycle.HELD_STATES: every outbound parcel on a shelf is in it.
    assert outbound.HELD <= HELD_STATES
    assert outbound.FINAL <= FINAL_STATES
    for state in outbound.FINAL:
        assert outbound.allowed_actions(state) == frozenset()


@given(st.sampled_from(list(State)), st.sampled_from(list(Action)))
def test_next_state_agrees_with_the_table(state: State, action: Action) -> None:
    table = outbound.transitions()
    if (state, action) in table:
        assert outbound.next_state(state, action) is table[(state, action)]
    else:
        with pytest.raises(InvalidTransition):
            outbound.next_state(state, action)


# ---------------------------------------------------------------- label networks


@pytest.mark.parametrize(("spec", "number", "takes"), [
    ("upu-s10", S10_FR, True),
    ("upu-s10", S10_DE, True),
    ("upu-s10:FR", S10_FR, True),
    ("upu-s10:FR", S10_DE, False),
    ("upu-s10", "MR12345678", False),
    ("prefix:MR", "MR12345678", True),
    ("prefix:MR", "CH12345678", False),
    # An S10 number belongs to the postal network even if it starts with the prefix.
    ("prefix:RR", S10_FR, False),
])
def test_a_network_takes_its_labels_only(spec: str, number: str, takes: bool) -> None:
    assert outbound.collects([spec], number) is takes


@pytest.mark.parametrize("spec", ["", "upu", "upu-s10:FRA", "prefix:", "prefix:M-R",
                                  "prefix:ABCDEFGHIJKLM", "regex:.*"])
def test_a_bad_network_spec_is_refused_with_what_a_spec_is(spec: str) -> None:
    with pytest.raises(ValidationFailed, match="upu-s10"):
        outbound.parse_network(spec)


def test_spec_is_normalised() -> None:
    assert outbound.parse_network("prefix:mr").spec == "prefix:MR"
    assert outbound.parse_network("upu-s10").spec == "upu-s10"


SERVING = {"laposte": ["upu-s10"], "mondial": ["prefix:MR"], "chrono": ["prefix:XW"]}


def test_the_one_carrier_that_collects_the_label_takes_it() -> None:
    assert outbound.choose_carrier(S10_FR, SERVING, None) == "laposte"
    assert outbound.choose_carrier("MR12345678", SERVING, None) == "mondial"


def test_a_label_nobody_serving_the_site_collects_is_refused() -> None:
    with pytest.raises(LabelNotCollectedHere, match="no carrier that collects at this site"):
        outbound.choose_carrier("ZZ12345678", SERVING, None)


def test_a_named_carrier_must_serve_the_site_and_collect_the_label() -> None:
    with pytest.raises(LabelNotCollectedHere, match="does not collect at this site") as err:
        outbound.choose_carrier(S10_FR, SERVING, "dhl")
    assert err.value.extra["carriers"] == ["laposte"]
    with pytest.raises(LabelNotCollectedHere, match="does not collect upu-s10 labels"):
        outbound.choose_carrier(S10_FR, SERVING, "mondial")
    assert outbound.choose_carrier(S10_FR, SERVING, "laposte") == "laposte"


def test_two_carriers_for_one_label_need_a_choice() -> None:
    serving = {"laposte": ["upu-s10"], "colissimo": ["upu-s10:FR"]}
    with pytest.raises(CarrierChoiceNeeded) as err:
        outbound.choose_carrier(S10_FR, serving, None)
    assert err.value.extra["carriers"] == ["colissimo", "laposte"]
    assert outbound.choose_carrier(S10_FR, serving, "colissimo") == "colissimo"
    assert outbound.choose_carrier(S10_DE, serving, None) == "laposte"


def test_the_carrier_s_delay_runs_from_the_deposit() -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert outbound.collect_by(at, 48) == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


# ---------------------------------------------------------------- rounds

PARIS = ZoneInfo("Europe/Paris")


def test_round_times_are_hh_mm_sorted_and_few() -> None:
    assert outbound.parse_rounds(["16:00", "10:30", "10:30"]) == ["10:30", "16:00"]
    for bad in (["25:00"], ["9:30"], ["10h30"]):
        with pytest.raises(ValidationFailed):
            outbound.parse_rounds(bad)
    with pytest.raises(ValidationFailed):
        outbound.parse_rounds([f"0{h}:00" for h in range(7)])


def test_a_parcel_waits_for_the_first_round_after_its_deposit() -> None:
    rounds = ["10:30", "16:00"]
    at = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
    assert outbound.round_after(at, rounds, PARIS) == datetime(2026, 12, 1, 10, 30,
                                                                 tzinfo=PARIS)
    # deposited at the round's very time: the van is leaving, the next round takes it
    assert outbound.round_after(at.replace(hour=10, minute=30), rounds, PARIS) == datetime(
        2026, 12, 1, 16, 0, tzinfo=PARIS)
    # after the day's last round: the first one of the next day
    assert outbound.round_after(at.replace(hour=17), rounds, PARIS) == datetime(
        2026, 12, 2, 10, 30, tzinfo=PARIS)
    # in the site's time zone, whatever zone the moment is given in
    assert outbound.round_after(at.astimezone(UTC), rounds, PARIS) == datetime(
        2026, 12, 1, 10, 30, tzinfo=PARIS)
    assert outbound.round_after(at, [], PARIS) is None


def test_a_round_may_run_on_some_weekdays_only() -> None:
    assert outbound.parse_rounds(["tue,thu 14:00", "mon-fri 10:30", "10:30", "thu,tue 14:00"]
                                 ) == ["10:30", "mon,tue,wed,thu,fri 10:30", "tue,thu 14:00"]
    # a range may wrap over the weekend; the seven days are a daily round
    assert outbound.parse_rounds(["fri-mon 09:00", "mon-sun 18:00"]) == [
        "mon,fri,sat,sun 09:00", "18:00"]
    for bad in (["tues 14:00"], ["tue,14:00"], ["tue  14:00"], ["TUE 14:00"], ["tue 24:00"],
                ["tue-"], ["mon-fri"], ["tue 14:00 "], ["tue 14:00\n"], ["\uff14:00"]):
        with pytest.raises(ValidationFailed):
            outbound.parse_rounds(bad)


def test_a_parcel_waits_for_the_next_day_its_carrier_comes() -> None:
    rounds = ["tue,thu 14:00"]  # a van that serves the village twice a week
    tuesday = datetime(2026, 12, 1, 15, 0, tzinfo=PARIS)  # after Tuesday's round
    assert outbound.round_after(tuesday, rounds, PARIS) == datetime(2026, 12, 3, 14, 0,
                                                                     tzinfo=PARIS)
    friday = datetime(2026, 12, 4, 9, 0, tzinfo=PARIS)  # over the weekend: next Tuesday
    assert outbound.round_after(friday, rounds, PARIS) == datetime(2026, 12, 8, 14, 0,
                                                                    tzinfo=PARIS)
    # a daily round and a weekday one: whichever comes first
    both = ["18:00", "mon-fri 10:30"]
    saturday = datetime(2026, 12, 5, 9, 0, tzinfo=PARIS)
    assert outbound.round_after(saturday, both, PARIS) == datetime(2026, 12, 5, 18, 0,
                                                                    tzinfo=PARIS)
    assert outbound.rounds_on(saturday.date(), both) == ["18:00"]
    assert outbound.rounds_on(friday.date(), both) == ["10:30", "18:00"]
