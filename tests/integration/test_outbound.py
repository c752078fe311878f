"""Parcels sent from a shop: the deposit, the shared shelves, the carrier's pickup list and
collection, the overdue alert, the sender's receipt and messages (docs/outbound.md)."""

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from relay_ops import outbox
from relay_ops.db.models import Notification, OutboundParcel, ParcelEvent, User
from relay_ops.jobs import handlers, run_sweep
from relay_ops.services import carrier_sites, sites
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.support import World, is_problem, row_counts, shop

S10_FR = "RR123456785FR"  # a valid UPU S10 number (check digit 5)
SENDER = {"phone": "+33698765432", "email": "sender@example.org"}


@pytest.fixture
def sending(world: World) -> World:
    """Acme collects its own labels (ACME...) at the Bourg shop within 48 h; Other collects
    S10 labels, but only at the neighbouring shop. Both shops declare "send"."""
    for site_id in (world.shop_id, world.other_shop_id):
        assert world.operator.put(f"/sites/{site_id}/services",
                                  json={"services": ["receive", "send"]}).status_code == 200
    assert world.operator.put("/carriers/acme/label-networks",
                              json={"label_networks": ["prefix:ACME"]}).status_code == 200
    assert world.operator.put("/carriers/other/label-networks",
                              json={"label_networks": ["upu-s10"]}).status_code == 200
    assert world.operator.put(f"/sites/{world.shop_id}/carriers/acme",
                              json={"collection_delay_hours": 48}).status_code == 200
    assert world.operator.put(f"/sites/{world.other_shop_id}/carriers/other",
                              json={"collection_delay_hours": 24}).status_code == 200
    return world


def drop(world: World, number: str, **body: Any) -> TestResponse:
    return world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                 json={"tracking_number": number, **body})


def events_of(world: World, parcel_id: int) -> list[tuple[str, str | None]]:
    items = world.operator.get(f"/parcels/{parcel_id}/events").json["items"]
    return [(e["action"], e["actor"]["id"]) for e in items]


def run_jobs(app: Flask, world: World) -> int:
    return outbox.run_pending_jobs(world.ctx.db, handlers(world.ctx, app.config), world.ctx.now)


