"""Room promised is room held, at a locker (issue 16.1): a parcel a reroute sends to a locker
holds a door of its size there (the drop-off's rule: the smallest free door it fits), so a
locker never receives more reroutes of a size than it has doors for; the carrier's deposit,
online or offline, uses that door; the hold lapses with the place's lapse and the door is
free again; two planners at once never promise one door twice."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from relay_ops.db.models import Compartment, Parcel, PlaceReservation, Site
from relay_ops.services import (
    accounts,
    locker_dropoff,
    locker_registry,
    reservations,
)
from relay_ops.services.locker_compartments import ParcelDoesNotFit
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.integration.test_forecast import TOMORROW, automatic_carrier, two_automatic_carriers
from tests.integration.test_locker_offline_carrier import offline_use, syncs
from tests.integration.test_lockers import FakeLocker
from tests.support import Api, World, announce_together

BASE = {"locker_model": "mini-6", "address": "Place de la mairie", "postcode": "44440",
        "city": "Riaillé", "step_free_access": True}
# mini-6: doors 1-2 S, 3-4 M, 5 L, 6 XL. An L parcel fits the L and XL doors only.
BIG_DOORS = {5: "L", 6: "XL"}


def register(world: World, code: str, latitude: float) -> int:
    """A mini-6 locker; 0.003° of latitude is about 330 m (all within each other's reach)."""
    data = {**BASE, "code": code, "name": f"Casier {code}", "latitude": latitude,
            "longitude": -1.29}
    return int(locker_registry.register_locker(world.ctx, SYSTEM, data)["id"])


def announce_to(api: Api, site: str, count: int, *, size: str = "L", prefix: str = "BIG",
                reference: str = "ROUND-1") -> dict[str, Any]:
    body = {"reference": reference, "expected_date": TOMORROW, "parcels": [
        {"tracking_number": f"{prefix}{i:08d}", "site": site, "size_class": size,
         "recipient": {"phone": f"+3361{i:07d}"}} for i in range(count)]}
    response = api.post("/manifests", json=body)
    assert response.status_code == 201, response.json
    return dict(response.json)


def moved_to(answer: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [p for p in answer["parcels"] if p.get("reroute", {}).get("site") == code]


def doors_held(world: World, site_id: int) -> dict[str, int]:
    """Tracking number -> the door held for it at the locker."""
    with world.ctx.db.read() as session:
        rows = session.execute(
            select(Parcel.tracking_number, Compartment.number)
            .join(Compartment, Compartment.id == Parcel.compartment_id)
            .where(Compartment.site_id == site_id, Parcel.state == "announced"))
        return dict(rows.all())


def box(world: World, site_id: int, number: int) -> Compartment:
    with world.ctx.db.read() as session:
        found = session.scalar(select(Compartment).where(
            Compartment.site_id == site_id, Compartment.number == number))
        assert found is not None
        session.expunge(found)
        return found


def place_statuses(world: World, site_id: int) -> list[str]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(PlaceReservation.status).where(
            PlaceReservation.site_id == site_id).order_by(PlaceReservation.id)))


def fast_carrier_id(world: World) -> int:
    with world.ctx.db.read() as session:
        found = session.scalar(select(Parcel.carrier_id).where(
            Parcel.tracking_number.like("BIG%")))
        assert found is not None
        return found


