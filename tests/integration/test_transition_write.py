"""A transition written in one statement (services/transition_write.py, PostgreSQL) leaves in
the database what the ORM path leaves: the parcel's changes (those made before the transition
too), its event after any earlier one, its shelf counter, its ``updated_at``. Read back in a
fresh session, on both databases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from relay_ops.db.models import Location, Parcel, ParcelEvent
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history
from relay_ops.services.principal import SYSTEM
from tests.support import World, shelf_counts_agree


def stored(world: World, parcel_id: int) -> Parcel:
    with world.ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        assert parcel is not None
        session.expunge(parcel)
        return parcel


def actions(world: World, parcel_id: int) -> list[str]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(ParcelEvent.action)
                                    .where(ParcelEvent.parcel_id == parcel_id)
                                    .order_by(ParcelEvent.id)))


def held_on(world: World, location_id: int) -> int:
    with world.ctx.db.read() as session:
        return session.scalars(select(Location.held).where(Location.id == location_id)).one()


def test_a_check_in_stores_every_change_with_its_event_and_counter(world: World) -> None:
    world.announce("ACME00000601")
    answer = world.check_in("ACME00000601").json["parcel"]
    parcel = stored(world, answer["id"])
    now: datetime = world.ctx.now()
    # Set before the transition (shelf, deadline, recipient keys), then the state: all written.
    assert parcel.state == "ready_for_pickup"
    assert parcel.location_id is not None and parcel.checked_in_at == now
    assert parcel.holding_deadline is not None
    assert parcel.holding_deadline.isoformat() == answer["holding_deadline"]
    assert parcel.recipient_phone_key and parcel.recipient_email_key
    assert parcel.updated_at == now
    assert actions(world, answer["id"]) == ["announce", "check_in"]
    assert held_on(world, parcel.location_id) == 1
    assert shelf_counts_agree(world.ctx)


def test_a_pickup_stores_the_closed_parcel_with_its_event_and_counter(world: World) -> None:
    ready = world.ready("ACME00000602")
    location_id = stored(world, ready["id"]).location_id
    assert location_id is not None
    assert world.pick_up(code=world.code_of(ready["id"])).status_code == 200
    parcel = stored(world, ready["id"])
    assert parcel.state == "picked_up" and parcel.closed_at == world.ctx.now()
    assert actions(world, ready["id"]) == ["announce", "check_in", "pick_up"]
    assert held_on(world, location_id) == 0


def test_an_unannounced_parcel_keeps_its_events_in_order(world: World) -> None:
    answer = world.check_in("ACME00000603", accept_unannounced=True).json["parcel"]
    assert actions(world, answer["id"]) == ["registered_unannounced", "check_in"]
    assert stored(world, answer["id"]).state == "ready_for_pickup"


def test_an_event_still_pending_in_the_session_is_written_before_the_transition(
        world: World) -> None:
    """The transition's statement is not the ORM's: whatever the session still holds (here
    a recorded fact) is flushed first, so the history keeps the order things happened in."""
    ready = world.ready("ACME00000604")
    now = world.ctx.now()
    with world.ctx.db.transaction() as session:
        parcel = session.get(Parcel, ready["id"], with_for_update=True)
        assert parcel is not None
        history.record(session, parcel, "wrong_code", parcel.state, SYSTEM, now)
        history.apply(session, parcel, Action.PICK_UP, SYSTEM, now)
    assert actions(world, ready["id"])[-2:] == ["wrong_code", "pick_up"]