def sent_lines(app: Flask) -> list[dict[str, Any]]:
    path = Path(app.config["NOTIFY_FILE_PATH"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- the deposit


def test_a_sent_parcel_gets_a_shelf_a_deadline_and_a_receipt(sending: World) -> None:
    response = drop(sending, "ACME00000900", sender=SENDER, size_class="S")
    assert response.status_code == 201, response.json
    parcel = response.json["parcel"]
    assert parcel["state"] == "awaiting_collection"
    assert parcel["direction"] == "outbound"
    assert parcel["carrier"] == "acme"
    assert parcel["location"] == "A1"
    assert parcel["dropped_off_at"] == "2026-12-01T09:00:00+00:00"
    assert parcel["collect_by"] == "2026-12-03T09:00:00+00:00"  # Acme's 48 hours
    assert response.json["receipt_url"].startswith("http://relayops.test/envoi/")
    with sending.ctx.db.read() as session:
        marie = session.scalar(select(User.id).where(User.username == "marie"))
    assert events_of(sending, parcel["id"]) == [
        ("drop_off", f"user:{marie}"), ("accept_outbound", f"user:{marie}")]
    with sending.ctx.db.read() as session:
        owed = {(n.kind, n.channel) for n in session.scalars(select(Notification))}
    assert owed == {("dropped_off", "email"), ("dropped_off", "sms")}


def test_a_shop_that_does_not_declare_send_refuses_a_deposit(sending: World) -> None:
    """A carrier collects at the shop, but the shop took "send" out of its services: the
    directory no longer lists it for senders, and the counter takes nothing to send."""
    assert sending.shopkeeper.put(f"/sites/{sending.shop_id}/services",
                                  json={"services": ["receive"]}).status_code == 200
    counts = row_counts(sending.ctx)
    refused = drop(sending, "ACME00000990", sender=SENDER)
    assert is_problem(refused, 409, "service-not-offered")
    assert (refused.json["service"], refused.json["site"]) == ("send", "bourg")
    assert "does not offer 'send'" in refused.json["detail"]
    assert row_counts(sending.ctx) == counts  # no parcel, no event, no message
    # Declared again, the same scan is taken.
    sending.shopkeeper.put(f"/sites/{sending.shop_id}/services",
                           json={"services": ["receive", "send"]})
    assert drop(sending, "ACME00000990").status_code == 201


def test_scanning_a_deposit_twice_is_harmless_and_says_so(sending: World) -> None:
    first = drop(sending, "ACME00000901").json
    counts = row_counts(sending.ctx)
    again = drop(sending, "ACME 0000 0901")
    assert again.status_code == 200
    assert again.json["status"] == "already_dropped_off"
    assert again.json["parcel"]["location"] == first["parcel"]["location"]
    assert row_counts(sending.ctx) == counts


def test_a_label_already_known_for_another_parcel_is_refused(sending: World) -> None:
    assert sending.announce("ACME00000902").status_code == 201
    counts = row_counts(sending.ctx)
    refused = drop(sending, "ACME00000902")
    assert is_problem(refused, 409, "conflict")
    assert row_counts(sending.ctx) == counts


def test_a_bad_label_is_refused_with_its_reason(sending: World) -> None:
    counts = row_counts(sending.ctx)
    refused = drop(sending, "RR123456784FR")  # an S10 with a wrong check digit
    assert is_problem(refused, 422, "invalid-tracking-number")
    assert "check digit" in refused.json["detail"]
    assert row_counts(sending.ctx) == counts


def test_a_label_no_carrier_here_collects_is_refused(sending: World) -> None:
    counts = row_counts(sending.ctx)
    # Other collects S10 labels, but not at this shop.
    refused = drop(sending, S10_FR)
    assert is_problem(refused, 409, "label-not-collected-here")
    assert refused.json["carriers"] == []
    named = drop(sending, S10_FR, carrier="other")
    assert is_problem(named, 409, "label-not-collected-here")
    assert "does not collect at this site" in named.json["detail"]
    assert row_counts(sending.ctx) == counts


def test_two_carriers_for_one_label_need_the_shopkeeper_to_name_one(sending: World) -> None:
    sending.operator.put("/carriers/other/label-networks",
                         json={"label_networks": ["prefix:ACME", "upu-s10"]})
    sending.operator.put(f"/sites/{sending.shop_id}/carriers/other",
                         json={"collection_delay_hours": 24})
    ambiguous = drop(sending, "ACME00000903")
    assert is_problem(ambiguous, 409, "carrier-choice-needed")
    assert ambiguous.json["carriers"] == ["acme", "other"]
    chosen = drop(sending, "ACME00000903", carrier="other")
    assert chosen.status_code == 201
    assert chosen.json["parcel"]["carrier"] == "other"
    assert chosen.json["parcel"]["collect_by"] == "2026-12-02T09:00:00+00:00"


def test_a_mistyped_sender_address_is_refused_at_the_counter(sending: World) -> None:
    counts = row_counts(sending.ctx)
    refused = drop(sending, "ACME00000904", sender={"email": "not an address"})
    assert is_problem(refused, 422, "invalid-request")
    assert row_counts(sending.ctx) == counts


def test_sent_and_received_parcels_share_the_shelves(sending: World) -> None:
    tiny = sites.create_site(sending.ctx, SYSTEM, shop("tiny", 47.5, -1.3, [("A1", "M", 1)],
                                                        services=["receive", "send"]))
    carrier_sites.serve_site(sending.ctx, SYSTEM, tiny["id"], "acme", 24)
    sent = sending.operator.post(f"/sites/{tiny['id']}/outbound",
                                 json={"tracking_number": "ACME00000905"})
    assert sent.status_code == 201
    occupancy = sending.operator.get(f"/sites/{tiny['id']}/occupancy").json
    assert (occupancy["held"], occupancy["free"]) == (1, 0)
    assert occupancy["by_state"] == {"awaiting_collection": 1}
    # The one place is taken by the sent parcel: a received one finds no room...
    assert sending.announce("ACME00000906", site="tiny").status_code == 201
    refused = sending.operator.post(f"/sites/{tiny['id']}/check-ins",
                                    json={"tracking_number": "ACME00000906"})
    assert is_problem(refused, 409, "site-at-capacity")
    # ...and neither does another sent one; nothing of it is kept.
    counts = row_counts(sending.ctx)
    full = sending.operator.post(f"/sites/{tiny['id']}/outbound",
                                 json={"tracking_number": "ACME00000907"})
    assert is_problem(full, 409, "site-at-capacity")
    assert row_counts(sending.ctx) == counts


def test_a_resident_returns_a_parcel_received_here(sending: World) -> None:
    received = sending.ready("ACME00000908")
    code = sending.code_of(received["id"])
    assert sending.pick_up(code=code, tracking_number="ACME00000908").status_code == 200
    back = drop(sending, "ACME00000909", reason="return", return_of="ACME00000908")
    assert back.status_code == 201, back.json
    assert back.json["parcel"]["reason"] == "return"
    with sending.ctx.db.read() as session:
        row = session.get(OutboundParcel, back.json["parcel"]["id"])
        assert row is not None and row.return_of_parcel_id == received["id"]


def test_a_return_names_a_parcel_picked_up_here(sending: World) -> None:
    sending.ready("ACME00000910")  # still on the shelf: not picked up
    refused = drop(sending, "ACME00000911", reason="return", return_of="ACME00000910")
    assert is_problem(refused, 404, "not-found")


def test_a_resident_refuses_a_parcel_at_the_counter_and_it_goes_back_to_its_carrier(
        sending: World) -> None:
    parcel = sending.ready("ACME00000918")
    path = f"/parcels/{parcel['id']}/recipient-refusal"
    assert is_problem(sending.other_shopkeeper.post(path, json={"reason": "damaged"}), 404,
                      "not-found")
    refused = sending.shopkeeper.post(path, json={"reason": "damaged box"})
    assert refused.status_code == 200, refused.json
    assert refused.json["state"] == "expired"
    history = sending.operator.get(f"/parcels/{parcel['id']}/events").json["items"]
    assert (history[-1]["action"], history[-1]["reason"]) == (
        "refuse", "refused by its recipient: damaged box")
    back = sending.carrier.get(f"/sites/{sending.shop_id}/collections").json["items"]
    assert [p["tracking_number"] for p in back] == ["ACME00000918"]
    assert is_problem(sending.shopkeeper.post(path, json={"reason": "again"}), 409,
                      "invalid-transition")


# ---------------------------------------------------------------- the carrier's round


def test_the_pickup_list_is_the_carrier_s_own(sending: World) -> None:
    drop(sending, "ACME00000912")
    listed = sending.carrier.get(f"/sites/{sending.shop_id}/outbound/pickup-list")
    assert listed.status_code == 200
    assert [p["tracking_number"] for p in listed.json["items"]] == ["ACME00000912"]
    assert listed.json["items"][0]["overdue"] is False
    others = sending.other_carrier.get(f"/sites/{sending.shop_id}/outbound/pickup-list")
    assert others.status_code == 200 and others.json["items"] == []
    staff = sending.shopkeeper.get(f"/sites/{sending.shop_id}/outbound/pickup-list",
                                   carrier="acme")
    assert [p["tracking_number"] for p in staff.json["items"]] == ["ACME00000912"]
    assert sending.other_shopkeeper.get(
        f"/sites/{sending.shop_id}/outbound/pickup-list").status_code == 404


def test_a_carrier_has_a_pickup_list_per_round(sending: World, clock: Clock) -> None:
    path = f"/sites/{sending.shop_id}/carriers/acme"
    assert is_problem(sending.operator.put(path, json={"collection_delay_hours": 48,
                                                       "rounds": ["25:00"]}),
                      422, "invalid-request")  # the document states HH:MM
    served = sending.operator.put(path, json={"collection_delay_hours": 48,
                                              "rounds": ["16:00", "10:30", "10:30"]})
    assert served.status_code == 200 and served.json["rounds"] == ["10:30", "16:00"]
    # the clock reads 10:00 in Bourg (09:00 UTC)
    drop(sending, "ACME00000915")  # before the 10:30 round
    clock.advance(hours=1)
    drop(sending, "ACME00000916")  # after it: the 16:00 round
    clock.advance(hours=6)
    drop(sending, "ACME00000917")  # after the day's last round: tomorrow 10:30
    lists = f"/sites/{sending.shop_id}/outbound/pickup-list"
    whole = sending.carrier.get(lists).json
    assert {p["tracking_number"]: p["round"] for p in whole["items"]} == {
        "ACME00000915": "2026-12-01T10:30:00+01:00", "ACME00000916": "2026-12-01T16:00:00+01:00",
        "ACME00000917": "2026-12-02T10:30:00+01:00"}
    assert [(r["time"], r["parcels"]) for r in whole["rounds"]] == [("10:30", 1), ("16:00", 2)]

    def one_round(api: Any, at: str, **query: str) -> list[str]:
        answer = api.get(lists, round=at, **query)
        assert answer.status_code == 200, answer.json
        return [p["tracking_number"] for p in answer.json["items"]]

    assert one_round(sending.carrier, "10:30") == ["ACME00000915"]
    assert one_round(sending.carrier, "16:00") == ["ACME00000915", "ACME00000916"]
    assert one_round(sending.shopkeeper, "16:00", carrier="acme") == [
        "ACME00000915", "ACME00000916"]
    # any time of day: what must be ready by then (no refusal: the fuzz sends any HH:MM)
    assert one_round(sending.carrier, "12:00") == ["ACME00000915"]
    assert one_round(sending.carrier, "09:00") == []
    # staff without a carrier: every carrier's parcels due by then
    assert one_round(sending.shopkeeper, "10:30") == ["ACME00000915"]
    # another carrier's rounds hold none of Acme's parcels
    assert sending.other_carrier.get(lists).json["items"] == []
    # the agreement changed without rounds keeps them; the carrier's sites name the next one
    assert sending.operator.put(path, json={"collection_delay_hours": 24}).json["rounds"] == [
        "10:30", "16:00"]
    sites_listed = sending.carrier.get("/outbound/collection-sites").json["items"]
    assert [(s["site_id"], s["next_round"]) for s in sites_listed] == [
        (sending.shop_id, "2026-12-02T10:30:00+01:00")]


def test_a_van_that_comes_two_days_a_week_lists_each_parcel_for_its_next_day(
    sending: World, clock: Clock
) -> None:
    path = f"/sites/{sending.shop_id}/carriers/acme"
    assert is_problem(sending.operator.put(path, json={"collection_delay_hours": 72,
                                                       "rounds": ["tues 14:00"]}),
                      422, "invalid-request")  # the document states the days it knows
    served = sending.operator.put(path, json={"collection_delay_hours": 72,
                                              "rounds": ["thu,tue 14:00"]})
    assert served.status_code == 200 and served.json["rounds"] == ["tue,thu 14:00"]
    drop(sending, "ACME00000918")  # Tuesday 10:00 in Bourg: today's round
    clock.advance(hours=5)
    drop(sending, "ACME00000919")  # after it: Thursday's
    lists = f"/sites/{sending.shop_id}/outbound/pickup-list"
    tuesday = sending.carrier.get(lists).json
    assert {p["tracking_number"]: p["round"] for p in tuesday["items"]} == {
        "ACME00000918": "2026-12-01T14:00:00+01:00", "ACME00000919": "2026-12-03T14:00:00+01:00"}
    assert [(r["time"], r["parcels"]) for r in tuesday["rounds"]] == [("14:00", 1)]
    clock.advance(days=1)  # Wednesday: the van does not come
    assert sending.carrier.get(lists).json["rounds"] == []
    # what must be ready by 14:00 today: Tuesday's parcel the van missed, not Thursday's
    wednesday = sending.carrier.get(lists, round="14:00")
    assert wednesday.status_code == 200
    assert [p["tracking_number"] for p in wednesday.json["items"]] == ["ACME00000918"]
    sites_listed = sending.carrier.get("/outbound/collection-sites").json["items"]
    assert [(s["site_id"], s["rounds"], s["next_round"]) for s in sites_listed] == [
        (sending.shop_id, ["tue,thu 14:00"], "2026-12-03T14:00:00+01:00")]
    clock.advance(days=1)  # Thursday: both parcels are on the round's list
    thursday = sending.carrier.get(lists, round="14:00")
    assert thursday.status_code == 200
    assert [p["tracking_number"] for p in thursday.json["items"]] == [
        "ACME00000918", "ACME00000919"]


def test_the_carrier_s_scan_confirms_each_parcel_taken_and_the_sender_is_told(
    app: Flask, sending: World, clock: Clock
) -> None:
    taken = drop(sending, "ACME00000913", sender=SENDER).json["parcel"]
    missing = drop(sending, "ACME00000914").json["parcel"]
    clock.advance(hours=5)
    answer = sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections", json={
        "taken": ["ACME00000913", "ACME00000999"], "not_found": ["ACME00000914"]})
    assert answer.status_code == 200
    items = answer.json["items"]
    assert [(i["tracking_number"], i["status"]) for i in items] == [
        ("ACME00000913", "collected"), ("ACME00000999", "refused"), ("ACME00000914", "lost")]
    assert items[1]["reason"] == "not-found"
    history = sending.operator.get(f"/parcels/{taken['id']}/events").json["items"]
    assert (history[-1]["action"], history[-1]["actor"]["kind"]) == ("collect", "carrier")
    assert history[-1]["data"] == {"carrier": "acme"}
    assert history[-1]["at"] == "2026-12-01T14:00:00+00:00"
    lost = sending.operator.get(f"/parcels/{missing['id']}/events").json["items"][-1]
    assert (lost["action"], lost["to_state"]) == ("declare_missing", "lost")
    assert sending.carrier.get(
        f"/sites/{sending.shop_id}/outbound/pickup-list").json["items"] == []
    assert sending.operator.get(f"/sites/{sending.shop_id}/occupancy").json["held"] == 0
    run_jobs(app, sending)
    lines = sent_lines(app)
    emails = {x["subject"]: x["body"] for x in lines if x["channel"] == "email"}
    left = emails["Votre colis est parti : Shop bourg"]
    assert "remis au transporteur Acme Parcels le mardi 1er décembre 2026 à 15:00" in left
    sms = [x["body"] for x in lines if x["channel"] == "sms"]
    assert len(sms) == 2  # the receipt, then "it has left"
    assert any("ACME00000913 remis à Acme Parcels le mardi 1er décembre à 15:00" in b
               for b in sms)


