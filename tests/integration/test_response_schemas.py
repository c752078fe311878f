"""The document's success schemas are true: real answers of the operations that declare one
(sites, lockers and their sessions, manifests, check-ins and pickups, parcels, carriers, staff,
sending, producers' orders, home delivery, forecasts and reroutes, no-room decisions, the
season, jobs, flows) are valid under them, as each role sees them; and its links lead
somewhere: each link's value, taken from a real answer, names the object that the linked
operation then finds."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.test import TestResponse

from relay_ops import jobs, outbox
from relay_ops.services import expiry, outbound_exceptions
from relay_ops.services.resident import tracking_token
from relay_ops.web.api.openapi import REGISTRY, openapi_path
from tests.conftest import Clock
from tests.integration.notifications.notify_servers import (  # noqa: F401 - a fixture by name
    SmsGateway,
    sms_gateway,
)
from tests.integration.test_demand_index import attempts
from tests.integration.test_forecast import announce_many, near_shop
from tests.support import PASSWORD, Api, World, is_problem, shop

LOCKER = {"code": "LCK-R1", "name": "Casier de la gare", "locker_model": "mini-6",
          "address": "Place de la gare", "postcode": "44440", "city": "Riaillé",
          "latitude": 47.51, "longitude": -1.29}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").json  # type: ignore[no-any-return]


class Conformance:
    """Checks answers against the served document, and remembers which operations it saw."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str]] = set()

    def operation(self, method: str, path: str) -> dict[str, Any]:
        return self.document["paths"]["/api/v1" + path][method.lower()]  # type: ignore

    def check(self, method: str, path: str, response: TestResponse) -> Any:
        """The answer, after checking it against its status's schema."""
        declared = self.operation(method, path)["responses"][str(response.status_code)]
        schema = declared["content"]["application/json"]["schema"]
        root = {"components": self.document["components"], **schema}
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in Draft202012Validator(root).iter_errors(response.json)]
        assert not errors, (method, path, errors)
        self.seen.add((method.upper(), path))
        return response.json


