"""Every role against every kind of object: another shop's or carrier's object is not found."""

import pytest
from werkzeug.test import TestResponse

from tests.conftest import Clock
from tests.support import Api, World, is_problem


def test_no_token_or_a_wrong_token_is_401(world: World) -> None:
    assert is_problem(world.anonymous.get(f"/sites/{world.shop_id}"), 401, "unauthenticated")
    for token in ("nope", "ck_x.y", world.carrier.token + "x"):
        response = Api(world.client, token).get(f"/sites/{world.shop_id}")
        assert is_problem(response, 401, "unauthenticated")
    basic = world.client.get(f"/api/v1/sites/{world.shop_id}",
                             headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert is_problem(basic, 401, "unauthenticated")


def test_a_shopkeeper_sees_only_their_shop(world: World) -> None:
    parcel = world.ready("ACME00000800")
    paul = world.other_shopkeeper
    assert is_problem(paul.get(f"/parcels/{parcel['id']}"), 404, "not-found")
    assert is_problem(paul.get(f"/parcels/{parcel['id']}/events"), 404, "not-found")
    assert is_problem(paul.get("/parcels", tracking_number="ACME00000800"), 404, "not-found")
    assert is_problem(paul.get(f"/sites/{world.shop_id}/parcels"), 404, "not-found")
    assert is_problem(paul.get(f"/sites/{world.shop_id}/occupancy"), 404, "not-found")
    check_in = paul.post(f"/sites/{world.shop_id}/check-ins",
                         json={"tracking_number": "ACME00000801", "accept_unannounced": True})
    assert is_problem(check_in, 404, "not-found")
    pickup = paul.post(f"/sites/{world.shop_id}/pickups", json={"code": "123456"})
    assert is_problem(pickup, 404, "not-found")
    declare = paul.post(f"/parcels/{parcel['id']}/declarations",
                        json={"kind": "missing", "note": "x"})
    assert is_problem(declare, 404, "not-found")
    assert paul.get(f"/sites/{world.other_shop_id}/parcels").status_code == 200


def test_a_carrier_sees_only_its_parcels(world: World) -> None:
    parcel = world.ready("ACME00000802")
    assert world.carrier.get(f"/parcels/{parcel['id']}").status_code == 200
    other = world.other_carrier
    assert is_problem(other.get(f"/parcels/{parcel['id']}"), 404, "not-found")
    assert is_problem(other.get(f"/parcels/{parcel['id']}/events"), 404, "not-found")


@pytest.mark.parametrize("path,body", [
    ("/sites/{shop}/check-ins", {"tracking_number": "ACME00000803"}),
    ("/sites/{shop}/pickups", {"code": "123456"}),
    ("/sites/{shop}/closing-days", {"day": "2026-12-24"}),
])
def test_carriers_do_not_run_the_counter(world: World, path: str, body: dict) -> None:
    response = world.carrier.post(path.format(shop=world.shop_id), json=body)
    assert is_problem(response, 403, "forbidden")


def test_only_operators_administer(world: World) -> None:
    for api in (world.shopkeeper, world.carrier):
        assert is_problem(api.post("/carriers", json={"code": "x", "name": "X"}), 403, "forbidden")
        assert is_problem(api.post("/carriers/acme/keys", json={}), 403, "forbidden")
        assert is_problem(api.post("/users", json={
            "username": "eve", "password": "0123456789", "role": "operator"}), 403, "forbidden")
        assert is_problem(api.put(f"/sites/{world.shop_id}/status", json={"status": "closed"}),
                          403, "forbidden")


def test_operator_creates_a_carrier_its_key_and_a_shopkeeper(world: World) -> None:
    assert world.operator.post("/carriers", json={"code": "velo", "name": "Vélo Express"}
                               ).status_code == 201
    dup = world.operator.post("/carriers", json={"code": "velo", "name": "Again"})
    assert is_problem(dup, 409, "conflict")
    key = world.operator.post("/carriers/velo/keys", json={"label": "van 1"}).json["token"]
    velo = Api(world.client, key)
    assert velo.post("/manifests", json={"reference": "V1", "parcels": [{
        "tracking_number": "VELO00000001", "site": "bourg",
        "recipient": {"email": "a@example.org"}}]}).status_code == 201
    prefix = key.split(".")[0]
    assert world.operator.delete(f"/keys/{prefix}").status_code == 204
    revoked = velo.get("/manifests")
    assert is_problem(revoked, 401, "unauthenticated") and "revoked" in revoked.json["detail"]
    user = world.operator.post("/users", json={
        "username": "lea", "password": "a long password", "role": "shopkeeper",
        "sites": ["voisin"]})
    assert user.status_code == 201 and user.json["sites"] == ["voisin"]
    token = world.client.post("/api/v1/auth/token", json={
        "username": "lea", "password": "a long password"}).json["token"]
    assert Api(world.client, token).get(f"/sites/{world.other_shop_id}").status_code == 200
    wrong = world.client.post("/api/v1/auth/token", json={"username": "lea", "password": "no"})
    assert is_problem(wrong, 401, "unauthenticated")


def test_site_directory_is_public_and_finds_room_nearby(world: World) -> None:
    response = world.anonymous.get("/sites", near="47.50,-1.30", has_room="true")
    codes = [s["code"] for s in response.json["items"]]
    assert codes == ["bourg", "voisin"]
    assert response.json["items"][0]["distance_km"] < response.json["items"][1]["distance_km"]
    near_only = world.anonymous.get("/sites", near="47.5167,-1.2917", radius_km=2)
    assert [s["code"] for s in near_only.json["items"]] == ["bourg"]
    # 09:00 UTC on Tuesday 1 December: both shops open 08:00-20:00 local time.
    assert len(world.anonymous.get("/sites", open_now="true").json["items"]) == 2
    assert is_problem(world.anonymous.get("/sites", near="somewhere"), 422, "invalid-request")


def test_operator_creates_a_site_with_locations(world: World) -> None:
    body = {"code": "mairie", "name": "Point relais de la mairie", "kind": "shop",
            "address": "1 place de la Mairie", "postcode": "44540", "city": "Le Pin",
            "latitude": 47.59, "longitude": -1.15,
            "opening_hours": {"mon": [["09:00", "12:00"]]},
            "locations": [{"label": "A1", "size_class": "M", "capacity": 8}]}
    response = world.operator.post("/sites", json=body)
    assert response.status_code == 201 and response.json["capacity"] == 8
    assert is_problem(world.operator.post("/sites", json=body), 409, "conflict")
    more = world.operator.post(f"/sites/{response.json['id']}/locations", json={
        "locations": [{"label": "B1", "size_class": "XXL", "capacity": 2}]})
    assert is_problem(more, 422, "validation-failed")
    bad_hours = dict(body, code="other", opening_hours={"lundi": [["09:00", "12:00"]]})
    assert is_problem(world.operator.post("/sites", json=bad_hours), 422, "invalid-request")


def test_sign_in_guessing_slows_the_guesser_and_never_locks_the_owner_out(
    world: World, clock: Clock
) -> None:
    # Was: ten wrong passwords from anywhere made the right one answer 429 for 15 minutes,
    # so anyone could lock a staff member out. Now the count is per username AND address.
    from tests.support import PASSWORD

    def sign_in(password: str, address: str, username: str = "marie") -> TestResponse:
        return world.client.post("/api/v1/auth/token", json={
            "username": username, "password": password}, environ_base={"REMOTE_ADDR": address})

    guesser, owner = "203.0.113.9", "198.51.100.7"
    for _ in range(5):  # a few mistakes cost nothing
        assert is_problem(sign_in("guess", guesser), 401, "unauthenticated")
    waits = []
    for _ in range(12):
        blocked = sign_in(PASSWORD, guesser)  # refused unread, even the right password
        assert is_problem(blocked, 429, "too-many-attempts")
        waits.append(blocked.json["retry_after_s"])
        clock.advance(seconds=blocked.json["retry_after_s"])
        assert is_problem(sign_in("guess", guesser), 401, "unauthenticated")
    # Waits double from 1 s and stop at 15 minutes.
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    # Meanwhile the owner, from her own address, signs in at once.
    assert sign_in(PASSWORD, owner).status_code == 201
    assert sign_in(PASSWORD, guesser, "paul").status_code == 201  # other names: untouched
    # Once the wait is over, the right password from the guesser's address works and
    # clears the count.
    clock.advance(minutes=15)
    assert sign_in(PASSWORD, guesser).status_code == 201
    assert is_problem(sign_in("guess", guesser), 401, "unauthenticated")
