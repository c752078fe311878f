"""Hostile inputs are refused as problems (4xx) before any query runs, on SQLite and on
PostgreSQL (which cannot store a NUL and whose ids are 32-bit): huge ids, NUL characters, deep
JSON, absurd coordinates, oversized bodies."""

from __future__ import annotations

import io
import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from relay_ops.services import accounts
from relay_ops.services.principal import SYSTEM
from relay_ops.services.resident import tracking_token
from relay_ops.settings import DEFAULTS
from relay_ops.web.api import bp
from relay_ops.web.inputs import MAX_JSON_DEPTH
from tests.pages.support import Pages
from tests.support import World, is_problem

TOO_BIG = 2**31  # one past the INTEGER columns' range


def _api_rules(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every API operation with an id in its path, ids set to TOO_BIG."""
    rules = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(bp.name + ".") or "<" not in rule.rule:
            continue
        if not re.search(r"<(?:id|int):", rule.rule):
            continue
        path = re.sub(r"<(?:id|int):\w+>", str(TOO_BIG), rule.rule)
        path = re.sub(r"<date:\w+>", "2026-12-24", path)
        path = re.sub(r"<\w+>", "x", path)
        rules += [(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}]
    return sorted(rules)


def test_ids_beyond_the_integer_range_name_nothing(world: World, app: Flask) -> None:
    rules = _api_rules(app)
    assert len(rules) >= 25  # every operation with an id in its path
    for method, path in rules:
        response = world.client.open(path, method=method, json={},
                                     headers={"Authorization": f"Bearer {world.operator.token}"})
        assert is_problem(response, 404, "not-found"), (method, path, response.status_code)
    # Pages bound their ids the same way: a page is not found, not an error.
    assert world.client.get(f"/shop/{TOO_BIG}/scan").status_code in (302, 404)
    assert world.client.get(f"/carrier/manifests/{TOO_BIG}").status_code in (302, 404)


def test_the_largest_integer_id_is_an_ordinary_not_found(world: World) -> None:
    assert is_problem(world.operator.get(f"/parcels/{TOO_BIG - 1}"), 404, "not-found")


def test_nul_characters_are_refused_everywhere_even_without_signing_in(world: World) -> None:
    anonymous = world.client.post("/api/v1/auth/token",
                                  json={"username": "marie\x00", "password": "x"})
    assert is_problem(anonymous, 422, "invalid-request")
    key = world.client.post("/api/v1/auth/token", json={"user\x00name": "marie", "password": "x"})
    assert is_problem(key, 422, "invalid-request")
    site = world.operator.post("/sites", json={
        "code": "nul", "name": "Chez\x00Nul", "kind": "shop", "address": "1 rue",
        "postcode": "44000", "city": "Bourg", "latitude": 47.5, "longitude": -1.3})
    assert is_problem(site, 422, "invalid-request")
    manifest = world.carrier.post("/manifests", json={"reference": "R\x00", "parcels": [
        {"tracking_number": "ACME00000900", "site": "bourg",
         "recipient": {"email": "a@example.org"}}]})
    assert is_problem(manifest, 422, "invalid-request")
    parcel = world.ready("ACME00000901")
    link = tracking_token(world.ctx, parcel["id"])
    proxy = world.anonymous.post(f"/track/{link}/proxy", json={"name": "Paul\x00"})
    assert is_problem(proxy, 422, "invalid-request")
    nested = world.carrier.post("/manifests", json={"reference": "R1", "parcels": [
        {"tracking_number": "ACME00000902", "site": "bourg",
         "recipient": {"email": "a@example.org", "name": ["\x00"]}}]})
    assert is_problem(nested, 422, "invalid-request")
    assert is_problem(world.shopkeeper.get("/parcels", tracking_number="ACME0000\x000903"),
                      422, "invalid-request")
    assert is_problem(world.operator.post("/carriers/ac%00me/keys", json={}),
                      422, "invalid-request")
    assert is_problem(world.operator.delete("/keys/ab%00cd"), 422, "invalid-request")
    # The sign-in page, which anyone reaches, refuses it too (a page, not an error).
    page = world.client.post("/login", data={"username": "marie\x00", "password": "x"})
    assert page.status_code == 422


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1000, 30_000])
def test_deeply_nested_json_is_refused(client: FlaskClient, depth: int) -> None:
    body = "[" * depth + "]" * depth
    response = client.post("/api/v1/auth/token", data=body,
                           content_type="application/json")
    assert is_problem(response, 422, "invalid-request")
    assert "nests deeper" in response.json["detail"]


def test_ordinary_nesting_is_accepted(world: World) -> None:
    # A site with opening hours nests four levels; far below the limit.
    assert world.operator.get(f"/sites/{world.shop_id}").status_code == 200
    assert world.announce("ACME00000904").status_code == 201


@pytest.mark.parametrize("near", ["1" * 400 + ",1", "95,200", "47.5,-181", "90.5,0", "nan,1",
                                  "1e3,1", "47.5,-1.3,2"])
def test_impossible_points_are_refused(world: World, near: str) -> None:
    assert is_problem(world.anonymous.get("/sites", near=near), 422, "invalid-request")


@pytest.mark.parametrize("near", ["90,180", "-90,-180", "-90.0000000000,179.9999999999", "0,0"])
def test_every_point_on_earth_is_accepted(world: World, near: str) -> None:
    assert world.anonymous.get("/sites", near=near).status_code == 200


class Exploding:
    """A request body that must never be read."""

    def read(self, *args: object) -> bytes:
        raise AssertionError("the body was read")

    readline = read


def test_a_huge_body_is_refused_before_it_is_read(client: FlaskClient) -> None:
    response = client.post("/api/v1/auth/token", content_type="application/json",
                           environ_overrides={"wsgi.input": Exploding(),
                                              "CONTENT_LENGTH": str(50 * 1024 * 1024)})
    assert is_problem(response, 413, "request-entity-too-large")


def _manifest(count: int) -> dict[str, object]:
    return {"reference": f"big-{count}", "parcels": [
        {"tracking_number": f"ACME{n:08d}", "site": "bourg",
         "recipient": {"name": f"Resident {n}", "email": f"resident{n}@example.org"}}
        for n in range(1000, 1000 + count)]}


def test_body_limits_are_per_route(world: World) -> None:
    small = DEFAULTS["MAX_BODY_BYTES"]
    padding = {"username": "marie", "password": "x" * small}
    assert is_problem(world.client.post("/api/v1/auth/token", json=padding),
                      413, "request-entity-too-large")
    # A manifest far larger than the default is accepted...
    manifest = _manifest(600)
    assert len(json.dumps(manifest)) > small
    response = world.carrier.post("/manifests", json=manifest)
    assert response.status_code == 201 and response.json["accepted"] == 600
    # ... up to its own limit.
    huge = dict(_manifest(1), pad="x" * DEFAULTS["MAX_MANIFEST_BYTES"])
    assert is_problem(world.carrier.post("/manifests", json=huge),
                      413, "request-entity-too-large")


def test_the_manifest_page_takes_files_larger_than_the_default_limit(world: World) -> None:
    pages = Pages.carrier(world, accounts.issue_carrier_key(world.ctx, SYSTEM, "acme").token)
    lines = ["tracking_number,site,recipient_email"] + [
        f"PAGE{n:08d},nowhere,resident{n}@example.org" for n in range(2000)]
    content = "\n".join(lines).encode()
    assert len(content) > DEFAULTS["MAX_BODY_BYTES"]
    response = pages.post("/carrier/manifests/new", {
        "reference": "BIG", "file": (io.BytesIO(content), "round.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 201


@pytest.mark.parametrize("size,status", [(64 * 1024, 422), (64 * 1024 + 1, 413),
                                         (50 * 1024 * 1024, 413)])
def test_a_streamed_body_is_cut_at_the_limit(client: FlaskClient, size: int, status: int) -> None:
    """Chunked bodies announce no length: the limit holds while they are read (a body of
    exactly the limit is read and judged: its password is too long)."""
    head, tail = b'{"username": "marie", "password": "', b'"}'
    body = head + b"x" * (size - len(head) - len(tail)) + tail
    response = client.post("/api/v1/auth/token", content_type="application/json",
                           environ_overrides={"wsgi.input": io.BytesIO(body),
                                              "wsgi.input_terminated": True,
                                              "CONTENT_LENGTH": None})
    assert response.status_code == status
