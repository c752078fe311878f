"""Adaptive holding from the forecast (deadline, message, reminder) and season capacity
(temporary shelves, the recommended extra places): docs/forecast.md."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from flask import Flask

from relay_ops.db.models import SiteForecast
from relay_ops.domain.holding import AdaptiveHolding
from relay_ops.services import forecast, reminders
from tests.conftest import Clock
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.integration.test_forecast import announce_many
from tests.support import World, is_problem

THURSDAY = "2026-12-03"


def events_of(world: World, parcel_id: int) -> list[dict[str, Any]]:
    return world.shopkeeper.get(f"/parcels/{parcel_id}/events").json["items"]


def mail_to(app: Flask, address: str) -> str:
    return next(x["body"] for x in sent_lines(app)
                if x["channel"] == "email" and x["to"] == address)


def test_without_overflow_ahead_the_standard_period_and_the_usual_message(
    app: Flask, world: World
) -> None:
    parcel = world.ready("STD000000001")
    # Tuesday 1 December + 10 days: Friday 11 December.
    assert parcel["holding_deadline"].startswith("2026-12-11")
    assert parcel["holding_rule"] == "standard"
    assert events_of(world, parcel["id"])[-1]["data"]["holding_rule"] == "standard"
    run_jobs(app, world)
    body = mail_to(app, "jeanne@example.org")
    assert "vendredi 11 décembre 2026" in body
    assert "plus court que d'habitude" not in body


def test_a_day_at_risk_within_the_period_shortens_it_and_the_resident_is_told(
    app: Flask, world: World
) -> None:
    # 18 parcels announced for Thursday, 15 places: the stored forecast puts it at risk.
    announce_many(world.carrier, 18, day=THURSDAY)
    with world.ctx.db.read() as session:
        today = forecast.stored_day(session, world.shop_id, date(2026, 12, 1))
        thursday = forecast.stored_day(session, world.shop_id, date(2026, 12, 3))
        assert today is not None and today.predicted / today.capacity < 0.9  # not "load"
        assert thursday is not None and thursday.at_risk
    parcel = world.ready("ADP000000001")
    # 6 days instead of 10: Monday 7 December.
    assert parcel["holding_deadline"].startswith("2026-12-07")
    assert parcel["holding_rule"] == "forecast"
    data = events_of(world, parcel["id"])[-1]["data"]
    assert data["holding_rule"] == "forecast" and data["holding_days"] == 6
    assert data["risk_day"] == THURSDAY and data["reminder_before_hours"] == 96
    run_jobs(app, world)
    body = mail_to(app, "jeanne@example.org")
    assert "lundi 7 décembre 2026" in body
    assert "plus court que d'habitude" in body
    sms = next(x["body"] for x in sent_lines(app) if x["channel"] == "sms"
               and "ADP000000001" in x["body"])
    assert "7 déc" in sms


def test_the_shortened_parcel_is_reminded_earlier_than_a_standard_one(
    world: World, clock: Clock
) -> None:
    standard = world.ready("STD000000002")
    announce_many(world.carrier, 18, day=THURSDAY)
    short = world.ready("ADP000000002")
    assert short["holding_rule"] == "forecast"
    # The short parcel's reminder opens 96 h before Monday 23:59 (Paris): Thursday 23:59.
    clock.advance(days=2, hours=13)  # Thursday 22:00 UTC, 23:00 in Paris
    assert reminders.send_due(world.ctx) == []
    clock.advance(hours=2)  # Friday 01:00 in Paris
    assert reminders.send_due(world.ctx) == [short["id"]]
    # The standard parcel (Friday 11) is reminded 48 h before its deadline, not now.
    assert reminders.send_due(world.ctx) == []
    clock.advance(days=5)  # Wednesday 9, 01:00 in Paris: still more than 48 h before
    assert reminders.send_due(world.ctx) == []
    clock.advance(days=1)
    assert reminders.send_due(world.ctx) == [standard["id"]]


def test_no_rule_goes_under_the_floor(app: Flask, world: World) -> None:
    rules = AdaptiveHolding.from_config(
        {}, {"threshold": 0.9, "days": {"shop": 1}, "look_ahead": True}, {"shop": 4})
    app.extensions["relay_ops"] = replace(world.ctx, settings=replace(
        world.ctx.settings, adaptive_holding=rules))
    announce_many(world.carrier, 18, day=THURSDAY)
    parcel = world.ready("FLR000000001")
    # 1 day asked, 4 days' floor: Saturday 5 December.
    assert parcel["holding_rule"] == "forecast"
    assert parcel["holding_deadline"].startswith("2026-12-05")


# ---------------------------------------------------------------- temporary shelves


def shelf(world: World, **body: Any) -> Any:
    fields = {"label": "T1", "size_class": "L", "capacity": 5, "valid_from": THURSDAY,
              "valid_until": "2026-12-10", **body}
    return world.shopkeeper.post(f"/sites/{world.shop_id}/temporary-shelves", json=fields)


def test_a_temporary_shelf_counts_only_within_its_dates(world: World, clock: Clock) -> None:
    declared = shelf(world)
    assert declared.status_code == 201, declared.json
    assert declared.json["valid_from"] == THURSDAY and declared.json["held"] == 0
    days = {d["day"]: d["capacity"] for d in
            world.shopkeeper.get(f"/sites/{world.shop_id}/forecast").json["days"]}
    assert days["2026-12-02"] == 15 and days[THURSDAY] == 20 and days["2026-12-08"] == 20
    assert world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy").json["capacity"] == 15
    numbers = [f"TMP{i:09d}" for i in range(16)]
    for number in numbers[:15]:
        assert world.ready(number)["location"] in ("A1", "B1")
    assert world.announce(numbers[15]).status_code == 201
    assert is_problem(world.check_in(numbers[15]), 409, "site-at-capacity")  # not before
    clock.advance(days=2)  # Thursday: the shelf is in service
    world.sign_in_again()
    placed = world.check_in(numbers[15])
    assert placed.status_code == 201 and placed.json["parcel"]["location"] == "T1"
    occupancy = world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy").json
    assert occupancy["capacity"] == 20 and occupancy["held"] == 16
    listed = world.shopkeeper.get(f"/sites/{world.shop_id}/temporary-shelves").json["items"]
    assert [(t["label"], t["held"]) for t in listed] == [("T1", 1)]
    # A shelf with a parcel on it is not withdrawn.
    assert is_problem(world.shopkeeper.delete(
        f"/sites/{world.shop_id}/temporary-shelves/{listed[0]['id']}"), 409, "conflict")
    clock.advance(days=8)  # Friday 11: over
    world.sign_in_again()
    assert world.shopkeeper.get(f"/sites/{world.shop_id}/occupancy").json["capacity"] == 15
    days = world.shopkeeper.get(f"/sites/{world.shop_id}/forecast").json["days"]
    assert all(d["capacity"] == 15 for d in days)


def test_an_empty_temporary_shelf_is_withdrawn(world: World) -> None:
    created = shelf(world).json
    path = f"/sites/{world.shop_id}/temporary-shelves/{created['id']}"
    assert is_problem(world.other_shopkeeper.delete(path), 404, "not-found")
    assert world.shopkeeper.delete(path).status_code == 204
    assert world.shopkeeper.get(f"/sites/{world.shop_id}/temporary-shelves").json["items"] == []
    assert is_problem(world.shopkeeper.delete(path), 404, "not-found")
    # A permanent location is not a temporary shelf to withdraw.
    locations = world.shopkeeper.get(f"/sites/{world.shop_id}/locations").json["items"]
    assert is_problem(world.operator.delete(
        f"/sites/{world.shop_id}/temporary-shelves/{locations[0]['id']}"), 404, "not-found")


def test_bad_temporary_shelves_are_refused(world: World) -> None:
    assert is_problem(shelf(world, valid_from="2026-12-10", valid_until=THURSDAY), 422,
                      "validation-failed")
    # Over already: the date of today refuses it, as a business rule (found by the fuzz).
    assert is_problem(shelf(world, valid_from="2026-11-01", valid_until="2026-11-30"), 409,
                      "period-over")
    assert is_problem(shelf(world, valid_until="2027-12-31"), 422, "validation-failed")
    assert is_problem(shelf(world, capacity=10**12), 422, "invalid-request")
    assert is_problem(shelf(world, capacity=0), 422, "invalid-request")
    assert is_problem(shelf(world, valid_from="2026-13-45"), 422, "invalid-request")
    assert is_problem(shelf(world, size_class="XXL"), 422, "validation-failed")
    assert is_problem(shelf(world, label="x" * 21), 422, "invalid-request")
    assert shelf(world).status_code == 201
    assert is_problem(shelf(world), 409, "conflict")  # the same label again
    assert is_problem(shelf(world, label="A1"), 409, "conflict")  # a permanent one's
    other = world.other_shopkeeper.post(
        f"/sites/{world.shop_id}/temporary-shelves",
        json={"label": "T9", "capacity": 5, "valid_from": THURSDAY, "valid_until": THURSDAY})
    assert is_problem(other, 404, "not-found")
    carrier = world.carrier.post(
        f"/sites/{world.shop_id}/temporary-shelves",
        json={"label": "T9", "capacity": 5, "valid_from": THURSDAY, "valid_until": THURSDAY})
    assert carrier.status_code == 403


# ---------------------------------------------------------------- recommendations


def store_forecast(world: World, site_id: int, highs: list[int], capacity: int,
                   spread: float = 1.5) -> None:
    """A constructed forecast: today and the next 7 days, these upper bounds, each ``spread``
    above its expected count."""
    with world.ctx.db.transaction() as session:
        for i, high in enumerate(highs):
            day = date(2026, 12, 1) + timedelta(days=i)
            session.add(SiteForecast(
                site_id=site_id, day=day, computed_at=world.ctx.now(), predicted=high - spread,
                low=max(0, high - 4), high=high, capacity=capacity, arrivals=2.0,
                closed=False, at_risk=high > capacity))


def test_the_operator_is_told_how_many_places_for_which_dates(world: World) -> None:
    store_forecast(world, world.shop_id, [10, 18, 22, 16, 14, 12, 21, 9], 15)
    store_forecast(world, world.other_shop_id, [5, 6, 7, 8, 9, 9, 9, 10], 10)
    answer = world.operator.get("/season/recommendations")
    assert answer.status_code == 200
    by_site = {r["site"]: r for r in answer.json["items"]}
    bourg = by_site["bourg"]
    assert bourg["places"] == 7
    assert [(p["from"], p["until"], p["places"]) for p in bourg["periods"]] == [
        ("2026-12-02", "2026-12-04", 7), ("2026-12-07", "2026-12-07", 6)]
    assert bourg["periods"][0]["days"] == [
        {"day": "2026-12-02", "missing": 3}, {"day": "2026-12-03", "missing": 7},
        {"day": "2026-12-04", "missing": 1}]
    assert by_site["voisin"] == {**by_site["voisin"], "places": 0, "periods": []}
    one = world.operator.get("/season/recommendations", site=world.shop_id).json["items"]
    assert [r["site"] for r in one] == ["bourg"]


def test_recommendations_count_the_declared_shelves_and_the_shortened_parcels(
    world: World
) -> None:
    announce_many(world.carrier, 18, day=THURSDAY)
    world.ready("ADP000000003")
    before = world.operator.get("/season/recommendations", site=world.shop_id).json["items"][0]
    assert before["places"] > 0 and before["shortened_holding"] == {"forecast": 1}
    shelf(world, capacity=before["places"], valid_from="2026-12-01", valid_until="2026-12-12")
    after = world.operator.get("/season/recommendations", site=world.shop_id).json["items"][0]
    assert after["places"] == 0 and after["periods"] == []
    assert [(t["label"], t["valid_until"]) for t in after["temporary_shelves"]] == [
        ("T1", "2026-12-12")]


def test_recommendations_are_the_operators_and_bad_queries_are_refused(world: World) -> None:
    assert world.shopkeeper.get("/season/recommendations").status_code == 403
    assert world.carrier.get("/season/recommendations").status_code == 403
    assert world.anonymous.get("/season/recommendations").status_code == 401
    assert is_problem(world.operator.get("/season/recommendations", site=999999), 404,
                      "not-found")
    assert world.operator.get("/season/recommendations", site="abc").status_code == 422
    assert world.operator.get("/season/recommendations", site=10**30).status_code == 422
    assert world.operator.get("/season/recommendations", site=-1).status_code == 422


# ---------------------------------------------------------------- when the whole area is full


def storage(world: World, code: str, lat: float, lon: float, capacity: int,
            **season: str) -> int:
    """A town hall room (``tests/integration/test_no_room.storage_site``'s kind of site)."""
    from tests.integration.test_no_room import storage_site
    return storage_site(world, code, capacity=capacity, latitude=lat, longitude=lon,
                        season=season or None)


def test_storage_sites_are_told_the_places_for_the_overflow_of_the_shops_within_reach(
    world: World
) -> None:
    """"bourg" is short of 3, 7, 1 then 6 places, "voisin" (10 km west) of 2 then 3 (forecasts
    without spread: the shortfalls are certain). The town hall room "salle" (3 places, one
    parcel already sent there each day) is within reach of both; "loin" (2 places, 9 km
    north of bourg) only of bourg. Bourg's overflow is split between the two rooms, voisin's
    all goes to salle."""
    salle = storage(world, "salle", 47.5067, -1.2917, 3)
    loin = storage(world, "loin", 47.5967, -1.2917, 2)
    store_forecast(world, world.shop_id, [10, 18, 22, 16, 14, 12, 21, 9], 15, spread=0)
    store_forecast(world, world.other_shop_id, [5, 6, 7, 8, 12, 13, 9, 10], 10, spread=0)
    store_forecast(world, salle, [0, 1, 1, 1, 1, 1, 1, 0], 3, spread=0)
    store_forecast(world, loin, [0] * 8, 2, spread=0)
    answer = world.operator.get("/season/storage")
    assert answer.status_code == 200, answer.json
    assert answer.json["unserved"] == []
    rooms = {r["site"]: r for r in answer.json["storage"]}
    assert rooms["salle"]["catchment"] == ["bourg", "voisin"]
    assert rooms["loin"]["catchment"] == ["bourg"]
    assert [(d["day"], d["parcels"], d["spread"]) for d in rooms["salle"]["overflow"]] == [
        ("2026-12-02", 1.5, 0), ("2026-12-03", 3.5, 0), ("2026-12-04", 0.5, 0),
        ("2026-12-05", 2.0, 0), ("2026-12-06", 3.0, 0), ("2026-12-07", 3.0, 0)]
    # salle: 1 + 3.5 on the 3rd (2 missing), 1 + 3 on the 6th and 7th (1 missing)
    assert [(p["from"], p["until"], p["places"]) for p in rooms["salle"]["periods"]] == [
        ("2026-12-03", "2026-12-03", 2), ("2026-12-06", "2026-12-07", 1)]
    assert rooms["salle"]["places"] == 2
    assert [(p["from"], p["until"], p["places"]) for p in rooms["loin"]["periods"]] == [
        ("2026-12-03", "2026-12-03", 2), ("2026-12-07", "2026-12-07", 1)]
    # certain counts: the expected need is the band's
    for room in rooms.values():
        assert room["expected"] == {"places": room["places"], "periods": room["periods"]}
    # The room grows for the period as a shop does: a second room, 2 places, until the 7th;
    # its forecast is computed again (the constructed one is gone: nothing sent there yet).
    declared = world.operator.post(f"/sites/{salle}/temporary-shelves", json={
        "label": "SALLE2", "size_class": "L", "capacity": 2, "valid_from": "2026-12-02",
        "valid_until": "2026-12-07"})
    assert declared.status_code == 201, declared.json
    days = {d["day"]: d["capacity"]
            for d in world.operator.get(f"/sites/{salle}/forecast").json["days"]}
    assert days["2026-12-03"] == 5 and days["2026-12-08"] == 3
    after = {r["site"]: r for r in world.operator.get("/season/storage").json["storage"]}
    assert after["salle"]["places"] == 0 and after["salle"]["periods"] == []
    assert after["loin"]["places"] == 2  # the other room's need stays


def test_a_shop_no_storage_site_reaches_in_season_is_listed_as_unserved(world: World) -> None:
    """Forecasts with a spread (1.5 places under each upper bound): voisin's expected count
    is 10.5 then 11.5 for 10 places, so 0.67 then 1.52 parcels over on average (a normal's
    tail), 2 and 3 places at the band; bourg's 19.5 for 15 on the 7th, 4.5 over, 6 at the
    band."""
    storage(world, "loin", 47.5967, -1.2917, 10, to="2026-12-04")  # bourg's, until the 4th
    store_forecast(world, world.shop_id, [10, 18, 22, 16, 14, 12, 21, 9], 15)
    store_forecast(world, world.other_shop_id, [5, 6, 7, 8, 12, 13, 9, 10], 10)
    answer = world.operator.get("/season/storage").json
    [room] = answer["storage"]
    assert [d["day"] for d in room["overflow"]] == ["2026-12-02", "2026-12-03", "2026-12-04"]
    unserved = {r["site"]: r for r in answer["unserved"]}
    assert [(p["from"], p["until"], p["places"]) for p in unserved["bourg"]["periods"]] == [
        ("2026-12-07", "2026-12-07", 6)]
    assert [(p["from"], p["until"], p["places"]) for p in unserved["voisin"]["periods"]] == [
        ("2026-12-05", "2026-12-06", 3)]
    assert [(p["from"], p["until"], p["places"])
            for p in unserved["voisin"]["expected"]["periods"]] == [
        ("2026-12-05", "2026-12-06", 2)]
    assert world.shopkeeper.get("/season/storage").status_code == 403
    assert world.anonymous.get("/season/storage").status_code == 401
