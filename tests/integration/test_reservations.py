"""Room promised is room held (issue 16.1) and reroutes spread by load (16.4): a rerouted
parcel holds its place at the destination; the forecast, the next reroute and the counter
all see it; it lapses when the parcel does not come."""

from collections import Counter
from typing import Any

import pytest
from flask import Flask
from flask_babel import force_locale
from sqlalchemy import select

from relay_ops.db.models import Parcel, ParcelEvent, PlaceReservation, Site, SiteForecast
from relay_ops.domain.errors import SiteAtCapacity
from relay_ops.services import (
    checkin,
    forecast,
    reservations,
    sites,
)
from relay_ops.services.principal import SYSTEM
from relay_ops.web.pages import refusals
from tests.conftest import Clock
from tests.integration.test_fast_path_statements import statements
from tests.integration.test_forecast import (
    TOMORROW,
    announce_many,
    automatic_carrier,
    two_automatic_carriers,
)
from tests.support import World, announce_together, shop


def add_shop(world: World, code: str, lat: float, capacity: int, *, lon: float = -1.2917
             ) -> int:
    """A shop of ``capacity`` L places (bourg is at 47.5167, -1.2917; 0.0133° ≈ 1.5 km)."""
    return sites.create_site(
        world.ctx, SYSTEM, shop(code, lat, lon, [("A1", "L", capacity)]))["id"]


def moved_to(answer: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [p for p in answer["parcels"] if p.get("reroute", {}).get("site") == code]


def held_at(world: World, site_id: int) -> list[PlaceReservation]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(PlaceReservation).where(
            PlaceReservation.site_id == site_id, PlaceReservation.status == "held")))


def statuses(world: World) -> dict[int, str]:
    with world.ctx.db.read() as session:
        return dict(session.execute(select(PlaceReservation.parcel_id, PlaceReservation.status)
                                    .order_by(PlaceReservation.id)).all())


def day_of(world: World, site_id: int, day: str = TOMORROW) -> dict[str, Any]:
    days = world.operator.get(f"/sites/{site_id}/forecast").json["days"]
    return next(d for d in days if d["day"] == day)


def test_a_destination_never_gets_more_reroutes_than_its_room(world: World) -> None:
    """Forty parcels for a shop of 15: the neighbour takes what its forecast room allows, each
    moved parcel holds its place there (in the carrier's answer and the operator's forecast),
    and a second carrier's overflow finds that room taken."""
    pres = add_shop(world, "pres", 47.5300, 6)
    fast = automatic_carrier(world)
    first = announce_many(fast, 40)
    moved = moved_to(first, "pres")
    assert 1 <= len(moved) <= 6
    assert all(p["reroute"]["reservation"]["site"] == "pres"
               and p["reroute"]["reservation"]["day"] == TOMORROW
               and p["reroute"]["reservation"]["status"] == "held" for p in moved)
    assert len(held_at(world, pres)) == len(moved)
    tomorrow = day_of(world, pres)
    assert tomorrow["reserved"] == len(moved) and not tomorrow["at_risk"]
    # A moved parcel is announced there and counted once, not once more for its place.
    assert tomorrow["predicted"] <= len(moved) * 0.97 + 0.01

    second = announce_many(fast, 10, prefix="TWO", reference="PEAK-2")
    assert moved_to(second, "pres") == []
    assert len(held_at(world, pres)) == len(moved)


