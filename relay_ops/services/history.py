"""Moving a parcel through its lifecycle: the one place a state changes and an event is written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from relay_ops.db import bulk
from relay_ops.db.models import Location, Parcel, ParcelEvent
from relay_ops.domain import outbound
from relay_ops.domain.lifecycle import FINAL_STATES, HELD_STATES, Action, State, next_state
from relay_ops.services import transition_write
from relay_ops.services.principal import Principal

# A shop with no free place turned an announced parcel away at check-in: it stays announced,
# with the carrier, who brings it back (the forecast counts on it for the next open day).
CHECK_IN_REFUSED = "check_in_refused"
# A parcel's attempts at a site (demand: what came, let in or not) and the events that end
# its stay there; the forecast learns from the first of each (services/forecast_learning.py).
ATTEMPTS = ("check_in", CHECK_IN_REFUSED)
ENDINGS = ("pick_up", "expire", "refuse", "declare_missing", "declare_damaged")
ANNOUNCE = "announce"


def apply(
    session: Session,
    parcel: Parcel,
    action: Action,
    actor: Principal,
    at: datetime,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Check ``action`` against the parcel's lifecycle (inbound, or outbound for a parcel
    sent from the site), change the state, and record the event; a parcel that comes onto
    its shelf location or leaves it counts there (``Location.held``).

    On PostgreSQL the parcel's changes (these and any the caller made before), the event
    and the shelf counter go in one statement (``transition_write``); elsewhere, as three."""
    before = parcel.state
    table = outbound.next_state if parcel.direction == outbound.DIRECTION else next_state
    after = table(before, action)
    parcel.state = after.value
    if after in FINAL_STATES:
        parcel.closed_at = at
    change = (after in HELD_STATES) - (State(before) in HELD_STATES)
    shelf = parcel.location_id if change else None
    keep_firsts(parcel, action.value, at)
    event = _event_row(parcel, action.value, before, actor, at, reason, data)
    if transition_write.write(session, parcel, event, shelf, change):
        return
    session.add(ParcelEvent(**event))
    if shelf is not None:
        count_on_shelf(session, shelf, change)


def keep_firsts(parcel: Parcel, action: str, at: datetime) -> None:
    """The parcel's firsts on its row (``Parcel.first_attempt_at``...), set with the event that
    makes them: written by the same statement as the parcel's other changes (on PostgreSQL,
    ``transition_write``'s one statement), so they always say what the events say. The first
    attempt keeps its site: a parcel turned away here and rerouted is this site's demand."""
    if action in ATTEMPTS and parcel.first_attempt_at is None:
        parcel.first_attempt_at, parcel.first_attempt_site_id = at, parcel.site_id
    if action == ATTEMPTS[0] and parcel.first_check_in_at is None:
        parcel.first_check_in_at = at
    if action == ANNOUNCE and parcel.announced_at is None:
        parcel.announced_at = at
    if action in ENDINGS and parcel.ended_at is None:
        parcel.ended_at, parcel.ending = at, action


def count_on_shelf(session: Session, location_id: int, change: int) -> None:
    """A parcel came onto a shelf location (+1) or left it (-1): ``Location.held``, the
    counter the shelf policy reads. :func:`apply` calls it when a transition moves a parcel
    into or out of a held state; a parcel registered already held (a sent parcel, dropped
    off) calls it when it is given its place.

    After the parcel's event (flushed first by this statement's autoflush): the event's
    foreign key takes the site's key-share lock before the location row is locked, the order
    a check-in takes them in (site, then location), so the two never deadlock."""
    session.execute(update(Location).where(Location.id == location_id)
                    .values(held=Location.held + change)
                    .execution_options(synchronize_session=False))


def record(
    session: Session,
    parcel: Parcel,
    action: str,
    from_state: str | None,
    actor: Principal,
    at: datetime,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> ParcelEvent:
    """Record something that happened to a parcel (a fact like a wrong code; a transition
    goes through :func:`apply`)."""
    keep_firsts(parcel, action, at)
    event = ParcelEvent(**_event_row(parcel, action, from_state, actor, at, reason, data))
    session.add(event)
    return event


def _event_row(
    parcel: Parcel, action: str, from_state: str | None, actor: Principal, at: datetime,
    reason: str | None, data: dict[str, Any] | None,
) -> dict[str, Any]:
    return {"parcel_id": parcel.id, "at": at, "action": action, "from_state": from_state,
            "to_state": parcel.state, "actor_kind": actor.role.value,
            "actor_id": actor.actor_id, "site_id": parcel.site_id, "reason": reason,
            "data": data or {}}


def record_many(
    session: Session,
    parcels: Sequence[Parcel],
    action: str,
    actor: Principal,
    at: datetime,
    data: Callable[[Parcel], dict[str, Any]],
) -> None:
    """:func:`record` for many parcels entering the history at once (a manifest's 5,000):
    one statement (see ``db.bulk``), with no ORM objects and no ids read back, since nothing
    in the request refers to these events by id. The parcels are written already: their
    firsts (:func:`keep_firsts`) were set before they were, by the caller."""
    bulk.insert_rows(session, ParcelEvent, [
        _event_row(parcel, action, None, actor, at, None, data(parcel)) for parcel in parcels
    ])


def is_state(parcel: Parcel, *states: State) -> bool:
    return parcel.state in {s.value for s in states}
