"""The season's shape declared network-wide (``services/demand_index.py``): the API and the
CLI an operator declares it with, and what the forecast makes of it."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from relay_ops.db.models import DemandDay, Parcel, Site
from relay_ops.services import forecast
from tests.conftest import Clock
from tests.integration.test_forecast_learning import build_history
from tests.support import World, is_problem

TODAY = date(2026, 12, 1)
DECEMBER = {"from": "2026-12-01", "to": "2026-12-31"}


def days_from(first: date, factors: list[float]) -> list[dict[str, Any]]:
    return [{"day": (first + timedelta(days=i)).isoformat(), "factor": f}
            for i, f in enumerate(factors)]


def refused(response: Any) -> bool:
    """A 422 problem: the body's shape (``invalid-request``) or a rule (``validation-failed``)."""
    return any(is_problem(response, 422, slug) for slug in ("invalid-request",
                                                            "validation-failed"))


def declared_days(world: World) -> int:
    with world.ctx.db.read() as session:
        return session.scalar(select(func.count()).select_from(DemandDay)) or 0


def test_the_operator_declares_lists_and_withdraws_a_season(world: World) -> None:
    put = world.operator.put("/demand-index", json={
        "days": days_from(date(2026, 12, 10), [1.4, 1.9, 2.2]), "source": "carrier forecast"})
    assert put.status_code == 200
    assert [(d["day"], d["factor"], d["source"]) for d in put.json["items"]] == [
        ("2026-12-10", 1.4, "carrier forecast"), ("2026-12-11", 1.9, "carrier forecast"),
        ("2026-12-12", 2.2, "carrier forecast")]
    again = world.operator.put("/demand-index", json={"days": days_from(date(2026, 12, 11),
                                                                        [1.7])})
    assert again.json["items"] == [{**again.json["items"][0], "day": "2026-12-11",
                                    "factor": 1.7, "source": None}]  # declared again
    listed = world.operator.get("/demand-index", **DECEMBER).json["items"]
    assert [(d["day"], d["factor"]) for d in listed] == [
        ("2026-12-10", 1.4), ("2026-12-11", 1.7), ("2026-12-12", 2.2)]
    assert world.operator.delete("/demand-index?from=2026-12-11&to=2026-12-20"
                                 ).status_code == 204
    listed = world.operator.get("/demand-index", **DECEMBER).json["items"]
    assert [d["day"] for d in listed] == ["2026-12-10"]


def test_only_the_operator_declares_and_bad_declarations_change_nothing(
        world: World) -> None:
    good = {"days": days_from(TODAY, [1.2])}
    assert is_problem(world.shopkeeper.put("/demand-index", json=good), 403, "forbidden")
    assert world.carrier.get("/demand-index", **DECEMBER).status_code == 403
    bad_bodies = [
        {"days": days_from(TODAY, [1.2, 0.0])},  # no demand at all: not a season
        {"days": days_from(TODAY, [11.0])},
        {"days": days_from(TODAY, [-1.0])},
        {"days": []},
        {"days": days_from(TODAY, [1.0] * 401)},
        {"days": [{"day": "2026-02-30", "factor": 1.2}]},
        {"days": [{"day": "2026-12-01", "factor": "lots"}]},
        {"days": [{"day": "2026-12-01", "factor": 1.2, "extra": 1}]},
        {"days": days_from(TODAY, [1.2]), "source": "x" * 201},
    ]
    for body in bad_bodies:
        assert refused(world.operator.put("/demand-index", json=body)), body
    twice = {"days": days_from(TODAY, [1.2]) + days_from(TODAY, [1.3])}
    assert is_problem(world.operator.put("/demand-index", json=twice), 422,
                      "validation-failed")
    not_a_number = world.operator.client.put(
        "/api/v1/demand-index", data='{"days": [{"day": "2026-12-01", "factor": NaN}]}',
        headers={**world.operator._headers(None), "Content-Type": "application/json"})
    assert 400 <= not_a_number.status_code < 500
    for query in ("from=2026-12-02&to=2026-12-01", "from=2026-02-30&to=2026-03-01",
                  "from=0&to=1", "from=2026-01-01&to=2027-12-31", "from=2026-12-01",
                  "from=2026-12-01&to=2026-12-02&site=1"):
        assert refused(world.operator.get("/demand-index", **dict(parse_qsl(query)))), query
        assert refused(world.operator.delete(f"/demand-index?{query}")), query
    assert declared_days(world) == 0


def site_inputs(world: World) -> forecast.model.SiteInputs:
    with world.ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        return forecast.inputs_for(world.ctx, session, site)


