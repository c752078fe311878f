"""Locker use cases at the service layer: what the bridge will call, without MQTT.

A `FakeLocker` plays the device's events in order (boot id + seq) and reads the commands the
services wrote to the outbox, as the bridge would publish them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from relay_ops.db.models import Compartment, LockerAlert, OutboxMessage, Parcel, ParcelEvent
from relay_ops.domain import pickup_token
from relay_ops.domain.errors import DomainError
from relay_ops.services import (
    credentials,
    expiry,
    locker_collection,
    locker_commands,
    locker_compartments,
    locker_dropoff,
    locker_events,
    locker_identity,
    locker_keys,
    locker_link_status,
    locker_registry,
    locker_tokens,
    locker_views,
    resident,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.support import World

LOCKER = {"code": "LCK-T1", "name": "Casier de la mairie", "locker_model": "mini-6",
          "address": "Place de la mairie", "postcode": "44440", "city": "Riaillé",
          "latitude": 47.51, "longitude": -1.29}


class FakeLocker:
    def __init__(self, ctx: Ctx, code: str) -> None:
        self.ctx, self.code, self.boot, self.seq = ctx, code, uuid.uuid4().hex, 0
        self.seen: set[int] = set()

    def event(self, type_: str, **body: Any) -> locker_events.Applied:
        self.seq += 1
        return locker_events.apply_event(self.ctx, self.code, self.boot, self.seq, type_, body,
                                         self.ctx.now())

    def commands(self, name: str | None = None) -> list[dict[str, Any]]:
        """Commands published since the last call (as the bridge would)."""
        out = []
        for command in locker_commands.commands_to_send(self.ctx, locker=self.code,
                                                 online_only=False):
            if command.id not in self.seen and (name is None or command.name == name):
                out.append({"name": command.name, **command.body, "corr_id": command.corr_id})
            self.seen.add(command.id)
        return out

    def closed(self, compartment: int, occupied: bool | None) -> locker_events.Applied:
        return self.event("door_closed", compartment=compartment, occupied=occupied)


@pytest.fixture
def locker(world: World) -> tuple[int, FakeLocker]:
    view = locker_registry.register_locker(world.ctx, SYSTEM, LOCKER)
    return view["id"], FakeLocker(world.ctx, LOCKER["code"])


def carrier(world: World) -> Principal:
    return Principal(Role.CARRIER, carrier_id=1)


def announce(world: World, *numbers: str, **item: Any) -> None:
    assert world.announce(*numbers, site=LOCKER["code"], **item).status_code == 201


def parcel(world: World, number: str) -> Parcel:
    with world.ctx.db.read() as session:
        found = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
        assert found is not None
        session.expunge(found)
        return found


def deposit(world: World, fake: FakeLocker, site_id: int, number: str, **item: Any) -> int:
    """A carrier deposits `number`: session, scan, door opens, parcel in, door closed."""
    announce(world, number, **item)
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_dropoff.deposit(world.ctx, carrier(world), session["id"], number)
    box = answer["compartment"]
    fake.event("door_opened", compartment=box, purpose="deposit")
    fake.closed(box, True)
    locker_dropoff.close_session(world.ctx, carrier(world), session["id"])
    return box


def test_registering_a_locker_builds_its_compartments_and_first_sync(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)
    assert [c["size_class"] for c in view["compartments"]] == ["S", "S", "M", "M", "L", "XL"]
    assert view["link"]["online"] is False and view["link"]["credential_version_sent"] == 1
    sync = fake.commands("sync_credentials")
    assert len(sync) == 1 and sync[0]["full"] is True and sync[0]["pin_key"]["key_id"] == "p1"


def test_a_deposit_takes_the_smallest_fitting_door_then_the_parcel_is_ready(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    fake.commands()
    announce(world, "LOCKER000001", dimensions_mm=[150, 300, 200])  # M, any rotation
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_dropoff.deposit(world.ctx, carrier(world), session["id"], "LOCKER000001")
    assert answer["compartment"] == 3 and answer["size_class"] == "M"
    opening = fake.commands("open_compartment")
    assert opening == [{"name": "open_compartment", "purpose": "deposit", "compartment": 3,
                        "parcel_ref": "LOCKER000001", "corr_id": opening[0]["corr_id"]}]
    fake.event("door_opened", compartment=3, purpose="deposit")
    fake.closed(3, True)
    ready = parcel(world, "LOCKER000001")
    assert ready.state == "ready_for_pickup" and ready.holding_deadline is not None
    sync = fake.commands("sync_credentials")
    assert sync and sync[-1]["pins"][0]["parcel_ref"] == "LOCKER000001"
    # the resident's QR code is a token for this locker and door
    token = resident.qr_payload(world.ctx, Principal(Role.RESIDENT, parcel_id=ready.id))
    kid, claims = pickup_token.unverified_claims(token)
    assert (claims.site, claims.compartment, claims.parcel_id) == ("LCK-T1", 3, "LOCKER000001")


def test_a_parcel_that_fits_nowhere_is_refused_with_an_event(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, _ = locker
    announce(world, "LOCKER000002", dimensions_mm=[780, 450, 490])  # only the XL door takes it
    locker_registry.set_compartment_service(world.ctx, SYSTEM, site_id, 6, in_service=False,
                                    reason="hinge broken")
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    with pytest.raises(locker_compartments.ParcelDoesNotFit, match="no free compartment"):
        locker_dropoff.deposit(world.ctx, carrier(world), session["id"], "LOCKER000002")
    with world.ctx.db.read() as db:
        actions = list(db.scalars(select(ParcelEvent.action).join(Parcel).where(
            Parcel.tracking_number == "LOCKER000002")))
    # the door that takes it is only out of service: refused as by a full site, the carrier
    # brings it back (the forecast counts it back on the next round)
    assert actions == ["announce", "check_in_refused"]
    assert parcel(world, "LOCKER000002").state == "announced"


def test_closing_or_timing_out_a_session_releases_its_reservations(
        world: World, locker: tuple[int, FakeLocker], clock: Any) -> None:
    site_id, _ = locker
    announce(world, "LOCKER000003", "LOCKER000004", size_class="S")
    first = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    locker_dropoff.deposit(world.ctx, carrier(world), first["id"], "LOCKER000003")
    locker_dropoff.close_session(world.ctx, carrier(world), first["id"])
    second = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    locker_dropoff.deposit(world.ctx, carrier(world), second["id"], "LOCKER000004")
    clock.advance(seconds=601)
    assert locker_dropoff.expire_stale_reservations(world.ctx) == 1
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)
    assert {c["state"] for c in view["compartments"]} == {"free"}
    assert parcel(world, "LOCKER000004").compartment_id is None
    with pytest.raises(locker_dropoff.SessionClosed):
        locker_dropoff.deposit(world.ctx, carrier(world), second["id"], "LOCKER000004")


def test_qr_and_pin_pickups_open_the_right_door_once(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = deposit(world, fake, site_id, "LOCKER000005", size_class="S")
    ready = parcel(world, "LOCKER000005")
    token = locker_tokens.qr_token(world.ctx, ready.id)
    fake.commands()
    presentation = str(uuid.uuid4())
    fake.event("credential_presented", presentation_id=presentation, kind="qr",
               result="forwarded", token=token)
    opening = fake.commands("open_compartment")
    assert opening[0]["compartment"] == box and opening[0]["presentation_id"] == presentation
    fake.event("door_opened", compartment=box, purpose="pickup",
               credential_id=opening[0]["credential_id"])
    fake.closed(box, False)
    assert parcel(world, "LOCKER000005").state == "picked_up"
    # the same QR code again: refused, no door
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="qr",
               result="forwarded", token=token)
    batch = fake.commands()
    assert [c["reason"] for c in batch if c["name"] == "reject_credential"] == ["already_used"]
    assert [c for c in batch if c["name"] == "open_compartment"] == []

    box = deposit(world, fake, site_id, "LOCKER000006", size_class="S")
    with world.ctx.db.read() as session:
        site = locker_compartments.locker_by_code(session, "LCK-T1")
        credential = credentials.live_credentials(session, parcel(world, "LOCKER000006").id)[0]
        code_hash = locker_keys.locker_pin_hash(world.ctx, site, credential)
    fake.commands()
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="pin",
               result="forwarded", code_hash=code_hash, key_id="p1")
    assert fake.commands("open_compartment")[0]["compartment"] == box


def test_wrong_pins_are_throttled_per_locker(world: World, locker: tuple[int, FakeLocker]
                                             ) -> None:
    _, fake = locker
    fake.commands()
    for _ in range(12):
        fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="pin",
                   result="forwarded", code_hash="0" * 64, key_id="p1")
    reasons = [c["reason"] for c in fake.commands("reject_credential")]
    assert reasons[:10] == ["unknown_code"] * 10 and reasons[10:] == ["locked_out"] * 2


def test_door_faults_leave_the_parcel_ready_and_raise_alerts(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = deposit(world, fake, site_id, "LOCKER000007", size_class="S")
    fake.event("door_failed_to_open", compartment=box, reason="lock_did_not_release")
    assert parcel(world, "LOCKER000007").state == "ready_for_pickup"
    fake.event("door_left_open", compartment=2, open_seconds=125)
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)
    assert view["compartments"][box - 1]["state"] == "out_of_service"
    assert [a["kind"] for a in view["alerts"]] == ["door_failed_to_open", "door_left_open"]
    assert [c["name"] for c in fake.commands("set_out_of_service")] == ["set_out_of_service"]
    # a pickup closing on a parcel still inside: not picked up, an alert
    other = deposit(world, fake, site_id, "LOCKER000008", size_class="S")
    fake.event("door_opened", compartment=other, purpose="pickup")
    fake.closed(other, True)
    assert parcel(world, "LOCKER000008").state == "ready_for_pickup"
    # a deposit door closed on nothing: the parcel stays with the carrier
    announce(world, "LOCKER000009", size_class="S")
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_dropoff.deposit(world.ctx, carrier(world), session["id"], "LOCKER000009")
    fake.event("door_opened", compartment=answer["compartment"], purpose="deposit")
    fake.closed(answer["compartment"], False)
    assert parcel(world, "LOCKER000009").state == "announced"


def test_events_apply_once_in_order(world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    boot = "boot-x"

    def apply(seq: int, n: int) -> str:
        return locker_events.apply_event(world.ctx, "LCK-T1", boot, seq, "door_left_open",
                                         {"compartment": n, "open_seconds": 1},
                                         world.ctx.now()).status

    assert apply(1, 1) == "applied"
    assert apply(1, 1) == "duplicate"
    assert apply(3, 3) == "gap"
    assert apply(2, 2) == "applied" and apply(3, 3) == "applied"
    with world.ctx.db.read() as session:
        alerts = list(session.scalars(select(LockerAlert.compartment).order_by(LockerAlert.id)))
    assert alerts == [1, 2, 3]


def test_a_snapshot_after_a_reboot_reconciles_a_door_that_closed_meanwhile(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    announce(world, "LOCKER000010", size_class="S")
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    box = locker_dropoff.deposit(world.ctx, carrier(world), session["id"],
                                 "LOCKER000010")["compartment"]
    fake.event("door_opened", compartment=box, purpose="deposit")
    rebooted = FakeLocker(world.ctx, "LCK-T1")  # new boot id, seq from 1
    doors = [{"number": n, "door": "closed", "occupied": n == box, "in_service": True}
             for n in range(1, 7)]
    rebooted.event("state_snapshot", compartments=doors, in_service=True, credential_version=1,
                   acked_seq=0, unacked_events=0, started_at=world.ctx.now().isoformat(),
                   agent_version="t")
    assert parcel(world, "LOCKER000010").state == "ready_for_pickup"


def test_expired_parcels_are_collected_one_door_at_a_time(
        world: World, locker: tuple[int, FakeLocker], clock: Any) -> None:
    site_id, fake = locker
    first = deposit(world, fake, site_id, "LOCKER000011", size_class="S")
    second = deposit(world, fake, site_id, "LOCKER000012", size_class="S")
    clock.advance(days=5)
    assert len(expiry.expire_overdue(world.ctx)) == 2
    fake.commands()
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_collection.start_collection(world.ctx, carrier(world), session["id"])
    assert answer["to_collect"] == ["LOCKER000011", "LOCKER000012"]
    assert [c["compartment"] for c in fake.commands("open_compartment")] == [first]
    fake.event("door_opened", compartment=first, purpose="collection")
    fake.closed(first, False)
    assert [c["compartment"] for c in fake.commands("open_compartment")] == [second]
    fake.event("door_opened", compartment=second, purpose="collection")
    fake.closed(second, False)
    assert parcel(world, "LOCKER000011").state == "returned"
    assert parcel(world, "LOCKER000012").state == "returned"


def test_twenty_concurrent_drop_offs_for_ten_free_doors(world: World, ctx: Ctx) -> None:
    model = {"compartments": [{"size_class": "S", "count": 10}]}
    settings = world.ctx.settings.locker
    object.__setattr__(settings, "models", {**settings.models, "ten": lockers_slots(ctx, model)})
    # 20 km from the shops: the ten parcels left over are refused, not sent to a shop nearby
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {**LOCKER, "code": "LCK-RACE",
                                                          "latitude": 47.69,
                                                          "locker_model": "ten"})["id"]
    numbers = [f"RACELOCK{i:04d}" for i in range(20)]
    assert world.announce(*numbers, site="LCK-RACE", size_class="S").status_code == 201
    sessions = [locker_dropoff.open_session(world.ctx, carrier(world), site_id)["id"]
                for _ in range(20)]
    barrier = threading.Barrier(20)
    results: list[str] = []
    lock = threading.Lock()

    def drop(i: int) -> None:
        barrier.wait()
        try:
            outcome = str(locker_dropoff.deposit(world.ctx, carrier(world), sessions[i],
                                          numbers[i])["compartment"])
        except DomainError as error:
            outcome = error.slug
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=drop, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    counts = Counter(results)
    assert counts["parcel-does-not-fit"] == 10
    doors = [r for r in results if r.isdigit()]
    assert sorted(doors, key=int) == [str(n) for n in range(1, 11)]  # never a door twice
    with world.ctx.db.read() as session:
        reserved = session.scalars(select(Compartment.state).where(
            Compartment.site_id == site_id))
        assert set(reserved) == {"reserved"}
        opens = session.scalars(select(OutboxMessage).where(
            OutboxMessage.name == "open_compartment", OutboxMessage.target == "LCK-RACE"))
        assert len(list(opens)) == 10


def lockers_slots(ctx: Ctx, model: dict[str, Any]) -> Any:
    from relay_ops.services.context import _model_slots

    return _model_slots("ten", model, ctx.settings.size_classes)


def test_a_gap_the_locker_cannot_fill_is_skipped_with_an_alert(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    def apply(seq: int) -> locker_events.Applied:
        return locker_events.apply_event(world.ctx, "LCK-T1", "old-boot", seq, "door_left_open",
                                         {"compartment": 1, "open_seconds": 1}, world.ctx.now())

    assert apply(5).gap == (1, 4)
    assert locker_events.skip_gap(world.ctx, "LCK-T1", "old-boot", 4) == 4
    assert apply(5).status == "applied"
    kinds = [a["kind"] for a in locker_views.locker_view(world.ctx, SYSTEM, locker[0])["alerts"]]
    assert kinds == ["journal_gap_skipped", "door_left_open"]


def test_credential_syncs_are_versioned_and_incremental_once_the_locker_caught_up(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    first = fake.commands("sync_credentials")[0]
    fake.event("sync_ack", version=1, applied=True)
    deposit(world, fake, site_id, "LOCKER000013", size_class="S")
    second = fake.commands("sync_credentials")[0]
    assert (second["full"], second["base_version"], second["version"]) == (False, 1, 2)
    assert [p_["parcel_ref"] for p_ in second["pins"]] == ["LOCKER000013"]
    # measured for a weak link: one new PIN costs a few hundred bytes, not the whole set
    size = len(json.dumps({k: v for k, v in second.items() if k not in ("name", "corr_id")}))
    assert size < 600, size
    # a locker that lost its set refuses the increment; it then gets a full sync
    fake.event("state_snapshot", compartments=[], in_service=True, credential_version=0,
               acked_seq=0, unacked_events=0, started_at=world.ctx.now().isoformat(),
               agent_version="t")
    assert fake.commands("sync_credentials") == []  # the increment is still awaited
    fake.event("cmd_result", corr_id=second["corr_id"], command_msg_id=str(uuid.uuid4()),
               command_type="sync_credentials", status="failed", reason="version_mismatch")
    third = fake.commands("sync_credentials")[0]
    assert third["full"] is True and third["version"] == 3 and len(third["pins"]) == 1
    assert first["version"] == 1


def ready_then_offline(world: World, fake: FakeLocker, site_id: int, number: str
                       ) -> datetime | None:
    """A parcel ready in an online locker that then goes offline; its deadline before."""
    locker_link_status.status_changed(world.ctx, "LCK-T1", "online", world.ctx.now())
    deposit(world, fake, site_id, number, size_class="S")
    before = parcel(world, number).holding_deadline
    locker_link_status.status_changed(world.ctx, "LCK-T1", "offline", world.ctx.now())
    return before


def test_an_outage_is_credited_to_the_parcels_deadlines(
        world: World, locker: tuple[int, FakeLocker], clock: Any) -> None:
    site_id, fake = locker
    before = ready_then_offline(world, fake, site_id, "LOCKER000014")
    clock.advance(hours=5)
    locker_link_status.status_changed(world.ctx, "LCK-T1", "online", world.ctx.now())
    after = parcel(world, "LOCKER000014").holding_deadline
    assert before is not None and after is not None
    assert after - before == timedelta(hours=5)
    assert parcel(world, "LOCKER000014").extended is False  # the one extension is still there


def test_a_heartbeat_while_marked_offline_ends_the_outage_as_its_lost_status_would(
        world: World, locker: tuple[int, FakeLocker], clock: Any) -> None:
    site_id, fake = locker
    before = ready_then_offline(world, fake, site_id, "LOCKER000015")
    clock.advance(hours=2)
    # its "online" was lost at the broker; its heartbeat says it is there
    outcome = locker_link_status.heartbeat(world.ctx, "LCK-T1", fake.boot, fake.seq,
                                           {"unacked_events": 0}, world.ctx.now())
    assert outcome.came_online is True
    assert locker_views.locker_view(world.ctx, SYSTEM, site_id)["link"]["online"] is True
    after = parcel(world, "LOCKER000015").holding_deadline
    assert before is not None and after is not None and after - before == timedelta(hours=2)
    again = locker_link_status.heartbeat(world.ctx, "LCK-T1", fake.boot, fake.seq,
                                         {"unacked_events": 0}, world.ctx.now())
    assert again.came_online is False


def test_the_locker_api_for_operators_and_carriers(world: World) -> None:
    created = world.operator.post("/lockers", json=LOCKER)
    assert created.status_code == 201, created.json
    site_id = created.json["id"]
    assert world.carrier.post("/lockers", json=LOCKER).status_code == 403
    door = world.operator.put(f"/lockers/{site_id}/compartments/2/service",
                              json={"in_service": False, "reason": "hinge"})
    assert door.status_code == 200 and door.json["state"] == "out_of_service"
    assert world.announce("LOCKERAPI001", site="LCK-T1", size_class="S").status_code == 201
    session = world.carrier.post(f"/lockers/{site_id}/sessions")
    assert session.status_code == 201
    deposit = world.carrier.post(f"/locker-sessions/{session.json['id']}/deposits",
                                 json={"tracking_number": "LOCKERAPI001"})
    assert deposit.status_code == 200 and deposit.json["compartment"] == 1  # 2 is out
    other = world.other_carrier.post(f"/locker-sessions/{session.json['id']}/deposits",
                                     json={"tracking_number": "LOCKERAPI001"})
    assert other.status_code == 404
    closed = world.carrier.post(f"/locker-sessions/{session.json['id']}/close")
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    view = world.operator.get(f"/lockers/{site_id}").json
    assert [c["state"] for c in view["compartments"][:2]] == ["free", "out_of_service"]
    assert "alerts" not in world.carrier.get(f"/lockers/{site_id}").json


def test_a_thousand_snapshots_missing_the_same_parcel_raise_one_counted_alert(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    """Issue 14: one open alert per (locker, cause, door, parcel), counted, until resolved."""
    site_id, fake = locker
    box = deposit(world, fake, site_id, "LOCKER000099", size_class="S")
    doors = [{"number": n, "door": "closed", "occupied": False, "in_service": True}
             for n in range(1, 7)]
    snapshot = {"compartments": doors, "in_service": True, "credential_version": 1,
                "acked_seq": 0, "unacked_events": 0,
                "started_at": world.ctx.now().isoformat(), "agent_version": "t"}
    events = [locker_events.LockerEvent(fake.seq + n, "state_snapshot", snapshot, world.ctx.now())
              for n in range(1, 1001)]
    assert locker_events.apply_events(world.ctx, LOCKER["code"], fake.boot, events).applied == 1000
    alerts = locker_views.locker_view(world.ctx, SYSTEM, site_id)["alerts"]
    assert [(a["kind"], a["compartment"], a["occurrences"]) for a in alerts] == [
        ("parcel_not_sensed", box, 1000)]
    locker_registry.resolve_alert(world.ctx, SYSTEM, alerts[0]["id"])
    fake.seq += 1000
    fake.event("state_snapshot", **snapshot)  # still missing after it was looked at: a new one
    again = locker_views.locker_view(world.ctx, SYSTEM, site_id)["alerts"]
    assert [(a["kind"], a["occurrences"]) for a in again] == [("parcel_not_sensed", 1)]
    assert again[0]["id"] != alerts[0]["id"]


def test_clock_skew_is_read_from_heartbeats_not_from_replayed_events(
        world: World, locker: tuple[int, FakeLocker], clock: Any) -> None:
    """Issue 14: a snapshot replayed 100 s late made a locker on the backend's own clock look
    101.7 s off, while a locker really 45 s off raised no `clock_drift`."""
    site_id, fake = locker
    made = world.ctx.now()
    clock.advance(seconds=100)  # the snapshot reaches the backend late, from the journal
    doors = [{"number": n, "door": "closed", "occupied": False, "in_service": True}
             for n in range(1, 7)]
    fake.seq += 1
    locker_events.apply_event(world.ctx, "LCK-T1", fake.boot, fake.seq, "state_snapshot", {
        "compartments": doors, "in_service": True, "credential_version": 1, "acked_seq": 0,
        "unacked_events": 0, "started_at": made.isoformat(), "agent_version": "t"}, made)
    locker_link_status.heartbeat(world.ctx, "LCK-T1", fake.boot, fake.seq, {"unacked_events": 0},
                                 world.ctx.now())
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)
    assert view["link"]["clock_skew_s"] == 0 and view["alerts"] == []
    behind = world.ctx.now() - timedelta(seconds=45)
    for _ in range(3):
        locker_link_status.heartbeat(world.ctx, "LCK-T1", fake.boot, fake.seq,
                                     {"unacked_events": 0}, behind)
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)
    assert view["link"]["clock_skew_s"] == 45
    assert [(a["kind"], a["occurrences"]) for a in view["alerts"]] == [("clock_drift", 3)]


def test_a_qr_code_opens_its_own_parcels_door_when_two_carriers_share_its_number(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    """Numbers are unique per carrier: the token names the number, its credential the
    parcel (docs/decisions/0007-tracking-numbers-per-carrier.md)."""
    site_id, fake = locker
    deposit(world, fake, site_id, "LOCKER000090", size_class="S")
    other = Principal(Role.CARRIER, carrier_id=2)
    assert world.other_carrier.post("/manifests", json={"reference": "B", "parcels": [{
        "tracking_number": "LOCKER000090", "site": LOCKER["code"], "size_class": "S",
        "recipient": {"name": "Bea Durand", "phone": "+33698000001"}}]}).status_code == 201
    session = locker_dropoff.open_session(world.ctx, other, site_id)
    box = locker_dropoff.deposit(world.ctx, other, session["id"], "LOCKER000090")["compartment"]
    fake.event("door_opened", compartment=box, purpose="deposit")
    fake.closed(box, True)
    locker_dropoff.close_session(world.ctx, other, session["id"])
    with world.ctx.db.read() as db:
        others = db.scalar(select(Parcel).where(Parcel.tracking_number == "LOCKER000090",
                                                Parcel.carrier_id == 2))
        assert others is not None and others.state == "ready_for_pickup"
        others_id = others.id
    fake.commands()
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="qr",
               result="forwarded", token=locker_tokens.qr_token(world.ctx, others_id))
    opening = fake.commands("open_compartment")
    assert [o["compartment"] for o in opening] == [box]


def test_a_door_command_gets_its_counter_in_the_transaction_of_the_event_that_asked(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    """Between a QR scan and its door, one transaction: the `open_compartment` the scan
    produced is claimed with its signing counter as the scan is applied (the bridge takes no
    other), and the counter is reserved on the locker's link, past every earlier one."""
    site_id, fake = locker
    deposit(world, fake, site_id, "LOCKER000077", size_class="S")
    token = locker_tokens.qr_token(world.ctx, parcel(world, "LOCKER000077").id)
    fake.commands()
    locker_link_status.status_changed(world.ctx, "LCK-T1", "online", world.ctx.now())
    before = locker_identity.take_counters(world.ctx, "LCK-T1", 1)
    commits: list[object] = []

    def committed(connection: object) -> None:
        commits.append(connection)

    event.listen(world.ctx.db.engine, "commit", committed)
    try:
        fake.seq += 1
        result = locker_events.apply_events(world.ctx, "LCK-T1", fake.boot, [
            locker_events.LockerEvent(fake.seq, "credential_presented", {
                "presentation_id": str(uuid.uuid4()), "kind": "qr", "result": "forwarded",
                "token": token}, world.ctx.now())], claim_commands=True)
    finally:
        event.remove(world.ctx.db.engine, "commit", committed)
    assert len(commits) == 1
    assert [(c.name, c.ctr) for c in result.commands] == [("open_compartment", before + 1)]
    assert locker_identity.take_counters(world.ctx, "LCK-T1", 1) == before + 2
    assert fake.commands() == []  # claimed (marked sent): the poller does not send it again
