"""The parcel lifecycle: which action moves a parcel from which state to which state.

It names every state and action (both directions share the parcel's ``state`` column) and
holds the inbound transition table (DESIGN section 2); the outbound one is beside it, in
:mod:`relay_ops.domain.outbound`. Services call :func:`next_state` (through
``history.apply``, which picks the table by the parcel's direction) before they change
anything, so a refused action changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from relay_ops.domain.errors import InvalidTransition


class State(StrEnum):
    ANNOUNCED = "announced"
    READY_FOR_PICKUP = "ready_for_pickup"
    PICKED_UP = "picked_up"
    EXPIRED = "expired"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    MISSING = "missing"
    DAMAGED = "damaged"
    # outbound: returns by residents, producers' shipments
    DROPPED_OFF = "dropped_off"
    AWAITING_COLLECTION = "awaiting_collection"
    COLLECTED = "collected"
    REFUSED = "refused"  # the carrier would not take it: it waits for its sender
    LOST = "lost"  # on the carrier's list, not found at the site
    # local short circuit: a producer deposits an order for a neighbour
    DEPOSITED = "deposited"
    # home delivery (domain/home_delivery.py): a trusted person brings it to the resident
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    # No site had room: the carrier delivers it at home on its own round (docs/overflow.md).
    HOME_BY_CARRIER = "home_by_carrier"


class Action(StrEnum):
    CHECK_IN = "check_in"
    CANCEL = "cancel"
    REROUTE = "reroute"
    PICK_UP = "pick_up"
    EXPIRE = "expire"
    EXTEND = "extend"
    COLLECT = "collect"
    DECLARE_MISSING = "declare_missing"
    DECLARE_DAMAGED = "declare_damaged"
    ACCEPT_OUTBOUND = "accept_outbound"
    REFUSE = "refuse"
    HAND_BACK = "hand_back"
    HAND_TO_COURIER = "hand_to_courier"
    DELIVER = "deliver"
    RETURN_TO_SHELF = "return_to_shelf"
    HOME_BY_CARRIER = "home_by_carrier"


S, A = State, Action

# States in which a parcel physically sits at a site (on a shelf or in a compartment). The
# outbound ones are here too: one shelf holds both flows, so occupancy, the shelf policy and
# the forecast count them (their transitions are in domain/outbound.py).
INBOUND_HELD_STATES: frozenset[State] = frozenset(
    {S.READY_FOR_PICKUP, S.EXPIRED, S.DAMAGED}
)
# A parcel out for home delivery keeps its shelf place for the day: if it is not delivered,
# it comes back to it that evening.
HELD_STATES: frozenset[State] = INBOUND_HELD_STATES | frozenset(
    {S.DROPPED_OFF, S.AWAITING_COLLECTION, S.REFUSED, S.OUT_FOR_DELIVERY}
)
FINAL_STATES: frozenset[State] = frozenset(
    {S.PICKED_UP, S.RETURNED, S.CANCELLED, S.COLLECTED, S.MISSING, S.LOST, S.DELIVERED,
     S.HOME_BY_CARRIER}
)

_TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.ANNOUNCED, A.CHECK_IN): S.READY_FOR_PICKUP,
    (S.ANNOUNCED, A.CANCEL): S.CANCELLED,
    (S.ANNOUNCED, A.REROUTE): S.ANNOUNCED,
    # The site had no room and none within reach: the carrier's own round takes it home; it
    # leaves the network (the carrier's tracking follows it from there).
    (S.ANNOUNCED, A.HOME_BY_CARRIER): S.HOME_BY_CARRIER,
    (S.DEPOSITED, A.CHECK_IN): S.READY_FOR_PICKUP,
    (S.READY_FOR_PICKUP, A.PICK_UP): S.PICKED_UP,
    (S.READY_FOR_PICKUP, A.EXPIRE): S.EXPIRED,
    # The recipient will not have it (wrong item, damaged, unwanted: at the counter, or at
    # the locker having opened its door): it goes back as an expired parcel does, to its
    # carrier (or its producer), the refusal in its history (services/expiry.refuse_delivery).
    (S.READY_FOR_PICKUP, A.REFUSE): S.EXPIRED,
    (S.READY_FOR_PICKUP, A.EXTEND): S.READY_FOR_PICKUP,
    (S.EXPIRED, A.COLLECT): S.RETURNED,
    (S.DAMAGED, A.COLLECT): S.RETURNED,
    # Home delivery: the courier takes it from the shop, the resident's code confirms it at
    # home, or it comes back to its shelf at the end of the day (domain/home_delivery.py).
    (S.READY_FOR_PICKUP, A.HAND_TO_COURIER): S.OUT_FOR_DELIVERY,
    (S.OUT_FOR_DELIVERY, A.DELIVER): S.DELIVERED,
    (S.OUT_FOR_DELIVERY, A.RETURN_TO_SHELF): S.READY_FOR_PICKUP,
    (S.OUT_FOR_DELIVERY, A.DECLARE_MISSING): S.MISSING,
}
for _held in INBOUND_HELD_STATES:
    _TRANSITIONS[(_held, A.DECLARE_MISSING)] = S.MISSING
    if _held is not S.DAMAGED:
        _TRANSITIONS[(_held, A.DECLARE_DAMAGED)] = S.DAMAGED


@dataclass(frozen=True)
class TransitionTable:
    """A lifecycle's (state, action) -> state table and the questions asked of it; inbound
    parcels have one (here), sent parcels another (domain/outbound.py)."""

    table: Mapping[tuple[State, Action], State]
    noun: str  # how a refusal names the parcel: "a parcel", "a sent parcel"

    def next_state(self, current: State | str, action: Action | str) -> State:
        """The state ``action`` leads to from ``current``; :class:`InvalidTransition` if none."""
        state, act = State(current), Action(action)
        try:
            return self.table[(state, act)]
        except KeyError:
            raise InvalidTransition(
                f"{self.noun} that is {state.value} cannot {act.value.replace('_', ' ')}",
                state=state.value,
                action=act.value,
            ) from None

    def allowed_actions(self, current: State | str) -> frozenset[Action]:
        state = State(current)
        return frozenset(action for (src, action) in self.table if src is state)

    def transitions(self) -> dict[tuple[State, Action], State]:
        """A copy of the table, for documentation and property tests."""
        return dict(self.table)


INBOUND = TransitionTable(_TRANSITIONS, "a parcel")
next_state = INBOUND.next_state
allowed_actions = INBOUND.allowed_actions
transitions = INBOUND.transitions
