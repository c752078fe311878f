"""The OpenAPI document and the server agree: what the document calls valid is not refused as
invalid (422), the statuses the server gives are documented, and refusals carry the headers a
client needs (``Allow`` on 405, ``Retry-After`` on 429)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from tests.support import PASSWORD, World, is_problem


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json  # type: ignore[no-any-return]


def valid(document: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether ``value`` is valid under ``schema`` of the served document."""
    root = {"components": document["components"], **schema}
    return Draft202012Validator(root).is_valid(value)


def body_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation = document["paths"]["/api/v1" + path][method]
    return operation["requestBody"]["content"]["application/json"]["schema"]  # type: ignore


def param_schema(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    operation = document["paths"]["/api/v1" + path][method]
    return next(p["schema"] for p in operation["parameters"] if p["name"] == name)


def responses(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"]["/api/v1" + path][method]["responses"]  # type: ignore


def test_a_wrong_method_names_the_allowed_ones(world: World) -> None:
    response = world.operator.put("/manifests")
    assert is_problem(response, 405, "method-not-allowed")
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
    response = world.operator.get(f"/sites/{world.shop_id}/pickups")
    assert is_problem(response, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


def test_sign_in_throttling_is_documented_and_says_when_to_retry(
        world: World, document: dict[str, Any]) -> None:
    documented = responses(document, "/auth/token", "post")
    assert "Retry-After" in documented["429"]["headers"]
    for _ in range(10):
        world.client.post("/api/v1/auth/token", json={"username": "marie", "password": "guess"})
    blocked = world.client.post("/api/v1/auth/token",
                                json={"username": "marie", "password": PASSWORD})
    assert is_problem(blocked, 429, "too-many-attempts")
    assert int(blocked.headers["Retry-After"]) > 0


def test_the_answer_to_guessed_pickup_codes_is_documented(
        world: World, document: dict[str, Any]) -> None:
    """Guessing is bounded without stopping the counter (docs/decisions/0004): past a wrong
    code alone, a code needs the tracking number or the name (428), which the document lists."""
    documented = responses(document, "/sites/{site_id}/pickups", "post")
    assert "428" in documented
    parcel = world.ready("ACME00000950")
    right = world.code_of(parcel["id"])
    wrongs = [c for c in (f"{n:07d}" for n in range(11)) if c != right]
    for wrong in wrongs[:world.ctx.settings.pickup_code_only_misses]:
        world.shopkeeper.post(f"/sites/{world.shop_id}/pickups", json={"code": wrong})
    blocked = world.shopkeeper.post(f"/sites/{world.shop_id}/pickups", json={"code": right})
    assert is_problem(blocked, 428, "code-needs-tracking-or-name")


def test_every_success_status_is_documented(world: World, document: dict[str, Any]) -> None:
    assert world.announce("ACME00000951", reference="R-951").status_code == 201
    replay = world.announce("ACME00000951", reference="R-951")
    assert replay.status_code == 200 and "200" in responses(document, "/manifests", "post")
    assert world.check_in("ACME00000951").status_code == 201
    assert world.check_in("ACME00000951").status_code == 200
    assert {"200", "201"} <= set(responses(document, "/sites/{site_id}/check-ins", "post"))


def test_every_operation_documents_the_refusals_of_its_inputs(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if "requestBody" in operation:
                assert {"413", "422"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)
            # A resident's or a courier's link is the credential: no bearer token is read.
            if "/track/" not in path and "/courier/" not in path:
                assert "401" in codes, (method, path)  # a wrong bearer token, even if optional
            else:
                assert "401" not in codes and "security" not in operation, (method, path)


def test_a_pickup_without_code_or_number_is_invalid_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/sites/{site_id}/pickups", "post")
    assert not valid(document, schema, {})
    assert not valid(document, schema, {"code": None})
    assert not valid(document, schema, {"code": "no digits"})
    assert valid(document, schema, {"code": "123 456"})
    assert valid(document, schema, {"tracking_number": "ACME00000952"})
    empty = world.shopkeeper.post(f"/sites/{world.shop_id}/pickups", json={})
    assert is_problem(empty, 422, "invalid-request")
    # Valid under the document: refused by a documented business answer, never a 422.
    wrong = world.shopkeeper.post(f"/sites/{world.shop_id}/pickups", json={"code": "000000"})
    assert is_problem(wrong, 403, "wrong-pickup-code")


def test_a_reroute_decision_is_a_site_or_a_refusal_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    schema = body_schema(document, "/parcels/{parcel_id}/reroute", "post")
    assert not valid(document, schema, {"refuse": False, "site": None})
    assert not valid(document, schema, {})
    assert not valid(document, schema, {"refuse": True, "site": "voisin"})
    assert valid(document, schema, {"site": "voisin"})
    assert valid(document, schema, {"refuse": True})
    parcel_id = world.announce("ACME00000953").json["parcels"][0]["parcel_id"]
    null_site = world.carrier.post(f"/parcels/{parcel_id}/reroute",
                                   json={"refuse": False, "site": None})
    assert is_problem(null_site, 422, "invalid-request")
    # Valid shapes reach the service: no proposal waits for this parcel.
    for body in ({"site": "voisin"}, {"refuse": True}):
        response = world.carrier.post(f"/parcels/{parcel_id}/reroute", json=body)
        assert is_problem(response, 404, "not-found")


def test_a_closing_day_in_a_path_is_a_date_in_the_document_too(
        world: World, document: dict[str, Any]) -> None:
    path = "/sites/{site_id}/closing-days/{day}"
    assert param_schema(document, path, "delete", "day") == {"type": "string", "format": "date"}
    for day in ("christmas", "2026-02-30", "2026-12-24x"):
        response = world.shopkeeper.delete(f"/sites/{world.shop_id}/closing-days/{day}")
        assert is_problem(response, 404, "not-found"), day
    assert world.shopkeeper.post(f"/sites/{world.shop_id}/closing-days",
                                 json={"day": "2026-12-24"}).status_code == 201
    assert world.shopkeeper.delete(f"/sites/{world.shop_id}/closing-days/2026-12-24"
                                   ).status_code == 204


def test_a_lookup_by_number_says_what_a_number_is(world: World, document: dict[str, Any]) -> None:
    schema = param_schema(document, "/parcels", "get", "tracking_number")
    assert not valid(document, schema, "j")
    assert valid(document, schema, "ACME-0000-0954")
    assert is_problem(world.shopkeeper.get("/parcels", tracking_number="j"),
                      422, "invalid-request")
    assert is_problem(world.shopkeeper.get("/parcels", tracking_number="ACME-0000-0954"),
                      404, "not-found")


def test_near_says_what_a_point_is(document: dict[str, Any]) -> None:
    schema = param_schema(document, "/sites", "get", "near")
    assert valid(document, schema, "47.5,-1.3") and valid(document, schema, "-90,180")
    for near in ("95,200", "1" * 400 + ",1", "47.5,-180.5"):
        assert not valid(document, schema, near), near


def test_free_text_in_the_document_excludes_nul(document: dict[str, Any]) -> None:
    schema = {"$ref": "#/components/schemas/TokenIn"}
    assert valid(document, schema, {"username": "marie", "password": "x"})
    assert not valid(document, schema, {"username": "marie\x00", "password": "x"})


def test_bodies_have_the_json_types_the_document_states(world: World,
                                                        document: dict[str, Any]) -> None:
    site = {"code": "typed", "name": "Typed", "kind": "shop", "address": "1 rue",
            "postcode": "44000", "city": "Bourg", "latitude": 47.5, "longitude": -1.3,
            "opening_hours": {"mon": [["09:00", "12:00"]]}}
    schema = body_schema(document, "/sites", "post")
    for wrong in ({"step_free_access": 0}, {"latitude": "47.5"}):
        assert not valid(document, schema, site | wrong)
        response = world.operator.post("/sites", json=site | wrong)
        assert is_problem(response, 422, "invalid-request"), wrong
    assert valid(document, schema, site | {"latitude": 47})  # an integer is a number
    assert world.operator.post("/sites", json=site | {"latitude": 47}).status_code == 201


def test_a_qr_code_is_documented_as_an_image(document: dict[str, Any]) -> None:
    for name, media in (("qr.png", "image/png"), ("qr.svg", "image/svg+xml")):
        success = responses(document, "/track/{token}/" + name, "get")["200"]
        assert list(success["content"]) == [media]
