"""A full shop's counter decides before the van leaves: a parcel it refuses while its forecast
sees the next open day full too goes where a manifest's would (a site within reach with
room, by the carrier's reroute policy; else the operator's no-room policy), and the refusal
says so to the driver and the shopkeeper (docs/overflow.md, "At the counter")."""

from typing import Any

from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import Notification, Site
from relay_ops.services import checkin, forecast, sites
from relay_ops.services.principal import SYSTEM
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.integration.test_forecast import (
    TOMORROW,
    announce_many,
    announced_for,
    automatic_carrier,
    near_shop,
)
from tests.integration.test_no_room import events_of, set_policy, storage_site
from tests.support import Api, World, is_problem, row_counts, shop

TODAY = "2026-12-01"


def full_shop_with_more_coming(world: World, api: Api | None = None) -> list[str]:
    """Bourg's 15 places taken today and 20 more parcels announced for tomorrow, so its
    forecast sees tomorrow at risk; three more L parcels announced for today (by ``api``'s
    carrier, acme by default) find no place: their numbers."""
    small = [f"FULLS{i:07d}" for i in range(10)]
    large = [f"FULLL{i:07d}" for i in range(5)]
    assert world.announce(*small, size_class="S", expected_date=TODAY).status_code == 201
    assert world.announce(*large, size_class="L", expected_date=TODAY).status_code == 201
    for number in small + large:
        assert world.check_in(number).status_code == 201
    announce_many(world.carrier, 20)  # tomorrow: no policy yet, each stays announced
    late = [f"LATE{i:08d}" for i in range(3)]
    body = {"reference": "LATE-1", "expected_date": TODAY, "parcels": [
        {"tracking_number": n, "site": "bourg", "size_class": "L",
         "recipient": {"name": "Jeanne", "phone": "+33612345678"}} for n in late]}
    assert (api or world.carrier).post("/manifests", json=body).status_code == 201
    return late


def parcel_of(world: World, number: str) -> Any:
    return world.operator.get("/parcels", tracking_number=number).json


def test_a_refused_parcel_goes_to_the_overflow_storage_today(app: Flask, world: World) -> None:
    late = full_shop_with_more_coming(world)
    salle = storage_site(world, season={"from": "2026-11-20", "to": "2026-12-31"})
    set_policy(world, steps=["storage", "hold"])
    refused = world.check_in(late[0])
    assert is_problem(refused, 409, "site-at-capacity")
    assert refused.json["reroute"]["status"] == "overflow-storage"
    assert refused.json["reroute"]["site"] == "salle"
    assert refused.json["reroute"]["decision"]["step"] == "storage"
    assert "sent to the overflow storage salle today" in refused.json["detail"]
    parcel = parcel_of(world, late[0])
    assert (parcel["site"], parcel["state"]) == ("salle", "announced")
    assert [e["action"] for e in events_of(world, parcel["id"])] == [
        "announce", "check_in_refused", "no_room_decision", "reroute"]
    run_jobs(app, world)
    told = [x for x in sent_lines(app) if late[0] in x["body"]]
    assert told and all("Salle salle" in x["body"] for x in told)
    # The driver leaves it at the town hall the same day: its place there was held for it.
    taken = checkin.check_in(world.ctx, SYSTEM, salle, late[0])
    assert taken["status"] == "checked_in" and taken["parcel"]["location"] == "T1"


def test_a_refused_parcel_held_at_the_depot_is_expected_on_its_new_day(world: World) -> None:
    late = full_shop_with_more_coming(world)
    set_policy(world, carrier="acme", steps=["hold"])
    refused = world.check_in(late[0])
    assert is_problem(refused, 409, "site-at-capacity")
    until = refused.json["reroute"]["until"]
    assert refused.json["reroute"]["status"] == "hold-at-depot" and until > TOMORROW
    assert f"the carrier keeps it at its depot until {until}" in refused.json["detail"]
    parcel = parcel_of(world, late[0])
    assert (parcel["site"], parcel["expected_date"]) == ("bourg", until)
    # The forecast counts it on that day, not tomorrow as a plain refusal (full odds both).
    arrivals = announced_for(world)
    assert (until, 0.97) in arrivals
    assert arrivals.count((TOMORROW, 0.97)) == 20  # the manifest's, not the held one
    with world.ctx.db.read() as session:
        kinds = set(session.scalars(select(Notification.kind).where(
            Notification.parcel_id == parcel["id"])))
    assert "depot_hold" in kinds