def test_a_declared_season_moves_the_forecast(world: World, clock: Clock) -> None:
    """A shop with 70 days of history: a week of twice the demand declared ahead doubles
    the parcels the rate brings on those days, in the API's forecast too; the same factor
    declared over the days it learned from halves its ordinary rate."""
    build_history(world, clock)
    before = site_inputs(world)
    path = f"/sites/{world.shop_id}/forecast"
    plain = world.shopkeeper.get(path).json["days"]
    assert before.demand_index == () and before.baseline > 0
    ahead = {"days": days_from(TODAY + timedelta(days=1), [2.0] * 7)}
    assert world.operator.put("/demand-index", json=ahead).status_code == 200
    after = site_inputs(world)
    assert after.demand_index == (1.0,) + (2.0,) * 7 and after.baseline == before.baseline
    seasoned = world.shopkeeper.get(path).json["days"]
    assert seasoned[7]["arrivals"] > 1.8 * plain[7]["arrivals"] > 0
    assert seasoned[7]["predicted"] > plain[7]["predicted"]
    assert seasoned[0] == plain[0]  # today is an ordinary day
    assert [d["demand_factor"] for d in seasoned] == [1.0] + [2.0] * 7
    assert all(d["demand_factor"] == 1.0 for d in plain)
    window = {"days": days_from(TODAY - timedelta(days=40), [2.0] * 40)}
    assert world.operator.put("/demand-index", json=window).status_code == 200
    assert abs(site_inputs(world).baseline - before.baseline / 2) < 1e-9


def attempts(world: World, per_day: dict[date, int]) -> None:
    """First attempts at the shop, at noon UTC on each day."""
    with world.ctx.db.transaction() as session:
        for day, count in per_day.items():
            at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            session.add_all(Parcel(tracking_number=f"LY{day:%Y%m%d}{n:04d}", state="picked_up",
                                   site_id=world.shop_id, first_attempt_at=at,
                                   first_attempt_site_id=world.shop_id)
                            for n in range(count))


def test_a_season_is_derived_from_the_networks_year_before(world: World) -> None:
    """Ten parcels a day through last autumn, twenty a day from 2025-12-05 to 2025-12-15:
    the same weeks this year (52 weeks on: the same weekdays) are declared at twice an
    ordinary day, each day the mean of the three centred on it, so the edges move in steps
    of 1/3."""
    first, last = date(2026, 12, 1), date(2026, 12, 20)
    year_before = {first - timedelta(days=364 + 56) + timedelta(days=i): 10
                   for i in range(56 + 30)}
    for i in range(11):
        year_before[date(2025, 12, 5) + timedelta(days=i)] = 20
    attempts(world, year_before)
    made = world.operator.post("/demand-index/from-last-year",
                               json={"from": first.isoformat(), "to": last.isoformat()})
    assert made.status_code == 201
    factors = {d["day"]: d["factor"] for d in made.json["items"]}
    assert len(factors) == 20 and made.json["items"][0]["source"] == "network first attempts 2025"
    assert factors["2026-12-01"] == factors["2026-12-02"] == 1.0  # 2025-12-02 and 03
    assert factors["2026-12-03"] == round(1 + 1 / 3, 3)  # 2025-12-04: one day of the three
    assert factors["2026-12-04"] == round(1 + 2 / 3, 3)
    assert factors["2026-12-10"] == 2.0
    assert factors["2026-12-15"] == round(1 + 1 / 3, 3)  # 2025-12-16: after the rise
    assert factors["2026-12-19"] == factors["2026-12-20"] == 1.0


def test_no_history_a_year_before_no_season(world: World) -> None:
    made = world.operator.post("/demand-index/from-last-year",
                               json={"from": "2026-12-01", "to": "2026-12-20"})
    assert is_problem(made, 422, "no-history")
    assert declared_days(world) == 0


def test_the_operator_commands(world: World, cli_runner: FlaskCliRunner, tmp_path: Path
                               ) -> None:
    season = tmp_path / "season.csv"
    season.write_text("day,factor\n2026-12-10,1.5\n2026-12-11,1.8\n")
    done = cli_runner.invoke(args=["demand-index", "import", str(season)])
    assert done.exit_code == 0 and "2 day(s) declared, 2026-12-10 to 2026-12-11" in done.output
    shown = cli_runner.invoke(args=["demand-index", "show", "--from", "2026-12-01",
                                    "--to", "2026-12-31"])
    assert '"factor": 1.8' in shown.output and '"source": "season.csv"' in shown.output
    season.write_text("2026-12-12,1.5\n2026-12-13,many\n")
    refused = cli_runner.invoke(args=["demand-index", "import", str(season)])
    assert refused.exit_code == 1 and "season.csv line 2" in refused.output
    season.write_text("2026-12-12,99\n")
    refused = cli_runner.invoke(args=["demand-index", "import", str(season)])
    assert refused.exit_code == 1 and "validation-failed" in refused.output
    gone = cli_runner.invoke(args=["demand-index", "withdraw", "--from", "2026-12-01",
                                   "--to", "2026-12-31"])
    assert gone.exit_code == 0 and "2 day(s) withdrawn" in gone.output
    assert declared_days(world) == 0
    none = cli_runner.invoke(args=["demand-index", "from-last-year", "--from", "2026-12-01",
                                   "--to", "2026-12-20"])
    assert none.exit_code == 1 and "no-history" in none.output
