"""Short circuits: a producer's account and key, its orders announced, scanned in at the
counter like any parcel (a cold place for "keep cold", a deadline in hours bounded by the
shop's hours and the sell-by time), and the ones nobody collected going back to the producer
(docs/producers.md). The clock starts on Tuesday 2026-12-01 at 10:00 in Paris; the shops open
08:00-20:00, Monday to Saturday."""

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from relay_ops.cli import create_operator_app
from relay_ops.db.models import Notification, Parcel, ParcelEvent, ProducerOrder
from relay_ops.services import (
    api_tokens,
    expiry,
    producer_announcements,
    producer_counter,
)
from relay_ops.services.principal import Principal, Role
from tests.conftest import Clock
from tests.integration.test_outbound import run_jobs, sent_lines
from tests.integration.test_races import THREADS, race
from tests.support import Api, World, is_problem, row_counts, shelf_counts, shelf_counts_agree

CUSTOMER = {"phone": "+33611223344", "email": "client@example.org"}


@pytest.fixture
def farm(world: World) -> World:
    """The operator creates two producers and their keys; the Bourg shop gets a fridge (F1,
    one M place) and declares "cold"."""
    assert world.operator.put(f"/sites/{world.shop_id}/services",
                              json={"services": ["receive", "cold"]}).status_code == 200
    for code, name in (("ferme", "Ferme des Trois Chênes"), ("rucher", "Rucher du Bourg")):
        assert world.operator.post("/producers", json={"code": code, "name": name}
                                   ).status_code == 201
    added = world.operator.post(f"/sites/{world.shop_id}/locations", json={"locations": [
        {"label": "F1", "size_class": "M", "capacity": 1, "refrigerated": True}]})
    assert added.status_code == 201, added.json
    return world


def producer(world: World, code: str) -> Api:
    response = world.operator.post(f"/producers/{code}/keys", json={"label": "site web"})
    assert response.status_code == 201, response.json
    return Api(world.client, response.json["token"])


def announce(api: Api, reference: str, **extra: Any) -> TestResponse:
    body = {"reference": reference, "site": "bourg", "recipient": CUSTOMER, "size_class": "S",
            **extra}
    return api.post("/producer/orders", json=body)


def deposit(world: World, reference: str, **extra: Any) -> TestResponse:
    return world.shopkeeper.post(f"/sites/{world.shop_id}/producer-orders/deposits",
                                 json={"reference": reference, **extra})


# ---------------------------------------------------------------- the role


def test_an_operator_creates_a_producer_and_its_key(farm: World) -> None:
    assert is_problem(farm.operator.post("/producers", json={"code": "ferme", "name": "x"}),
                      409, "conflict")
    for api in (farm.shopkeeper, farm.carrier):
        assert is_problem(api.post("/producers", json={"code": "x", "name": "X"}),
                          403, "forbidden")
        assert is_problem(api.post("/producers/ferme/keys", json={}), 403, "forbidden")
    assert is_problem(farm.operator.post("/producers/nobody/keys", json={}), 404, "not-found")
    ferme = producer(farm, "ferme")
    assert ferme.get("/producer/orders").json == {"items": []}
    # A producer's key runs neither the counter nor a carrier's round, nor sees a parcel.
    assert is_problem(ferme.post(f"/sites/{farm.shop_id}/check-ins",
                                 json={"tracking_number": "ACME00000001"}), 403, "forbidden")
    assert is_problem(ferme.get(f"/sites/{farm.shop_id}/outbound/pickup-list"),
                      403, "forbidden")
    assert is_problem(ferme.get(f"/sites/{farm.shop_id}/producer-orders"), 403, "forbidden")
    codes = [p["code"] for p in farm.shopkeeper.get("/producers").json["items"]]
    assert codes == ["ferme", "rucher"]


def test_a_revoked_producer_key_stops_at_once(farm: World) -> None:
    ferme = producer(farm, "ferme")
    prefix = ferme.token.split(".")[0] if ferme.token else ""
    assert farm.operator.delete(f"/keys/{prefix}").status_code == 204
    assert is_problem(ferme.get("/producer/orders"), 401, "unauthenticated")


def test_an_operator_creates_a_producer_from_the_command_line(tmp_path: Path) -> None:
    app = create_operator_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
                               "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    created = runner.invoke(args=["producer", "create", "ferme", "Ferme des Trois Chênes"])
    assert (created.exit_code, created.output) == (0, "producer ferme created\n")
    assert runner.invoke(args=["producer", "create", "ferme", "Again"]).exit_code == 1
    key = runner.invoke(args=["producer", "key", "ferme", "--label", "site web"]).output.strip()
    assert key.startswith("pk_") and "." in key
    assert runner.invoke(args=["producer", "key", "nobody"]).exit_code == 1