def test_a_shop_within_reach_with_room_takes_it_for_an_automatic_carrier(
        world: World) -> None:
    fast = automatic_carrier(world)
    late = full_shop_with_more_coming(world, fast)
    pres = near_shop(world)
    refused = world.check_in(late[0], carrier="fast")
    assert is_problem(refused, 409, "site-at-capacity")
    assert refused.json["reroute"]["status"] == "automatic"
    assert refused.json["reroute"]["site"] == "pres"
    assert "rerouted to pres today" in refused.json["detail"]
    assert fast.get("/parcels", tracking_number=late[0]).json["site"] == "pres"
    taken = checkin.check_in(world.ctx, SYSTEM, pres, late[0], carrier_code="fast")
    assert taken["status"] == "checked_in"


def test_a_shop_within_reach_without_a_place_for_it_now_is_not_where_the_driver_goes(
        world: World) -> None:
    """Its forecast has room (twenty small places free) but no L place is free now: the
    driver would be refused there too."""
    fast = automatic_carrier(world)
    late = full_shop_with_more_coming(world, fast)
    pres = sites.create_site(world.ctx, SYSTEM, shop(
        "pres", 47.5300, -1.2917, [("A1", "S", 20), ("B1", "L", 1)]))["id"]
    body = {"reference": "PRES-1", "expected_date": TODAY, "parcels": [
        {"tracking_number": "PRESL0000001", "site": "pres", "size_class": "L",
         "recipient": {"name": "Paul", "phone": "+33612345679"}}]}
    assert fast.post("/manifests", json=body).status_code == 201
    checkin.check_in(world.ctx, SYSTEM, pres, "PRESL0000001", carrier_code="fast")
    refused = world.check_in(late[0], carrier="fast")
    assert refused.json["reroute"]["status"] == "no-alternative"
    assert fast.get("/parcels", tracking_number=late[0]).json["site"] == "bourg"


def test_an_unannounced_parcel_refused_is_decided_too(world: World) -> None:
    full_shop_with_more_coming(world)
    storage_site(world)
    set_policy(world, steps=["storage"])
    refused = world.check_in("ACME00009990", accept_unannounced=True, size_class="L",
                             carrier="acme", recipient={"phone": "+33612345678"})
    assert is_problem(refused, 409, "site-at-capacity")
    assert refused.json["reroute"]["status"] == "overflow-storage"
    parcel = parcel_of(world, "ACME00009990")
    assert (parcel["site"], parcel["unannounced"]) == ("salle", True)


def test_without_a_policy_the_refusal_records_the_undecided_parcel(world: World) -> None:
    late = full_shop_with_more_coming(world)
    parcel_id = parcel_of(world, late[0])["id"]

    def decided() -> list[str]:
        listed = world.operator.get("/no-room-decisions", site="bourg", day=TODAY).json
        return [d["step"] for d in listed["items"] if d["parcel_id"] == parcel_id]

    at_announce = decided()  # its manifest, for a day already full, was flagged already
    refused = world.check_in(late[0])
    assert refused.json["reroute"]["status"] == "no-alternative"
    assert refused.json["reroute"]["decision"]["step"] == "none"
    assert refused.json["nearest_site"]["code"] == "voisin"  # as before: out of reach
    assert decided() == [*at_announce, "none"]
    assert parcel_of(world, late[0])["site"] == "bourg"


def test_with_room_on_the_next_open_day_nothing_is_decided(world: World) -> None:
    """Full for L parcels today, but its forecast sees room tomorrow: the van brings the parcel
    back then, as before; no policy runs, nothing but the refusal is written."""
    numbers = [f"ROOMS{i:07d}" for i in range(6)]
    world.announce(*numbers, size_class="L", expected_date=TODAY)
    for number in numbers[:5]:
        assert world.check_in(number).status_code == 201
    storage_site(world)
    set_policy(world, steps=["storage", "hold"])
    with world.ctx.db.read() as session:
        site = session.get(Site, world.shop_id)
        assert site is not None
        assert forecast.inputs_for(world.ctx, session, site).capacity == 15  # 10 S places free
    counts = row_counts(world.ctx)
    refused = world.check_in(numbers[5])
    assert is_problem(refused, 409, "site-at-capacity") and "reroute" not in refused.json
    assert row_counts(world.ctx) == {**counts, "parcel_events": counts["parcel_events"] + 1}
