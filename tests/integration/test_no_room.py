"""When no site within reach has room: the operator's policy decides before the van leaves
(overflow storage, hold at the depot, home delivery by the carrier), per parcel, in order; the
carrier, the operator and the resident each see the decision (docs/overflow.md)."""

from collections import Counter
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from relay_ops.db.models import NoRoomDecision, Notification, Parcel, Site
from relay_ops.domain import forecast as forecast_model
from relay_ops.services import accounts, site_search, staff_sign_in
from relay_ops.services.principal import SYSTEM
from relay_ops.services.reroute_planner import Planner
from relay_ops.services.resident import tracking_token
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.integration.test_fast_path_statements import statements
from tests.integration.test_forecast import TOMORROW, announce_many, near_shop
from tests.support import HOURS, PASSWORD, Api, World, is_problem, row_counts


def storage_site(world: World, code: str = "salle", *, capacity: int = 30,
                 season: dict[str, str] | None = None, **extra: Any) -> int:
    """A town hall room 1.1 km south of "bourg", run like a shop, with its own staff."""
    body = {
        "code": code, "name": f"Salle {code}", "kind": "storage",
        "address": "Mairie, salle du conseil", "postcode": "44000", "city": "Bourg",
        "latitude": 47.5067, "longitude": -1.2917, "opening_hours": HOURS,
        "locations": [{"label": "T1", "size_class": "L", "capacity": capacity}], **extra,
    }
    if season is not None:
        body["season"] = season
    response = world.operator.post("/sites", json=body)
    assert response.status_code == 201, response.json
    return int(response.json["id"])


def set_policy(world: World, **body: Any) -> Any:
    response = world.operator.post("/no-room-policies", json=body)
    assert response.status_code in (200, 201), response.json
    return response.json


def flagged(answer: Any) -> list[dict[str, Any]]:
    """The parcels of a manifest's answer that the site had no room for."""
    return [p for p in answer["parcels"] if "saturation" in p]


def events_of(world: World, parcel_id: int) -> list[dict[str, Any]]:
    return world.operator.get(f"/parcels/{parcel_id}/events").json["items"]


def test_without_a_policy_the_parcel_stays_and_the_operator_sees_it(world: World) -> None:
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "no-alternative" for p in parcels)
    assert parcels[0]["reroute"]["decision"]["step"] == "none"
    listed = world.operator.get("/no-room-decisions", site="bourg", day=TOMORROW).json["items"]
    assert {d["parcel_id"] for d in listed} == {p["parcel_id"] for p in parcels}
    # No policy decided anything: the parcel's history is what it was before policies.
    assert [e["action"] for e in events_of(world, parcels[0]["parcel_id"])] == ["announce"]