def pointer(value: Any, expression: str) -> Any:
    """The value a link's runtime expression (``$response.body#/parcel/id``) names."""
    for part in expression.split("#", 1)[1].strip("/").split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def test_real_answers_match_the_documented_schemas(
        app: Flask, world: World, document: dict[str, Any], clock: Clock,
        sms_gateway: SmsGateway) -> None:  # noqa: F811 - the fixture, by name
    c = Conformance(document)
    op, keeper, carrier = world.operator, world.shopkeeper, world.carrier
    token = world.client.post("/api/v1/auth/token", json={"username": "op", "password": PASSWORD})
    c.check("POST", "/auth/token", token)

    # Sites: a storage site with a season (an optional part of the shape), a locker.
    storage = shop("grange", 47.51, -1.30, [("S1", "M", 5)], kind="storage",
                   season={"from": "2026-06-01", "to": None})
    site = c.check("POST", "/sites", op.post("/sites", json=storage))
    sid = site["id"]
    assert site["season"] == {"from": "2026-06-01", "to": None}
    c.check("GET", "/sites/{site_id}", op.get(f"/sites/{sid}"))
    for who in (world.anonymous, keeper, op):
        c.check("GET", "/sites", who.get("/sites", near="47.5,-1.3"))
    c.check("PUT", "/sites/{site_id}/status", op.put(f"/sites/{sid}/status", {"status": "open"}))
    c.check("PUT", "/sites/{site_id}/services",
            op.put(f"/sites/{sid}/services", {"services": ["receive", "send"]}))
    c.check("PUT", "/sites/{site_id}/opening-hours",
            op.put(f"/sites/{sid}/opening-hours", {"opening_hours": "24/7"}))
    c.check("POST", "/sites/{site_id}/locations", op.post(
        f"/sites/{sid}/locations", {"locations": [{"label": "S2", "capacity": 3}]}))
    c.check("GET", "/sites/{site_id}/locations", op.get(f"/sites/{sid}/locations"))
    c.check("GET", "/sites/{site_id}/occupancy", op.get(f"/sites/{sid}/occupancy"))
    c.check("POST", "/sites/{site_id}/closing-days", op.post(
        f"/sites/{sid}/closing-days", {"day": "2030-01-02", "reason": None}))
    locker = c.check("POST", "/lockers", op.post("/lockers", json=LOCKER))
    for who in (op, carrier):  # a carrier does not see the alerts
        c.check("GET", "/lockers/{site_id}", who.get(f"/lockers/{locker['id']}"))
    c.check("PUT", "/lockers/{site_id}/compartments/{number}/service", op.put(
        f"/lockers/{locker['id']}/compartments/1/service",
        {"in_service": False, "reason": "door jammed"}))

    # A manifest (one line refused), its replay, the parcels checked in and handed over.
    body = {"reference": "R-SCHEMA", "expected_date": "2030-01-03", "parcels": [
        {"tracking_number": n, "site": "bourg", "recipient": world.recipient_for(n)}
        for n in ("SCHEMA0001", "SCHEMA0002")] + [{"tracking_number": "x", "site": "bourg"}]}
    answer = c.check("POST", "/manifests", carrier.post("/manifests", json=body))
    assert [line["status"] for line in answer["parcels"]] == ["accepted", "accepted", "rejected"]
    c.check("POST", "/manifests", carrier.post("/manifests", json=body))  # the replay, 200
    for who in (carrier, op):
        c.check("GET", "/manifests", who.get("/manifests"))
        c.check("GET", "/manifests/{manifest_id}", who.get(f"/manifests/{answer['id']}"))
    first = c.check("POST", "/sites/{site_id}/check-ins", world.check_in("SCHEMA0001"))
    c.check("POST", "/sites/{site_id}/check-ins", world.check_in("SCHEMA0001"))  # again: 200
    pid = first["parcel"]["id"]
    for who in (op, keeper, carrier):
        c.check("GET", "/parcels/{parcel_id}", who.get(f"/parcels/{pid}"))
        c.check("GET", "/parcels", who.get("/parcels", tracking_number="SCHEMA0001"))
        c.check("GET", "/parcels/{parcel_id}/events", who.get(f"/parcels/{pid}/events"))
    c.check("GET", "/sites/{site_id}/parcels", keeper.get(f"/sites/{world.shop_id}/parcels"))
    c.check("POST", "/parcels/{parcel_id}/extension", keeper.post(f"/parcels/{pid}/extension"))
    handed = c.check("POST", "/sites/{site_id}/pickups", world.pick_up(
        code=world.code_of(pid), tracking_number="SCHEMA0001"))
    assert handed["parcels"][0]["state"] == "picked_up"
    second = world.check_in("SCHEMA0002").json["parcel"]["id"]
    c.check("POST", "/parcels/{parcel_id}/recipient-refusal",
            keeper.post(f"/parcels/{second}/recipient-refusal", {"reason": "wrong item"}))
    world.ready("SCHEMA0003")
    third = world.check_in("SCHEMA0003").json["parcel"]["id"]
    c.check("POST", "/parcels/{parcel_id}/declarations", keeper.post(
        f"/parcels/{third}/declarations", {"kind": "damaged", "note": "crushed"}))

    # Carriers and staff.
    c.check("POST", "/carriers", op.post("/carriers", json={"code": "swift", "name": "Swift"}))
    c.check("GET", "/carriers", op.get("/carriers"))
    c.check("POST", "/carriers/{code}/keys", op.post("/carriers/swift/keys", {"label": "ci"}))
    user = c.check("POST", "/users", op.post("/users", json={
        "username": "lea", "password": PASSWORD, "role": "shopkeeper", "sites": ["bourg"]}))
    c.check("GET", "/users", op.get("/users"))
    c.check("PUT", "/users/{user_id}/active", op.put(f"/users/{user['id']}/active",
                                                    {"active": False}))

    # Sending: Acme collects its own labels at the Bourg shop; a deposit, its second scan,
    # a refusal, a hand-back, the late ones; producers and their cold places.
    shop_id = world.shop_id
    c.check("PUT", "/sites/{site_id}/services", op.put(
        f"/sites/{shop_id}/services", {"services": ["receive", "send", "cold"]}))
    c.check("PUT", "/carriers/{code}/label-networks", op.put(
        "/carriers/acme/label-networks", {"label_networks": ["prefix:ACME"]}))
    c.check("PUT", "/sites/{site_id}/carriers/{code}", op.put(
        f"/sites/{shop_id}/carriers/acme", {"collection_delay_hours": 48,
                                            "rounds": ["16:00", "09:30"]}))
    c.check("GET", "/sites/{site_id}/carriers", keeper.get(f"/sites/{shop_id}/carriers"))
    sender = {"phone": "+33698765432", "email": "sender@example.org"}
    deposit = {"tracking_number": "ACME00000900", "sender": sender, "size_class": "S"}
    sent = c.check("POST", "/sites/{site_id}/outbound",
                   keeper.post(f"/sites/{shop_id}/outbound", deposit))
    c.check("POST", "/sites/{site_id}/outbound",
            keeper.post(f"/sites/{shop_id}/outbound", deposit))  # scanned again: 200
    c.check("POST", "/parcels/{parcel_id}/outbound-refusal", carrier.post(
        f"/parcels/{sent['parcel']['id']}/outbound-refusal", {"reason": "badly packed"}))
    c.check("POST", "/parcels/{parcel_id}/hand-back",
            keeper.post(f"/parcels/{sent['parcel']['id']}/hand-back"))
    keeper.post(f"/sites/{shop_id}/outbound", {"tracking_number": "ACME00000901"})
    clock.advance(days=3)
    outbound_exceptions.raise_overdue_alerts(world.ctx)  # the scheduler's sweep
    world.sign_in_again()
    late = c.check("GET", "/outbound/overdue", op.get("/outbound/overdue"))
    assert [p["tracking_number"] for p in late["items"]] == ["ACME00000901"]
    c.check("POST", "/producers", op.post("/producers", json={"code": "ferme", "name": "Ferme"}))
    c.check("GET", "/producers", op.get("/producers"))
    producer_key = c.check("POST", "/producers/{code}/keys",
                           op.post("/producers/ferme/keys", {"label": "x"}))
    c.check("PUT", "/sites/{site_id}/locations/{label}/refrigerated", op.put(
        f"/sites/{shop_id}/locations/A1/refrigerated", {"refrigerated": True}))
    c.check("PUT", "/lockers/{site_id}/compartments/{number}/refrigerated", op.put(
        f"/lockers/{locker['id']}/compartments/2/refrigerated", {"refrigerated": True}))

    # A resident's link: the parcel on its way, then ready (a code, a proxy named), extended
    # and refused.
    world.announce("SCHEMA0004")
    waiting = world.carrier.get("/parcels", tracking_number="SCHEMA0004").json["id"]
    track = f"/api/v1/track/{tracking_token(world.ctx, waiting)}"
    before = c.check("GET", "/track/{token}", world.client.get(track))
    assert before["pickup_code"] is None and before["site"]["code"] == "bourg"
    world.check_in("SCHEMA0004")
    c.check("POST", "/track/{token}/proxy",
            world.client.post(track + "/proxy", json={"name": "Paul Voisin"}))
    after = c.check("GET", "/track/{token}", world.client.get(track))
    assert after["pickup_code"] and after["proxy"] == {"name": "Paul Voisin"}
    c.check("POST", "/track/{token}/extension", world.client.post(track + "/extension"))
    c.check("POST", "/track/{token}/refusal",
            world.client.post(track + "/refusal", json={"reason": "not mine"}))
    c.check("DELETE", "/users/{user_id}/tokens", op.delete(f"/users/{user['id']}/tokens"))
    c.check("GET", "/parcels/{parcel_id}/notifications",
            op.get(f"/parcels/{pid}/notifications"))

    # Then the rest of the day's work, on the same world: each part its own parcels.
    home_delivery_answers(world, c)
    sending_answers(world, c, locker["id"], sent["receipt_url"])
    locker_answers(world, c, locker["id"])
    producer_answers(world, c, locker["id"], producer_key["token"])
    forecast_answers(world, c, locker["id"])
    jobs_answers(world, c, app, sms_gateway)
    clock.advance(days=20)  # the ready parcels and orders expire: carriers, producers collect
    expiry.expire_overdue(world.ctx)
    world.sign_in_again()
    collection_answers(world, c, producer_key["token"])

    # Every operation whose success the document describes was checked here.
    declared = {(ep.method, openapi_path(ep.rule)) for ep in REGISTRY if ep.response}
    unchecked = declared - c.seen
    assert not unchecked, sorted(unchecked)