def test_a_carrier_cannot_take_another_carrier_s_parcels(sending: World) -> None:
    drop(sending, "ACME00000915")
    answer = sending.other_carrier.post(f"/sites/{sending.shop_id}/outbound/collections",
                                        json={"taken": ["ACME00000915"]})
    assert answer.json["items"][0]["reason"] == "not-found"
    listed = sending.carrier.get(f"/sites/{sending.shop_id}/outbound/pickup-list")
    assert [p["state"] for p in listed.json["items"]] == ["awaiting_collection"]


def test_staff_hand_over_to_a_named_carrier(sending: World) -> None:
    drop(sending, "ACME00000916")
    unnamed = sending.shopkeeper.post(f"/sites/{sending.shop_id}/outbound/collections",
                                      json={"taken": ["ACME00000916"]})
    assert is_problem(unnamed, 409, "on-behalf-of")
    named = sending.shopkeeper.post(f"/sites/{sending.shop_id}/outbound/collections",
                                    json={"taken": ["ACME00000916"], "carrier": "acme"})
    assert named.json["items"][0]["status"] == "collected"


def test_a_collection_names_at_least_one_parcel(sending: World) -> None:
    empty = sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections", json={})
    assert is_problem(empty, 422, "validation-failed")


def test_a_damaged_sent_parcel_still_goes_with_the_carrier(sending: World) -> None:
    parcel = drop(sending, "ACME00000917").json["parcel"]
    declared = sending.shopkeeper.post(f"/parcels/{parcel['id']}/declarations",
                                       json={"kind": "damaged", "note": "box crushed"})
    assert declared.json["state"] == "damaged"
    listed = sending.carrier.get(f"/sites/{sending.shop_id}/outbound/pickup-list")
    assert [p["state"] for p in listed.json["items"]] == ["damaged"]
    answer = sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections",
                                  json={"taken": ["ACME00000917"]})
    assert answer.json["items"][0]["status"] == "collected"


