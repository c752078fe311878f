"""Each rule a service checks on its input is stated by the OpenAPI document, so that a request
the document allows is never refused as invalid (422) and one it forbids is: what the fuzz test
(``test_api_fuzz.py``, check ``positive_data_acceptance``) found, one test per finding. A rule
that depends on the state of things (today's date, a site's declared services, who acts) is
not the input's fault: it is a conflict (409) or names nothing (404), never a 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from relay_ops import create_app
from relay_ops.services import carrier_sites, locker_registry
from relay_ops.services.principal import SYSTEM
from relay_ops.services.resident import tracking_token
from tests.integration.test_contract import body_schema, param_schema, valid
from tests.support import World, is_problem, shop


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json  # type: ignore[no-any-return]


def component(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def test_a_whole_number_written_with_a_fraction_is_an_integer(world: World) -> None:
    """JSON Schema counts 5.0 as an integer; the strict parser now does too (not 5.5)."""
    site = shop("entier", 47.5, -1.3, [("A1", "M", 5)])
    site["locations"][0]["capacity"] = 5.0
    created = world.operator.post("/sites", json=site)
    assert created.status_code == 201, created.json
    site = shop("fraction", 47.5, -1.3, [("A1", "M", 5)])
    site["locations"][0]["capacity"] = 5.5
    assert is_problem(world.operator.post("/sites", json=site), 422, "invalid-request")
    flag = world.operator.post("/sites", json=shop("vrai", 47.5, -1.3, [("A1", "M", 5)])
                               | {"step_free_access": 1.0})
    assert is_problem(flag, 422, "invalid-request")  # a number is still not a boolean


def test_size_classes_and_locker_models_are_the_configured_ones(
        world: World, document: dict[str, Any]) -> None:
    schema = component(document, "LocationIn")
    assert valid(document, schema, {"label": "Z1", "size_class": "XL", "capacity": 1})
    assert not valid(document, schema, {"label": "Z1", "size_class": "0", "capacity": 1})
    check_in = body_schema(document, "/sites/{site_id}/check-ins", "post")
    assert not valid(document, check_in, {"tracking_number": "ACME00000961",
                                          "size_class": "ready_for_pickup"})
    locker = component(document, "LockerIn")
    body = {"code": "casier-9", "name": "Casier", "address": "1 rue", "postcode": "44000",
            "city": "Bourg", "latitude": 47.5, "longitude": -1.3}
    assert valid(document, locker, body | {"locker_model": "mini-6"})
    assert not valid(document, locker, body | {"locker_model": "0"})
    assert is_problem(world.operator.post("/lockers", json=body | {"locker_model": "0"}),
                      422, "validation-failed")


def test_the_document_lists_a_deployments_own_size_classes(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'sizes.sqlite3'}",
                      "SIZE_CLASSES": {"P": [100, 100, 100], "G": [500, 500, 500]},
                      "LOCKER_MODELS": {"petit": {"compartments": [
                          {"size_class": "P", "count": 2}]}}})
    document = app.test_client().get("/api/v1/openapi.json").json
    size = document["components"]["schemas"]["LocationIn"]["properties"]["size_class"]
    assert size["enum"] == ["P", "G"]
    model = document["components"]["schemas"]["LockerIn"]["properties"]["locker_model"]
    assert model["enum"] == ["petit"]


@pytest.mark.parametrize(("spec", "accepted"), [
    ("upu-s10", True), ("upu-s10:FR", True), ("upu-s10:fr", True), ("prefix:MR", True),
    ("prefix:ab12", True), ("upu-s10:", False), ("prefix:", False), (" upu-s10", False),
    ("upu-s10:ß", False), ("prefix:ABCDEFGHIJKLM", False), ("0" * 39, False),
])
def test_a_label_network_is_what_the_document_says(
        world: World, document: dict[str, Any], spec: str, accepted: bool) -> None:
    schema = body_schema(document, "/carriers/{code}/label-networks", "put")
    assert valid(document, schema, {"label_networks": [spec]}) is accepted
    answer = world.operator.put("/carriers/acme/label-networks", json={"label_networks": [spec]})
    assert (answer.status_code == 200) is accepted, answer.json


def test_a_service_the_site_does_not_offer_is_a_conflict(world: World) -> None:
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "acme", ["prefix:ACME"])
    refused = world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                    json={"tracking_number": "ACME00000962"})
    assert is_problem(refused, 409, "service-not-offered")


def test_a_closing_day_in_the_past_is_a_conflict_with_today(world: World) -> None:
    past = world.shopkeeper.post(f"/sites/{world.shop_id}/closing-days", json={"day": "2020-01-01"})
    assert is_problem(past, 409, "conflict")


def test_a_staff_account_for_an_unknown_site_names_nothing(world: World) -> None:
    answer = world.operator.post("/users", json={
        "username": "nobody", "password": "long enough pass", "role": "shopkeeper",
        "sites": ["nowhere"]})
    assert is_problem(answer, 404, "not-found")


def test_staff_taking_back_orders_name_the_producer(world: World) -> None:
    answer = world.shopkeeper.post(f"/sites/{world.shop_id}/producer-orders/take-back",
                                   json={"references": ["CMD-1"]})
    assert is_problem(answer, 409, "on-behalf-of")


def test_a_neighbour_courier_is_named_in_the_document_too(document: dict[str, Any]) -> None:
    schema = component(document, "CourierIn")
    assert not valid(document, schema, {"kind": "neighbour", "name": ""})
    assert not valid(document, schema, {"kind": "volunteer", "name": " \u3000\x1c"})
    assert valid(document, schema, {"kind": "volunteer", "name": "\ufeff"})  # not a space
    assert not valid(document, schema, {"kind": "neighbour"})
    assert valid(document, schema, {"kind": "neighbour", "name": "Marcel Petit"})
    assert valid(document, schema, {"kind": "shopkeeper"})


def test_an_outbound_collection_names_a_parcel_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/sites/{site_id}/outbound/collections", "post")
    for empty in ({}, {"taken": [], "not_found": []}):
        assert not valid(document, schema, empty)
        answer = world.shopkeeper.post(f"/sites/{world.shop_id}/outbound/collections",
                                       json=empty | {"carrier": "acme"})
        assert answer.status_code == 422, answer.json
    assert valid(document, schema, {"not_found": ["ACME00000963"]})


def test_only_a_storage_site_has_a_season_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/sites", "post")
    site = shop("saison", 47.5, -1.3, [("A1", "M", 5)])
    assert not valid(document, schema, site | {"season": {"to": "2027-01-15"}})
    assert valid(document, schema, site | {"season": None})
    assert valid(document, schema, site | {"kind": "storage", "season": {"to": "2027-01-15"}})
    refused = world.operator.post("/sites", json=site | {"season": {"to": "2027-01-15"}})
    assert is_problem(refused, 422, "validation-failed")


def test_a_door_out_of_service_says_why_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = component(document, "CompartmentServiceIn")
    assert not valid(document, schema, {"in_service": False})
    assert not valid(document, schema, {"in_service": False, "reason": None})
    assert not valid(document, schema, {"in_service": False, "reason": "  "})
    assert valid(document, schema, {"in_service": False, "reason": "jammed"})
    assert valid(document, schema, {"in_service": True})
    locker = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": "casier-r", "name": "Casier", "address": "1 rue", "postcode": "44000",
        "city": "Bourg", "latitude": 47.5, "longitude": -1.3, "locker_model": "mini-6"})
    answer = world.operator.put(f"/lockers/{locker['id']}/compartments/1/service",
                                json={"in_service": False, "reason": "  "})
    assert is_problem(answer, 422, "validation-failed")


def test_a_locker_sender_gives_a_phone_or_an_email_in_the_document_too(
        document: dict[str, Any]) -> None:
    schema = body_schema(document, "/lockers/{site_id}/drop-offs", "post")
    body = {"tracking_number": "ACME00000964", "size_class": "S"}
    assert not valid(document, schema, body | {"sender": {"phone": None, "email": None}})
    assert not valid(document, schema, body | {"sender": {"phone": ""}})
    assert valid(document, schema, body | {"sender": {"email": "a@example.org"}})


@pytest.mark.parametrize(("hours", "in_document"), [
    ({}, False), ({"mon": []}, False), ({"lun": [["09:00", "12:00"]]}, False),
    ({"mon": [["9:00", "12:00"]]}, False), ({"mon": [["\u00b2\u00b3:00", "23:00"]]}, False),
    ({"mon": [["09:00"]]}, False), ({"mon": [], "sat": [["09:00", "12:00"]]}, True),
    ("24/7", True),
])
def test_opening_hours_are_what_the_document_says(
        world: World, document: dict[str, Any], hours: Any, in_document: bool) -> None:
    schema = body_schema(document, "/sites/{site_id}/opening-hours", "put")
    assert valid(document, schema, {"opening_hours": hours}) is in_document
    answer = world.operator.put(f"/sites/{world.shop_id}/opening-hours",
                                json={"opening_hours": hours})
    assert answer.status_code == (200 if in_document else 422), answer.json


def test_a_range_that_ends_before_it_starts_is_refused_though_the_document_cannot_say_it(
        world: World) -> None:
    answer = world.operator.put(f"/sites/{world.shop_id}/opening-hours",
                                json={"opening_hours": {"mon": [["12:00", "09:00"]]}})
    assert is_problem(answer, 422, "validation-failed")


def test_the_states_filter_is_a_list_of_states_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = param_schema(document, "/sites/{site_id}/parcels", "get", "state")
    assert not valid(document, schema, "already_used")
    assert not valid(document, schema, "expiredready_for_pickup")
    for states in ("", "expired", ",ready_for_pickup,,expired,"):
        assert valid(document, schema, states), states
        answer = world.shopkeeper.get(f"/sites/{world.shop_id}/parcels", state=states)
        assert answer.status_code == 200, (states, answer.json)
    refused = world.shopkeeper.get(f"/sites/{world.shop_id}/parcels", state="already_used")
    assert is_problem(refused, 422, "invalid-request")


def test_staff_name_the_carrier_they_hand_to_and_a_carrier_names_no_other(
        world: World) -> None:
    path = f"/sites/{world.shop_id}/outbound/collections"
    unnamed = world.shopkeeper.post(path, json={"taken": ["ACME00000965"]})
    assert is_problem(unnamed, 409, "on-behalf-of")
    other = world.carrier.post(path, json={"taken": ["ACME00000965"], "carrier": "other"})
    assert is_problem(other, 409, "on-behalf-of")


def test_consent_is_true_in_the_document_too(document: dict[str, Any]) -> None:
    schema = component(document, "RequestIn")
    body = {"day": "2026-12-03", "courier": {"kind": "shopkeeper"}, "in_area": True}
    assert valid(document, schema, body | {"consent": True})
    assert not valid(document, schema, body | {"consent": False})


def test_home_size_classes_go_with_the_home_step_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/no-room-policies", "post")
    assert not valid(document, schema, {"steps": ["hold"], "home_size_classes": ["XL"]})
    assert valid(document, schema, {"steps": ["hold", "home"], "home_size_classes": ["XL"]})
    assert valid(document, schema, {"steps": ["hold"], "home_size_classes": []})
    refused = world.operator.post("/no-room-policies",
                                  json={"steps": ["hold"], "home_size_classes": ["XL"]})
    assert is_problem(refused, 422, "validation-failed")


def test_a_shop_says_when_it_opens_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/sites", "post")
    site = shop("heures", 47.5, -1.3, [("A1", "M", 5)])
    for kind in ("shop", "storage"):
        assert not valid(document, schema, site | {"kind": kind, "opening_hours": None})
        assert not valid(document, schema, {k: v for k, v in site.items()
                                            if k != "opening_hours"} | {"kind": kind})
    locker = site | {"kind": "locker", "locations": [], "opening_hours": None}
    assert valid(document, schema, locker)
    refused = world.operator.post("/sites", json=site | {"opening_hours": None})
    assert is_problem(refused, 422, "validation-failed")


def test_a_shopkeeper_account_has_a_site_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/users", "post")
    body = {"username": "sans-site", "password": "long enough pass"}
    assert not valid(document, schema, body | {"role": "shopkeeper", "sites": []})
    assert not valid(document, schema, body | {"role": "shopkeeper"})
    assert valid(document, schema, body | {"role": "shopkeeper", "sites": ["bourg"]})
    assert valid(document, schema, body | {"role": "operator"})
    refused = world.operator.post("/users", json=body | {"role": "shopkeeper", "sites": []})
    assert is_problem(refused, 422, "validation-failed")


@pytest.mark.parametrize(("phone", "in_document"), [
    ("06 12 34 56 78", True), ("+33 (0)6 12 34 56 78", True), ("0033612345678", True),
    ("+44 20 7946 0958", True), ("06/12/34/56/78", True), ("0", False), ("", False),
    ("+3312345678", False), ("0612345678\n", False), ("06 12 34 56", False),
])
def test_a_phone_is_what_the_document_says(
        world: World, document: dict[str, Any], phone: str, in_document: bool) -> None:
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "acme", ["prefix:ACME"])
    schema = body_schema(document, "/lockers/{site_id}/drop-offs", "post")
    body = {"tracking_number": "ACME00000966", "size_class": "S", "sender": {"phone": phone}}
    assert valid(document, schema, body) is in_document
    sender = component(document, "SenderIn")
    assert valid(document, sender, {"phone": phone}) is in_document
    outbound = world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                     json={"tracking_number": "ACME00000966",
                                           "sender": {"phone": phone}})
    # Valid: refused only by the shop's services (409), never as invalid input.
    assert outbound.status_code == (409 if in_document else 422), outbound.json


@pytest.mark.parametrize(("email", "in_document"), [
    ("a@b.fr", True), ("marie.dupont+colis@example.org", True), ("a@b", False),
    ("a" * 65 + "@b.fr", False), (" a@b.fr", False), ("not an address", False),
    ("0" * 200, False),
])
def test_an_email_is_what_the_document_says(
        world: World, document: dict[str, Any], email: str, in_document: bool) -> None:
    sender = component(document, "SenderIn")
    assert valid(document, sender, {"email": email}) is in_document
    outbound = world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                     json={"tracking_number": "ACME00000967",
                                           "sender": {"email": email}})
    assert outbound.status_code == (409 if in_document else 422), outbound.json


def test_a_producers_customer_gives_a_phone_or_an_email_in_the_document_too(
        document: dict[str, Any]) -> None:
    schema = body_schema(document, "/producer/orders", "post")
    order = {"reference": "CMD-2", "site": "bourg"}
    assert not valid(document, schema, order | {"recipient": {"name": "Marie"}})
    assert valid(document, schema, order | {"recipient": {"phone": "0612345678"}})
    assert valid(document, schema, order | {"recipient": {"email": "m@example.org"}})


def test_each_no_room_step_appears_once_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/no-room-policies", "post")
    assert not valid(document, schema, {"steps": ["hold", "hold"]})
    assert valid(document, schema, {"steps": ["storage", "hold"]})
    refused = world.operator.post("/no-room-policies", json={"steps": ["hold", "hold"]})
    assert is_problem(refused, 422, "validation-failed")


def test_a_collections_refusal_for_whom_it_acts_is_documented(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/v1/sites/{site_id}/outbound/collections"]["post"]
    assert "409" in operation["responses"]


def test_a_locker_has_no_shelf_locations_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/sites", "post")
    locker = shop("casier-l", 47.5, -1.3, [("A1", "M", 5)]) | {"kind": "locker"}
    assert not valid(document, schema, locker)
    assert valid(document, schema, locker | {"locations": []})
    assert is_problem(world.operator.post("/sites", json=locker), 422, "validation-failed")


def test_a_proxys_name_is_not_blank_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = component(document, "ProxyIn")
    assert not valid(document, schema, {"name": " \u2003"})
    assert valid(document, schema, {"name": "Marcel Petit"})
    parcel = world.ready("ACME00000968")
    link = tracking_token(world.ctx, parcel["id"])
    answer = world.anonymous.post(f"/track/{link}/proxy", json={"name": " "})
    assert is_problem(answer, 422, "validation-failed")


def test_a_public_operation_documents_the_roles_it_refuses(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/v1/lockers/{site_id}/drop-offs"]["post"]
    assert "403" in operation["responses"]  # a shopkeeper's token is refused


def test_round_times_are_times_of_day_and_a_return_names_its_parcel(
        document: dict[str, Any]) -> None:
    """Found by the fuzz once carriers' rounds and locker returns came (issue 17): `99:74`
    matched `\\d\\d:\\d\\d`; `return_of` goes with `reason: return`, and only with it; a
    refusal's reason is not blank."""
    service = component(document, "CarrierServiceIn")
    assert valid(document, service, {"collection_delay_hours": 24, "rounds": ["09:30", "23:59"]})
    assert not valid(document, service, {"collection_delay_hours": 24, "rounds": ["99:74"]})
    assert not valid(document, service, {"collection_delay_hours": 24, "rounds": ["24:00"]})
    drop = component(document, "LockerDropOffIn")
    base = {"tracking_number": "ACME00000961", "size_class": "S",
            "sender": {"phone": "+33612345678"}}
    assert valid(document, drop, base)
    assert valid(document, drop, base | {"reason": "return", "return_of": "ACME00000962"})
    assert not valid(document, drop, base | {"reason": "return"})
    assert not valid(document, drop, base | {"return_of": "ACME00000962"})
    assert not valid(document, drop, base | {"reason": "send", "return_of": "ACME00000962"})
    for name in ("RefusalIn", "OutboundRefusalIn"):
        assert valid(document, component(document, name), {"reason": "abîmé"})
        assert not valid(document, component(document, name), {"reason": "\u00a0 "})