# ---------------------------------------------------------------- announcing


def test_a_keep_cold_order_goes_only_to_a_shop_that_declares_cold(farm: World) -> None:
    """The fridge is a service the shop declares: a keep-cold order for a shop that does not
    is refused when announced (the producer chooses another shop), other orders are not."""
    assert farm.operator.put(f"/sites/{farm.shop_id}/services",
                             json={"services": ["receive"]}).status_code == 200
    ferme = producer(farm, "ferme")
    counts = row_counts(farm.ctx)
    refused = announce(ferme, "LAIT-9", keep_cold=True)
    assert is_problem(refused, 409, "service-not-offered")
    assert (refused.json["service"], refused.json["site"]) == ("cold", "bourg")
    assert row_counts(farm.ctx) == counts
    assert announce(ferme, "PAIN-9").status_code == 201
    farm.operator.put(f"/sites/{farm.shop_id}/services", json={"services": ["receive", "cold"]})
    assert announce(ferme, "LAIT-9", keep_cold=True).status_code == 201


def test_an_order_is_announced_once_per_reference(farm: World) -> None:
    ferme, rucher = producer(farm, "ferme"), producer(farm, "rucher")
    first = announce(ferme, "CMD-42", keep_cold=True, holding_hours=24)
    assert first.status_code == 201, first.json
    order = first.json
    assert order["label"].startswith("PRD") and len(order["label"]) == 13
    assert (order["state"], order["site"], order["producer"]) == ("announced", "bourg", "ferme")
    assert (order["keep_cold"], order["holding_hours"]) == (True, 24)
    again = announce(ferme, "CMD-42", keep_cold=True, holding_hours=24)
    assert (again.status_code, again.json) == (200, order)
    before = row_counts(farm.ctx)
    assert is_problem(announce(ferme, "CMD-42", keep_cold=False), 409, "conflict")
    assert row_counts(farm.ctx) == before
    # Another producer's reference is its own.
    assert announce(rucher, "CMD-42").status_code == 201
    assert [o["reference"] for o in ferme.get("/producer/orders").json["items"]] == ["CMD-42"]
    assert ferme.get("/producer/orders/CMD-42").json["producer"] == "ferme"
    assert rucher.get("/producer/orders/CMD-42").json["producer"] == "rucher"


@pytest.mark.parametrize(("extra", "status", "slug"), [
    ({"recipient": {"name": "Jeanne"}}, 422, "invalid-request"),
    ({"recipient": {"phone": "not a phone"}}, 422, "invalid-request"),
    ({"site": "nowhere"}, 404, "not-found"),
    ({"size_class": "XXL"}, 422, "validation-failed"),
    ({"holding_hours": 0}, 422, "invalid-request"),
    # by today's date, not the request's form: 409 (the same body was valid yesterday)
    ({"sell_by": "2026-12-01T08:00:00+00:00"}, 409, "sell-by-out-of-reach"),  # passed
    ({"sell_by": "2026-12-02T08:00:00"}, 422, "invalid-request"),  # no time zone
    ({"sell_by": "9999-12-31T23:59:59-23:59"}, 409, "sell-by-out-of-reach"),
])
def test_a_bad_order_is_refused_and_nothing_is_kept(
    farm: World, extra: dict[str, Any], status: int, slug: str
) -> None:
    ferme = producer(farm, "ferme")
    before = row_counts(farm.ctx)
    assert is_problem(announce(ferme, "CMD-1", **extra), status, slug)
    assert row_counts(farm.ctx) == before


def test_a_producer_sees_only_its_own_orders(farm: World) -> None:
    ferme, rucher = producer(farm, "ferme"), producer(farm, "rucher")
    announce(ferme, "CMD-7")
    assert is_problem(rucher.get("/producer/orders/CMD-7"), 404, "not-found")
    assert rucher.get("/producer/orders").json == {"items": []}
    with farm.ctx.db.read() as session:
        parcel_id = session.scalar(select(Parcel.id))
    # Object-level: the parcel behind an order is its producer's to see, no other's.
    assert is_problem(rucher.get(f"/parcels/{parcel_id}"), 404, "not-found")
    mine = ferme.get(f"/parcels/{parcel_id}")
    assert mine.status_code == 200
    assert "recipient" not in mine.json  # the producer gave the contact; it is not shown back