def tomorrow(world: World) -> str:
    return (world.ctx.now().astimezone(world.ctx.settings.timezone).date()
            + timedelta(days=1)).isoformat()


def home_delivery_answers(world: World, c: Conformance) -> None:
    """The shop delivers every day; a resident asks (a neighbour brings it home), the shop
    asks for another (its shopkeeper delivers), and two are called off."""
    op, keeper, shop_id = world.operator, world.shopkeeper, world.shop_id
    keeper.put(f"/sites/{shop_id}/services", {"services": ["receive", "send", "cold",
                                                           "home_delivery"]})
    every_day = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "area": "Bourg"}
    c.check("PUT", "/sites/{site_id}/home-delivery",
            keeper.put(f"/sites/{shop_id}/home-delivery", every_day))
    c.check("GET", "/sites/{site_id}/home-delivery",
            world.anonymous.get(f"/sites/{shop_id}/home-delivery"))
    ids = [world.ready(f"HOME00000{i}")["id"] for i in range(1, 5)]
    track = f"/api/v1/track/{tracking_token(world.ctx, ids[0])}"
    offer = c.check("GET", "/track/{token}/home-delivery",
                    world.client.get(track + "/home-delivery"))
    assert offer["offered"] and offer["delivery"] is None
    ask = {"day": offer["days"][0], "consent": True, "in_area": True,
           "courier": {"kind": "neighbour", "name": "Marcel Petit"}}
    asked = c.check("POST", "/track/{token}/home-delivery",
                    world.client.post(track + "/home-delivery", json=ask))
    planned = c.check("GET", "/track/{token}/home-delivery",
                      world.client.get(track + "/home-delivery"))
    assert planned["delivery"]["id"] == asked["id"]
    courier = "/api/v1/courier/" + asked["courier_url"].rsplit("/", 1)[1]
    c.check("GET", "/courier/{courier_token}", world.client.get(courier))
    c.check("POST", "/courier/{courier_token}/taken", world.client.post(courier + "/taken"))
    done = c.check("POST", "/courier/{courier_token}/delivered", world.client.post(
        courier + "/delivered", json={"code": world.code_of(ids[0])}))
    assert done["status"] == "delivered"
    by_shop = ask | {"courier": {"kind": "shopkeeper"}}
    shop_asked = c.check("POST", "/parcels/{parcel_id}/home-delivery",
                         keeper.post(f"/parcels/{ids[1]}/home-delivery", by_shop))
    assert shop_asked["courier_url"] is None  # the shopkeeper needs no link
    code = world.code_of(ids[1])
    keeper.post(f"/parcels/{ids[2]}/home-delivery", ask)
    listed = c.check("GET", "/sites/{site_id}/home-deliveries",
                     keeper.get(f"/sites/{shop_id}/home-deliveries"))
    assert len(listed["items"]) == 2
    c.check("POST", "/home-deliveries/{delivery_id}/taken",
            keeper.post(f"/home-deliveries/{shop_asked['id']}/taken"))
    c.check("POST", "/home-deliveries/{delivery_id}/delivered",
            keeper.post(f"/home-deliveries/{shop_asked['id']}/delivered", {"code": code}))
    c.check("DELETE", "/parcels/{parcel_id}/home-delivery",
            op.delete(f"/parcels/{ids[2]}/home-delivery"))
    other = f"/api/v1/track/{tracking_token(world.ctx, ids[3])}/home-delivery"
    world.client.post(other, json=ask)
    cancelled = c.check("DELETE", "/track/{token}/home-delivery", world.client.delete(other))
    assert cancelled["status"] == "cancelled" and cancelled["closed_at"]


