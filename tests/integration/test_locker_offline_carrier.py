"""Carriers at an offline locker (issue 6, protocol 7 and 9.5), at the service layer: doors
reserved in advance for announced parcels, collection reservations for expired ones, both
synced with the carrier's keyed code; the locker's offline deposits and collections replayed
once, at their `verified_at`; conflicts resolved by what physically happened."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from firmware_bridge.agent.credentials import OfflineVerifier, Refusal
from firmware_bridge.protocol import SyncCredentials, keyed_code_hash
from relay_ops.db.models import (
    Compartment,
    LockerAlert,
    Notification,
    Parcel,
    ParcelEvent,
    RerouteProposal,
)
from relay_ops.services import (
    expiry,
    locker_collection,
    locker_compartments,
    locker_dropoff,
    locker_events,
    locker_keys,
    locker_registry,
    locker_sync,
    reroute,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.integration.test_lockers import (
    LOCKER,
    FakeLocker,
    announce,
    carrier,
    deposit,
    lockers_slots,
    parcel,
)
from tests.support import World

Locker = tuple[int, FakeLocker]


def today(world: World) -> str:
    return world.ctx.now().date().isoformat()


@pytest.fixture
def locker(world: World) -> Locker:
    view = locker_registry.register_locker(world.ctx, SYSTEM, LOCKER)
    return view["id"], FakeLocker(world.ctx, LOCKER["code"])


def syncs(fake: FakeLocker) -> list[dict[str, Any]]:
    """The syncs published since the last call, acknowledged by the locker (so the next ones
    are incremental, as on a live link)."""
    published = fake.commands("sync_credentials")
    for sync in published:
        fake.event("sync_ack", version=sync["version"], applied=True)
        fake.event("cmd_result", corr_id=sync["corr_id"], command_msg_id=str(uuid.uuid4()),
                   command_type="sync_credentials", status="done")
    return published


def code_hash(world: World, carrier_id: int = 1) -> str:
    with world.ctx.db.read() as session:
        site = locker_compartments.locker_by_code(session, LOCKER["code"])
        return keyed_code_hash(locker_keys.pin_key(world.ctx, site.code),
                               locker_keys.carrier_code(world.ctx, site, carrier_id))


def actions(world: World, number: str) -> list[str]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(ParcelEvent.action).where(
            ParcelEvent.parcel_id == parcel(world, number).id).order_by(ParcelEvent.id)))


def alerts(world: World) -> list[str]:
    with world.ctx.db.read() as session:
        return sorted(session.scalars(select(LockerAlert.kind)))


def box_state(world: World, site_id: int, number: int) -> str:
    with world.ctx.db.read() as session:
        box = locker_compartments.compartment(session, site_id, number)
        assert box is not None
        return box.state


def offline_use(fake: FakeLocker, kind: str, reservation: dict[str, Any], at: datetime,
                *, occupied: bool) -> None:
    """What the agent journals for a carrier's offline use, in order."""
    n = reservation["compartment"]
    fake.event(f"offline_{kind}", reservation_id=reservation["reservation_id"], compartment=n,
               parcel_ref=reservation["parcel_ref"], verified_at=at.isoformat())
    fake.event("door_opened", compartment=n, purpose=kind,
               credential_id=reservation["reservation_id"])
    fake.event("door_closed", compartment=n, occupied=occupied, opened_for=kind,
               credential_id=reservation["reservation_id"])