def test_a_sent_parcel_declared_missing_is_lost(sending: World) -> None:
    parcel = drop(sending, "ACME00000918").json["parcel"]
    declared = sending.shopkeeper.post(f"/parcels/{parcel['id']}/declarations",
                                       json={"kind": "missing", "note": "not on the shelf"})
    assert declared.json["state"] == "lost"


# ---------------------------------------------------------------- late carriers


def test_a_carrier_late_past_its_delay_raises_one_alert(
    app: Flask, sending: World, clock: Clock
) -> None:
    parcel = drop(sending, "ACME00000919").json["parcel"]
    clock.advance(hours=47)
    assert run_sweep(sending.ctx, app.config, "outbound-overdue") == 0
    clock.advance(hours=2)
    assert run_sweep(sending.ctx, app.config, "outbound-overdue") == 1
    assert run_sweep(sending.ctx, app.config, "outbound-overdue") == 0  # once
    sending.sign_in_again()
    for viewer in (sending.operator, sending.carrier, sending.shopkeeper):
        late = viewer.get("/outbound/overdue").json["items"]
        assert [(p["tracking_number"], p["overdue_since"]) for p in late] == [
            ("ACME00000919", "2026-12-03T10:00:00+00:00")]
    for outsider in (sending.other_carrier, sending.other_shopkeeper):
        assert outsider.get("/outbound/overdue").json["items"] == []
    listed = sending.carrier.get(f"/sites/{sending.shop_id}/outbound/pickup-list")
    assert listed.json["items"][0]["overdue"] is True
    with sending.ctx.db.read() as session:
        alert = session.scalars(select(ParcelEvent).where(
            ParcelEvent.parcel_id == parcel["id"], ParcelEvent.action == "collection_overdue"
        )).one()
    assert alert.actor_kind == "system" and alert.to_state == "awaiting_collection"