def sending_answers(world: World, c: Conformance, locker_id: int, receipt_url: str) -> None:
    """Acme's pickup list at the shop (one late parcel, its rounds), where it collects, the
    collection; a sender's drop-off at the locker and both receipts."""
    op, carrier, keeper, shop_id = world.operator, world.carrier, world.shopkeeper, world.shop_id
    lists = f"/sites/{shop_id}/outbound/pickup-list"
    mine = c.check("GET", "/sites/{site_id}/outbound/pickup-list", carrier.get(lists))
    assert [p["tracking_number"] for p in mine["items"]] == ["ACME00000901"]
    assert mine["rounds"] and mine["items"][0]["overdue"]
    c.check("GET", "/sites/{site_id}/outbound/pickup-list",
            carrier.get(lists, round=mine["rounds"][-1]["time"]))
    c.check("GET", "/sites/{site_id}/outbound/pickup-list", keeper.get(lists))
    for who in (carrier, op):
        c.check("GET", "/outbound/collection-sites", who.get("/outbound/collection-sites"))
    taken = c.check("POST", "/sites/{site_id}/outbound/collections", carrier.post(
        f"/sites/{shop_id}/outbound/collections", {"taken": ["ACME00000901", "ACME00000999"]}))
    assert [i["status"] for i in taken["items"]] == ["collected", "refused"]
    receipt = "/outbound/receipts/" + receipt_url.rsplit("/", 1)[1]
    assert c.check("GET", "/outbound/receipts/{token}",
                   world.anonymous.get(receipt))["locker_code"] is None
    op.put(f"/sites/{locker_id}/carriers/acme", {"collection_delay_hours": 24})
    drop = c.check("POST", "/lockers/{site_id}/drop-offs", world.anonymous.post(
        f"/lockers/{locker_id}/drop-offs", {"tracking_number": "ACME00000990", "size_class": "M",
                                            "sender": {"phone": "+33698765432"}}))
    at_locker = c.check("GET", "/outbound/receipts/{token}", world.anonymous.get(
        "/outbound/receipts/" + drop["receipt_url"].rsplit("/", 1)[1]))
    assert at_locker["locker_code"]["purpose"] == "drop_off"