def test_counter_operations_at_a_locker_or_a_storage_site_are_conflicts_with_its_kind(
        world: World) -> None:
    """A hand-back, a deposit to send, a collection, a take-back or a temporary shelf: the
    same valid body a shop takes is refused at a locker (its doors do that) or a storage site
    for what the site is, 409 with its own type, never as an invalid request (422); and
    nothing is written."""
    op = world.operator
    locker = op.post("/lockers", json={
        "code": "LCK-K1", "name": "Casier", "locker_model": "mini-6", "address": "Gare",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.51, "longitude": -1.29,
    }).json["id"]
    storage = op.post("/sites", json=shop("grange", 47.51, -1.30, [("S1", "M", 5)],
                                          kind="storage")).json["id"]
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "acme", ["prefix:ACME"])
    assert op.put(f"/sites/{locker}/carriers/acme",
                  json={"collection_delay_hours": 24}).status_code == 200
    dropped = world.anonymous.post(f"/lockers/{locker}/drop-offs", json={
        "tracking_number": "ACME00000970", "size_class": "M",
        "sender": {"phone": "+33698765432"}})
    assert dropped.status_code == 201, dropped.json
    parcel = op.get("/parcels", tracking_number="ACME00000970").json

    handed = op.post(f"/parcels/{parcel['id']}/hand-back")
    assert is_problem(handed, 409, "site-has-no-shelves")
    assert op.get(f"/parcels/{parcel['id']}").json["state"] == parcel["state"]
    collected = op.post(f"/sites/{locker}/outbound/collections",
                        json={"taken": ["ACME00000970"], "carrier": "acme"})
    assert is_problem(collected, 409, "site-has-no-shelves")
    assert op.get(f"/parcels/{parcel['id']}").json["state"] == parcel["state"]
    assert op.post("/producers", json={"code": "ferme", "name": "Ferme"}).status_code == 201
    taken_back = op.post(f"/sites/{locker}/producer-orders/take-back",
                         json={"references": ["CMD-1"], "producer": "ferme"})
    assert is_problem(taken_back, 409, "site-has-no-shelves")

    shelf = {"label": "T1", "capacity": 4, "valid_from": "2030-01-01",
             "valid_until": "2030-01-10"}
    deposit = {"tracking_number": "ACME00000971", "sender": {"phone": "+33698765432"}}
    assert is_problem(op.post(f"/sites/{locker}/temporary-shelves", json=shelf),
                      409, "site-has-no-shelves")
    assert op.get(f"/sites/{locker}/temporary-shelves").json["items"] == []
    # A storage site grows for a period as a shop does (a second room, a container).
    assert op.post(f"/sites/{storage}/temporary-shelves", json=shelf).status_code == 201
    assert [s["label"] for s in op.get(f"/sites/{storage}/temporary-shelves").json["items"]
            ] == ["T1"]
    for site_id, kind in ((locker, "site-has-no-shelves"), (storage, "shops-only")):
        assert is_problem(op.post(f"/sites/{site_id}/outbound", json=deposit), 409, kind)
    assert op.get("/parcels", tracking_number="ACME00000971").status_code == 404


def test_a_parcel_addressed_elsewhere_is_refused_at_a_lockers_door_as_at_a_counter(
        world: World) -> None:
    """A carrier scans, in its session at a locker, its parcel announced for a shop: the
    parcel's address refuses it (409 wrong-site, as a counter's check-in), not the request;
    no door is reserved."""
    locker = world.operator.post("/lockers", json={
        "code": "LCK-W1", "name": "Casier", "locker_model": "mini-6", "address": "Gare",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.51, "longitude": -1.29,
    }).json["id"]
    world.announce("WRONG00001")  # for the Bourg shop
    session = world.carrier.post(f"/lockers/{locker}/sessions").json["id"]
    scanned = world.carrier.post(f"/locker-sessions/{session}/deposits",
                                 json={"tracking_number": "WRONG00001"})
    assert is_problem(scanned, 409, "wrong-site")
    assert scanned.json["destination"] == "bourg"
    doors = world.operator.get(f"/lockers/{locker}").json["compartments"]
    assert all(door["state"] == "free" for door in doors)