def test_reroutes_into_a_locker_are_limited_by_its_doors_of_that_size(world: World) -> None:
    """Twelve L parcels for a six-door locker: the neighbour locker's forecast has room for
    several more parcels, but it has two doors an L parcel fits (L and XL): two move there,
    each holding one of those doors, and no more."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    answer = announce_to(automatic_carrier(world), "LCK-A", 12)
    moved = moved_to(answer, "LCK-B")
    assert len(moved) == 2
    held = doors_held(world, b)
    assert sorted(held) == sorted(p["tracking_number"] for p in moved)
    assert sorted(held.values()) == sorted(BIG_DOORS)
    assert all(box(world, b, n).state == "reserved" for n in BIG_DOORS)
    assert all(p["reroute"]["reservation"]["status"] == "held" for p in moved)
    # the small doors are still free for small parcels: an S parcel's reroute finds one
    more = announce_to(automatic_carrier_again(world), "LCK-A", 12, size="S", prefix="SMA",
                       reference="ROUND-2")
    small = [p["tracking_number"] for p in moved_to(more, "LCK-B")]
    assert 1 <= len(small) <= 4
    now_held = doors_held(world, b)
    assert {n: now_held[n] for n in held} == held  # the big doors stay with their parcels
    # each S parcel holds a small door, the smallest first: S doors (1, 2), then M (3, 4)
    assert sorted(now_held[n] for n in small) == [1, 2, 3, 4][:len(small)]


def automatic_carrier_again(world: World) -> Api:
    """The automatic carrier made by ``automatic_carrier``, with a key of its own."""
    return Api(world.client, accounts.issue_carrier_key(world.ctx, SYSTEM, "fast").token)


def test_a_proposal_keeps_its_door_from_other_reroutes_until_decided(world: World) -> None:
    """A carrier that confirms: its proposals' first option counts a door for each, so the
    locker is proposed as many L parcels as it has doors for them; accepting one holds its
    door at once."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    answer = announce_to(world.carrier, "LCK-A", 12)
    proposed = [p for p in answer["parcels"]
                if p.get("reroute", {}).get("status") == "proposed"]
    first_at_b = [p for p in proposed if p["reroute"]["options"][0]["site"] == "LCK-B"]
    assert len(first_at_b) == 2
    assert doors_held(world, b) == {}  # no door yet: the parcels are still announced at A
    # the operator's forecast of B counts its room per size: the big doors are promised
    room = {"S": 2, "M": 2, "L": 0, "XL": 0}
    assert world.operator.get(f"/sites/{b}/forecast").json["free_doors"] == room
    accepted = world.carrier.post(f"/parcels/{first_at_b[0]['parcel_id']}/reroute",
                                  json={"site": "LCK-B"})
    assert accepted.status_code == 200, accepted.json
    assert list(doors_held(world, b).values()) == [5]  # the smallest door an L parcel fits
    assert world.operator.get(f"/sites/{b}/forecast").json["free_doors"] == room
    # the other proposal still counts its door: a third L parcel finds no room at B
    third = announce_to(automatic_carrier(world), "LCK-A", 1, prefix="THI", reference="R3")
    assert third["parcels"][0]["saturation"]["site"] == "LCK-A"  # it was to move
    assert moved_to(third, "LCK-B") == []


def test_an_acceptance_finding_no_door_of_its_size_left_is_refused(world: World) -> None:
    """A proposal holds no door before its carrier accepts: a parcel addressed to the locker
    meanwhile takes its L door; the two proposals now have the XL door between them, so the
    first acceptance is refused (409) and nothing moves."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    answer = announce_to(world.carrier, "LCK-A", 12)
    first_at_b = [p for p in answer["parcels"] if p.get("reroute", {}).get("status") ==
                  "proposed" and p["reroute"]["options"][0]["site"] == "LCK-B"]
    assert len(first_at_b) == 2
    assert world.announce("DIRECTL00002", site="LCK-B", size_class="L").status_code == 201
    carrier = Principal(Role.CARRIER, carrier_id=1)
    session = locker_dropoff.open_session(world.ctx, carrier, b)
    assert locker_dropoff.deposit(world.ctx, carrier, session["id"],
                                  "DIRECTL00002")["compartment"] == 5
    refused = world.carrier.post(f"/parcels/{first_at_b[0]['parcel_id']}/reroute",
                                 json={"site": "LCK-B"})
    assert refused.status_code == 409 and refused.json["type"].endswith("reroute-site-full")
    assert "no free door" in refused.json["detail"]
    assert doors_held(world, b) == {"DIRECTL00002": 5}
    with world.ctx.db.read() as db:
        still = db.get(Parcel, first_at_b[0]["parcel_id"])
        assert still is not None and still.site.code == "LCK-A"
    assert world.operator.get(f"/sites/{b}/forecast").json["free_doors"]["XL"] == 0


def test_the_held_door_is_the_one_the_carrier_deposits_into(world: World) -> None:
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    fake = FakeLocker(world.ctx, "LCK-B")
    syncs(fake)
    moved = moved_to(announce_to(automatic_carrier(world), "LCK-A", 12), "LCK-B")
    held = doors_held(world, b)
    # the locker learns each held door as a deposit reservation (an offline deposit uses it,
    # and no other deposit can take it)
    [sync] = syncs(fake)
    reserved = {r["parcel_ref"]: r for r in sync["reservations"]}
    assert {ref: r["compartment"] for ref, r in reserved.items()} == held
    assert {r["purpose"] for r in reserved.values()} == {"deposit"}

    # online: the carrier's scan opens the held door
    carrier = Principal(Role.CARRIER, carrier_id=fast_carrier_id(world))
    online = moved[0]["tracking_number"]
    session = locker_dropoff.open_session(world.ctx, carrier, b)
    answer = locker_dropoff.deposit(world.ctx, carrier, session["id"], online)
    assert answer["status"] == "door_opening" and answer["compartment"] == held[online]
    fake.event("door_opened", compartment=held[online], purpose="deposit")
    fake.closed(held[online], True)
    locker_dropoff.close_session(world.ctx, carrier, session["id"])

    # offline: the locker opens the held door on the reservation alone
    offline = moved[1]["tracking_number"]
    offline_use(fake, "deposit", reserved[offline], world.ctx.now(), occupied=True)
    with world.ctx.db.read() as db:
        rows = db.execute(select(Parcel.tracking_number, Parcel.state, Compartment.number)
                          .join(Compartment, Compartment.id == Parcel.compartment_id)
                          .where(Parcel.tracking_number.in_((online, offline)))).all()
    assert sorted(rows) == sorted([(online, "ready_for_pickup", held[online]),
                                   (offline, "ready_for_pickup", held[offline])])
    assert place_statuses(world, b).count("used") + place_statuses(world, b).count("held") == 2
    assert reservations.sweep(world.ctx)["used"] == 2


def test_a_parcel_not_rerouted_cannot_take_a_held_door(world: World) -> None:
    """Another carrier's L parcel addressed to the locker finds its L and XL doors held for
    the rerouted parcels: it is refused, never given a held door."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    announce_to(automatic_carrier(world), "LCK-A", 12)
    held = doors_held(world, b)
    assert world.announce("DIRECTL00001", site="LCK-B", size_class="L").status_code == 201
    carrier = Principal(Role.CARRIER, carrier_id=1)
    session = locker_dropoff.open_session(world.ctx, carrier, b)
    # A's big doors are reserved ahead for its own L parcels, and no shop is within reach
    with pytest.raises(ParcelDoesNotFit, match="no free compartment"):
        locker_dropoff.deposit(world.ctx, carrier, session["id"], "DIRECTL00001")
    assert doors_held(world, b) == held