def locker_answers(world: World, c: Conformance, locker_id: int) -> None:
    """A carrier's session at the locker: a deposit, a collection, the close; its offline
    code; the operator provisions and revokes the locker's identity."""
    carrier, op = world.carrier, world.operator
    world.announce("LOCKSCH001", site=LOCKER["code"], size_class="S")
    session = c.check("POST", "/lockers/{site_id}/sessions",
                      carrier.post(f"/lockers/{locker_id}/sessions"))
    deposit = c.check("POST", "/locker-sessions/{session_id}/deposits", carrier.post(
        f"/locker-sessions/{session['id']}/deposits", {"tracking_number": "LOCKSCH001"}))
    assert deposit["status"] == "door_opening"
    c.check("POST", "/locker-sessions/{session_id}/collection",
            carrier.post(f"/locker-sessions/{session['id']}/collection"))
    closed = c.check("POST", "/locker-sessions/{session_id}/close",
                     carrier.post(f"/locker-sessions/{session['id']}/close"))
    assert closed["closed_at"]
    c.check("GET", "/lockers/{site_id}/carrier-code",
            carrier.get(f"/lockers/{locker_id}/carrier-code"))
    c.check("POST", "/lockers/{site_id}/carrier-code/rotate",
            carrier.post(f"/lockers/{locker_id}/carrier-code/rotate"))
    c.check("POST", "/lockers/{site_id}/provision", op.post(f"/lockers/{locker_id}/provision"))
    c.check("POST", "/lockers/{site_id}/revoke", op.post(f"/lockers/{locker_id}/revoke"))


