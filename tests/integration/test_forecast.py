"""Saturation seen coming: the forecast API, reroutes at announce time, adaptive holding."""

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from relay_ops.db.models import Notification, Parcel, ParcelEvent, Site, SiteForecast
from relay_ops.domain.holding import AdaptiveHolding, Season
from relay_ops.services import (
    accounts,
    api_tokens,
    demand_index,
    forecast,
    forecast_sweep,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.integration.test_forecast_learning import build_history
from tests.support import Api, World, announce_together, is_problem, shop

TOMORROW = "2026-12-02"


def near_shop(world: World, code: str = "pres", *, capacity: int = 30, **extra: Any) -> int:
    """A shop 1.5 km north of "bourg" (the world's "voisin" is 10.02 km away: out of reach)."""
    return sites.create_site(
        world.ctx, SYSTEM, shop(code, 47.5300, -1.2917, [("A1", "L", capacity)], **extra)
    )["id"]


def announce_many(api: Api, count: int, *, site: str = "bourg", prefix: str = "SAT",
                  reference: str = "PEAK-1", day: str = TOMORROW) -> Any:
    body = {"reference": reference, "expected_date": day, "parcels": [
        {"tracking_number": f"{prefix}{i:08d}", "site": site,
         "recipient": {"name": "Jeanne", "phone": "+33612345678", "email": "j@example.org"}}
        for i in range(count)]}
    response = api.post("/manifests", json=body)
    assert response.status_code == 201, response.json
    return response.json


def automatic_carrier(world: World) -> Api:
    accounts.create_carrier(world.ctx, SYSTEM, code="fast", name="Fast Parcels",
                            reroute_policy="automatic")
    return Api(world.client, accounts.issue_carrier_key(world.ctx, SYSTEM, "fast").token)


def two_automatic_carriers(world: World) -> list[Principal]:
    """Two carriers whose reroutes go through at once ("fast" and "quick"), as the services
    see them: the race tests announce as both together."""
    tokens = [automatic_carrier(world).token]
    accounts.create_carrier(world.ctx, SYSTEM, code="quick", name="Quick",
                            reroute_policy="automatic")
    tokens.append(accounts.issue_carrier_key(world.ctx, SYSTEM, "quick").token)
    return [api_tokens.authenticate(world.ctx, t or "") for t in tokens]


def test_staff_see_the_week_ahead_against_capacity(world: World) -> None:
    announce_many(world.carrier, 15)  # 15 places: full if they all come, and 97 % do
    days = world.shopkeeper.get(f"/sites/{world.shop_id}/forecast").json["days"]
    assert [d["day"] for d in days][:3] == ["2026-12-01", TOMORROW, "2026-12-03"]
    assert len(days) == 8 and all(d["capacity"] == 15 for d in days)
    assert days[1]["predicted"] > 14 and days[1]["low"] <= days[1]["predicted"] <= days[1]["high"]
    assert days[5]["closed"] and days[5]["day"] == "2026-12-06"  # no hours on Sundays
    assert days[1]["at_risk"] and not days[0]["at_risk"]
    assert world.operator.get(f"/sites/{world.shop_id}/forecast").status_code == 200
    assert is_problem(world.other_shopkeeper.get(f"/sites/{world.shop_id}/forecast"), 404,
                      "not-found")
    assert world.carrier.get(f"/sites/{world.shop_id}/forecast").status_code == 403


def test_the_sweep_stores_each_sites_own_forecast_whatever_its_batch(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep reads many sites' inputs together, a hundred per transaction: each site's
    stored days are those of its forecast computed alone, whatever shares its batch."""
    near_shop(world, capacity=4)
    announce_many(world.carrier, 30)  # the shop overflows; its neighbour holds places
    for per_transaction in (1, 2, 100):
        monkeypatch.setattr(forecast_sweep, "SITES_PER_TRANSACTION", per_transaction)
        assert forecast_sweep.forecast_all(world.ctx)["sites"] == 3
        with world.ctx.db.read() as session:
            stored = {(row.site_id, row.day): (row.predicted, row.high, row.at_risk)
                      for row in session.scalars(select(SiteForecast))}
            alone = {(site.id, day.day): (day.predicted, day.high, day.at_risk)
                     for site in session.scalars(select(Site))
                     for day in forecast.compute(world.ctx, session, site)}
        assert stored.keys() == alone.keys() and len(stored) == 24
        for key, (predicted, high, at_risk) in alone.items():
            assert stored[key] == (pytest.approx(predicted, abs=1e-9), high, at_risk), key
    assert any(at_risk for _, _, at_risk in stored.values())
    assert len({predicted for predicted, _, _ in stored.values()}) > 8  # not alike


def test_a_site_that_fails_holds_no_other_back(
        world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A site whose forecast fails is logged and counted; the sites batched with it and those
    after it are forecast and stored all the same."""
    third = near_shop(world)
    monkeypatch.setattr(forecast_sweep, "SITES_PER_TRANSACTION", 2)
    broken = world.other_shop_id  # batched with the shop; the third site comes after
    run = forecast_sweep.model.forecast

    def failing(inputs: Any) -> Any:
        if inputs.capacity == capacity_of(broken):
            raise ValueError("a broken site")
        return run(inputs)

    def capacity_of(site_id: int) -> int:
        with world.ctx.db.read() as session:
            site = session.get(Site, site_id)
            assert site is not None
            return sites.capacity_of(session, site)

    assert capacity_of(broken) not in (capacity_of(world.shop_id), capacity_of(third))
    monkeypatch.setattr(forecast_sweep.model, "forecast", failing)
    with caplog.at_level("ERROR", logger="relay_ops.services.forecast_sweep"):
        done = forecast_sweep.forecast_all(world.ctx)
    assert done == {"sites": 3, "days_at_risk": 0, "failed": 1}
    assert f"site {broken} failed" in caplog.text
    with world.ctx.db.read() as session:
        stored = set(session.scalars(select(SiteForecast.site_id).distinct()))
    assert stored == {world.shop_id, third}


def test_forecast_all_stores_a_row_per_site_and_day(world: World) -> None:
    announce_many(world.carrier, 3)
    assert forecast_sweep.forecast_all(world.ctx) == {"sites": 2, "days_at_risk": 0,
                                                      "failed": 0}
    forecast_sweep.forecast_all(world.ctx)  # again: rows are replaced, not added
    with world.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(SiteForecast)) == 16
        row = forecast.stored_day(session, world.shop_id, world.ctx.today().replace(day=2))
        assert row is not None and row.arrivals > 2.5


def test_the_forecast_command_runs_every_site(
    app: Flask, world: World, cli_runner: FlaskCliRunner
) -> None:
    result = cli_runner.invoke(args=["forecast"])
    assert result.exit_code == 0 and "2 site(s) forecast, 0 day(s) at risk" in result.output


def test_a_saturating_manifest_proposes_nearby_sites_and_the_carrier_decides(
    app: Flask, world: World
) -> None:
    near_shop(world)
    answer = announce_many(world.carrier, 20)
    assert answer["accepted"] == 20
    flagged = [p for p in answer["parcels"] if "saturation" in p]
    assert 3 <= len(flagged) < 20 and flagged == answer["parcels"][-len(flagged):]
    first = flagged[0]
    assert first["saturation"]["site"] == "bourg" and first["saturation"]["capacity"] == 15
    assert first["reroute"]["status"] == "proposed"
    assert [o["site"] for o in first["reroute"]["options"]] == ["pres"]

    accepted = world.carrier.post(f"/parcels/{first['parcel_id']}/reroute", json={"site": "pres"})
    assert accepted.status_code == 200 and accepted.json["status"] == "accepted"
    moved = world.carrier.get(f"/parcels/{first['parcel_id']}").json
    assert moved["site"] == "pres" and moved["state"] == "announced"
    events = world.carrier.get(f"/parcels/{first['parcel_id']}/events").json["items"]
    assert events[-1]["action"] == "reroute" and events[-1]["data"]["from_site"] == "bourg"
    run_jobs(app, world)
    sent = {x["channel"]: x["body"] for x in sent_lines(app)}
    assert "Shop pres" in sent["sms"]  # the compact SMS: new address and tracking link
    assert "Shop bourg" in sent["email"] and "Shop pres" in sent["email"]

    refused = world.carrier.post(f"/parcels/{flagged[1]['parcel_id']}/reroute",
                                 json={"refuse": True})
    assert refused.json["status"] == "refused"
    assert world.carrier.get(f"/parcels/{flagged[1]['parcel_id']}").json["site"] == "bourg"
    again = world.carrier.post(f"/parcels/{flagged[1]['parcel_id']}/reroute",
                               json={"site": "pres"})
    assert is_problem(again, 404, "not-found")
    assert is_problem(world.other_carrier.post(f"/parcels/{flagged[2]['parcel_id']}/reroute",
                                               json={"refuse": True}), 404, "not-found")
    both = world.carrier.post(f"/parcels/{flagged[2]['parcel_id']}/reroute",
                              json={"site": "pres", "refuse": True})
    assert is_problem(both, 422, "invalid-request")  # the document's schema refuses it
    elsewhere = world.carrier.post(f"/parcels/{flagged[2]['parcel_id']}/reroute",
                                   json={"site": "voisin"})
    # Well-formed, so not a 422: a business refusal the document lists.
    assert is_problem(elsewhere, 409, "site-not-proposed")


def test_a_parcel_on_a_shelf_is_never_moved(world: World) -> None:
    near_shop(world)
    flagged = [p for p in announce_many(world.carrier, 20)["parcels"] if "saturation" in p]
    tracking = flagged[0]["tracking_number"]
    assert world.check_in(tracking).status_code == 201
    response = world.carrier.post(f"/parcels/{flagged[0]['parcel_id']}/reroute",
                                  json={"site": "pres"})
    assert is_problem(response, 409, "invalid-transition")
    assert world.carrier.get(f"/parcels/{flagged[0]['parcel_id']}").json["site"] == "bourg"


def test_the_automatic_policy_reroutes_at_once_and_tells_the_recipient(world: World) -> None:
    pres = near_shop(world)
    fast = automatic_carrier(world)
    answer = announce_many(fast, 20, prefix="AUT")
    moved = [p for p in answer["parcels"] if p.get("reroute", {}).get("status") == "automatic"]
    assert moved and all(p["reroute"]["site"] == "pres" for p in moved)
    with world.ctx.db.read() as session:
        sites_of = dict(session.execute(select(Parcel.id, Parcel.site_id)).all())
        kinds = session.scalars(select(Notification.kind).where(
            Notification.parcel_id == moved[0]["parcel_id"])).all()
    assert {sites_of[p["parcel_id"]] for p in moved} == {pres}
    assert kinds == ["rerouted", "rerouted"]  # by e-mail and by SMS
    bourg = world.operator.get(f"/sites/{world.shop_id}/forecast").json["days"][1]
    assert not bourg["at_risk"]


def test_no_step_in_place_of_step_free_access_and_no_site_flagged_itself(world: World) -> None:
    near_shop(world, "marches", step_free_access=False)
    world.operator.put(f"/sites/{world.shop_id}/status", json={"status": "open"})
    assert sites.create_site(world.ctx, SYSTEM, shop(
        "plain", 47.5230, -1.2917, [("A1", "L", 12)], step_free_access=True))["id"]
    fast = automatic_carrier(world)
    announce_many(fast, 14, site="plain", prefix="PLN", reference="FILL")  # plain is full too
    with world.ctx.db.transaction() as session:
        bourg = session.get(Site, world.shop_id)
        assert bourg is not None
        bourg.step_free_access = True
    answer = announce_many(world.carrier, 20)
    flagged = [p for p in answer["parcels"] if "saturation" in p]
    assert flagged and all(p["reroute"]["status"] == "no-alternative" for p in flagged)


def test_town_sites_look_only_2_km_around(world: World) -> None:
    assert sites.create_site(world.ctx, SYSTEM, shop(
        "loin", 47.5400, -1.2917, [("A1", "L", 30)]))["id"]  # 2.6 km away
    with world.ctx.db.transaction() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        site.area = "town"
    flagged = [p for p in announce_many(world.carrier, 20)["parcels"] if "saturation" in p]
    assert flagged and all(p["reroute"]["status"] == "no-alternative" for p in flagged)


def test_holding_periods_follow_the_season_and_the_load(app: Flask, world: World) -> None:
    rules = AdaptiveHolding(seasons={"shop": (Season((11, 20), (12, 24), 5),)},
                            load_threshold=0.5, load_days={"shop": 3})
    season_only = replace(world.ctx.settings, adaptive_holding=replace(rules, load_threshold=None))
    app.extensions["relay_ops"] = replace(world.ctx, settings=season_only)
    first = world.ready("HOLD00000001")
    # Tuesday 1 December + 5 days is a Sunday, when the shop does not open: Monday.
    assert first["holding_deadline"].startswith("2026-12-07")
    app.extensions["relay_ops"] = replace(world.ctx, settings=replace(
        world.ctx.settings, adaptive_holding=rules))
    # 10 of 15 places expected at the peak of today: a load of 0.67.
    announce_many(world.carrier, 9, prefix="LOAD", day="2026-12-01")
    forecast.forecast_site(world.ctx, world.shop_id)
    loaded = world.ready("HOLD00000002")
    assert loaded["holding_deadline"].startswith("2026-12-04")
    events = world.shopkeeper.get(f"/parcels/{loaded['id']}/events").json["items"]
    assert events[-1]["data"]["holding_rule"] == "load"
    # The first parcel, already notified, keeps its deadline.
    assert world.shopkeeper.get(f"/parcels/{first['id']}").json["holding_deadline"] == (
        first["holding_deadline"])


def test_concurrent_manifests_cannot_both_take_the_last_places(world: World) -> None:
    """Four carriers' rounds announced at once, 5 parcels each, to a shop of 15 places: the
    site lock makes each see the others, so the excess is moved and the day is not at risk."""
    near_shop(world)
    fast = automatic_carrier(world)
    principal = api_tokens.authenticate(world.ctx, fast.token or "")
    announce_together(world.ctx, [principal] * 4, [
        {"reference": f"RACE-{n}", "expected_date": TOMORROW, "parcels": [
            {"tracking_number": f"RAC{n}{i:07d}", "site": "bourg",
             "recipient": {"phone": "+33612345678"}} for i in range(5)]}
        for n in range(4)])
    with world.ctx.db.read() as session:
        at_bourg = session.scalar(select(func.count()).where(
            Parcel.site_id == world.shop_id, Parcel.state == "announced"))
    assert at_bourg is not None and 10 <= at_bourg <= 14
    bourg = forecast.forecast_site(world.ctx, world.shop_id)[1]
    assert not bourg.at_risk


def first_options(parcels: list[dict[str, Any]]) -> list[str | None]:
    """The site each flagged parcel is proposed first (None: no alternative)."""
    return [
        (p["reroute"].get("options") or [{}])[0].get("site")
        for p in parcels if "saturation" in p
    ]


def test_one_manifest_spreads_its_proposals_over_the_neighbours_with_room(
    world: World,
) -> None:
    """A big manifest's proposals do not all point at one site: each one holds a place there,
    so as its load grows the next parcels are proposed the other site, and the carrier can
    accept every first option in turn. By load and distance (reroute_cost), not nearest
    first: the big shop 1.6 km away is proposed before the small one 1.5 km away, which gets
    parcels once the big one's load outweighs the 100 m."""
    near_shop(world, "pres", capacity=6)  # 1.5 km north: room for a few parcels
    near_shop_south = sites.create_site(  # 1.6 km south: plenty of room
        world.ctx, SYSTEM, shop("sud", 47.5023, -1.2917, [("A1", "L", 40)]))["id"]
    answer = announce_many(world.carrier, 40)
    firsts = first_options(answer["parcels"])
    assert firsts.count("pres") >= 1 and firsts.count("sud") >= 1
    assert firsts.index("pres") > firsts.index("sud")  # the less loaded first
    for parcel in answer["parcels"]:
        if "saturation" not in parcel or not parcel["reroute"].get("options"):
            continue
        target = parcel["reroute"]["options"][0]["site"]
        accepted = world.carrier.post(f"/parcels/{parcel['parcel_id']}/reroute",
                                      json={"site": target})
        assert accepted.status_code == 200, accepted.json
    pres = world.operator.get("/sites").json
    pres_id = next(s["id"] for s in pres["items"] if s["code"] == "pres")
    assert not world.operator.get(f"/sites/{pres_id}/forecast").json["days"][1]["at_risk"]
    assert not world.operator.get(f"/sites/{near_shop_south}/forecast").json["days"][1]["at_risk"]


def test_pending_proposals_hold_their_place_until_decided(world: World) -> None:
    """Proposals of an earlier manifest that the carrier has not answered yet keep their
    places at the neighbour: a second manifest is not proposed the same room. Once they are
    refused, the room is free again."""
    near_shop(world, "pres", capacity=6)
    first = announce_many(world.carrier, 22, reference="PEAK-1")
    held = [p for p in first["parcels"] if first_options([p]) == ["pres"]]
    assert held  # pres took some of the first manifest's excess, unanswered for now
    second = announce_many(world.other_carrier, 6, prefix="TWO", reference="PEAK-2")
    assert first_options(second["parcels"]) and set(first_options(second["parcels"])) == {None}
    for parcel in held:
        refused = world.carrier.post(f"/parcels/{parcel['parcel_id']}/reroute",
                                     json={"refuse": True})
        assert refused.json["status"] == "refused"
    third = announce_many(world.other_carrier, 2, prefix="THR", reference="PEAK-3")
    assert "pres" in first_options(third["parcels"])


def announced_for(world: World) -> list[tuple[str, float]]:
    """The forecast's announced arrivals at "bourg" now: (day, probability), in order."""
    with world.ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        inputs = forecast.inputs_for(world.ctx, session, site)
    return sorted((a.day.isoformat(), round(a.probability, 3)) for a in inputs.announced)


def test_a_parcel_refused_at_a_full_counter_is_counted_back_the_next_open_day(
        world: World, clock: Clock) -> None:
    """Refused for lack of room, a parcel stays announced and its carrier brings it back:
    full odds on the next open day, however late it is; a plain late parcel keeps half odds
    for two days, then is no longer counted."""
    numbers = [f"FULL0000000{i}" for i in range(6)]
    world.announce(*numbers, size_class="L", reference="FULL-1", expected_date="2026-12-01")
    world.announce("LATE00000001", reference="LATE-1", expected_date="2026-12-01")
    for number in numbers[:5]:  # B1 holds 5 L parcels, the only shelf that takes them
        assert world.check_in(number).status_code == 201
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")
    with world.ctx.db.read() as session:
        refusal = session.scalars(select(ParcelEvent).join(Parcel).where(
            Parcel.tracking_number == numbers[5])).all()[-1]
    assert (refusal.action, refusal.to_state) == ("check_in_refused", "announced")

    clock.advance(days=1)  # Wednesday: both are a day late
    # the plain late one at half odds, the one back from the vans at full odds
    assert announced_for(world) == [("2026-12-02", 0.485), ("2026-12-02", 0.97)]

    clock.advance(days=2)  # Friday, no check-in since Tuesday: the carrier did not come back
    assert announced_for(world) == []

    world.sign_in_again()
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")  # Friday again
    clock.advance(days=1)  # Saturday: four days late, but coming back today
    assert announced_for(world) == [("2026-12-05", 0.97)]
    world.sign_in_again()
    assert is_problem(world.check_in(numbers[5]), 409, "site-at-capacity")
    clock.advance(days=1)  # Sunday, closed: it comes back on Monday
    assert announced_for(world) == [("2026-12-07", 0.97)]


def test_parcels_waiting_in_the_vans_are_named_per_carrier_and_counted_as_demand(
        world: World, clock: Clock) -> None:
    """A full counter's refusals are demand: the forecast's answer counts them per carrier
    (in the vans, coming back), and the arrival rate learns from first attempts (check-ins
    and first refusals), not from the check-ins a full shop let in."""
    numbers = [f"VANS0000000{i}" for i in range(7)]
    world.announce(*numbers, size_class="L", reference="VANS-1", expected_date="2026-12-01")
    for number in numbers[:5]:  # B1 holds 5 L parcels, the only shelf that takes them
        assert world.check_in(number).status_code == 201
    for number in numbers[5:]:
        assert is_problem(world.check_in(number), 409, "site-at-capacity")
    answer = world.shopkeeper.get(f"/sites/{world.shop_id}/forecast").json
    assert answer["in_vans"] == {"acme": 2}
    assert answer["days"][1]["predicted"] >= 2 * 0.97  # both come back tomorrow

    clock.advance(days=1)
    with world.ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        inputs = forecast.inputs_for(world.ctx, session, site)
    assert inputs.baseline == 7  # Tuesday's 5 check-ins and 2 refusals: 7 wanted a place
    world.sign_in_again()
    assert world.check_in(numbers[5]).status_code == 409  # still full: the same parcel, once
    with world.ctx.db.read() as session:
        attempts = forecast._first_attempts(world.ctx, session, site, world.ctx.now())
    assert len(attempts) == 7


def test_the_rates_drift_reaches_the_model_from_the_settings(
        world: World, clock: Clock) -> None:
    """``FORECAST.rate_drift`` is what the model is given while the rate's line has no trend
    (0: the line's own error only), ``rate_drift_with_season`` if the coming days have a
    declared season, ``rate_drift_with_trend`` once it has one."""
    settings = world.ctx.settings
    steady = replace(world.ctx, settings=replace(settings, forecast=replace(
        settings.forecast, rate_drift=0.0, rate_drift_with_trend=0.001)))

    def drifts() -> tuple[float, float]:
        with world.ctx.db.read() as session:
            site = session.get(Site, world.shop_id)
            assert site is not None
            return (forecast.inputs_for(world.ctx, session, site).rate_drift,
                    forecast.inputs_for(steady, session, site).rate_drift)

    assert world.announce("DRIFT0001").status_code == 201
    assert world.check_in("DRIFT0001").status_code == 201
    clock.advance(days=3)
    assert drifts() == (0.025, 0.0)  # a shop open for three days: no trend yet
    today = world.ctx.today()
    demand_index.declare(world.ctx, Principal(Role.OPERATOR, user_id=1),
                         [(today + timedelta(days=i), 1.3) for i in range(8)], source="test")
    # The week ahead in a declared season: its factors carry the ramp, the drift is smaller.
    assert drifts() == (0.0025, 0.0025)
    build_history(world, clock)  # 70 days of check-ins: a trend
    assert drifts() == (0.003, 0.001)