def test_a_collected_parcel_raises_no_alert(app: Flask, sending: World, clock: Clock) -> None:
    drop(sending, "ACME00000920")
    sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections",
                         json={"taken": ["ACME00000920"]})
    clock.advance(days=3)
    assert run_sweep(sending.ctx, app.config, "outbound-overdue") == 0


# ---------------------------------------------------------------- the sender's receipt


def test_the_receipt_says_where_and_when_and_outlives_the_collection(
    sending: World, clock: Clock
) -> None:
    url = drop(sending, "ACME00000921").json["receipt_url"]
    token = url.rsplit("/", 1)[1]
    receipt = sending.anonymous.get(f"/outbound/receipts/{token}")
    assert receipt.status_code == 200
    assert receipt.json["site"]["name"] == "Shop bourg"
    assert receipt.json["dropped_off_at"] == "2026-12-01T09:00:00+00:00"
    assert receipt.json["collected_at"] is None
    clock.advance(hours=3)
    sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections",
                         json={"taken": ["ACME00000921"]})
    after = sending.anonymous.get(f"/outbound/receipts/{token}").json
    assert (after["state"], after["collected_at"]) == ("collected", "2026-12-01T12:00:00+00:00")


def test_a_forged_receipt_link_finds_nothing(sending: World) -> None:
    assert is_problem(sending.anonymous.get("/outbound/receipts/forged.token"), 404, "not-found")