def producer_answers(world: World, c: Conformance, locker_id: int, key: str) -> None:
    """A producer's orders: one announced twice (200 the second time), one deposited at the
    shop; its lists and its code at the locker."""
    farm, keeper, shop_id = Api(world.client, key), world.shopkeeper, world.shop_id
    order = {"reference": "CMD-SCH-1", "site": "bourg", "size_class": "S",
             "recipient": {"phone": "+33611223344"}}
    c.check("POST", "/producer/orders", farm.post("/producer/orders", order))
    c.check("POST", "/producer/orders", farm.post("/producer/orders", order))  # again: 200
    second = farm.post("/producer/orders", order | {
        "reference": "CMD-SCH-2", "holding_hours": 24, "sell_by": "2026-12-20T12:00:00+00:00"})
    assert second.status_code == 201, second.json
    deposited = c.check("POST", "/sites/{site_id}/producer-orders/deposits", keeper.post(
        f"/sites/{shop_id}/producer-orders/deposits", {"reference": "CMD-SCH-1"}))
    assert deposited["order"]["deposited_at"]
    c.check("GET", "/producer/orders", farm.get("/producer/orders"))
    c.check("GET", "/producer/orders/{reference}", farm.get("/producer/orders/CMD-SCH-2"))
    c.check("GET", "/sites/{site_id}/producer-orders",
            keeper.get(f"/sites/{shop_id}/producer-orders"))
    c.check("GET", "/producer/lockers/{site_id}/code",
            farm.get(f"/producer/lockers/{locker_id}/code"))


def forecast_answers(world: World, c: Conformance, locker_id: int) -> None:
    """A shop saturated tomorrow: with no shop within reach the operator sees the decision;
    with one, the carrier takes the proposed site. The forecasts, a temporary shelf, the
    season's recommendations and the flows."""
    op, carrier, keeper, shop_id = world.operator, world.carrier, world.shopkeeper, world.shop_id
    day = tomorrow(world)
    c.check("POST", "/no-room-policies", op.post("/no-room-policies", json={
        "carrier": "other", "steps": ["hold"]}))  # Acme's parcels: no policy, none decided
    c.check("GET", "/no-room-policies", op.get("/no-room-policies"))
    announce_many(carrier, 20, prefix="SATA", reference="PEAK-A", day=day)
    for who in (op, carrier):
        decided = c.check("GET", "/no-room-decisions", who.get("/no-room-decisions", day=day))
        assert decided["items"] and decided["items"][0]["step"] == "none"
    near_shop(world)
    answer = announce_many(carrier, 20, prefix="SATB", reference="PEAK-B", day=day)
    proposed = [p for p in answer["parcels"] if p.get("reroute", {}).get("status") == "proposed"]
    assert proposed, answer["parcels"][-1]
    moved = c.check("POST", "/parcels/{parcel_id}/reroute", carrier.post(
        f"/parcels/{proposed[0]['parcel_id']}/reroute", {"site": "pres"}))
    assert moved["status"] == "accepted" and moved["reservation"]
    c.check("GET", "/parcels/{parcel_id}/reroutes",
            op.get(f"/parcels/{proposed[0]['parcel_id']}/reroutes"))
    shelf = {"label": "T1", "capacity": 4, "valid_from": day, "valid_until": day}
    c.check("POST", "/sites/{site_id}/temporary-shelves",
            keeper.post(f"/sites/{shop_id}/temporary-shelves", shelf))
    c.check("GET", "/sites/{site_id}/temporary-shelves",
            keeper.get(f"/sites/{shop_id}/temporary-shelves"))
    for site_id in (shop_id, locker_id):  # a locker's counts its free doors
        c.check("GET", "/sites/{site_id}/forecast", op.get(f"/sites/{site_id}/forecast"))
    advice = c.check("GET", "/season/recommendations", op.get("/season/recommendations"))
    assert any(site["periods"] for site in advice["items"])
    # the storage site "grange" (1 km from bourg, in season) takes bourg's overflow
    rooms = c.check("GET", "/season/storage", op.get("/season/storage"))
    assert [room["site"] for room in rooms["storage"]] == ["grange"]
    assert rooms["storage"][0]["overflow"] and rooms["storage"][0]["catchment"]
    flows = c.check("GET", "/stats/flows", op.get("/stats/flows"))
    assert flows["totals"]["today"]["home_delivered"] == 2
    demand_index_answers(world, c, day)


