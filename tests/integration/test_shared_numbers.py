"""Two carriers may print the same tracking number (numbers are unique per carrier,
docs/decisions/0007-tracking-numbers-per-carrier.md): the counter keeps their parcels apart,
asks which carrier's label it holds when it cannot tell, and never mixes them up."""

from __future__ import annotations

from werkzeug.test import TestResponse

from relay_ops.services import unannounced
from relay_ops.services.principal import Principal, Role
from tests.support import World, is_problem

SHARED = "ACME00000980"


def _announce_as_other(world: World, number: str, site: str = "bourg") -> int:
    answer = world.other_carrier.post("/manifests", json={
        "reference": f"B-{number}-{site}", "parcels": [{
            "tracking_number": number, "site": site,
            "recipient": {"name": "Bea Durand", "phone": "+33698000001"}}]})
    line = answer.json["parcels"][0]
    assert line["status"] == "accepted", line
    return int(line["parcel_id"])


def _both_announced_here(world: World) -> tuple[int, int]:
    acme = world.announce(SHARED).json["parcels"][0]["parcel_id"]
    return acme, _announce_as_other(world, SHARED)


def test_two_carriers_parcels_here_under_one_number_make_the_shopkeeper_name_the_carrier(
        world: World) -> None:
    acme, other = _both_announced_here(world)
    unsure = world.check_in(SHARED)
    assert is_problem(unsure, 409, "ambiguous-tracking-number")
    assert unsure.json["carriers"] == ["acme", "other"]
    named = world.check_in(SHARED, carrier="other")
    assert named.status_code == 201 and named.json["parcel"]["id"] == other
    assert world.check_in(SHARED, carrier="other").json["status"] == "already_checked_in"
    theirs = world.check_in(SHARED, carrier="acme")
    assert theirs.status_code == 201 and theirs.json["parcel"]["id"] == acme


def test_another_shop_is_not_told_whose_parcels_carry_the_number(world: World) -> None:
    _both_announced_here(world)

    def scan(**body: object) -> TestResponse:
        return world.other_shopkeeper.post(f"/sites/{world.other_shop_id}/check-ins",
                                           json={"tracking_number": SHARED, **body})

    unsure = scan()
    assert is_problem(unsure, 409, "ambiguous-tracking-number")
    assert unsure.json["carriers"] == [] and "acme" not in unsure.json["detail"]
    wrong = scan(carrier="acme")
    assert is_problem(wrong, 409, "wrong-site") and wrong.json["destination"] == "bourg"


def test_the_parcel_here_is_the_one_scanned_when_the_other_is_elsewhere(world: World) -> None:
    acme = world.announce(SHARED).json["parcels"][0]["parcel_id"]
    _announce_as_other(world, SHARED, site="voisin")
    scanned = world.check_in(SHARED)
    assert scanned.status_code == 201 and scanned.json["parcel"]["id"] == acme


def test_a_carriers_label_registered_unannounced_beside_anothers_parcel(world: World) -> None:
    """Acme's SHARED waits at Bourg; Other's SHARED comes to Voisin unannounced: named, it
    is registered as Other's, not sent to Bourg."""
    world.announce(SHARED)
    registered = world.other_shopkeeper.post(
        f"/sites/{world.other_shop_id}/check-ins",
        json={"tracking_number": SHARED, "accept_unannounced": True, "carrier": "other"})
    assert registered.status_code == 201, registered.json
    assert registered.json["parcel"]["carrier"] == "other"


def test_the_code_hands_over_the_right_one_of_two_parcels_under_one_number(
        world: World) -> None:
    acme, other = _both_announced_here(world)
    world.check_in(SHARED, carrier="acme")
    world.check_in(SHARED, carrier="other")
    handed = world.pick_up(code=world.code_of(other), tracking_number=SHARED)
    assert handed.status_code == 200, handed.json
    assert world.operator.get(f"/parcels/{other}").json["state"] == "picked_up"
    assert world.operator.get(f"/parcels/{acme}").json["state"] == "ready_for_pickup"
    # the other one is left alone by number: it is the only one ready here now
    handed = world.pick_up(code=world.code_of(acme), tracking_number=SHARED)
    assert handed.status_code == 200, handed.json
    assert world.operator.get(f"/parcels/{acme}").json["state"] == "picked_up"


def test_a_scan_waiting_here_stays_listed_when_another_carrier_uses_its_number_elsewhere(
        world: World) -> None:
    unannounced.hold_unannounced(world.ctx, _marie(world), world.shop_id, SHARED)
    _announce_as_other(world, SHARED, site="voisin")
    waiting = unannounced.unannounced_waiting(world.ctx, _marie(world), world.shop_id)
    assert [w["tracking_number"] for w in waiting] == [SHARED]
    world.announce(SHARED)  # announced here since: no longer waiting
    assert unannounced.unannounced_waiting(world.ctx, _marie(world), world.shop_id) == []


def _marie(world: World) -> Principal:
    return Principal(Role.SHOPKEEPER, user_id=2, site_ids=frozenset({world.shop_id}))


def test_a_sent_parcel_takes_a_label_another_carrier_uses_for_its_own_parcel(
        world: World) -> None:
    """Acme collects ACME labels at Bourg; Other has an inbound parcel under the number: the
    sent parcel is Acme's, a parcel of its own (before: 409 "already registered")."""
    assert world.operator.put(f"/sites/{world.shop_id}/services",
                              json={"services": ["receive", "send"]}).status_code == 200
    assert world.operator.put("/carriers/acme/label-networks",
                              json={"label_networks": ["prefix:ACME"]}).status_code == 200
    assert world.operator.put(f"/sites/{world.shop_id}/carriers/acme",
                              json={"collection_delay_hours": 48}).status_code == 200
    others = _announce_as_other(world, SHARED)

    def drop() -> TestResponse:
        return world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                     json={"tracking_number": SHARED})

    sent = drop()
    assert sent.status_code == 201, sent.json
    assert sent.json["parcel"]["id"] != others and sent.json["parcel"]["carrier"] == "acme"
    again = drop()
    assert again.status_code == 200 and again.json["status"] == "already_dropped_off"
