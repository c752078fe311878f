"""A locker full at drop-off sends the parcel to the nearest locker with room, else the nearest
shop with a free place (issue 8)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Compartment,
    Notification,
    Parcel,
    ParcelEvent,
    PickupCredential,
    PlaceReservation,
    RerouteProposal,
    Site,
)
from relay_ops.domain import credentials as creds
from relay_ops.services import (
    credentials,
    forecast,
    locker_compartments,
    locker_dropoff,
    locker_registry,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.support import World

BASE = {"locker_model": "mini-6", "address": "Place de la mairie", "postcode": "44440",
        "city": "Riaillé", "step_free_access": True}
FULL_ONE = {**BASE, "code": "LCK-FULL", "name": "Casier plein", "latitude": 47.51,
            "longitude": -1.29}
NEAR = {**BASE, "code": "LCK-NEAR", "name": "Casier de la gare", "latitude": 47.513,
        "longitude": -1.291}  # about 350 m away
FURTHER = {**BASE, "code": "LCK-FAR2", "name": "Casier du stade", "latitude": 47.52,
           "longitude": -1.29}  # about 1.1 km away
ACME = Principal(Role.CARRIER, carrier_id=1)
OPERATOR = Principal(Role.OPERATOR, user_id=1)


def register(world: World, data: dict[str, Any]) -> int:
    return int(locker_registry.register_locker(world.ctx, SYSTEM, data)["id"])


def fill(world: World, site_id: int) -> None:
    for number in range(1, 7):
        locker_registry.set_compartment_service(world.ctx, SYSTEM, site_id, number,
                                                in_service=False, reason="vandalised")


def drop_off_proposal(db: Session, moved: Parcel) -> RerouteProposal:
    """The decision taken at the full locker's door: the parcel's last proposal (the
    announcement may have proposed a reroute already, the carrier not answering it)."""
    proposal = db.scalar(select(RerouteProposal).where(RerouteProposal.parcel_id == moved.id)
                         .order_by(RerouteProposal.id.desc()).limit(1))
    assert proposal is not None
    return proposal


def parcel(world: World, number: str) -> Parcel:
    with world.ctx.db.read() as session:
        found = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
        assert found is not None
        session.expunge(found)
        return found


def drop(world: World, site_id: int, number: str) -> dict[str, Any]:
    assert world.announce(number, site=FULL_ONE["code"]).status_code == 201
    session = locker_dropoff.open_session(world.ctx, ACME, site_id)
    return locker_dropoff.deposit(world.ctx, ACME, session["id"], number)


def test_a_full_locker_sends_the_parcel_to_the_nearest_with_room(world: World) -> None:
    full = register(world, FULL_ONE)
    near, further = register(world, NEAR), register(world, FURTHER)
    fill(world, full)
    answer = drop(world, full, "LOCKERFULL01")
    assert answer["status"] == "rerouted"
    assert answer["rerouted_to"]["site"] == "LCK-NEAR"
    assert answer["rerouted_to"]["address"] == "Place de la mairie"
    assert 0.2 < answer["rerouted_to"]["distance_km"] < 0.5
    moved = parcel(world, "LOCKERFULL01")
    assert moved.site_id == near and moved.state == "announced"
    # nothing reserved at the full locker: the door held is the new locker's (room held)
    with world.ctx.db.read() as db:
        held = db.get(Compartment, moved.compartment_id)
        assert held is not None and held.site_id == near and held.state == "reserved"
    with world.ctx.db.read() as db:
        events = list(db.execute(select(ParcelEvent.action, ParcelEvent.data).where(
            ParcelEvent.parcel_id == moved.id).order_by(ParcelEvent.id)))
        assert [a for a, _ in events] == ["announce", "reroute", "compartment_reserved"]
        assert events[2][1]["reroute"] is True and events[2][1]["locker"] == "LCK-NEAR"
        assert events[1][1]["from_site"] == "LCK-FULL" and events[1][1]["to_site"] == "LCK-NEAR"
        proposal = drop_off_proposal(db, moved)
        assert proposal.status == "automatic"
        assert proposal.to_site_id == near and "full at drop-off" in proposal.reason
        assert [o["site"] for o in proposal.options] == ["LCK-NEAR", "LCK-FAR2"]
        told = list(db.scalars(select(Notification.kind).where(
            Notification.parcel_id == moved.id)))
        assert "rerouted" in told
    assert further  # the further locker was an option, not the choice
    # the carrier takes it there: a door opens at the new locker
    session = locker_dropoff.open_session(world.ctx, ACME, near)
    there = locker_dropoff.deposit(world.ctx, ACME, session["id"], "LOCKERFULL01")
    assert there["status"] == "door_opening" and there["compartment"] == held.number


def test_the_pickup_credential_given_before_still_works_there(world: World) -> None:
    full = register(world, FULL_ONE)
    near = register(world, NEAR)
    fill(world, full)
    assert world.announce("LOCKERFULL02", site=FULL_ONE["code"]).status_code == 201
    with world.ctx.db.transaction() as db:
        found = db.scalar(select(Parcel).where(Parcel.tracking_number == "LOCKERFULL02"))
        assert found is not None
        credential_id = credentials.issue_credential(world.ctx, db, found, holder="recipient").id
    with world.ctx.db.read() as db:
        before = db.get(PickupCredential, credential_id)
        assert before is not None
        code = credentials.code_of(world.ctx, before)
    session = locker_dropoff.open_session(world.ctx, ACME, full)
    answer = locker_dropoff.deposit(world.ctx, ACME, session["id"], "LOCKERFULL02")
    assert answer["status"] == "rerouted"
    with world.ctx.db.read() as db:
        after = db.get(PickupCredential, credential_id)
        assert after is not None and after.revoked_at is None
        assert after.site_id == near
        assert credentials.code_of(world.ctx, after) == code
        settings = world.ctx.settings
        assert after.code_hash == creds.hash_code(settings.pickup_code_pepper, near, code)


def test_nowhere_to_go_is_still_a_refusal(world: World) -> None:
    full = register(world, FULL_ONE)
    fill(world, full)
    register(world, {**NEAR, "step_free_access": False})  # never a step for step-free access
    register(world, {**FURTHER, "code": "LCK-AWAY", "latitude": 47.60})  # 10 km: out of reach
    with pytest.raises(locker_compartments.ParcelDoesNotFit, match="no free compartment"):
        drop(world, full, "LOCKERFULL03")
    stayed = parcel(world, "LOCKERFULL03")
    assert stayed.site_id == full
    with world.ctx.db.read() as db:
        actions = list(db.scalars(select(ParcelEvent.action).where(
            ParcelEvent.parcel_id == stayed.id).order_by(ParcelEvent.id)))
    assert actions == ["announce", "check_in_refused"]  # full: it comes back next round


def test_a_parcel_a_full_locker_kept_in_the_van_is_counted_back_the_next_day(
        world: World, clock: Any) -> None:
    full = register(world, FULL_ONE)
    fill(world, full)
    # expected three days ago: as a plain late parcel it would no longer be counted
    assert world.announce("LOCKERFULL05", site=FULL_ONE["code"],
                          expected_date="2026-11-28").status_code == 201
    session = locker_dropoff.open_session(world.ctx, ACME, full)
    with pytest.raises(locker_compartments.ParcelDoesNotFit, match="no free compartment"):
        locker_dropoff.deposit(world.ctx, ACME, session["id"], "LOCKERFULL05")  # stays in the van
    clock.advance(days=1)
    with world.ctx.db.read() as db:
        site = db.get(Site, full)
        assert site is not None
        inputs = forecast.inputs_for(world.ctx, db, site)
    today = clock.now.astimezone(world.ctx.settings.timezone).date()
    assert [(a.day, a.probability) for a in inputs.announced] == [
        (today, world.ctx.settings.forecast.show_rate)]  # back on the next round, full odds


def test_a_locker_the_forecast_flags_is_not_chosen(world: World) -> None:
    full = register(world, FULL_ONE)
    near = register(world, NEAR)
    further = register(world, FURTHER)
    fill(world, full)
    # the near locker has a free door now, but its six doors are promised to parcels today
    numbers = [f"LOCKERBUSY{i:02d}" for i in range(8)]
    assert world.announce(*numbers, site=NEAR["code"],
                          expected_date="2026-12-01").status_code == 201
    answer = drop(world, full, "LOCKERFULL04")
    assert answer["rerouted_to"]["site"] == "LCK-FAR2"
    assert parcel(world, "LOCKERFULL04").site_id == further
    assert near


def test_the_api_answers_with_the_new_site(world: World) -> None:
    full = register(world, FULL_ONE)
    register(world, NEAR)
    fill(world, full)
    assert world.announce("LOCKERFULL05", site=FULL_ONE["code"]).status_code == 201
    opened = world.carrier.post(f"/lockers/{full}/sessions")
    assert opened.status_code == 201
    response = world.carrier.post(f"/locker-sessions/{opened.json['id']}/deposits",
                                  json={"tracking_number": "LOCKERFULL05"})
    assert response.status_code == 200, response.json
    assert response.json["status"] == "rerouted"
    assert response.json["rerouted_to"]["site"] == "LCK-NEAR"
    assert response.json["rerouted_to"]["name"] == "Casier de la gare"


STEPS = {**FULL_ONE, "step_free_access": False}  # the village shop "bourg" (0.75 km) has a step


def test_with_no_locker_in_reach_the_nearest_shop_with_room_takes_it(world: World) -> None:
    full = register(world, STEPS)
    fill(world, full)
    answer = drop(world, full, "LOCKERSHOP01")
    assert answer["status"] == "rerouted"
    assert answer["rerouted_to"]["site"] == "bourg"
    assert 0.5 < answer["rerouted_to"]["distance_km"] < 1.0
    # a place held at the shop for today, which its counter keeps for the parcel
    assert answer["rerouted_to"]["reservation"]["site"] == "bourg"
    assert answer["rerouted_to"]["reservation"]["status"] == "held"
    moved = parcel(world, "LOCKERSHOP01")
    assert moved.site_id == world.shop_id and moved.state == "announced"
    with world.ctx.db.read() as db:
        proposal = drop_off_proposal(db, moved)
        assert proposal.status == "automatic"
        # the cheapest first (nearer and as empty); "voisin" (9.9 km) is in the
        # countryside's 10 km reach
        assert [o["site"] for o in proposal.options] == ["bourg", "voisin"]
        told = list(db.scalars(select(Notification.kind).where(
            Notification.parcel_id == moved.id)))
        assert "rerouted" in told
    # the shopkeeper scans it in like any parcel announced to the shop
    checked_in = world.check_in("LOCKERSHOP01")
    assert checked_in.status_code in (200, 201), checked_in.json
    assert parcel(world, "LOCKERSHOP01").state == "ready_for_pickup"
    with world.ctx.db.read() as db:
        assert db.scalar(select(PlaceReservation.status).where(
            PlaceReservation.parcel_id == moved.id)) == "used"


def test_a_locker_in_reach_comes_before_a_nearer_shop(world: World) -> None:
    full = register(world, STEPS)
    further = register(world, FURTHER)  # 1.1 km, the shop is 0.75 km
    fill(world, full)
    answer = drop(world, full, "LOCKERSHOP02")
    assert answer["rerouted_to"]["site"] == "LCK-FAR2"
    assert parcel(world, "LOCKERSHOP02").site_id == further


def test_a_full_shop_is_not_proposed_either(world: World) -> None:
    full = register(world, STEPS)
    fill(world, full)
    sites.set_status(world.ctx, OPERATOR, world.other_shop_id, "closed")  # "voisin" is out
    numbers = [f"SHOPFULL{i:04d}" for i in range(15)]  # bourg holds 15 places
    for number in numbers:
        assert world.ready(number)
    with pytest.raises(locker_compartments.ParcelDoesNotFit, match="no free compartment"):
        drop(world, full, "LOCKERSHOP03")
    assert parcel(world, "LOCKERSHOP03").site_id == full


def test_a_shop_whose_shelves_do_not_take_the_size_is_not_proposed(world: World) -> None:
    full = register(world, STEPS)
    fill(world, full)
    # "bourg" has S and L shelves with free places, "voisin" M: none takes an XL parcel
    assert world.announce("LOCKERSHOP04", site=STEPS["code"], size_class="XL").status_code == 201
    session = locker_dropoff.open_session(world.ctx, ACME, full)
    with pytest.raises(locker_compartments.ParcelDoesNotFit, match="no free compartment"):
        locker_dropoff.deposit(world.ctx, ACME, session["id"], "LOCKERSHOP04")
    assert parcel(world, "LOCKERSHOP04").site_id == full