# ---------------------------------------------------------------- at the counter


def test_the_shopkeeper_scans_the_reference_and_the_resident_is_told(farm: World) -> None:
    ferme = producer(farm, "ferme")
    label = announce(ferme, "CMD-42", holding_hours=6).json["label"]
    response = deposit(farm, "CMD-42")
    assert response.status_code == 201, response.json
    assert response.json["status"] == "checked_in"
    assert response.json["parcel"]["state"] == "ready_for_pickup"
    assert response.json["parcel"]["carrier"] is None
    order = response.json["order"]
    assert (order["state"], order["location"]) == ("ready_for_pickup", "A1")
    # Six hours from 10:00 in Paris: 16:00, the shop is open.
    assert order["holding_deadline"] == "2026-12-01T15:00:00+00:00"
    with farm.ctx.db.read() as session:
        owed = {(n.kind, n.channel) for n in session.scalars(select(Notification))}
    assert owed == {("ready", "email"), ("ready", "sms")}
    # The same scan again, or the label's, changes nothing.
    before = row_counts(farm.ctx)
    for again in (deposit(farm, "CMD-42"), deposit(farm, label.lower())):
        assert again.status_code == 200
        assert again.json["status"] == "already_checked_in"
    assert row_counts(farm.ctx) == before
    assert ferme.get("/producer/orders/CMD-42").json["state"] == "ready_for_pickup"


def test_the_ready_message_goes_out_naming_the_producer(app: Flask, farm: World) -> None:
    """An order has no carrier: its ready message names the producer it comes from, and is
    sent, with the code (it failed, "needs carrier_name", before)."""
    announce(producer(farm, "ferme"), "CMD-43")
    assert deposit(farm, "CMD-43").status_code == 201
    assert run_jobs(app, farm) >= 2
    with farm.ctx.db.read() as session:
        states = {(n.channel, n.status) for n in session.scalars(select(Notification))}
    assert states == {("email", "sent"), ("sms", "sent")}
    [email] = [line for line in sent_lines(app) if line["channel"] == "email"]
    assert "Votre colis Ferme des Trois Chênes n° " in email["body"], email


def test_an_order_is_scanned_only_at_its_shop(farm: World) -> None:
    announce(producer(farm, "ferme"), "CMD-42")
    response = farm.other_shopkeeper.post(
        f"/sites/{farm.other_shop_id}/producer-orders/deposits", json={"reference": "CMD-42"})
    assert is_problem(response, 404, "not-found")
    assert is_problem(deposit(farm, "CMD-404"), 404, "not-found")
    other_shop = farm.shopkeeper.post(f"/sites/{farm.other_shop_id}/producer-orders/deposits",
                                      json={"reference": "CMD-42"})
    assert is_problem(other_shop, 404, "not-found")


def test_two_producers_with_one_reference_are_told_apart(farm: World) -> None:
    announce(producer(farm, "ferme"), "CMD-1")
    announce(producer(farm, "rucher"), "CMD-1")
    refused = deposit(farm, "CMD-1")
    assert is_problem(refused, 409, "producer-choice-needed")
    assert refused.json["producers"] == ["ferme", "rucher"]
    chosen = deposit(farm, "CMD-1", producer="rucher")
    assert chosen.status_code == 201
    assert chosen.json["order"]["producer"] == "rucher"


def test_the_ordinary_check_in_scan_of_the_label_follows_the_same_rules(farm: World) -> None:
    label = announce(producer(farm, "ferme"), "CMD-5", keep_cold=True, holding_hours=2
                     ).json["label"]
    response = farm.shopkeeper.post(f"/sites/{farm.shop_id}/check-ins",
                                    json={"tracking_number": label})
    assert response.status_code in (200, 201), response.json
    assert response.json["parcel"]["location"] == "F1"
    assert response.json["parcel"]["holding_deadline"] == "2026-12-01T11:00:00+00:00"


# ---------------------------------------------------------------- cold places


def test_keep_cold_goes_to_the_fridge_and_nothing_else_does(farm: World) -> None:
    ferme = producer(farm, "ferme")
    announce(ferme, "MIEL-1")
    announce(ferme, "LAIT-1", keep_cold=True)
    assert deposit(farm, "MIEL-1").json["order"]["location"] == "A1"
    assert deposit(farm, "LAIT-1").json["order"]["location"] == "F1"


