"""A lock board of a locker stops answering, then answers again (protocol 6, `fault`
`board_offline` / `board_recovered`): its alert is resolved, and the doors it alone put out of
service take parcels and open again, while doors out of service for another reason stay so.

Played at the service layer with the `FakeLocker` of `test_lockers`, as the bridge would.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from relay_ops.db.models import LockerAlert, ParcelEvent
from relay_ops.services import (
    credentials,
    locker_compartments,
    locker_keys,
    locker_registry,
    locker_views,
)
from relay_ops.services.principal import SYSTEM
from tests.integration.test_lockers import LOCKER, FakeLocker, deposit, parcel
from tests.support import World


@pytest.fixture
def fake(world: World) -> FakeLocker:
    locker_registry.register_locker(world.ctx, SYSTEM, LOCKER)
    return FakeLocker(world.ctx, LOCKER["code"])


def site_id(world: World) -> int:
    with world.ctx.db.read() as session:
        return locker_compartments.locker_by_code(session, LOCKER["code"]).id


def doors(world: World) -> dict[int, tuple[str, str | None]]:
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id(world))
    return {c["number"]: (c["state"], c["fault_reason"]) for c in view["compartments"]}


def board_alerts(world: World) -> list[LockerAlert]:
    with world.ctx.db.read() as session:
        found = list(session.scalars(select(LockerAlert).where(
            LockerAlert.kind.in_(("fault_board_offline", "fault_board_recovered",
                                  "door_failed_to_open"))).order_by(LockerAlert.id)))
        session.expunge_all()
        return found


def present_pin(world: World, fake: FakeLocker, number: str) -> list[dict[str, object]]:
    """The resident types the parcel's PIN at the keypad (forwarded to the backend)."""
    with world.ctx.db.read() as session:
        site = locker_compartments.locker_by_code(session, LOCKER["code"])
        credential = credentials.live_credentials(session, parcel(world, number).id)[0]
        code_hash = locker_keys.locker_pin_hash(world.ctx, site, credential)
    fake.commands()
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="pin",
               result="forwarded", code_hash=code_hash, key_id="p1")
    return fake.commands()


def test_a_board_answering_again_resolves_its_alert_and_gives_its_doors_back(
        world: World, fake: FakeLocker, clock: Any) -> None:
    box = deposit(world, fake, site_id(world), "LOCKER000101", size_class="S")
    assert box == 1
    fake.event("fault", code="board_offline", board=1, detail="board 1 did not answer 2 reads")
    fake.event("fault", code="board_offline", board=2, detail="board 2 did not answer 2 reads")
    fake.event("fault", code="board_offline", board=1, detail="board 1 did not answer 2 reads")
    # the resident's PIN: the door's board is silent, the parcel stays inside
    opening = [c for c in present_pin(world, fake, "LOCKER000101")
               if c["name"] == "open_compartment"]
    assert [c["compartment"] for c in opening] == [1]
    fake.event("door_failed_to_open", compartment=1, reason="board_offline", board=1,
               corr_id=opening[0]["corr_id"], credential_id=opening[0]["credential_id"])
    fake.event("door_failed_to_open", compartment=2, reason="board_offline", board=2)
    fake.event("door_failed_to_open", compartment=3, reason="lock_did_not_release")
    locker_registry.set_compartment_service(world.ctx, SYSTEM, site_id(world), 4, in_service=False,
                                    reason="hinge broken")
    before = doors(world)
    assert before[1] == ("out_of_service", "door_failed_to_open: board_offline (board 1)")
    assert before[2] == ("out_of_service", "door_failed_to_open: board_offline (board 2)")
    assert [a.detail for a in board_alerts(world) if a.kind == "fault_board_offline"] == [
        "board 1: board 1 did not answer 2 reads", "board 2: board 2 did not answer 2 reads"]
    assert [c["reason"] for c in present_pin(world, fake, "LOCKER000101")
            if c["name"] == "reject_credential"] == ["out_of_service"]
    fake.commands()

    clock.advance(minutes=7)
    recovered_at = world.ctx.now()
    fake.event("fault", code="board_recovered", board=1, detail="board 1 answers again")

    after = doors(world)
    assert after[1] == ("occupied", None)  # the parcel is still inside, ready
    assert after[2] == before[2] and after[3] == before[3] and after[4] == before[4]
    assert [(c["name"], c["compartment"]) for c in fake.commands()] == [("set_in_service", 1)]
    alerts = {(a.kind, a.compartment, a.detail.split(":")[0] if a.detail else None): a
              for a in board_alerts(world)}
    board_1 = alerts[("fault_board_offline", None, "board 1")]
    assert board_1.resolved_at == recovered_at and board_1.occurrences == 2
    assert board_1.detail.endswith("/ resolved: board 1 answers again")
    assert alerts[("fault_board_offline", None, "board 2")].resolved_at is None
    assert [a.compartment for a in board_alerts(world)
            if a.kind == "door_failed_to_open" and a.resolved_at is None] == [2, 3]
    assert not [a for a in board_alerts(world) if a.kind == "fault_board_recovered"]
    with world.ctx.db.read() as session:
        back = session.scalar(select(ParcelEvent).where(
            ParcelEvent.action == "door_back_in_service"))
        assert back is not None and back.data == {"compartment": 1, "board": 1}

    # the resident tries again with the same PIN: the door opens and the parcel is picked up
    opening = [c for c in present_pin(world, fake, "LOCKER000101")
               if c["name"] == "open_compartment"]
    assert [c["compartment"] for c in opening] == [1]
    fake.event("door_opened", compartment=1, purpose="pickup",
               credential_id=opening[0]["credential_id"])
    fake.closed(1, False)
    assert parcel(world, "LOCKER000101").state == "picked_up"


def test_an_agent_that_does_not_name_the_board_gets_its_doors_back_on_any_recovery(
        world: World, fake: FakeLocker) -> None:
    """An agent older than the `board` field: one locker-wide alert, and every door a silent
    board put out of service is tried again (a door whose board is still silent fails again)."""
    fake.event("fault", code="board_offline", detail="board 3 did not answer 2 status reads")
    fake.event("door_failed_to_open", compartment=5, reason="board_offline")
    fake.event("door_failed_to_open", compartment=6, reason="lock_did_not_release")
    assert doors(world)[5] == ("out_of_service", "door_failed_to_open: board_offline")
    fake.commands()
    fake.event("fault", code="board_recovered", detail="board 3 answers again")
    assert doors(world)[5] == ("free", None)
    assert doors(world)[6][0] == "out_of_service"
    assert [(c["name"], c["compartment"]) for c in fake.commands()] == [("set_in_service", 5)]
    assert [(a.kind, a.resolved_at is not None) for a in board_alerts(world)
            if a.kind == "fault_board_offline"] == [("fault_board_offline", True)]