def demand_index_answers(world: World, c: Conformance, day: str) -> None:
    """The season's shape: declared by hand, listed, derived from a year before."""
    op = world.operator
    put = c.check("PUT", "/demand-index", op.put("/demand-index", {
        "days": [{"day": day, "factor": 1.5}], "source": "carrier forecast"}))
    assert put["items"][0]["factor"] == 1.5
    listed = c.check("GET", "/demand-index", op.get("/demand-index", **{"from": day, "to": day}))
    assert listed["items"] == put["items"]
    attempts(world, {date(2025, 10, 20) + timedelta(days=i): 5 for i in range(70)})
    derived = c.check("POST", "/demand-index/from-last-year", op.post(
        "/demand-index/from-last-year", {"from": "2026-12-20", "to": "2026-12-21"}))
    assert [d["factor"] for d in derived["items"]] == [1.0, 1.0]


def jobs_answers(world: World, c: Conformance, app: Flask,
                 sms_gateway: SmsGateway) -> None:  # noqa: F811 - the fixture, by name
    """The SMS gateway fails: the operator sees the failing jobs and retries one."""
    op = world.operator
    app.config.update(NOTIFY_SMS_BACKEND="webhook", SMS_WEBHOOK_URL=sms_gateway.url,
                      SMS_WEBHOOK_TOKEN="tok")
    sms_gateway.script.status, sms_gateway.script.body = 503, '{"error": "overloaded"}'
    outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, app.config), world.ctx.now)
    c.check("GET", "/jobs", op.get("/jobs"))
    failing = c.check("GET", "/jobs/failed", op.get("/jobs/failed"))
    assert failing["items"]
    c.check("POST", "/jobs/failed/{job_id}/retry",
            op.post(f"/jobs/failed/{failing['items'][0]['id']}/retry"))


def collection_answers(world: World, c: Conformance, producer_key: str) -> None:
    """Weeks later: Acme takes its expired parcels back, the producer its order."""
    carrier, keeper, shop_id = world.carrier, world.shopkeeper, world.shop_id
    waiting = c.check("GET", "/sites/{site_id}/collections",
                      carrier.get(f"/sites/{shop_id}/collections"))
    c.check("GET", "/sites/{site_id}/collections", keeper.get(f"/sites/{shop_id}/collections"))
    numbers = [p["tracking_number"] for p in waiting["items"]]
    assert numbers
    c.check("POST", "/sites/{site_id}/collections", carrier.post(
        f"/sites/{shop_id}/collections", {"tracking_numbers": [numbers[0], "ACME00000998"]}))
    farm = Api(world.client, producer_key)
    to_take = c.check("GET", "/producer/take-back", farm.get("/producer/take-back"))
    assert [o["reference"] for o in to_take["items"]] == ["CMD-SCH-1"]
    c.check("POST", "/sites/{site_id}/producer-orders/take-back", farm.post(
        f"/sites/{shop_id}/producer-orders/take-back", {"references": ["CMD-SCH-1", "CMD-X"]}))