def test_the_sender_gets_the_receipt_message(app: Flask, sending: World) -> None:
    drop(sending, "ACME00000922", sender={**SENDER, "locale": "en"})
    assert run_jobs(app, sending) == 2
    lines = {x["channel"]: x for x in sent_lines(app)}
    assert lines["email"]["subject"] == "Your parcel has been dropped off for sending: Shop bourg"
    assert "dropped off on Tuesday 1 December 2026 at 10:00" in lines["email"]["body"]
    assert "http://relayops.test/envoi/" in lines["sms"]["body"]
    assert "Acme Parcels" in lines["sms"]["body"]


# ---------------------------------------------------------------- who may do what


def test_only_operators_set_who_collects_where(sending: World) -> None:
    for api in (sending.shopkeeper, sending.carrier):
        assert api.put(f"/sites/{sending.shop_id}/carriers/other",
                       json={"collection_delay_hours": 24}).status_code == 403
        assert api.put("/carriers/acme/label-networks",
                       json={"label_networks": ["upu-s10"]}).status_code == 403
    bad = sending.operator.put("/carriers/acme/label-networks",
                               json={"label_networks": ["prefix:"]})
    assert bad.status_code == 422
    carriers = sending.shopkeeper.get(f"/sites/{sending.shop_id}/carriers").json["items"]
    assert carriers == [{"carrier": "acme", "name": "Acme Parcels",
                         "label_networks": ["prefix:ACME"], "collection_delay_hours": 48,
                         "rounds": []}]
    assert sending.operator.delete(f"/sites/{sending.shop_id}/carriers/acme").status_code == 204
    assert is_problem(drop(sending, "ACME00000923"), 409, "label-not-collected-here")


