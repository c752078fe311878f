"""The operator's volumes per flow and site (issue 17, item 4): parcels received and picked
up, sent and collected, producers' orders, home deliveries; today and over the last 7 local
days, read from the parcel events. The clock starts on Tuesday 2026-12-01 at 10:00 in Paris."""

from typing import Any

import pytest

from relay_ops.services import carrier_sites, expiry, producer_announcements, producers, stats
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.support import World, is_problem


@pytest.fixture
def flows(world: World) -> World:
    """The Bourg shop sends with Acme and delivers home every weekday; a farm sells there."""
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "acme", ["prefix:ACME"])
    carrier_sites.serve_site(world.ctx, SYSTEM, world.shop_id, "acme", 48)
    assert world.shopkeeper.put(f"/sites/{world.shop_id}/services", json={
        "services": ["receive", "send", "home_delivery"]}).status_code == 200
    assert world.shopkeeper.put(f"/sites/{world.shop_id}/home-delivery", json={
        "days": ["mon", "tue", "wed", "thu", "fri", "sat"], "area": "Bourg"}).status_code == 200
    producers.create_producer(world.ctx, SYSTEM, code="ferme", name="Ferme")
    return world


def order(world: World, reference: str, site: str = "bourg") -> None:
    farm = Principal(Role.PRODUCER, producer_id=1)
    status, _ = producer_announcements.announce(world.ctx, farm, producer_announcements.Order(
        reference=reference, site=site, phone="+33611223344", size_class="S"))
    assert status == 201


def deposit(api: Any, site_id: int, reference: str) -> None:
    answer = api.post(f"/sites/{site_id}/producer-orders/deposits", json={"reference": reference})
    assert answer.status_code == 201, answer.json


def send(world: World, number: str) -> None:
    answer = world.shopkeeper.post(f"/sites/{world.shop_id}/outbound",
                                   json={"tracking_number": number})
    assert answer.status_code == 201, answer.json


def deliver_home_today(world: World, number: str, day: str) -> None:
    """The shopkeeper brings a parcel home herself; the resident's code confirms it."""
    parcel = world.ready(number)
    asked = world.shopkeeper.post(f"/parcels/{parcel['id']}/home-delivery", json={
        "day": day, "courier": {"kind": "shopkeeper"}, "consent": True, "in_area": True})
    assert asked.status_code == 201, asked.json
    delivery = asked.json["id"]
    assert world.shopkeeper.post(f"/home-deliveries/{delivery}/taken").status_code == 200
    done = world.shopkeeper.post(f"/home-deliveries/{delivery}/delivered",
                                 json={"code": world.code_of(parcel["id"])})
    assert done.status_code == 200, done.json


def test_each_site_s_flows_today_and_over_seven_days(flows: World, clock: Clock) -> None:
    world = flows
    world.ready("ACME00000001")  # Tuesday 1st: eight days before, out of the window
    clock.advance(days=4)  # Saturday 5th: in the last 7 days, not today
    world.sign_in_again()
    picked = world.ready("ACME00000002")
    send(world, "ACME00000800")
    order(world, "PANIER-1")
    deposit(world.shopkeeper, world.shop_id, "PANIER-1")
    clock.advance(days=3)  # Tuesday 8th: today
    world.sign_in_again()
    assert world.pick_up(code=world.code_of(picked["id"])).status_code == 200
    collected = world.carrier.post(f"/sites/{world.shop_id}/outbound/collections",
                                   json={"taken": ["ACME00000800"]})
    assert collected.json["items"][0]["status"] == "collected", collected.json
    deliver_home_today(world, "ACME00000003", "2026-12-08")
    order(world, "PANIER-2", site="voisin")
    deposit(world.other_shopkeeper, world.other_shop_id, "PANIER-2")

    answer = world.operator.get("/stats/flows")
    assert answer.status_code == 200, answer.json
    volumes = answer.json
    assert volumes["periods"] == {
        "today": {"from": "2026-12-08T00:00:00+01:00", "to": "2026-12-08T09:00:00+00:00"},
        "last_7_days": {"from": "2026-12-02T00:00:00+01:00", "to": "2026-12-08T09:00:00+00:00"},
    }
    sites = {s["code"]: s for s in volumes["sites"]}
    assert sites["bourg"]["today"] == {
        "inbound_received": 1, "inbound_picked_up": 1, "outbound_sent": 0,
        "outbound_collected": 1, "producer_deposited": 0, "producer_picked_up": 0,
        "producer_taken_back": 0, "home_requested": 1, "home_delivered": 1}
    assert sites["bourg"]["last_7_days"] == {
        "inbound_received": 2, "inbound_picked_up": 1, "outbound_sent": 1,
        "outbound_collected": 1, "producer_deposited": 1, "producer_picked_up": 0,
        "producer_taken_back": 0, "home_requested": 1, "home_delivered": 1}
    # The neighbouring shop's order is its own, counted as a producer's, not as a parcel.
    assert sites["voisin"]["today"]["producer_deposited"] == 1
    assert sites["voisin"]["today"]["inbound_received"] == 0
    assert volumes["totals"]["today"]["producer_deposited"] == 1 + 0
    assert volumes["totals"]["last_7_days"]["producer_deposited"] == 2
    assert volumes["totals"]["last_7_days"]["inbound_received"] == 2


def test_an_order_nobody_collected_counts_as_taken_back(flows: World, clock: Clock) -> None:
    world = flows
    order(world, "PANIER-3")
    deposit(world.shopkeeper, world.shop_id, "PANIER-3")
    clock.advance(days=15)  # past the shop's holding period: the sweep expires it
    assert expiry.expire_overdue(world.ctx)
    world.sign_in_again()
    taken = world.shopkeeper.post(f"/sites/{world.shop_id}/producer-orders/take-back",
                                  json={"references": ["PANIER-3"], "producer": "ferme"})
    assert taken.json["items"][0]["status"] == "returned", taken.json
    bourg = stats.flow_volumes(world.ctx, Principal(Role.OPERATOR))["sites"][0]
    assert bourg["code"] == "bourg"
    assert bourg["today"]["producer_taken_back"] == 1
    assert bourg["today"]["outbound_collected"] == 0  # a producer's, not a carrier's


def test_only_operators_read_the_volumes(flows: World) -> None:
    for api in (flows.shopkeeper, flows.carrier):
        assert is_problem(api.get("/stats/flows"), 403, "forbidden")
    assert flows.anonymous.get("/stats/flows").status_code == 401
