"""A locker's replay at the service layer (protocol 6 and 9): a locker that restarted while
offline reports its new boot's `state_snapshot` while its old boot's journal is still being
replayed, and the bridge applies each `(locker, boot)` apart, so the snapshot may come first.
The credential syncs a replayed batch produces."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from relay_ops.db.models import LockerAlert, Parcel, PickupCredential
from relay_ops.services import locker_events, lockers
from relay_ops.services.principal import SYSTEM
from tests.integration.test_lockers import LOCKER, FakeLocker, deposit, parcel
from tests.support import World

Locker = tuple[int, FakeLocker]


@pytest.fixture
def locker(world: World) -> Locker:
    view = lockers.register_locker(world.ctx, SYSTEM, LOCKER)
    return view["id"], FakeLocker(world.ctx, LOCKER["code"])


def pin_id(world: World, number: str) -> str:
    with world.ctx.db.read() as session:
        credential = session.scalar(select(PickupCredential).join(Parcel).where(
            Parcel.tracking_number == number, PickupCredential.holder == "recipient"))
        assert credential is not None
        return lockers.pin_credential_id(credential)


def offline_pickup(world: World, number: str, door: int) -> list[tuple[str, dict[str, Any]]]:
    """What the agent journals for a resident's offline PIN pickup, in order."""
    credential = pin_id(world, number)
    return [
        ("offline_pickup", {"presentation_id": str(uuid.uuid4()), "credential_kind": "pin",
                            "credential_id": credential, "parcel_ref": number,
                            "compartment": door, "verified_at": world.ctx.now().isoformat()}),
        ("door_opened", {"compartment": door, "purpose": "pickup", "credential_id": credential}),
        ("door_closed", {"compartment": door, "occupied": False, "opened_for": "pickup",
                         "credential_id": credential}),
    ]


def snapshot(world: World, fake: FakeLocker, *, unacked: int, acked_seq: int = 0) -> None:
    """Every door closed and empty, as the rebooted locker sees them."""
    doors = [{"number": n, "door": "closed", "occupied": False, "in_service": True}
             for n in range(1, 7)]
    fake.event("state_snapshot", compartments=doors, in_service=True, credential_version=None,
               acked_seq=acked_seq, unacked_events=unacked,
               started_at=world.ctx.now().isoformat(), agent_version="t")


def not_sensed(world: World) -> list[str]:
    with world.ctx.db.read() as session:
        return sorted(session.scalars(
            select(Parcel.tracking_number).join(LockerAlert, LockerAlert.parcel_id == Parcel.id)
            .where(LockerAlert.kind == "parcel_not_sensed")))


def two_parcels_then_a_reboot(world: World, locker: Locker
                              ) -> tuple[FakeLocker, FakeLocker, list[tuple[str, dict]]]:
    """Two parcels deposited online in the old boot; offline, a resident takes the first
    (journaled in the old boot, not yet replayed); the second disappears without any pickup
    (a real alert). The locker restarts: a new boot."""
    site_id, old = locker
    door_a = deposit(world, old, site_id, "REPLAY000001", size_class="S")
    deposit(world, old, site_id, "REPLAY000002", size_class="S")
    offline = offline_pickup(world, "REPLAY000001", door_a)
    return old, FakeLocker(world.ctx, LOCKER["code"]), offline


def requested_snapshots(fake: FakeLocker) -> int:
    return len(fake.commands("request_snapshot"))


def test_a_new_boots_snapshot_waits_for_the_old_boots_replay(
        world: World, locker: Locker) -> None:
    old, new, offline = two_parcels_then_a_reboot(world, locker)
    old.commands()
    # the new boot's snapshot comes first: the old boot still held its 3 offline entries
    snapshot(world, new, unacked=len(offline))
    assert not_sensed(world) == []  # not reconciled against a state the replay will change
    for type_, body in offline:
        old.event(type_, **body)
    assert parcel(world, "REPLAY000001").state == "picked_up"
    assert not_sensed(world) == []
    # the old boot is fully applied: the backend asks for a fresh snapshot, and reconciles it
    assert requested_snapshots(old) == 1
    snapshot(world, new, unacked=0, acked_seq=1)
    assert not_sensed(world) == ["REPLAY000002"]  # the real alert is still raised


def test_a_heartbeat_that_reports_nothing_left_releases_a_waiting_snapshot(
        world: World, locker: Locker) -> None:
    old, new, offline = two_parcels_then_a_reboot(world, locker)
    old.commands()
    (first_type, first_body), *rest = offline
    old.event(first_type, **first_body)  # applied, but its ack never reached the locker
    snapshot(world, new, unacked=len(offline))
    for type_, body in rest:
        old.event(type_, **body)
    assert not_sensed(world) == []
    # whether the old boot is done cannot be told from the counts (one entry was applied
    # before the snapshot was made); the locker's heartbeat says it holds nothing more
    locker_events.heartbeat(world.ctx, LOCKER["code"], new.boot, new.seq,
                            {"uptime_s": 60, "unacked_events": 0, "credential_version": None},
                            world.ctx.now())
    assert requested_snapshots(old) == 1
    snapshot(world, new, unacked=0, acked_seq=1)
    assert not_sensed(world) == ["REPLAY000002"]


def test_a_snapshot_with_nothing_left_to_replay_is_reconciled_at_once(
        world: World, locker: Locker) -> None:
    old, new, offline = two_parcels_then_a_reboot(world, locker)
    for type_, body in offline:
        old.event(type_, **body)
    old.commands()
    snapshot(world, new, unacked=0)
    assert not_sensed(world) == ["REPLAY000002"]
    assert requested_snapshots(old) == 0


def test_a_heartbeat_with_entries_still_held_keeps_the_snapshot_waiting(
        world: World, locker: Locker) -> None:
    old, new, offline = two_parcels_then_a_reboot(world, locker)
    old.commands()
    snapshot(world, new, unacked=len(offline))
    locker_events.heartbeat(world.ctx, LOCKER["code"], new.boot, new.seq,
                            {"uptime_s": 60, "unacked_events": len(offline),
                             "credential_version": None}, world.ctx.now())
    assert requested_snapshots(old) == 0
    assert not_sensed(world) == []