def test_a_proposal_holds_its_first_option_until_decided(world: World) -> None:
    """A proposal awaiting its carrier holds a place at its first option, counted by that
    site's forecast; refusing frees it; accepting holds the chosen site's place instead."""
    pres = add_shop(world, "pres", 47.5300, 6)
    with statements(world.ctx) as seen:
        answer = announce_many(world.carrier, 20)
    proposed = [p for p in answer["parcels"] if p.get("reroute", {}).get("status") == "proposed"]
    assert len(proposed) >= 2
    # parcels announced in this very transaction held no place before: none to release
    assert not [s for s in seen if s.startswith("UPDATE place_reservations")]
    # the proposals and their places written together at the end of the check, not with a
    # flush each: one statement each on PostgreSQL (SQLite's driver inserts a row at a time)
    writes = Counter(s.split(" (")[0] for s in seen if s.startswith("INSERT INTO"))
    each = len(proposed) if world.ctx.db.is_sqlite else 1
    assert writes["INSERT INTO reroute_proposals"] == each, writes
    assert writes["INSERT INTO place_reservations"] == each, writes
    assert all(p["reroute"]["reservation"]["site"] == "pres" for p in proposed)
    assert day_of(world, pres)["reserved"] == len(proposed)
    assert day_of(world, pres)["predicted"] >= len(proposed) * 0.97 - 0.01

    refused, accepted = proposed[0], proposed[1]
    assert world.carrier.post(f"/parcels/{refused['parcel_id']}/reroute",
                              json={"refuse": True}).status_code == 200
    answer_ = world.carrier.post(f"/parcels/{accepted['parcel_id']}/reroute",
                                 json={"site": "pres"})
    assert answer_.status_code == 200, answer_.json
    assert answer_.json["reservation"]["status"] == "held"
    with world.ctx.db.read() as session:
        rows = session.execute(select(PlaceReservation.parcel_id, PlaceReservation.status)
                               .where(PlaceReservation.parcel_id.in_(
                                   [refused["parcel_id"], accepted["parcel_id"]]))
                               .order_by(PlaceReservation.id)).all()
    assert sorted(rows) == sorted([(refused["parcel_id"], "released"),
                                   (accepted["parcel_id"], "released"),
                                   (accepted["parcel_id"], "held")])
    assert day_of(world, pres)["reserved"] == len(proposed) - 1


