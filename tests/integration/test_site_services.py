"""A site says what it offers (receive, send, cold, home delivery, locker) and the public
directory filters on it (issue 17, item 4)."""

from relay_ops.services import sites
from relay_ops.services.principal import SYSTEM
from tests.support import World, is_problem, row_counts, shop


def codes(response: object) -> list[str]:
    return [s["code"] for s in response.json["items"]]  # type: ignore[attr-defined]


def test_a_new_site_receives_parcels_and_a_locker_is_a_locker(world: World) -> None:
    assert world.operator.get(f"/sites/{world.shop_id}").json["services"] == ["receive"]
    locker = sites.create_site(world.ctx, SYSTEM, {
        "code": "box", "name": "Consigne", "kind": "locker", "address": "Place", "postcode":
        "44000", "city": "Bourg", "latitude": 47.5, "longitude": -1.3})
    assert locker["services"] == ["receive", "locker"]


def test_a_site_is_created_with_the_services_it_offers(world: World) -> None:
    created = world.operator.post("/sites", json=shop(
        "multi", 47.51, -1.29, [("A1", "M", 5)], services=["send", "receive", "cold"]))
    assert created.status_code == 201
    assert created.json["services"] == ["receive", "send", "cold"]  # the catalogue's order


def test_the_shopkeeper_declares_what_the_shop_offers(world: World) -> None:
    answer = world.shopkeeper.put(f"/sites/{world.shop_id}/services",
                                  json={"services": ["receive", "send", "home_delivery"]})
    assert answer.status_code == 200
    assert answer.json["services"] == ["receive", "send", "home_delivery"]
    assert world.shopkeeper.get(f"/sites/{world.shop_id}").json["services"] == [
        "receive", "send", "home_delivery"]


def test_only_the_site_s_own_staff_declare_its_services(world: World) -> None:
    counts = row_counts(world.ctx)
    other = world.other_shopkeeper.put(f"/sites/{world.shop_id}/services",
                                       json={"services": ["send"]})
    assert is_problem(other, 404, "not-found")
    carrier = world.carrier.put(f"/sites/{world.shop_id}/services", json={"services": ["send"]})
    assert carrier.status_code == 403
    unknown = world.operator.put(f"/sites/{world.shop_id}/services",
                                 json={"services": ["teleport"]})
    assert unknown.status_code == 422
    assert row_counts(world.ctx) == counts
    assert world.operator.get(f"/sites/{world.shop_id}").json["services"] == ["receive"]


def test_the_public_directory_finds_the_sites_offering_every_service_asked(
    world: World
) -> None:
    world.operator.put(f"/sites/{world.shop_id}/services", json={"services": ["receive", "send"]})
    world.operator.put(f"/sites/{world.other_shop_id}/services",
                       json={"services": ["receive", "send", "cold"]})
    assert codes(world.anonymous.get("/sites", service="send")) == ["bourg", "voisin"]
    assert codes(world.anonymous.get("/sites", service="send,cold")) == ["voisin"]
    assert codes(world.anonymous.get("/sites", service="home_delivery")) == []
    assert codes(world.anonymous.get("/sites")) == ["bourg", "voisin"]
    near = world.anonymous.get("/sites", service="cold", near="47.5167,-1.2917", has_room="true")
    assert codes(near) == ["voisin"]


def test_an_unknown_service_in_the_search_is_refused(world: World) -> None:
    assert world.anonymous.get("/sites", service="teleport").status_code == 422
    assert world.anonymous.get("/sites", service="send,").status_code == 422
