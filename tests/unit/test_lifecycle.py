import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_ops.domain.errors import InvalidTransition
from relay_ops.domain.lifecycle import (
    FINAL_STATES,
    HELD_STATES,
    INBOUND_HELD_STATES,
    Action,
    State,
    allowed_actions,
    next_state,
    transitions,
)


def test_inbound_path_from_announcement_to_pickup() -> None:
    state = next_state(State.ANNOUNCED, Action.CHECK_IN)
    assert state is State.READY_FOR_PICKUP
    assert next_state(state, Action.PICK_UP) is State.PICKED_UP


def test_expired_parcel_goes_back_to_the_carrier() -> None:
    expired = next_state(State.READY_FOR_PICKUP, Action.EXPIRE)
    assert next_state(expired, Action.COLLECT) is State.RETURNED


def test_a_picked_up_parcel_cannot_be_picked_up_again() -> None:
    with pytest.raises(InvalidTransition) as err:
        next_state(State.PICKED_UP, Action.PICK_UP)
    assert err.value.extra == {"state": "picked_up", "action": "pick_up"}


def test_every_inbound_held_state_can_be_declared_missing() -> None:
    for state in INBOUND_HELD_STATES:
        assert next_state(state, Action.DECLARE_MISSING) is State.MISSING


def test_held_states_are_the_inbound_and_the_outbound_ones() -> None:
    # One shelf holds both flows: occupancy counts HELD_STATES (tests/unit/test_outbound.py
    # holds the outbound table).
    assert {State.DROPPED_OFF, State.AWAITING_COLLECTION, State.REFUSED} <= HELD_STATES
    assert INBOUND_HELD_STATES < HELD_STATES


def test_outbound_states_are_not_in_the_inbound_table() -> None:
    with pytest.raises(InvalidTransition):
        next_state(State.DROPPED_OFF, Action.ACCEPT_OUTBOUND)
    with pytest.raises(InvalidTransition):
        next_state(State.AWAITING_COLLECTION, Action.COLLECT)


def test_short_circuit_path() -> None:
    assert next_state(State.DEPOSITED, Action.CHECK_IN) is State.READY_FOR_PICKUP


def test_final_states_allow_nothing() -> None:
    for state in FINAL_STATES:
        assert allowed_actions(state) == frozenset()


@given(st.sampled_from(list(State)), st.sampled_from(list(Action)))
def test_next_state_agrees_with_the_table(state: State, action: Action) -> None:
    table = transitions()
    if (state, action) in table:
        assert next_state(state, action) is table[(state, action)]
    else:
        with pytest.raises(InvalidTransition):
            next_state(state, action)


def test_a_ready_parcel_refused_by_its_recipient_goes_back_as_an_expired_one() -> None:
    assert next_state(State.READY_FOR_PICKUP, Action.REFUSE) is State.EXPIRED
    assert next_state(State.EXPIRED, Action.COLLECT) is State.RETURNED
    with pytest.raises(InvalidTransition):
        next_state(State.PICKED_UP, Action.REFUSE)  # taken: a return, not a refusal