def test_no_free_cold_place_is_a_clear_409_and_the_order_stays_announced(farm: World) -> None:
    ferme = producer(farm, "ferme")
    announce(ferme, "LAIT-1", keep_cold=True)
    announce(ferme, "LAIT-2", keep_cold=True)
    assert deposit(farm, "LAIT-1").status_code == 201
    refused = deposit(farm, "LAIT-2")
    assert is_problem(refused, 409, "no-cold-place")
    assert "refrigerated" in refused.json["detail"]
    assert ferme.get("/producer/orders/LAIT-2").json["state"] == "announced"
    with farm.ctx.db.read() as session:
        actions = list(session.scalars(select(ParcelEvent.action).order_by(ParcelEvent.id)))
    assert actions[-1] == "check_in_refused"
    # The shopkeeper frees a place in the fridge: B1 becomes a cold place too.
    marked = farm.shopkeeper.put(f"/sites/{farm.shop_id}/locations/B1/refrigerated",
                                 json={"refrigerated": True})
    assert marked.status_code == 200
    assert {loc["label"] for loc in marked.json["items"] if loc["refrigerated"]} == {"F1", "B1"}
    assert deposit(farm, "LAIT-2").json["order"]["location"] == "B1"


def test_a_shop_without_a_fridge_refuses_keep_cold(farm: World) -> None:
    assert farm.shopkeeper.put(f"/sites/{farm.shop_id}/locations/F1/refrigerated",
                               json={"refrigerated": False}).status_code == 200
    announce(producer(farm, "ferme"), "LAIT-1", keep_cold=True)
    assert is_problem(deposit(farm, "LAIT-1"), 409, "no-cold-place")
    assert is_problem(farm.other_shopkeeper.put(
        f"/sites/{farm.shop_id}/locations/F1/refrigerated", json={"refrigerated": True}),
        404, "not-found")


# ---------------------------------------------------------------- deadlines in hours


@pytest.mark.parametrize(("extra", "deadline"), [
    # 10:00 + 12 h = 22:00, the shop closed at 20:00: the deadline moves back to 20:00.
    ({"holding_hours": 12}, "2026-12-01T19:00:00+00:00"),
    # The sell-by time comes first.
    ({"holding_hours": 6, "sell_by": "2026-12-01T12:30:00+00:00"}, "2026-12-01T12:30:00+00:00"),
    # Sold by Sunday noon: the shop is closed on Sunday, so Saturday's closing.
    ({"holding_hours": 120, "sell_by": "2026-12-06T11:00:00+00:00"},
     "2026-12-05T19:00:00+00:00"),
])
def test_a_perishable_deadline_stays_within_the_shop_hours_and_the_sell_by(
    farm: World, extra: dict[str, Any], deadline: str
) -> None:
    announce(producer(farm, "ferme"), "CMD-1", **extra)
    assert deposit(farm, "CMD-1").json["order"]["holding_deadline"] == deadline


def test_an_order_without_hours_keeps_the_shop_standard_period(farm: World) -> None:
    announce(producer(farm, "ferme"), "CMD-1")
    order = deposit(farm, "CMD-1").json["order"]
    assert order["holding_deadline"].startswith("2026-12-1")  # days, not hours


def test_an_order_past_its_sell_by_is_not_checked_in(farm: World, clock: Clock) -> None:
    announce(producer(farm, "ferme"), "CMD-1", sell_by="2026-12-01T12:00:00+00:00")
    clock.advance(hours=3)
    farm.sign_in_again()
    assert is_problem(deposit(farm, "CMD-1"), 409, "sell-by-out-of-reach")


# ---------------------------------------------------------------- back to the producer