def test_a_policy_whose_steps_all_fail_says_why_in_the_history(world: World) -> None:
    set_policy(world, steps=["storage", "home"], home_size_classes=["S"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "no-alternative" for p in parcels)
    assert "storage" in parcels[0]["reroute"]["detail"]
    event = events_of(world, parcels[0]["parcel_id"])[-1]
    assert event["action"] == "no_room_decision"
    assert event["data"]["step"] == "none" and event["data"]["tried"] == ["storage", "home"]
    parcel = world.carrier.get(f"/parcels/{parcels[0]['parcel_id']}").json
    assert parcel["state"] == "announced" and parcel["site"] == "bourg"


def test_an_overflow_storage_site_takes_the_parcels_and_hands_them_over(
    app: Flask, world: World
) -> None:
    salle = storage_site(world, season={"from": "2026-11-20", "to": "2026-12-31"})
    set_policy(world, steps=["storage", "hold"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "overflow-storage" for p in parcels)
    first = parcels[0]
    assert first["reroute"]["site"] == "salle"
    assert first["reroute"]["decision"] | {"step": "storage", "to_site": "salle",
                                           "site": "bourg", "day": TOMORROW} \
        == first["reroute"]["decision"]
    moved = world.carrier.get(f"/parcels/{first['parcel_id']}").json
    assert moved["site"] == "salle" and moved["state"] == "announced"
    assert [e["action"] for e in events_of(world, first["parcel_id"])][-2:] == [
        "no_room_decision", "reroute"]
    run_jobs(app, world)
    to_resident = [x for x in sent_lines(app) if first["tracking_number"] in x["body"]]
    assert to_resident and all("Salle salle" in x["body"] for x in to_resident)

    # The storage site's own staff scan it in and hand it over at its counter, as in a shop.
    accounts.create_user(world.ctx, SYSTEM, username="agent", password=PASSWORD,
                         role="shopkeeper", site_codes=["salle"])
    agent = Api(world.client, staff_sign_in.log_in(world.ctx, "agent", PASSWORD).token)
    checked_in = agent.post(f"/sites/{salle}/check-ins",
                            json={"tracking_number": first["tracking_number"]})
    assert checked_in.status_code == 201, checked_in.json
    assert checked_in.json["parcel"]["location"] == "T1"
    code = world.code_of(first["parcel_id"])
    handed = agent.post(f"/sites/{salle}/pickups", json={"code": code})
    assert handed.status_code == 200, handed.json
    assert world.operator.get(f"/parcels/{first['parcel_id']}").json["state"] == "picked_up"
    # Bourg's shopkeeper is not staff there.
    assert is_problem(world.shopkeeper.post(f"/sites/{salle}/check-ins", json={
        "tracking_number": parcels[1]["tracking_number"]}), 404, "not-found")


def test_a_storage_site_out_of_season_is_skipped_for_the_next_step(world: World) -> None:
    storage_site(world, season={"from": "2026-12-10", "to": "2026-12-31"})
    set_policy(world, steps=["storage", "hold"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "hold-at-depot" for p in parcels)
    tried = parcels[0]["reroute"]["decision"]["tried"]
    assert [t["step"] for t in tried] == ["storage"] and "season" in tried[0]["why"]


def test_the_steps_are_tried_in_the_operators_order(world: World) -> None:
    storage_site(world)
    set_policy(world, steps=["hold", "storage"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "hold-at-depot" for p in parcels)
    with world.ctx.db.read() as session:
        assert session.scalar(select(Parcel.site_id).where(
            Parcel.id == parcels[0]["parcel_id"])) == world.shop_id


def test_a_held_parcel_waits_at_the_depot_until_the_site_has_room(
    app: Flask, world: World
) -> None:
    set_policy(world, carrier="acme", steps=["hold"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and all(p["reroute"]["status"] == "hold-at-depot" for p in parcels)
    days = {p["reroute"]["until"] for p in parcels}
    assert all(day > TOMORROW for day in days)
    first = parcels[0]
    until = first["reroute"]["until"]
    parcel = world.carrier.get(f"/parcels/{first['parcel_id']}").json
    assert parcel["expected_date"] == until and parcel["site"] == "bourg"
    assert parcel["state"] == "announced"
    # The site's forecast counts the held parcels on their new day, and that day keeps room.
    forecast = world.operator.get(f"/sites/{world.shop_id}/forecast").json["days"]
    for day in days:
        assert not next(d for d in forecast if d["day"] == day)["at_risk"]

    # The carrier's list: which parcels stay at the depot from tomorrow's round, until when.
    kept = world.carrier.get("/no-room-decisions", step="hold", day=TOMORROW).json["items"]
    assert {(d["tracking_number"], d["hold_until"]) for d in kept} == {
        (p["tracking_number"], p["reroute"]["until"]) for p in parcels}
    assert world.other_carrier.get("/no-room-decisions", step="hold").json["items"] == []

    # The resident is told the new day.
    run_jobs(app, world)
    with world.ctx.db.read() as session:
        kinds = session.scalars(select(Notification.kind).where(
            Notification.parcel_id == first["parcel_id"])).all()
    assert sorted(kinds) == ["depot_hold", "depot_hold"]
    day_number = str(int(until[-2:]))
    told = [x for x in sent_lines(app) if first["tracking_number"] in x["body"]]
    assert len(told) == 2
    assert all(f"{day_number} décembre" in x["body"] for x in told)
    assert all("Acme Parcels" in x["body"] for x in told)


def test_the_day_a_held_parcel_is_brought_back_its_place_is_kept(world: World) -> None:
    """Room promised is room held, for the depot too: each parcel held until a day holds a
    place at its site that day, which the operator's forecast shows."""
    set_policy(world, carrier="acme", steps=["hold"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels
    for p in parcels:
        place = p["reroute"]["reservation"]
        assert place["site"] == "bourg" and place["status"] == "held"
        assert place["day"] == p["reroute"]["until"]
    per_day = Counter(p["reroute"]["until"] for p in parcels)
    forecast = world.operator.get(f"/sites/{world.shop_id}/forecast").json["days"]
    for day, count in per_day.items():
        assert next(d for d in forecast if d["day"] == day)["reserved"] == count


def test_home_delivery_for_the_parcels_the_contract_allows_then_the_next_step(
    app: Flask, world: World
) -> None:
    set_policy(world, carrier="acme", steps=["home", "hold"], home_size_classes=["S"])
    body = {"reference": "MIX-1", "expected_date": TOMORROW, "parcels": [
        {"tracking_number": f"MIX{i:08d}", "site": "bourg", "size_class": "S" if i % 2 else "L",
         "recipient": {"name": "Jeanne", "phone": "+33612345678"}} for i in range(20)]}
    answer = world.carrier.post("/manifests", json=body).json
    parcels = flagged(answer)
    assert parcels
    small = [p for p in parcels if int(p["tracking_number"][3:]) % 2]
    large = [p for p in parcels if not int(p["tracking_number"][3:]) % 2]
    assert small and large
    assert all(p["reroute"]["status"] == "home-delivery" for p in small)
    assert all(p["reroute"]["status"] == "hold-at-depot" for p in large)
    assert large[0]["reroute"]["decision"]["tried"][0]["step"] == "home"
    home = world.carrier.get(f"/parcels/{small[0]['parcel_id']}").json
    assert home["state"] == "home_by_carrier" and home["closed_at"] is not None
    assert [e["action"] for e in events_of(world, small[0]["parcel_id"])][-2:] == [
        "no_room_decision", "home_by_carrier"]
    # A parcel delivered home is not checked in at the shop afterwards.
    assert is_problem(world.check_in(small[0]["tracking_number"]), 409, "invalid-transition")
    run_jobs(app, world)
    told = [x for x in sent_lines(app) if small[0]["tracking_number"] in x["body"]]
    assert told and "domicile" in told[0]["body"]
    # The parcel has left the network: its tracking link closes, as for every closed parcel,
    # and says why.
    link = tracking_token(world.ctx, small[0]["parcel_id"])
    assert link in told[0]["body"]
    closed = world.anonymous.get(f"/track/{link}")
    assert is_problem(closed, 410, "link-expired") and "home_by_carrier" in closed.json["detail"]
    listed = world.carrier.get("/no-room-decisions", step="home").json["items"]
    assert {d["parcel_id"] for d in listed} == {p["parcel_id"] for p in small}


def test_the_most_specific_policy_applies(world: World) -> None:
    storage_site(world)
    set_policy(world, steps=["storage"])  # every carrier, everywhere
    set_policy(world, carrier="acme", area="countryside", steps=["hold"])
    acme = flagged(announce_many(world.carrier, 20))
    assert acme and all(p["reroute"]["status"] == "hold-at-depot" for p in acme)
    other = flagged(announce_many(world.other_carrier, 20, prefix="OTH", reference="OTH-1"))
    assert other and all(p["reroute"]["status"] == "overflow-storage" for p in other)


def test_a_shop_with_room_within_reach_still_comes_before_the_policy(world: World) -> None:
    near_shop(world)
    storage_site(world)
    set_policy(world, steps=["storage"])
    parcels = flagged(announce_many(world.carrier, 20))
    assert parcels and parcels[0]["reroute"]["status"] == "proposed"
    assert [o["site"] for o in parcels[0]["reroute"]["options"]] == ["pres"]


def test_the_operator_sets_and_lists_policies_and_replacing_one_keeps_one(world: World) -> None:
    created = world.operator.post("/no-room-policies", json={
        "carrier": "acme", "site": "bourg", "steps": ["storage", "home"],
        "home_size_classes": ["S", "M"]})
    assert created.status_code == 201
    again = world.operator.post("/no-room-policies", json={
        "carrier": "acme", "site": "bourg", "steps": ["hold"]})
    assert again.status_code == 200 and again.json["id"] == created.json["id"]
    items = world.operator.get("/no-room-policies").json["items"]
    assert items == [again.json] and items[0]["steps"] == ["hold"]
    assert world.operator.delete(f"/no-room-policies/{created.json['id']}").status_code == 204
    assert world.operator.get("/no-room-policies").json["items"] == []


def test_bad_policies_are_refused_and_change_nothing(world: World) -> None:
    before = row_counts(world.ctx)
    post = world.operator.post
    assert is_problem(post("/no-room-policies", json={"steps": []}), 422, "invalid-request")
    assert is_problem(post("/no-room-policies", json={"steps": ["teleport"]}), 422,
                      "invalid-request")
    assert is_problem(post("/no-room-policies", json={"steps": ["hold", "hold"]}), 422,
                      "validation-failed")
    assert is_problem(post("/no-room-policies", json={"site": "bourg", "area": "town",
                                                      "steps": ["hold"]}), 422,
                      "validation-failed")
    assert is_problem(post("/no-room-policies", json={"area": "moon", "steps": ["hold"]}),
                      422, "invalid-request")
    assert is_problem(post("/no-room-policies", json={"carrier": "ghost", "steps": ["hold"]}),
                      404, "not-found")
    assert is_problem(post("/no-room-policies", json={"site": "nowhere", "steps": ["hold"]}),
                      404, "not-found")
    assert is_problem(post("/no-room-policies", json={"steps": ["home"],
                                                      "home_size_classes": ["XXL"]}),
                      422, "validation-failed")
    assert is_problem(post("/no-room-policies", json={"steps": ["hold"],
                                                      "home_size_classes": ["S"]}),
                      422, "validation-failed")
    assert is_problem(post("/no-room-policies", json={"steps": ["hold"], "extra": 1}), 422,
                      "invalid-request")
    assert is_problem(world.carrier.post("/no-room-policies", json={"steps": ["hold"]}), 403,
                      "forbidden")
    assert is_problem(world.shopkeeper.get("/no-room-policies"), 403, "forbidden")
    assert is_problem(world.operator.delete("/no-room-policies/999"), 404, "not-found")
    assert is_problem(world.operator.get("/no-room-decisions", step="never"), 422,
                      "invalid-request")
    assert is_problem(world.operator.get("/no-room-decisions", day="2026-13-01"), 422,
                      "validation-failed")
    assert is_problem(world.operator.get("/no-room-decisions", day="0"), 422,
                      "invalid-request")
    assert is_problem(world.shopkeeper.get("/no-room-decisions"), 403, "forbidden")
    assert is_problem(world.anonymous.get("/no-room-decisions"), 401, "unauthenticated")
    assert row_counts(world.ctx) == before


def test_storage_sites_and_their_season_are_checked(world: World) -> None:
    salle = storage_site(world, season={"from": "2026-11-20", "to": "2026-12-31"})
    view = world.operator.get(f"/sites/{salle}").json
    assert view["kind"] == "storage" and view["capacity"] == 30
    assert view["season"] == {"from": "2026-11-20", "to": "2026-12-31"}
    base = {"name": "X", "address": "a", "postcode": "1", "city": "c", "latitude": 47.5,
            "longitude": -1.29, "opening_hours": HOURS}
    backwards = world.operator.post("/sites", json={
        **base, "code": "back", "kind": "storage", "season": {"from": "2026-12-31",
                                                              "to": "2026-12-01"}})
    assert is_problem(backwards, 422, "validation-failed")
    shop_season = world.operator.post("/sites", json={
        **base, "code": "saison", "kind": "shop", "season": {"from": "2026-12-01"}})
    assert is_problem(shop_season, 422, "validation-failed")
    no_hours = world.operator.post("/sites", json={
        **{k: v for k, v in base.items() if k != "opening_hours"}, "code": "nohours",
        "kind": "storage"})
    assert is_problem(no_hours, 422, "validation-failed")
    assert site_search.list_sites(world.ctx, SYSTEM, kind="storage")[0]["code"] == "salle"


def test_decisions_are_kept_per_parcel(world: World) -> None:
    set_policy(world, steps=["hold"])
    parcels = flagged(announce_many(world.carrier, 20))
    with world.ctx.db.read() as session:
        rows = session.scalars(select(NoRoomDecision)).all()
    assert sorted(r.parcel_id for r in rows) == sorted(p["parcel_id"] for p in parcels)
    assert all(r.step == "hold" and r.hold_until is not None for r in rows)


def test_an_operator_creates_a_storage_site_for_the_season_from_the_command_line(
    app: Flask, world: World, cli_runner: FlaskCliRunner
) -> None:
    created = cli_runner.invoke(args=[
        "site", "create", "--code", "container", "--name", "Conteneur du marché", "--kind",
        "storage", "--address", "Place du marché", "--postcode", "44440", "--city", "Riaillé",
        "--lat", "47.51", "--lon", "-1.29", "--hours", '{"sat": [["09:00", "12:00"]]}',
        "--locations", "C1:L:40", "--season-from", "2026-11-25", "--season-to", "2026-12-31"])
    assert created.exit_code == 0, created.output
    view = next(s for s in site_search.list_sites(world.ctx, SYSTEM, kind="storage"))
    assert view["code"] == "container" and view["capacity"] == 40
    assert view["season"] == {"from": "2026-11-25", "to": "2026-12-31"}


def test_a_full_shop_names_a_storage_site_only_in_its_season(world: World) -> None:
    numbers = [f"SEAS0000020{i}" for i in range(6)]
    world.announce(*numbers, size_class="L")
    for number in numbers[:5]:
        assert world.check_in(number).status_code == 201  # B1 holds 5 L parcels
    storage_site(world, "hiver", season={"from": "2026-12-10"})  # nearer than voisin
    refused = world.check_in(numbers[5])
    assert is_problem(refused, 409, "site-at-capacity")
    assert refused.json["nearest_site"]["code"] == "voisin"
    storage_site(world, "ouvert", season={"from": "2026-11-20", "to": "2026-12-31"})
    again = world.check_in(numbers[5])
    assert is_problem(again, 409, "site-at-capacity")
    assert again.json["nearest_site"]["code"] == "ouvert"


def test_a_manifest_for_a_full_area_weighs_each_neighbour_once_not_once_per_parcel(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hard case of a big manifest: the shop and every neighbour within reach full. Each
    parcel over the shop's room asks each neighbour the same question; its forecast runs again
    only when a place was promised there (none is), and the operator's policy is read once:
    what the manifest costs grows with its parcels' rows, not parcels x neighbours forecasts
    (bench/profile_manifest.py --capacity --neighbours measures it)."""
    for n in range(3):
        near_shop(world, f"pres{n}", capacity=1)
        announce_many(world.carrier, 4, site=f"pres{n}", prefix=f"PRE{n}", reference=f"PRE-{n}")
    set_policy(world, steps=["storage", "home"], home_size_classes=["S"])
    forecasts = Counter[str]()
    run_forecast = forecast_model.forecast

    def counted(inputs: forecast_model.SiteInputs) -> list[forecast_model.DayForecast]:
        forecasts["runs"] += 1
        return run_forecast(inputs)

    monkeypatch.setattr(forecast_model, "forecast", counted)
    outlooks = Counter[str]()
    day_with = Planner.day_with

    def asked(planner: Planner, site: Site, day: date, extra: int) -> Any:
        outlooks["asked"] += 1
        return day_with(planner, site, day, extra)

    monkeypatch.setattr(Planner, "day_with", asked)
    with statements(world.ctx) as seen:
        parcels = flagged(announce_many(world.carrier, 60))
    assert len(parcels) > 40
    assert all(p["reroute"]["status"] == "no-alternative" for p in parcels)
    assert sum("FROM no_room_policies" in statement for statement in seen) == 1
    # each parcel's decision written, in one statement on PostgreSQL (a COPY; the embedded
    # SQLite writes a row at a time, db/bulk.py), and shown with its row's id
    decision_writes = [s for s in seen if s.startswith(("INSERT INTO no_room_decisions",
                                                        "COPY no_room_decisions"))]
    assert len(decision_writes) == (len(parcels) if world.ctx.db.is_sqlite else 1)
    listed = world.operator.get("/no-room-decisions", site="bourg", day=TOMORROW).json["items"]
    assert sorted((d["id"], d["parcel_id"]) for d in listed) == sorted(
        (p["reroute"]["decision"]["id"], p["parcel_id"]) for p in parcels)
    event = events_of(world, parcels[-1]["parcel_id"])[-1]
    assert event["action"] == "no_room_decision"
    assert event["data"]["decision"] == parcels[-1]["reroute"]["decision"]["id"]
    # the shop's bisection (log2 of 60), each neighbour once, the stored forecasts
    assert forecasts["runs"] <= 20, forecasts
    # and the neighbours are asked for the first parcel only: full, they stay full
    assert outlooks["asked"] <= 20, outlooks