def test_a_shop_deposits_only_at_its_own_site_and_carriers_not_at_all(sending: World) -> None:
    elsewhere = sending.other_shopkeeper.post(f"/sites/{sending.shop_id}/outbound",
                                              json={"tracking_number": "ACME00000924"})
    assert is_problem(elsewhere, 404, "not-found")
    carrier = sending.carrier.post(f"/sites/{sending.shop_id}/outbound",
                                   json={"tracking_number": "ACME00000924"})
    assert carrier.status_code == 403


# ---------------------------------------------------------------- refusals and hand-backs


def test_a_parcel_the_carrier_refuses_waits_for_its_sender(app: Flask, sending: World) -> None:
    parcel = drop(sending, "ACME00000930", sender=SENDER).json["parcel"]
    refused = sending.carrier.post(f"/parcels/{parcel['id']}/outbound-refusal",
                                   json={"reason": "tape open, contents loose"})
    assert refused.status_code == 200
    assert refused.json["state"] == "refused"
    assert sending.carrier.get(
        f"/sites/{sending.shop_id}/outbound/pickup-list").json["items"] == []
    # Still on the shelf: it takes its place until the sender comes.
    assert sending.operator.get(f"/sites/{sending.shop_id}/occupancy").json["by_state"] == {
        "refused": 1}
    history = sending.operator.get(f"/parcels/{parcel['id']}/events").json["items"]
    assert (history[-1]["action"], history[-1]["reason"]) == (
        "refuse", "tape open, contents loose")
    run_jobs(app, sending)
    emails = [x for x in sent_lines(app) if x["channel"] == "email"]
    assert emails[-1]["subject"] == "Votre colis n'a pas été pris : Shop bourg"
    back = sending.shopkeeper.post(f"/parcels/{parcel['id']}/hand-back")
    assert back.status_code == 200 and back.json["state"] == "returned"
    assert sending.operator.get(f"/sites/{sending.shop_id}/occupancy").json["held"] == 0


def test_only_the_parcel_s_carrier_or_shop_refuses_or_hands_it_back(sending: World) -> None:
    parcel = drop(sending, "ACME00000931").json["parcel"]
    counts = row_counts(sending.ctx)
    for outsider in (sending.other_carrier, sending.other_shopkeeper):
        answer = outsider.post(f"/parcels/{parcel['id']}/outbound-refusal",
                               json={"reason": "no"})
        assert is_problem(answer, 404, "not-found")
    assert is_problem(sending.other_shopkeeper.post(f"/parcels/{parcel['id']}/hand-back"),
                      404, "not-found")
    assert sending.carrier.post(f"/parcels/{parcel['id']}/hand-back").status_code == 403
    blank = sending.carrier.post(f"/parcels/{parcel['id']}/outbound-refusal",
                                 json={"reason": " "})
    assert is_problem(blank, 422, "validation-failed")
    assert row_counts(sending.ctx) == counts
    received = sending.ready("ACME00000932")  # a received parcel is not a sent one
    assert is_problem(sending.shopkeeper.post(f"/parcels/{received['id']}/hand-back"),
                      404, "not-found")


def test_a_collected_parcel_cannot_be_handed_back(sending: World) -> None:
    parcel = drop(sending, "ACME00000933").json["parcel"]
    sending.carrier.post(f"/sites/{sending.shop_id}/outbound/collections",
                         json={"taken": ["ACME00000933"]})
    refused = sending.shopkeeper.post(f"/parcels/{parcel['id']}/hand-back")
    assert is_problem(refused, 409, "invalid-transition")
