"""A carrier learns nothing of tracking numbers it did not announce: where it names a number,
another carrier's parcel is answered exactly like a number that does not exist. Numbers are
unique per carrier (docs/decisions/0007-tracking-numbers-per-carrier.md): two carriers may
hold the same one, and every lookup by number keeps them apart."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import TestResponse

from relay_ops.services import expiry, locker_registry
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.support import World, is_problem

THEIRS, NOWHERE = "ACME00000962", "ACME00000963"
SENDER = {"phone": "+33698765432", "email": "sender@example.org"}
VOLATILE = {"instance", "id", "parcel_id", "reference"}


def _same_but_number(theirs: Any, nowhere: Any) -> bool:
    """The two answers are equal once each names its own number as N and its own row ids
    are set aside: nothing in them tells the numbers apart."""
    def plain(value: Any, number: str) -> Any:
        if isinstance(value, dict):
            return {k: plain(v, number) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [plain(v, number) for v in value]
        return value.replace(number, "N") if isinstance(value, str) else value
    return bool(plain(theirs, THEIRS) == plain(nowhere, NOWHERE))


def _probe(respond: Any) -> tuple[TestResponse, TestResponse]:
    theirs, nowhere = respond(THEIRS), respond(NOWHERE)
    assert theirs.status_code == nowhere.status_code, (theirs.json, nowhere.json)
    assert _same_but_number(theirs.json, nowhere.json), (theirs.json, nowhere.json)
    return theirs, nowhere


def _announce_as_other(world: World, number: str, reference: str | None = None,
                       site: str = "bourg") -> TestResponse:
    return world.other_carrier.post("/manifests", json={
        "reference": reference or f"B-{number}", "parcels": [{
            "tracking_number": number, "site": site,
            "recipient": {"name": "Bea", "phone": "+33698000001"}}]})


# ---------------------------------------------------------------- manifests


def test_announcing_another_carriers_number_is_answered_as_a_new_number(world: World) -> None:
    acmes = world.ready(THEIRS)
    theirs, _ = _probe(lambda n: _announce_as_other(world, n))
    assert theirs.status_code == 201
    line = theirs.json["parcels"][0]
    assert (line["status"], line["state"], line["reconciled"]) == ("accepted", "announced", False)
    # two parcels now, each its carrier's; Acme's untouched
    assert line["parcel_id"] != acmes["id"]
    mine = world.carrier.get(f"/parcels/{acmes['id']}").json
    assert (mine["state"], mine["carrier"]) == ("ready_for_pickup", "acme")


def test_a_carriers_own_duplicates_are_still_refused_and_replays_still_replayed(
        world: World) -> None:
    world.ready(THEIRS)
    _announce_as_other(world, THEIRS, reference="R1")
    _announce_as_other(world, NOWHERE, reference="R2")
    # its own number again, in a new manifest: refused the same way for both
    again, _ = _probe(lambda n: _announce_as_other(world, n, reference=f"R3-{n}"))
    assert again.json["parcels"][0]["reason"] == "duplicate-tracking-number"
    assert again.json["parcels"][0]["detail"] == f"{THEIRS} already exists"
    # twice in one manifest: refused as ever
    twice = world.other_carrier.post("/manifests", json={"reference": "R4", "parcels": [
        {"tracking_number": "ACME00000970", "site": "bourg", "recipient": {"phone": "+33600"}},
        {"tracking_number": "ACME00000970", "site": "bourg", "recipient": {"phone": "+33600"}},
    ]})
    assert [p["status"] for p in twice.json["parcels"]] == ["accepted", "rejected"]
    # the same manifest again: the first answer, replayed
    replay = _announce_as_other(world, THEIRS, reference="R1")
    assert replay.status_code == 200 and replay.json["parcels"][0]["status"] == "accepted"


def test_a_parcel_of_no_carrier_elsewhere_does_not_block_an_announcement(
        world: World) -> None:
    """A shop registered THEIRS unannounced, carrier unknown: at another shop, a carrier's
    announcement of that number is another parcel; at that shop, it is the same one."""
    assert world.check_in(THEIRS, accept_unannounced=True).status_code == 201
    elsewhere = _announce_as_other(world, THEIRS, site="voisin", reference="V")
    assert elsewhere.json["parcels"][0]["status"] == "accepted"
    assert elsewhere.json["parcels"][0]["reconciled"] is False
    here = world.announce(THEIRS).json["parcels"][0]
    assert (here["status"], here["reconciled"]) == ("accepted", True)


# ---------------------------------------------------------------- lookups


def test_looking_up_another_carriers_number_looks_like_a_number_that_is_nowhere(
        world: World) -> None:
    world.ready(THEIRS)
    theirs, _ = _probe(lambda n: world.other_carrier.get("/parcels", tracking_number=n))
    assert is_problem(theirs, 404, "not-found")


def test_each_carrier_finds_its_own_parcel_under_a_shared_number(world: World) -> None:
    acmes = world.ready(THEIRS)
    others = _announce_as_other(world, THEIRS).json["parcels"][0]["parcel_id"]
    assert world.carrier.get("/parcels", tracking_number=THEIRS).json["id"] == acmes["id"]
    assert world.other_carrier.get("/parcels", tracking_number=THEIRS).json["id"] == others
    # staff who see both are asked which carrier's, and told whose they are
    both = world.operator.get("/parcels", tracking_number=THEIRS)
    assert is_problem(both, 409, "ambiguous-tracking-number")
    assert both.json["carriers"] == ["acme", "other"]
    named = world.operator.get("/parcels", tracking_number=THEIRS, carrier="other")
    assert named.json["id"] == others
    assert is_problem(world.shopkeeper.get("/parcels", tracking_number=THEIRS), 409,
                      "ambiguous-tracking-number")
    # another shop's staff see neither
    assert is_problem(world.other_shopkeeper.get("/parcels", tracking_number=THEIRS), 404,
                      "not-found")


# ---------------------------------------------------------------- collections


def test_collecting_another_carriers_parcel_looks_like_a_number_that_is_nowhere(
        world: World, clock: Clock) -> None:
    world.ready(THEIRS)
    clock.advance(days=11)
    expiry.expire_overdue(world.ctx)
    answer = world.other_carrier.post(f"/sites/{world.shop_id}/collections", json={
        "tracking_numbers": [THEIRS, NOWHERE]}).json["items"]
    theirs, nowhere = answer
    assert theirs["status"] == nowhere["status"] == "refused"
    assert _same_but_number(theirs, nowhere)


def test_a_carrier_collects_its_own_parcel_under_a_shared_number(
        world: World, clock: Clock) -> None:
    acmes = world.ready(THEIRS)
    _announce_as_other(world, THEIRS, site="voisin")
    clock.advance(days=11)
    expiry.expire_overdue(world.ctx)
    world.sign_in_again()
    answer = world.carrier.post(f"/sites/{world.shop_id}/collections", json={
        "tracking_numbers": [THEIRS]}).json["items"]
    assert (answer[0]["status"], answer[0]["parcel_id"]) == ("returned", acmes["id"])


# ---------------------------------------------------------------- lockers


@pytest.fixture
def locker_id(world: World) -> int:
    """A locker both carriers serve, each collecting ACME-prefixed labels there."""
    site_id = int(locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": "LCK-O1", "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.51, "longitude": -1.29})["id"])
    for code in ("acme", "other"):
        assert world.operator.put(f"/carriers/{code}/label-networks",
                                  json={"label_networks": ["prefix:ACME"]}).status_code == 200
        assert world.operator.put(f"/sites/{site_id}/carriers/{code}",
                                  json={"collection_delay_hours": 24}).status_code == 200
    return site_id


def test_a_carriers_platform_announcing_a_drop_off_learns_nothing_of_anothers_number(
        world: World, locker_id: int) -> None:
    world.ready(THEIRS)

    def announce(number: str) -> TestResponse:
        return world.other_carrier.post(f"/lockers/{locker_id}/drop-offs", json={
            "tracking_number": number, "size_class": "S", "sender": SENDER})

    theirs, _ = _probe_drop_off(announce)
    assert theirs.status_code == 201
    # its own again: the same drop-off (200), as before
    assert announce(THEIRS).status_code == 200


def _probe_drop_off(announce: Any) -> tuple[TestResponse, TestResponse]:
    theirs, nowhere = announce(THEIRS), announce(NOWHERE)
    assert theirs.status_code == nowhere.status_code, (theirs.json, nowhere.json)
    # each drop-off has its own door, code and links; the rest is the same
    keys = {"status", "carrier", "size_class", "use", "locker"}
    assert {k: theirs.json[k] for k in keys} == {k: nowhere.json[k] for k in keys}
    return theirs, nowhere


def test_a_driver_scanning_another_carriers_number_at_a_locker_finds_nothing(
        world: World, locker_id: int) -> None:
    assert world.announce(THEIRS, site="LCK-O1").status_code == 201
    session = world.other_carrier.post(f"/lockers/{locker_id}/sessions")
    assert session.status_code == 201, session.json
    theirs, _ = _probe(lambda n: world.other_carrier.post(
        f"/locker-sessions/{session.json['id']}/deposits", json={"tracking_number": n}))
    assert is_problem(theirs, 404, "not-found")