def test_parcels_due_soon_get_a_door_in_advance_synced_with_the_carriers_code(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    syncs(fake)
    announce(world, "ADVANCE00001", size_class="S", expected_date=today(world))
    announce(world, "ADVANCE00002", size_class="S")  # no expected day: nothing in advance
    later = (clock.now + timedelta(days=3)).date().isoformat()
    announce(world, "ADVANCE00003", size_class="S", expected_date=later)
    [sync] = syncs(fake)
    assert sync["full"] is False and sync["base_version"] == 1
    [reservation] = sync["reservations"]
    assert reservation["purpose"] == "deposit" and reservation["parcel_ref"] == "ADVANCE00001"
    assert reservation["code_hash"] == code_hash(world)
    assert box_state(world, site_id, reservation["compartment"]) == "reserved"
    assert parcel(world, "ADVANCE00002").compartment_id is None
    assert parcel(world, "ADVANCE00003").compartment_id is None
    assert actions(world, "ADVANCE00001") == ["announce", "compartment_reserved"]

    # two days on, the third parcel is due; the first's reservation has lapsed
    clock.advance(days=2, hours=1)
    assert locker_dropoff.expire_stale_reservations(world.ctx) == 1
    [sync] = syncs(fake)
    assert [r["parcel_ref"] for r in sync["reservations"]] == ["ADVANCE00003"]
    assert sync["revoked_credentials"] == [reservation["reservation_id"]]
    assert parcel(world, "ADVANCE00001").compartment_id is None
    assert actions(world, "ADVANCE00001")[-1] == "reservation_released"
    # a full sync carries what is live, validated by the protocol's own model
    fake.event("state_snapshot", compartments=[], in_service=True, credential_version=None,
               acked_seq=0, unacked_events=0, started_at=world.ctx.now().isoformat(),
               agent_version="t")
    [full] = syncs(fake)
    model = SyncCredentials.model_validate({k: v for k, v in full.items()
                                            if k not in ("name", "corr_id")})
    assert [r.parcel_ref for r in model.reservations] == ["ADVANCE00003"]


def test_advance_reservations_are_off_when_configured(world: World, locker: Locker) -> None:
    object.__setattr__(world.ctx.settings.locker, "advance_reservation_days", -1)
    try:
        announce(world, "ADVANCE00009", size_class="S", expected_date=today(world))
        assert parcel(world, "ADVANCE00009").compartment_id is None
    finally:
        object.__setattr__(world.ctx.settings.locker, "advance_reservation_days", 1)


def test_the_online_drop_off_uses_the_door_reserved_in_advance(
        world: World, locker: Locker) -> None:
    site_id, fake = locker
    announce(world, "ADVANCE00004", size_class="S", expected_date=today(world))
    reserved = parcel(world, "ADVANCE00004").compartment_id
    syncs(fake)
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_dropoff.deposit(world.ctx, carrier(world), session["id"], "ADVANCE00004")
    with world.ctx.db.read() as db:
        box = db.get(Compartment, reserved)
        assert box is not None and answer["compartment"] == box.number
        reservation_id = locker_sync.deposit_reservation_id(parcel(world, "ADVANCE00004"), box)
    fake.event("door_opened", compartment=answer["compartment"], purpose="deposit")
    fake.closed(answer["compartment"], True)
    assert parcel(world, "ADVANCE00004").state == "ready_for_pickup"
    [sync] = syncs(fake)
    assert reservation_id in sync["revoked_credentials"] and len(sync["pins"]) == 1


def test_an_offline_deposit_is_replayed_once_at_its_verified_time(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    syncs(fake)
    announce(world, "OFFDEPOSIT01", size_class="S", expected_date=today(world))
    [sync] = syncs(fake)
    [reservation] = sync["reservations"]
    verified_at = clock.now
    clock.advance(hours=3)  # the locker was offline; the backend hears of it now
    offline_use(fake, "deposit", reservation, verified_at, occupied=True)
    found = parcel(world, "OFFDEPOSIT01")
    assert found.state == "ready_for_pickup" and found.checked_in_at == verified_at
    with world.ctx.db.read() as session:
        check_in = session.scalar(select(ParcelEvent).where(
            ParcelEvent.parcel_id == found.id, ParcelEvent.action == "check_in"))
        assert check_in is not None and check_in.data["offline"] is True
        assert (check_in.actor_kind, check_in.at) == ("carrier", verified_at)
        owed = list(session.scalars(select(Notification.kind).where(
            Notification.parcel_id == found.id)))
    assert set(owed) == {"ready"}  # one per channel, owed now: at reconciliation
    [sync] = syncs(fake)  # the PIN is added, the used reservation forgotten
    assert [p["parcel_ref"] for p in sync["pins"]] == ["OFFDEPOSIT01"]
    assert sync["revoked_credentials"] == [reservation["reservation_id"]]
    assert box_state(world, site_id, reservation["compartment"]) == "occupied"
    # the locker resends its journal: nothing happens twice
    before = actions(world, "OFFDEPOSIT01")
    for seq in (fake.seq - 2, fake.seq - 1, fake.seq):
        again = locker_events.apply_event(world.ctx, LOCKER["code"], fake.boot, seq,
                                          "door_closed", {"compartment": 1, "occupied": True},
                                          world.ctx.now())
        assert again.status == "duplicate"
    assert actions(world, "OFFDEPOSIT01") == before
    assert before.count("check_in") == 1 and alerts(world) == []


def test_an_offline_collection_of_an_expired_parcel(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    box = deposit(world, fake, site_id, "OFFCOLLECT01", size_class="S")
    syncs(fake)
    clock.advance(days=5)
    assert len(expiry.expire_overdue(world.ctx)) == 1
    [sync] = syncs(fake)  # the dead PIN goes, the collection reservation comes
    [reservation] = sync["reservations"]
    assert (reservation["purpose"], reservation["compartment"]) == ("collection", box)
    assert reservation["code_hash"] == code_hash(world)
    assert any(ref.startswith("pin-") for ref in sync["revoked_credentials"])
    verified_at = clock.now
    clock.advance(minutes=40)
    offline_use(fake, "collection", reservation, verified_at, occupied=False)
    found = parcel(world, "OFFCOLLECT01")
    assert found.state == "returned" and found.compartment_id is None
    with world.ctx.db.read() as session:
        collect = session.scalar(select(ParcelEvent).where(
            ParcelEvent.parcel_id == found.id, ParcelEvent.action == "collect"))
        assert collect is not None and collect.at == verified_at and collect.data["offline"]
    [sync] = syncs(fake)
    assert sync["revoked_credentials"] == [reservation["reservation_id"]]
    assert box_state(world, site_id, box) == "free" and alerts(world) == []


def test_a_deposit_into_a_door_released_meanwhile_is_followed_with_an_alert(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    announce(world, "OFFDEPOSIT02", size_class="S", expected_date=today(world))
    [reservation] = [r for s in syncs(fake) for r in s.get("reservations", [])]
    clock.advance(days=2, hours=1)
    # the backend released it, the locker not yet
    locker_dropoff.expire_stale_reservations(world.ctx)
    assert parcel(world, "OFFDEPOSIT02").compartment_id is None
    offline_use(fake, "deposit", reservation, clock.now - timedelta(hours=1), occupied=True)
    assert parcel(world, "OFFDEPOSIT02").state == "ready_for_pickup"
    assert box_state(world, site_id, reservation["compartment"]) == "occupied"
    assert alerts(world) == ["offline_deposit_reconciled"]


def test_a_parcel_rerouted_meanwhile_but_deposited_offline_quarantines_its_door(
        world: World, locker: Locker) -> None:
    site_id, fake = locker
    locker_registry.register_locker(world.ctx, SYSTEM, {**LOCKER, "code": "LCK-T2",
                                                "latitude": 47.52, "longitude": -1.28})
    announce(world, "OFFDEPOSIT03", size_class="S", expected_date=today(world))
    [reservation] = [r for s in syncs(fake) for r in s.get("reservations", [])]
    with world.ctx.db.transaction() as session:
        moving = locker_compartments.locker_by_code(session, "LCK-T2")
        found = session.scalar(select(Parcel).where(Parcel.tracking_number == "OFFDEPOSIT03"))
        assert found is not None
        proposal = RerouteProposal(parcel_id=found.id, from_site_id=site_id, options=[],
                                   reason="test", day=world.ctx.now().date(),
                                   status="automatic")
        session.add(proposal)
        session.flush()
        reroute.move(world.ctx, session, found, moving, 1.0, proposal, SYSTEM)
    [sync] = syncs(fake)
    assert sync["revoked_credentials"] == [reservation["reservation_id"]]
    offline_use(fake, "deposit", reservation, world.ctx.now(), occupied=True)
    assert parcel(world, "OFFDEPOSIT03").state == "announced"
    assert box_state(world, site_id, reservation["compartment"]) == "out_of_service"
    assert alerts(world) == ["offline_deposit_conflict"]
    assert [c["compartment"] for c in fake.commands("set_out_of_service")] == [
        reservation["compartment"]]


def test_a_parcel_collected_online_meanwhile_is_an_alert_not_a_second_return(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    box = deposit(world, fake, site_id, "OFFCOLLECT02", size_class="S")
    clock.advance(days=5)
    expiry.expire_overdue(world.ctx)
    [reservation] = [r for s in syncs(fake) for r in s.get("reservations", [])]
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    locker_collection.start_collection(world.ctx, carrier(world), session["id"])
    fake.event("door_opened", compartment=box, purpose="collection")
    fake.closed(box, False)
    assert parcel(world, "OFFCOLLECT02").state == "returned"
    offline_use(fake, "collection", reservation, world.ctx.now(), occupied=False)
    assert actions(world, "OFFCOLLECT02").count("collect") == 1
    assert alerts(world) == ["offline_collection_conflict"]


def test_each_carrier_reads_its_own_code_only(world: World, locker: Locker) -> None:
    site_id, _fake = locker
    mine = world.carrier.get(f"/lockers/{site_id}/carrier-code")
    theirs = world.other_carrier.get(f"/lockers/{site_id}/carrier-code")
    assert mine.status_code == theirs.status_code == 200
    assert len(mine.json["code"]) == 8 and mine.json["code"].isdigit()
    assert mine.json["code"] != theirs.json["code"]
    assert world.operator.get(f"/lockers/{site_id}/carrier-code").status_code == 403
    assert world.carrier.get(f"/lockers/{world.shop_id}/carrier-code").status_code == 404
    with world.ctx.db.read() as session:
        other_locker = locker_compartments.locker_by_code(session, LOCKER["code"])
        assert locker_keys.carrier_code(world.ctx, other_locker, 1) == mine.json["code"]


def test_sync_bytes_for_thirty_reservations(world: World, clock: Any) -> None:
    """Measured for the protocol document: a full sync for a locker with 30 reservations."""
    model = {"compartments": [{"size_class": "S", "count": 30}]}
    settings = world.ctx.settings.locker
    object.__setattr__(settings, "models", {**settings.models,
                                            "thirty": lockers_slots(world.ctx, model)})
    locker_registry.register_locker(world.ctx, SYSTEM, {**LOCKER, "code": "LCK-30",
                                                "locker_model": "thirty"})
    fake = FakeLocker(world.ctx, "LCK-30")
    syncs(fake)  # the locker holds its first set: what follows is an increment
    numbers = [f"THIRTY{i:06d}" for i in range(30)]
    assert world.announce(*numbers, site="LCK-30", size_class="S",
                          expected_date=today(world)).status_code == 201
    [incremental] = syncs(fake)
    assert incremental["full"] is False and len(incremental["reservations"]) == 30
    fake.event("state_snapshot", compartments=[], in_service=True, credential_version=None,
               acked_seq=0, unacked_events=0, started_at=world.ctx.now().isoformat(),
               agent_version="t")
    [full] = syncs(fake)
    assert full["full"] is True and len(full["reservations"]) == 30
    size = {name: len(json.dumps({k: v for k, v in sync.items()
                                  if k not in ("name", "corr_id")}, separators=(",", ":")))
            for name, sync in (("incremental", incremental), ("full", full))}
    print(f"sync bytes, 30 reservations: {size}")
    # ~200 bytes a reservation (a 64-hex hash is most of it): a few kB on a weak link
    assert size["incremental"] < 30 * 260 and size["full"] < 30 * 260 + 600, size


def test_a_parcel_declared_damaged_in_a_locker_can_be_collected_offline(
        world: World, locker: Locker) -> None:
    site_id, fake = locker
    box = deposit(world, fake, site_id, "OFFDAMAGED01", size_class="S")
    syncs(fake)
    operator = Principal(Role.OPERATOR, user_id=1)
    expiry.declare(world.ctx, operator, parcel(world, "OFFDAMAGED01").id, "damaged", "wet box")
    [sync] = syncs(fake)
    [reservation] = sync["reservations"]
    assert (reservation["purpose"], reservation["compartment"]) == ("collection", box)
    offline_use(fake, "collection", reservation, world.ctx.now(), occupied=False)
    assert parcel(world, "OFFDAMAGED01").state == "returned" and alerts(world) == []


def test_a_carrier_code_rotated_opens_nothing_once_the_locker_has_the_sync(
        world: World, locker: Locker, clock: Any) -> None:
    site_id, fake = locker
    tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
    announce(world, "LOCKCODE0001", size_class="S", expected_date=tomorrow)  # reserved ahead
    old = world.carrier.get(f"/lockers/{site_id}/carrier-code").json["code"]
    theirs = world.other_carrier.get(f"/lockers/{site_id}/carrier-code").json["code"]
    syncs(fake)
    rotated = world.carrier.post(f"/lockers/{site_id}/carrier-code/rotate")
    assert rotated.status_code == 200, rotated.json
    new = rotated.json["code"]
    assert new != old and len(new) == 8 and new.isdigit()
    assert world.carrier.get(f"/lockers/{site_id}/carrier-code").json["code"] == new
    assert world.other_carrier.get(f"/lockers/{site_id}/carrier-code").json["code"] == theirs
    # the locker gets every reservation again, under the new code, in one full sync
    [sync] = syncs(fake)
    assert sync["full"] is True
    model = SyncCredentials.model_validate({k: v for k, v in sync.items()
                                            if k not in ("name", "corr_id")})
    # the sync names the PIN key; the locker holds it from its bundle (never on the wire)
    assert model.pin_key is not None and model.pin_key.key is None
    held = model.model_copy(update={"pin_key": model.pin_key.model_copy(
        update={"key": locker_keys.pin_key(world.ctx, LOCKER["code"])})})
    verifier = OfflineVerifier(held, LOCKER["code"])
    now = clock.now.timestamp()
    refused = verifier.carrier_reservations(old, now, 60)
    assert isinstance(refused, Refusal) and refused.reason == "unknown_code"
    opened = verifier.carrier_reservations(new, now, 60)
    assert not isinstance(opened, Refusal)
    assert [r.parcel_ref for r in opened] == ["LOCKCODE0001"]
    # a second rotation gives yet another code; an operator or another locker's id cannot
    again = world.carrier.post(f"/lockers/{site_id}/carrier-code/rotate").json["code"]
    assert again not in (old, new)
    assert world.operator.post(f"/lockers/{site_id}/carrier-code/rotate").status_code == 403
    assert world.carrier.post(f"/lockers/{world.shop_id}/carrier-code/rotate").status_code == 404
