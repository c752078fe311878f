"""A locker's replay at the service layer (protocol 6 and 9): a locker that restarted while
offline reports its new boot's `state_snapshot` while its old boot's journal is still being
replayed, and the bridge applies each `(locker, boot)` apart, so the snapshot may come first.
The credential syncs a replayed batch produces."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from relay_ops.db.models import (
    LockerAlert,
    LockerLink,
    OutboxMessage,
    Parcel,
    PickupCredential,
)
from relay_ops.services import locker_events, locker_link_status, locker_registry, locker_sync
from relay_ops.services.principal import SYSTEM
from tests.integration.test_lockers import LOCKER, FakeLocker, deposit, parcel
from tests.support import World

Locker = tuple[int, FakeLocker]


@pytest.fixture
def locker(world: World) -> Locker:
    view = locker_registry.register_locker(world.ctx, SYSTEM, LOCKER)
    return view["id"], FakeLocker(world.ctx, LOCKER["code"])


def pin_id(world: World, number: str) -> str:
    with world.ctx.db.read() as session:
        credential = session.scalar(select(PickupCredential).join(Parcel).where(
            Parcel.tracking_number == number, PickupCredential.holder == "recipient"))
        assert credential is not None
        return locker_sync.pin_credential_id(credential)


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
    locker_link_status.heartbeat(world.ctx, LOCKER["code"], new.boot, new.seq,
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
    locker_link_status.heartbeat(world.ctx, LOCKER["code"], new.boot, new.seq,
                                 {"uptime_s": 60, "unacked_events": len(offline),
                                  "credential_version": None}, world.ctx.now())
    assert requested_snapshots(old) == 0
    assert not_sensed(world) == []


# ---------------------------------------------------------------- one sync per replayed batch


def sync_rows(world: World) -> list[OutboxMessage]:
    with world.ctx.db.read() as session:
        rows = list(session.scalars(select(OutboxMessage).where(
            OutboxMessage.name == locker_sync.COMMAND_SYNC).order_by(OutboxMessage.id)))
        session.expunge_all()
        return rows


def replay_batch(world: World, fake: FakeLocker, events: list[tuple[str, dict[str, Any]]]
                 ) -> locker_events.BatchApplied:
    """As the bridge applies what arrived together: one `apply_events` transaction."""
    batch = []
    for type_, body in events:
        fake.seq += 1
        batch.append(locker_events.LockerEvent(fake.seq, type_, body, world.ctx.now()))
    return locker_events.apply_events(world.ctx, LOCKER["code"], fake.boot, batch)


def three_parcels(world: World, locker: Locker) -> dict[str, int]:
    site_id, fake = locker
    return {number: deposit(world, fake, site_id, number, size_class="S")
            for number in ("REPLAY000011", "REPLAY000012", "REPLAY000013")}


def test_a_replayed_batch_of_pickups_queues_one_full_sync_of_the_final_set(
        world: World, locker: Locker) -> None:
    _, fake = locker
    doors = three_parcels(world, locker)  # the locker went offline before acking their syncs
    before = sync_rows(world)
    pickups = [event for number in ("REPLAY000011", "REPLAY000012")
               for event in offline_pickup(world, number, doors[number])]
    assert replay_batch(world, fake, pickups).applied == 6
    new = sync_rows(world)[len(before):]
    assert len(new) == 1  # not one per pickup, each superseding the last
    body = new[0].payload["body"]
    assert body["full"] is True and body["version"] == before[-1].payload["body"]["version"] + 1
    assert [pin["parcel_ref"] for pin in body["pins"]] == ["REPLAY000013"]
    assert {pin_id(world, "REPLAY000011"), pin_id(world, "REPLAY000012")}.isdisjoint(
        pin["credential_id"] for pin in body["pins"])
    # the locker applies it and says so: the backend knows it holds the final set
    fake.event("sync_ack", version=body["version"], applied=True)
    with world.ctx.db.read() as session:
        link = session.get(LockerLink, locker[0])
        assert link is not None
        assert link.credential_version_held == link.credential_version_sent == body["version"]


def test_a_replayed_batch_on_an_acknowledged_set_queues_one_increment(
        world: World, locker: Locker) -> None:
    _, fake = locker
    doors = three_parcels(world, locker)
    held = sync_rows(world)[-1].payload["body"]["version"]
    fake.event("sync_ack", version=held, applied=True)  # synced before the outage
    pickups = [event for number in ("REPLAY000011", "REPLAY000013")
               for event in offline_pickup(world, number, doors[number])]
    replay_batch(world, fake, pickups)
    [sync] = [row.payload["body"] for row in sync_rows(world)
              if row.payload["body"]["version"] > held]
    assert (sync["full"], sync["base_version"], sync["version"]) == (False, held, held + 1)
    assert sync["pins"] == []
    assert {pin_id(world, "REPLAY000011"), pin_id(world, "REPLAY000013")} <= set(
        sync["revoked_credentials"])
    assert pin_id(world, "REPLAY000012") not in sync["revoked_credentials"]