def test_the_held_door_is_free_again_when_the_place_lapses(world: World, clock: Clock) -> None:
    """Kept through the day after the parcel's day (the places' grace), free from the start
    of the next: the locker's sweep releases the door (and tells the locker), the places'
    sweep writes the place down as lapsed."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    fake = FakeLocker(world.ctx, "LCK-B")
    moved = moved_to(announce_to(automatic_carrier(world), "LCK-A", 12), "LCK-B")
    held = doors_held(world, b)
    [sync] = [s for s in syncs(fake) if s.get("reservations")]
    ids = sorted(r["reservation_id"] for r in sync["reservations"])
    # TOMORROW is 2026-12-02; its grace ends at midnight, Paris time, on 2026-12-04
    clock.now = clock.now.replace(day=3, hour=22, minute=59)
    assert locker_dropoff.expire_stale_reservations(world.ctx) == 0
    assert reservations.sweep(world.ctx)["lapsed"] == 0
    assert doors_held(world, b) == held
    clock.advance(minutes=1)
    # B's held doors, and A's two big doors reserved ahead for its own parcels (same end)
    assert locker_dropoff.expire_stale_reservations(world.ctx) == len(moved) + 2
    assert reservations.sweep(world.ctx)["lapsed"] == len(moved)
    assert doors_held(world, b) == {}
    assert all(box(world, b, n).state == "free" for n in held.values())
    assert place_statuses(world, b) == ["lapsed"] * len(moved)
    [released] = [s for s in syncs(fake) if s.get("revoked_credentials")]
    assert sorted(released["revoked_credentials"]) == ids


def test_concurrent_planners_never_promise_one_door_twice(world: World) -> None:
    """Two carriers' overflowing rounds for the lockers either side of LCK-B, announced at
    once, both reroute L parcels onto it: its row lock (skipped, never waited for) and the
    doors held in the same transaction keep the total at its two doors for L parcels."""
    register(world, "LCK-A", 47.510)
    b = register(world, "LCK-B", 47.513)
    register(world, "LCK-C", 47.516)
    answers = announce_together(world.ctx, two_automatic_carriers(world), [
        {"reference": f"RACE-{n}", "expected_date": TOMORROW, "parcels": [
            {"tracking_number": f"CON{n}{i:07d}", "site": site, "size_class": "L",
             "recipient": {"phone": f"+3362{n}{i:06d}"}} for i in range(12)]}
        for n, site in enumerate(("LCK-A", "LCK-C"))])
    to_b = [p["tracking_number"] for a in answers for p in moved_to(a, "LCK-B")]
    assert 1 <= len(to_b) <= 2
    held = doors_held(world, b)
    assert sorted(held) == sorted(to_b)
    assert len(set(held.values())) == len(held) and set(held.values()) <= set(BIG_DOORS)


@pytest.fixture(autouse=True)
def _no_shop_within_reach(world: World) -> None:
    """The world's shops are lockers' neighbours too; these tests are about lockers only (a
    full locker's parcel may still go to a shop at drop-off, which is not under test)."""
    with world.ctx.db.transaction() as session:
        for site in session.scalars(select(Site).where(Site.kind == "shop")):
            site.latitude += 1.0  # about 110 km away: out of any reach