def test_links_lead_to_what_was_made(world: World, document: dict[str, Any]) -> None:
    """Each link of the answers below, resolved on the real answer, gives the linked
    operation the object just made: a read finds it, a removal removes it."""
    op, keeper = world.operator, world.shopkeeper
    made = [
        ("/sites", {}, op.post("/sites", json=shop("lien", 47.5, -1.3, [("A1", "M", 5)]))),
        ("/lockers", {}, op.post("/lockers", json=LOCKER)),
        ("/sites/{site_id}/check-ins", {},
         (world.announce("LINK000001"), world.check_in("LINK000001"))[1]),
        ("/sites/{site_id}/closing-days", {"day": "2030-01-02"},
         op.post(f"/sites/{world.shop_id}/closing-days", {"day": "2030-01-02"})),
        ("/users", {}, op.post("/users", json={"username": "lien", "password": PASSWORD,
                                                "role": "operator"})),
        ("/carriers", {}, op.post("/carriers", json={"code": "lien", "name": "Lien"})),
        ("/manifests", {}, world.announce("LINK000002")),
        ("/producers", {}, op.post("/producers", json={"code": "lien", "name": "Lien"})),
        ("/no-room-policies", {}, op.post("/no-room-policies", json={
            "carrier": "acme", "site": "bourg", "steps": ["hold"]})),
    ]
    ids = {o["operationId"]: (m.upper(), p.removeprefix("/api/v1"))
           for p, ops in document["paths"].items() for m, o in ops.items()}
    followed = 0
    for path, request_body, response in made:
        assert response.status_code in (200, 201), (path, response.json)
        links = document["paths"]["/api/v1" + path]["post"]["responses"][
            str(response.status_code)]["links"]
        for name, link in links.items():
            method, target = ids[link["operationId"]]
            url = target
            for param, expression in link["parameters"].items():
                source = response.json if expression.startswith("$response") else request_body
                url = url.replace("{" + param + "}", str(pointer(source, expression)))
            who = keeper if "/parcels/" in url else op
            if method == "GET":
                answer = who.get(url)
            elif method == "DELETE":  # last of each answer's links: what was made goes
                answer = who.delete(url)
            else:  # a change needs its own body: the link names an existing target
                assert "{" not in url, (name, url)
                continue
            assert answer.status_code in (200, 204), (path, name, url, answer.json)
            followed += 1
    assert followed >= 10


def test_a_locker_refuses_shelf_operations_as_a_business_rule(world: World) -> None:
    """Found by the stateful fuzz (POST /sites kind locker, then its check-in link): the
    same valid body a shop takes is refused at a locker for what the site is, 409, not as
    an invalid request (422), and nothing is written."""
    locker = world.operator.post("/lockers", json=LOCKER).json["id"]
    world.announce("LOCK000001", site=LOCKER["code"])
    scanned = world.operator.post(f"/sites/{locker}/check-ins",
                                  json={"tracking_number": "LOCK000001"})
    assert is_problem(scanned, 409, "site-has-no-shelves")
    assert world.operator.get("/parcels", tracking_number="LOCK000001").json["state"] == \
        "announced"
    shelves = world.operator.post(f"/sites/{locker}/locations",
                                  json={"locations": [{"label": "A1", "capacity": 2}]})
    assert is_problem(shelves, 409, "site-has-no-shelves")
    assert world.operator.get(f"/sites/{locker}/occupancy").json["locations"] == []
    # At creation the document itself rules shelves out for a locker: still 422 there.
    body = shop("casier", 47.5, -1.3, [("A1", "M", 5)]) | {"kind": "locker"}
    assert world.operator.post("/sites", json=body).status_code == 422
