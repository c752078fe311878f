"""Parcels for one recipient at a locker share a door when they fit together in it, and one
code (docs/forecast.md, "Parcels grouped at a locker")."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import Compartment, LockerAlert, ParcelEvent, PickupCredential
from relay_ops.domain import pickup_token
from relay_ops.services import (
    credentials,
    expiry,
    locker_collection,
    locker_compartments,
    locker_dropoff,
    locker_keys,
    locker_reservations,
    locker_sync,
    locker_tokens,
    locker_views,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.integration.test_lockers import LOCKER, FakeLocker, carrier, locker, parcel
from tests.support import World

__all__ = ["locker"]  # the fixture, used by name

JEANNE = {"name": "Jeanne Martin", "phone": "+33612345678", "email": "jeanne@example.org"}
PAUL = {"name": "Paul Durand", "phone": "+33698765432", "email": "paul@example.org"}
FLAT = [30, 200, 300]  # two stack in an S door (80 mm high), three do not


def announce(world: World, number: str, recipient: dict[str, Any], *, api: Any = None,
             **item: Any) -> None:
    body = {"reference": f"R-{number}", "parcels": [
        {"tracking_number": number, "site": LOCKER["code"], "recipient": recipient, **item}]}
    response = (api or world.carrier).post("/manifests", json=body)
    assert response.status_code == 201, response.json


def drop(world: World, fake: FakeLocker, site_id: int, number: str, *,
         who: Principal | None = None, occupied: bool = True) -> int:
    """The carrier scans `number` at the locker, the door opens, the parcel goes in."""
    who = who or carrier(world)
    session = locker_dropoff.open_session(world.ctx, who, site_id)
    box = int(locker_dropoff.deposit(world.ctx, who, session["id"], number)["compartment"])
    fake.event("door_opened", compartment=box, purpose="deposit")
    fake.closed(box, occupied)
    locker_dropoff.close_session(world.ctx, who, session["id"])
    return box


def arrive(world: World, fake: FakeLocker, site_id: int, number: str,
           recipient: dict[str, Any], **item: Any) -> int:
    announce(world, number, recipient, **{"dimensions_mm": FLAT, **item})
    return drop(world, fake, site_id, number)


def recipient_codes(world: World, number: str) -> list[PickupCredential]:
    with world.ctx.db.read() as session:
        found = credentials.live_credentials(session, parcel(world, number).id)
        for credential in found:
            session.expunge(credential)
        return [c for c in found if c.holder == "recipient"]


def box_state(world: World, site_id: int, number: int) -> str:
    with world.ctx.db.read() as session:
        box = session.scalar(select(Compartment).where(Compartment.site_id == site_id,
                                                       Compartment.number == number))
        assert box is not None
        return box.state


def events(world: World, number: str) -> list[tuple[str, dict[str, Any]]]:
    with world.ctx.db.read() as session:
        return [(a, d) for a, d in session.execute(
            select(ParcelEvent.action, ParcelEvent.data)
            .where(ParcelEvent.parcel_id == parcel(world, number).id).order_by(ParcelEvent.id))]


def present_pin(world: World, fake: FakeLocker, credential: PickupCredential) -> dict[str, Any]:
    with world.ctx.db.read() as session:
        site = locker_compartments.locker_by_code(session, LOCKER["code"])
        code_hash = locker_keys.locker_pin_hash(world.ctx, site, credential)
    fake.commands()
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="pin",
               result="forwarded", code_hash=code_hash, key_id="p1")
    opening = fake.commands("open_compartment")
    assert len(opening) == 1
    return opening[0]


def test_a_second_parcel_for_the_recipient_joins_the_door_and_the_code(
        app: Flask, world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    first = arrive(world, fake, site_id, "LOCKGRP00001", JEANNE)
    run_jobs(app, world)
    first_deadline = parcel(world, "LOCKGRP00001").holding_deadline
    clock.advance(days=1)
    fake.commands()
    second = arrive(world, fake, site_id, "LOCKGRP00002", JEANNE)
    assert second == first
    assert box_state(world, site_id, first) == "occupied"
    assert parcel(world, "LOCKGRP00002").state == "ready_for_pickup"
    # one code for both, the first parcel's
    codes = recipient_codes(world, "LOCKGRP00002")
    assert [c.id for c in codes] == [c.id for c in recipient_codes(world, "LOCKGRP00001")]
    # one deadline for the door, the later one: the first parcel's is extended, never cut
    later = parcel(world, "LOCKGRP00002").holding_deadline
    assert first_deadline is not None and later is not None and later > first_deadline
    assert parcel(world, "LOCKGRP00001").holding_deadline == later
    extended = [d for a, d in events(world, "LOCKGRP00001") if a == "deadline_extended"]
    assert extended and extended[0]["to"] == later.isoformat()
    reserved = [d for a, d in events(world, "LOCKGRP00002") if a == "compartment_reserved"]
    assert reserved[0]["shared_with"] == ["LOCKGRP00001"]
    # the locker learns the code's new end, as an incremental sync of the same PIN
    sync = fake.commands("sync_credentials")[-1]
    pin = next(p for p in sync["pins"] if p["credential_id"] == f"pin-{codes[0].id}")
    assert pin["compartment"] == first
    assert datetime.fromisoformat(pin["expires_at"]) == later
    # the message says the two wait together, same code
    run_jobs(app, world)
    told = [x for x in sent_lines(app) if "LOCKGRP00002" in x["body"]]
    assert told and all("LOCKGRP00001" in x["body"] for x in told)
    code = credentials.code_of(world.ctx, codes[0])
    assert all(code in x["body"] for x in told)
    # the QR code of either parcel opens that door
    token = locker_tokens.qr_token(world.ctx, parcel(world, "LOCKGRP00002").id)
    assert token is not None
    claims = pickup_token.unverified_claims(token)[1]
    assert claims.compartment == first and claims.expires_at == int(later.timestamp())


def test_one_code_opens_the_door_once_and_both_parcels_leave(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00003", JEANNE)
    assert arrive(world, fake, site_id, "LOCKGRP00004", JEANNE) == box
    credential = recipient_codes(world, "LOCKGRP00004")[0]
    opening = present_pin(world, fake, credential)
    assert opening["compartment"] == box
    fake.event("door_opened", compartment=box, purpose="pickup",
               credential_id=opening["credential_id"])
    fake.closed(box, False)
    assert parcel(world, "LOCKGRP00003").state == "picked_up"
    assert parcel(world, "LOCKGRP00004").state == "picked_up"
    assert box_state(world, site_id, box) == "free"
    assert recipient_codes(world, "LOCKGRP00003") == []
    sync = fake.commands("sync_credentials")[-1]  # the locker forgets the spent code
    assert credential.token_jti in sync["revoked_credentials"]
    assert all(p["credential_id"] != f"pin-{credential.id}" for p in sync["pins"])


def test_an_offline_pickup_dates_both_parcels_from_the_locker(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00005", JEANNE)
    arrive(world, fake, site_id, "LOCKGRP00006", JEANNE)
    credential = recipient_codes(world, "LOCKGRP00005")[0]
    when = clock.now
    clock.advance(hours=3)  # heard of when the locker is back online
    fake.event("offline_pickup", credential_id=f"pin-{credential.id}", credential_kind="pin",
               parcel_ref="LOCKGRP00005", compartment=box, verified_at=when.isoformat())
    fake.event("door_closed", compartment=box, occupied=False, opened_for="pickup",
               credential_id=f"pin-{credential.id}")
    for number in ("LOCKGRP00005", "LOCKGRP00006"):
        picked = [d for a, d in events(world, number) if a == "pick_up"]
        assert picked and picked[0]["offline"] is True
        assert parcel(world, number).state == "picked_up"
    with world.ctx.db.read() as session:
        moments = list(session.scalars(select(ParcelEvent.at).where(
            ParcelEvent.action == "pick_up")))
    assert [m.replace(tzinfo=None) for m in moments] == [when.replace(tzinfo=None)] * 2


def test_parcels_that_do_not_fit_together_get_doors_and_codes_of_their_own(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00007", JEANNE)
    assert arrive(world, fake, site_id, "LOCKGRP00008", JEANNE) == box
    third = arrive(world, fake, site_id, "LOCKGRP00009", JEANNE)  # 90 mm: over 80
    assert third != box
    assert recipient_codes(world, "LOCKGRP00009")[0].id \
        != recipient_codes(world, "LOCKGRP00007")[0].id


def test_another_recipient_or_carrier_never_shares_a_door(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00010", JEANNE)
    assert arrive(world, fake, site_id, "LOCKGRP00011", PAUL) != box
    announce(world, "LOCKGRP00012", JEANNE, api=world.other_carrier, dimensions_mm=FLAT)
    other = Principal(Role.CARRIER, carrier_id=2)
    assert drop(world, fake, site_id, "LOCKGRP00012", who=other) != box
    assert len({c.id for n in ("LOCKGRP00010", "LOCKGRP00011", "LOCKGRP00012")
                for c in recipient_codes(world, n)}) == 3


def test_a_shared_door_given_back_unused_still_holds_the_first_parcel(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00013", JEANNE)
    announce(world, "LOCKGRP00014", JEANNE, dimensions_mm=FLAT)
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    assert locker_dropoff.deposit(world.ctx, carrier(world), session["id"],
                           "LOCKGRP00014")["compartment"] == box
    assert box_state(world, site_id, box) == "reserved"
    locker_dropoff.close_session(world.ctx, carrier(world), session["id"])  # door never opened
    assert box_state(world, site_id, box) == "occupied"
    assert parcel(world, "LOCKGRP00014").compartment_id is None
    assert parcel(world, "LOCKGRP00013").state == "ready_for_pickup"


def test_a_shared_door_closed_empty_is_no_deposit_and_the_first_parcel_is_missed(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00015", JEANNE)
    announce(world, "LOCKGRP00016", JEANNE, dimensions_mm=FLAT)
    assert drop(world, fake, site_id, "LOCKGRP00016", occupied=False) == box
    assert parcel(world, "LOCKGRP00016").state == "announced"
    # not made, then the reservation given back with the session
    assert [a for a, _ in events(world, "LOCKGRP00016")][-2:] == [
        "deposit_not_made", "reservation_released"]
    with world.ctx.db.read() as session:
        alerts = list(session.scalars(select(LockerAlert.kind)))
    assert "parcel_not_sensed" in alerts


def test_the_door_expires_as_one_and_its_carrier_takes_it_back_in_one_opening(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00017", JEANNE)
    clock.advance(hours=2)
    arrive(world, fake, site_id, "LOCKGRP00018", JEANNE)
    clock.advance(days=5)
    assert len(expiry.expire_overdue(world.ctx)) == 2
    # one collection reservation for the door, not one per parcel
    reservations = [r for c in fake.commands("sync_credentials")
                    for r in c.get("reservations", []) if r["purpose"] == "collection"]
    assert [r["compartment"] for r in reservations] == [box]
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    locker_collection.start_collection(world.ctx, carrier(world), session["id"])
    assert [c["compartment"] for c in fake.commands("open_compartment")] == [box]
    fake.event("door_opened", compartment=box, purpose="collection")
    fake.closed(box, False)
    assert parcel(world, "LOCKGRP00017").state == "returned"
    assert parcel(world, "LOCKGRP00018").state == "returned"
    assert fake.commands("open_compartment") == []  # nothing left to open
    assert box_state(world, site_id, box) == "free"
    # a full sync names the door once too
    with world.ctx.db.transaction() as db:
        site = locker_compartments.locker_by_code(db, LOCKER["code"])
        locker_sync.queue_sync(world.ctx, db, site, locker_compartments.link_of(db, site),
                               force_full=True)
    full = fake.commands("sync_credentials")[-1]
    assert [r for r in full["reservations"] if r["purpose"] == "collection"] == []


def test_a_parcel_reserved_ahead_joins_the_door_and_keeps_it_if_the_first_leaves(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00019", JEANNE)
    tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
    announce(world, "LOCKGRP00020", JEANNE, dimensions_mm=FLAT, expected_date=tomorrow)
    locker_dropoff.expire_stale_reservations(world.ctx)
    assert parcel(world, "LOCKGRP00020").compartment_id is not None
    reservation = [r for c in fake.commands("sync_credentials")
                   for r in c.get("reservations", []) if r["parcel_ref"] == "LOCKGRP00020"]
    assert [r["compartment"] for r in reservation] == [box]
    # the resident comes first: the door empties and stays reserved for the parcel on its way
    credential = recipient_codes(world, "LOCKGRP00019")[0]
    opening = present_pin(world, fake, credential)
    fake.event("door_opened", compartment=box, purpose="pickup",
               credential_id=opening["credential_id"])
    fake.closed(box, False)
    assert parcel(world, "LOCKGRP00019").state == "picked_up"
    assert box_state(world, site_id, box) == "reserved"
    # the carrier comes: same door, and a code of its own (the shared one was spent)
    assert drop(world, fake, site_id, "LOCKGRP00020") == box
    assert parcel(world, "LOCKGRP00020").state == "ready_for_pickup"
    assert recipient_codes(world, "LOCKGRP00020")[0].id != credential.id


def test_a_parcel_declared_damaged_beside_a_ready_one_leaves_the_door_to_both_users(
        world: World, locker: tuple[int, FakeLocker]) -> None:
    site_id, fake = locker
    box = arrive(world, fake, site_id, "LOCKGRP00021", JEANNE)
    arrive(world, fake, site_id, "LOCKGRP00022", JEANNE)
    operator = Principal(Role.OPERATOR, user_id=1)
    expiry.declare(world.ctx, operator, parcel(world, "LOCKGRP00021").id, "damaged",
                    "box crushed, seen through the door")
    # the code lives on for the ready parcel, and the locker keeps it after a full sync
    credential = recipient_codes(world, "LOCKGRP00022")[0]
    with world.ctx.db.transaction() as db:
        site = locker_compartments.locker_by_code(db, LOCKER["code"])
        locker_sync.queue_sync(world.ctx, db, site, locker_compartments.link_of(db, site),
                               force_full=True)
    full = fake.commands("sync_credentials")[-1]
    pins = [p for p in full["pins"] if p["credential_id"] == f"pin-{credential.id}"]
    assert [(p["parcel_ref"], p["compartment"]) for p in pins] == [("LOCKGRP00022", box)]
    assert [r["parcel_ref"] for r in full["reservations"]
            if r["purpose"] == "collection"] == ["LOCKGRP00021"]
    # the QR code (it names the damaged parcel) still opens the door for the ready one
    token = locker_tokens.qr_token(world.ctx, parcel(world, "LOCKGRP00022").id)
    fake.event("credential_presented", presentation_id=str(uuid.uuid4()), kind="qr",
               result="forwarded", token=token)
    opening = fake.commands("open_compartment")
    assert [o["compartment"] for o in opening] == [box]
    # the resident takes the ready parcel; the damaged one stays for its carrier
    fake.event("door_opened", compartment=box, purpose="pickup",
               credential_id=opening[0]["credential_id"])
    fake.closed(box, True)
    assert parcel(world, "LOCKGRP00022").state == "picked_up"
    assert parcel(world, "LOCKGRP00021").state == "damaged"
    assert box_state(world, site_id, box) == "occupied"
    with world.ctx.db.read() as session:
        assert list(session.scalars(select(LockerAlert.kind))) == []
    # and the carrier takes it back in one opening
    session_id = locker_dropoff.open_session(world.ctx, carrier(world), site_id)["id"]
    locker_collection.start_collection(world.ctx, carrier(world), session_id)
    assert [c["compartment"] for c in fake.commands("open_compartment")] == [box]
    fake.event("door_opened", compartment=box, purpose="collection")
    fake.closed(box, False)
    assert parcel(world, "LOCKGRP00021").state == "returned"
    assert box_state(world, site_id, box) == "free"


def reserved_ahead(world: World, fake: FakeLocker, clock: Clock, *numbers: str,
                   recipient: dict[str, Any] = JEANNE) -> list[dict[str, Any]]:
    """Announced for tomorrow: the sweep reserves their doors and syncs the reservations."""
    tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
    fake.commands()
    for number in numbers:  # each manifest reserves for its parcels due soon
        announce(world, number, recipient, dimensions_mm=FLAT, expected_date=tomorrow)
    return [r for c in fake.commands("sync_credentials") for r in c.get("reservations", [])]


def scan_and_put_in(world: World, fake: FakeLocker, site_id: int, number: str) -> int:
    """The carrier scans a parcel in a drop-off session; the door the locker is told to open
    opens and closes on it, answering that command (its corr_id). Returns the door."""
    session = locker_dropoff.open_session(world.ctx, carrier(world), site_id)
    answer = locker_dropoff.deposit(world.ctx, carrier(world), session["id"], number)
    assert answer["status"] == "door_opening"
    [opening] = fake.commands("open_compartment")
    assert opening["parcel_ref"] == number
    box, corr_id = opening["compartment"], opening["corr_id"]
    fake.event("door_opened", compartment=box, purpose="deposit", corr_id=corr_id)
    fake.event("door_closed", compartment=box, occupied=True, opened_for="deposit",
               corr_id=corr_id)
    return int(box)


def test_a_recipients_parcels_announced_together_are_reserved_one_door_ahead(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    reservations = reserved_ahead(world, fake, clock, "LOCKGRP00023", "LOCKGRP00024")
    assert len({r["compartment"] for r in reservations}) == 1
    assert sorted(r["parcel_ref"] for r in reservations) == ["LOCKGRP00023", "LOCKGRP00024"]
    box = reservations[0]["compartment"]
    # the second parcel comes out of the van first: the door knows which one went in
    assert scan_and_put_in(world, fake, site_id, "LOCKGRP00024") == box
    assert parcel(world, "LOCKGRP00024").state == "ready_for_pickup"
    assert parcel(world, "LOCKGRP00023").state == "announced"
    assert box_state(world, site_id, box) == "reserved"  # the other one is still due
    view = locker_views.locker_view(world.ctx, SYSTEM, site_id)["compartments"][box - 1]
    assert view["parcels"] == ["LOCKGRP00024", "LOCKGRP00023"]  # held, then on its way
    assert scan_and_put_in(world, fake, site_id, "LOCKGRP00023") == box
    assert parcel(world, "LOCKGRP00023").state == "ready_for_pickup"
    assert box_state(world, site_id, box) == "occupied"
    assert [c.id for c in recipient_codes(world, "LOCKGRP00023")] == [
        c.id for c in recipient_codes(world, "LOCKGRP00024")]


def test_an_offline_deposit_names_its_parcel_by_the_reservation_it_used(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    reservations = reserved_ahead(world, fake, clock, "LOCKGRP00025", "LOCKGRP00026")
    used = next(r for r in reservations if r["parcel_ref"] == "LOCKGRP00026")
    box = used["compartment"]
    fake.event("offline_deposit", reservation_id=used["reservation_id"], compartment=box,
               parcel_ref="LOCKGRP00026", verified_at=clock.now.isoformat())
    fake.event("door_opened", compartment=box, purpose="deposit",
               credential_id=used["reservation_id"])
    fake.event("door_closed", compartment=box, occupied=True, opened_for="deposit",
               credential_id=used["reservation_id"])
    assert parcel(world, "LOCKGRP00026").state == "ready_for_pickup"
    assert parcel(world, "LOCKGRP00025").state == "announced"
    with world.ctx.db.read() as session:
        assert list(session.scalars(select(LockerAlert.kind))) == []


def test_reservations_ahead_in_one_door_lapse_or_leave_one_by_one(
        world: World, locker: tuple[int, FakeLocker], clock: Clock) -> None:
    site_id, fake = locker
    reservations = reserved_ahead(world, fake, clock, "LOCKGRP00027", "LOCKGRP00028")
    box = reservations[0]["compartment"]
    # one is rerouted away before the van comes: the other keeps the door and its reservation
    with world.ctx.db.transaction() as db:
        site = locker_compartments.locker_by_code(db, LOCKER["code"])
        leaving = db.get(type(parcel(world, "LOCKGRP00027")), parcel(world, "LOCKGRP00027").id)
        assert leaving is not None
        locker_reservations.release_advance_reservation(world.ctx, db, leaving, site, SYSTEM,
                                            "rerouted in the test")
    assert parcel(world, "LOCKGRP00028").compartment_id is not None
    assert box_state(world, site_id, box) == "reserved"
    kept, gone = (next(r["reservation_id"] for r in reservations if r["parcel_ref"] == n)
                  for n in ("LOCKGRP00028", "LOCKGRP00027"))
    synced = fake.commands("sync_credentials")[-1]  # full: this locker never acknowledged
    assert synced["full"] is True
    assert [r["reservation_id"] for r in synced["reservations"]] == [kept]
    assert gone != kept
    # the van never comes: the reservation lapses and the door is free again
    clock.advance(days=4)
    locker_dropoff.expire_stale_reservations(world.ctx)
    assert parcel(world, "LOCKGRP00028").compartment_id is None
    assert box_state(world, site_id, box) == "free"
    assert fake.commands("sync_credentials")[-1]["reservations"] == []