def test_an_uncollected_order_goes_back_to_its_producer(farm: World, clock: Clock) -> None:
    ferme, rucher = producer(farm, "ferme"), producer(farm, "rucher")
    announce(ferme, "CMD-1", holding_hours=4)
    announce(ferme, "CMD-2", holding_hours=4)
    deposit(farm, "CMD-1")
    clock.advance(hours=5)
    farm.sign_in_again()
    assert len(expiry.expire_overdue(farm.ctx)) == 1
    listed = ferme.get("/producer/take-back").json["items"]
    assert [(o["reference"], o["state"], o["site"]) for o in listed] == [
        ("CMD-1", "expired", "bourg")]
    assert listed[0]["site_address"] == "1 rue de la Poste, Bourg"
    assert rucher.get("/producer/take-back").json == {"items": []}
    # Not a carrier's to take back: off the carriers' list, refused at their collection.
    assert farm.shopkeeper.get(f"/sites/{farm.shop_id}/collections").json["items"] == []
    label = listed[0]["label"]
    taken_by_carrier = farm.shopkeeper.post(f"/sites/{farm.shop_id}/collections",
                                            json={"tracking_numbers": [label]})
    assert taken_by_carrier.json["items"][0]["status"] == "refused"
    # Another producer cannot take it; its producer can, once.
    other = rucher.post(f"/sites/{farm.shop_id}/producer-orders/take-back",
                        json={"references": ["CMD-1"]})
    assert other.json["items"][0]["reason"] == "not-found"
    taken = ferme.post(f"/sites/{farm.shop_id}/producer-orders/take-back",
                       json={"references": ["CMD-1", "CMD-2"]})
    assert taken.status_code == 200, taken.json
    assert [(i["reference"], i["status"]) for i in taken.json["items"]] == [
        ("CMD-1", "returned"), ("CMD-2", "refused")]
    assert taken.json["items"][1]["reason"] == "invalid-transition"
    assert ferme.get("/producer/orders/CMD-1").json["state"] == "returned"
    assert ferme.get("/producer/take-back").json == {"items": []}
    with farm.ctx.db.read() as session:
        event = session.scalars(select(ParcelEvent).order_by(ParcelEvent.id.desc())).first()
    assert event is not None
    assert (event.action, event.to_state, event.actor_kind) == ("collect", "returned",
                                                                "producer")


def test_staff_hand_an_order_back_naming_its_producer(farm: World, clock: Clock) -> None:
    ferme = producer(farm, "ferme")
    announce(ferme, "CMD-1", holding_hours=1)
    deposit(farm, "CMD-1")
    clock.advance(hours=2)
    farm.sign_in_again()
    expiry.expire_overdue(farm.ctx)
    path = f"/sites/{farm.shop_id}/producer-orders/take-back"
    assert is_problem(farm.shopkeeper.post(path, json={"references": ["CMD-1"]}),
                      409, "on-behalf-of")
    assert is_problem(farm.other_shopkeeper.post(
        path, json={"references": ["CMD-1"], "producer": "ferme"}), 404, "not-found")
    taken = farm.shopkeeper.post(path, json={"references": ["CMD-1"], "producer": "ferme"})
    assert taken.json["items"][0]["status"] == "returned"


# ---------------------------------------------------------------- the shop's screen


def test_the_shop_sees_the_day_s_producer_orders(farm: World, clock: Clock) -> None:
    ferme = producer(farm, "ferme")
    announce(ferme, "CMD-1")
    announce(ferme, "CMD-2", keep_cold=True)
    deposit(farm, "CMD-2")
    items = farm.shopkeeper.get(f"/sites/{farm.shop_id}/producer-orders").json["items"]
    assert [(o["reference"], o["state"], o["location"]) for o in items] == [
        ("CMD-1", "announced", None), ("CMD-2", "ready_for_pickup", "F1")]
    assert is_problem(farm.other_shopkeeper.get(f"/sites/{farm.shop_id}/producer-orders"),
                      404, "not-found")
    assert farm.other_shopkeeper.get(
        f"/sites/{farm.other_shop_id}/producer-orders").json["items"] == []


# ---------------------------------------------------------------- at the same moment


def test_one_order_announced_and_scanned_by_many_at_once_is_one_order(farm: World) -> None:
    """A producer's website retrying while the shop scans twice: one order, one check-in,
    one cold place taken; the others are answered, none fails."""
    ferme = farm.operator.post("/producers/ferme/keys", json={}).json["token"]
    producer_principal = api_tokens.authenticate(farm.ctx, ferme)
    order = producer_announcements.Order(reference="LAIT-1", site="bourg", phone="+33611223344",
                                         keep_cold=True, holding_hours=4)

    def announce_it() -> str:
        return str(producer_announcements.announce(farm.ctx, producer_principal, order)[0])

    outcomes = race(announce_it)
    assert outcomes["201"] == 1
    assert set(outcomes) <= {"201", "200", "conflict"}  # conflict: "being announced; retry"
    marie = Principal(Role.SHOPKEEPER, user_id=1, site_ids=frozenset({farm.shop_id}))

    def deposit_it() -> str:
        return str(producer_counter.deposit(farm.ctx, marie, farm.shop_id, "LAIT-1")[0])

    assert race(deposit_it) == Counter({"201": 1, "200": THREADS - 1})
    with farm.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ProducerOrder)) == 1
    assert shelf_counts_agree(farm.ctx)
    assert shelf_counts(farm.ctx)[f"{farm.shop_id}/F1"] == (1, 1)