def test_a_proposals_site_stores_the_forecast_a_fresh_read_gives(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the check, the site that received proposals stores its forecast from the inputs
    the planner read, the places promised since added, not from a second read of them: the
    same forecast as a fresh read gives."""
    pres = add_shop(world, "pres", 47.5300, 6)
    reads = Counter[int]()
    read = forecast.inputs_of_sites

    def counted(ctx: Any, session: Any, sites: list[Site]) -> Any:
        reads.update(site.id for site in sites)
        return read(ctx, session, sites)

    monkeypatch.setattr(forecast, "inputs_of_sites", counted)
    answer = announce_many(world.carrier, 20)
    proposed = [p for p in answer["parcels"] if p.get("reroute", {}).get("status") == "proposed"]
    assert len(proposed) >= 2
    assert reads[pres] == 1  # by the planner, before the first proposal
    with world.ctx.db.read() as session:
        stored = {row.day: row for row in session.scalars(
            select(SiteForecast).where(SiteForecast.site_id == pres))}
        site = session.get(Site, pres)
        assert site is not None
        fresh = forecast.compute(world.ctx, session, site)
    assert sorted(stored) == [d.day for d in fresh]
    for day in fresh:
        row = stored[day.day]
        assert (row.at_risk, row.closed, row.capacity) == (day.at_risk, day.closed, day.capacity)
        for name in ("predicted", "low", "high", "arrivals"):
            assert getattr(row, name) == pytest.approx(getattr(day, name), abs=1e-9), name


def test_the_counter_keeps_reserved_places_for_their_rerouted_parcels(
        app: Flask, world: World, clock: Clock) -> None:
    """At the destination, a parcel without a reservation is refused when it would take a
    place held for a rerouted parcel expected today; the rerouted parcels are then taken, and
    their reservations are used."""
    pres = add_shop(world, "pres", 47.5300, 5)
    moved = moved_to(announce_many(automatic_carrier(world), 25), "pres")
    assert 1 <= len(moved) < 5
    free_for_others = 5 - len(moved)
    direct = [f"DIR{i:09d}" for i in range(free_for_others + 1)]
    announced = world.other_carrier.post("/manifests", json={
        "reference": "DIRECT", "expected_date": TOMORROW,
        "parcels": [{"tracking_number": n, "site": "pres",
                     "recipient": {"phone": f"+3362{i:07d}"}} for i, n in enumerate(direct)]})
    assert announced.status_code == 201, announced.json
    clock.advance(days=1)

    for number in direct[:free_for_others]:
        assert checkin.check_in(world.ctx, SYSTEM, pres, number)["status"] == "checked_in"
    with pytest.raises(SiteAtCapacity, match="keeps its last free places") as refused:
        checkin.check_in(world.ctx, SYSTEM, pres, direct[-1])
    assert refused.value.extra["kept_for_reroutes"] == len(moved)
    with app.test_request_context(), force_locale("fr"):  # what the scan station says
        assert refusals.explain(refused.value)[0] == "Places gardées"
    with world.ctx.db.read() as session:
        refusal = session.scalars(select(ParcelEvent.action).join(Parcel).where(
            Parcel.tracking_number == direct[-1]).order_by(ParcelEvent.id)).all()[-1]
    assert refusal == "check_in_refused"

    for parcel in moved:
        number = parcel["tracking_number"]
        assert checkin.check_in(world.ctx, SYSTEM, pres, number)["status"] == "checked_in"
    assert {statuses(world)[p["parcel_id"]] for p in moved} == {"used"}
    assert held_at(world, pres) == []


def test_reservations_lapse_when_the_parcel_does_not_come(world: World, clock: Clock) -> None:
    """Kept through the day after (a van a day late), lapsed after that by the sweep; a
    parcel no longer announced (checked in elsewhere, cancelled) stops counting at once."""
    pres = add_shop(world, "pres", 47.5300, 6)
    moved = moved_to(announce_many(automatic_carrier(world), 30), "pres")
    assert moved
    clock.advance(days=2)  # the day after TOMORROW: within the grace
    assert reservations.sweep(world.ctx) == {"used": 0, "released": 0, "lapsed": 0}
    assert len(held_at(world, pres)) == len(moved)
    clock.advance(days=1)
    assert reservations.sweep(world.ctx)["lapsed"] == len(moved)
    assert held_at(world, pres) == []
    assert set(statuses(world).values()) == {"lapsed"}


def test_a_reservation_whose_parcel_left_stops_counting_and_is_released(
        world: World) -> None:
    pres = add_shop(world, "pres", 47.5300, 6)
    moved = moved_to(announce_many(automatic_carrier(world), 30), "pres")
    assert moved
    with world.ctx.db.transaction() as session:
        parcel = session.get(Parcel, moved[0]["parcel_id"])
        assert parcel is not None
        parcel.state = "cancelled"
    assert day_of(world, pres)["reserved"] == len(moved) - 1
    assert reservations.sweep(world.ctx)["released"] == 1
    assert statuses(world)[moved[0]["parcel_id"]] == "released"


def test_concurrent_manifests_rerouting_onto_one_site_do_not_exceed_its_room(
        world: World) -> None:
    """Two carriers' overflowing rounds for two different shops, announced at once, both
    reroute onto the shop between them: its row lock (skipped, never waited for) keeps the
    second from promising the room the first is promising."""
    pres = add_shop(world, "pres", 47.5300, 6)
    add_shop(world, "nord", 47.5433, 15)
    answers = announce_together(world.ctx, two_automatic_carriers(world), [
        {"reference": f"RACE-{n}", "expected_date": TOMORROW, "parcels": [
            {"tracking_number": f"CON{n}{i:07d}", "site": site,
             "recipient": {"phone": "+33612345678"}} for i in range(30)]}
        for n, site in enumerate(("bourg", "nord"))])
    to_pres = sum(len(moved_to(a, "pres")) for a in answers)
    assert 1 <= to_pres <= 6
    assert len(held_at(world, pres)) == to_pres
    assert not forecast.forecast_site(world.ctx, pres)[1].at_risk


def test_reroutes_spread_by_load_not_only_by_distance(world: World) -> None:
    """A big shop 1 km away already three quarters full that day, a small empty one 1.8 km
    away: the overflow goes to the small one (nearest first would have sent it to the big)."""
    grand = add_shop(world, "grand", 47.5257, 40)
    add_shop(world, "petit", 47.5329, 15)
    announce_many(world.other_carrier, 30, site="grand", prefix="GRA", reference="GRAND")
    assert not day_of(world, grand)["at_risk"]
    answer = announce_many(automatic_carrier(world), 20)
    assert moved_to(answer, "petit") and moved_to(answer, "grand") == []
    with world.ctx.db.read() as session:
        big = session.scalar(select(Site).where(Site.code == "grand"))
        assert big is not None
        assert reservations.reserved_per_day(world.ctx, session, big.id) == {}

