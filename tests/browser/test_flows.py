"""Issue 17's pages in a real browser, each a person's path: the shopkeeper's "Envoi" (a
sender's parcel scanned in, the driver's refusal, the hand-back), the "Producteurs" counter
(an order put in the fridge, a damaged one handed back) and the producer's own page, and a
home delivery's courier on their phone (taken at the shop, the resident's code at the door).

This module runs its own server with a clock fixed on Tuesday 1 December 2026, 10:00 in
Paris, a delivery day inside the shop's hours, so nothing depends on when the test runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from relay_ops.services import (
    carrier_sites,
    checkin,
    expiry,
    home_delivery,
    parcel_views,
    producer_announcements,
    producers,
    site_locations,
    sites,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.browser.conftest import Live, Watch, _open, serve, shot, sign_in
from tests.browser.test_accessibility import axe_violations
from tests.conftest import Clock

pytestmark = pytest.mark.browser
TUESDAY = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
OPERATOR = Principal(Role.OPERATOR, user_id=1)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    """The Bourg shop sends with Acme, has a fridge, delivers home on weekdays; a farm sells
    there. The services read the fixed clock, the pages' server included."""
    with serve(tmp_path_factory.mktemp("flows"), sqlite_template) as live:
        fixed = Ctx(db=live.ctx.db, settings=live.ctx.settings, clock=Clock(TUESDAY))
        live.app.extensions["relay_ops"] = fixed
        live.world.ctx = fixed
        shop = live.world.shop_id
        carrier_sites.set_label_networks(fixed, SYSTEM, "acme", ["prefix:ACME"])
        carrier_sites.serve_site(fixed, SYSTEM, shop, "acme", 48)
        site_locations.add_locations(fixed, SYSTEM, shop, [
            {"label": "F1", "size_class": "M", "capacity": 2, "refrigerated": True}])
        sites.set_services(fixed, SYSTEM, shop, ["receive", "send", "cold", "home_delivery"])
        home_delivery.set_offer(fixed, OPERATOR, shop, {
            "days": ["mon", "tue", "wed", "thu", "fri", "sat"], "area": "le bourg"})
        producers.create_producer(fixed, SYSTEM, code="ferme", name="Ferme des Trois Chênes")
        yield live


@pytest.fixture
def counter(browser: Browser, flows: Live, watch: Watch) -> Iterator[Page]:
    yield from _open(browser, flows, watch, viewport={"width": 1280, "height": 860})


@pytest.fixture
def courier_phone(browser: Browser, flows: Live, watch: Watch) -> Iterator[Page]:
    yield from _open(browser, flows, watch, viewport={"width": 390, "height": 844},
                     is_mobile=True, has_touch=True)


def _state(live: Live, number: str) -> str:
    return str(parcel_views.find_parcel(live.ctx, OPERATOR, number)["state"])


def test_a_sender_s_parcel_refused_by_the_driver_goes_back_to_its_sender(
        counter: Page, flows: Live) -> None:
    page = counter
    sign_in(page, flows, "marie")
    page.get_by_role("link", name="Envoi").click()
    expect(page.get_by_role("heading", name="Envoi")).to_be_visible()
    page.locator("#send-field").fill("ACME00007001")
    page.keyboard.press("Enter")
    expect(page.locator("#result-title")).to_contain_text("Déposé pour l'envoi")
    expect(page.locator("#result-location")).to_have_text("Emplacement A1")
    expect(page.locator("#receipt-link")).to_be_visible()
    row = page.locator("#waiting tbody tr", has_text="ACME00007001")
    expect(row).to_have_count(1)
    assert _state(flows, "ACME00007001") == "awaiting_collection"
    shot(page, "sending")

    # The driver will not take it: the shopkeeper says why, from the parcel's line.
    row.locator("summary").click()
    row.get_by_label("Pourquoi le chauffeur le refuse").fill("mal emballé")
    row.get_by_role("button", name="Refusé par le transporteur").click()
    expect(page.locator(".flash")).to_contain_text("ACME00007001 refusé par le transporteur")
    expect(page.locator("#waiting tbody tr", has_text="ACME00007001")).to_have_count(0)
    refused = page.locator("#refused tbody tr", has_text="ACME00007001")
    expect(refused).to_have_count(1)
    assert _state(flows, "ACME00007001") == "refused"
    assert axe_violations(page) == []

    # The sender comes back for it.
    refused.get_by_role("button", name="Rendre à l'expéditeur").click()
    expect(page.locator(".flash")).to_contain_text("ACME00007001 rendu à son expéditeur.")
    expect(page.locator("#refused tbody tr", has_text="ACME00007001")).to_have_count(0)
    assert _state(flows, "ACME00007001") == "returned"


def test_a_producer_s_orders_at_the_counter_and_on_its_own_page(
        counter: Page, courier_phone: Page, flows: Live) -> None:
    farm = Principal(Role.PRODUCER, producer_id=1)
    for reference, cold in (("LAIT-7", True), ("PAIN-7", False)):
        status, _ = producer_announcements.announce(flows.ctx, farm, producer_announcements.Order(
            reference=reference, site="bourg", phone="+33611223344", size_class="S",
            keep_cold=cold))
        assert status == 201
    page = counter
    sign_in(page, flows, "marie")
    page.goto(f"{flows.url}/shop/{flows.world.shop_id}/producers")
    for reference in ("LAIT-7", "PAIN-7"):
        page.locator("#producer-field").fill(reference)
        page.keyboard.press("Enter")
        expect(page.locator("#result-title")).to_contain_text("Commande reçue")
    page.locator("#producer-field").fill("LAIT-7")
    page.keyboard.press("Enter")
    expect(page.locator("#result-location")).to_contain_text("F1 ❄")
    shot(page, "producer-orders")

    # The bread was crushed: declared damaged, it goes back to the farm from its line.
    bread = parcel_views.find_parcel(flows.ctx, OPERATOR, _label(flows, "PAIN-7"))
    expiry.declare(flows.ctx, OPERATOR, bread["id"], "damaged", "écrasé")
    page.reload()
    line = page.locator("#orders tbody tr", has_text="PAIN-7")
    line.get_by_role("button", name="Rendre à Ferme des Trois Chênes").click()
    expect(page.locator("#result-title")).to_contain_text("Rendue")
    expect(page.locator("#orders tbody tr", has_text="PAIN-7")).to_contain_text(
        "rendue à son producteur")
    assert _state(flows, _label(flows, "PAIN-7")) == "returned"

    # The farmer, on a phone, signs in with the farm's key and sees both orders.
    phone = courier_phone
    key = producers.issue_producer_key(flows.ctx, SYSTEM, "ferme").token
    phone.goto(f"{flows.url}/producer")
    expect(phone.get_by_role("heading", name="Connexion producteur")).to_be_visible()
    phone.get_by_label("Clé d'API").fill(key)
    phone.get_by_role("button", name="Se connecter").click()
    expect(phone.get_by_role("heading", name="Mes commandes")).to_be_visible()
    expect(phone.locator("#orders tbody tr", has_text="LAIT-7")).to_contain_text(
        "prêt à être retiré")
    expect(phone.locator("#orders tbody tr", has_text="PAIN-7")).to_contain_text(
        "reprise par vous")
    expect(phone.locator("#take-back")).to_have_count(0)
    assert axe_violations(phone) == []
    shot(phone, "producer-phone")


def _label(live: Live, reference: str) -> str:
    return str(producers.my_order(live.ctx, Principal(Role.PRODUCER, producer_id=1),
                                  reference)["label"])


def test_a_neighbour_brings_a_parcel_home_and_the_resident_s_code_confirms(
        counter: Page, courier_phone: Page, flows: Live) -> None:
    world = flows.world
    assert world.announce("ACME00007101").status_code == 201
    parcel = parcel_views.find_parcel(flows.ctx, OPERATOR, "ACME00007101")
    marie = Principal(Role.SHOPKEEPER, user_id=2, site_ids=frozenset({world.shop_id}))
    checkin.check_in(flows.ctx, marie, world.shop_id, "ACME00007101")
    asked = home_delivery.request(
        flows.ctx, Principal(Role.RESIDENT, parcel_id=parcel["id"]), parcel["id"],
        day=date(2026, 12, 1), courier_kind="neighbour", courier_name="Marcel Petit",
        consent=True, in_area=True)
    code = world.code_of(parcel["id"])

    # The shop's list shows the planned delivery and the neighbour's link.
    sign_in(counter, flows, "marie")
    counter.get_by_role("link", name="Remise à domicile").click()
    expect(counter.locator(f"#delivery-{asked['id']}")).to_contain_text("Marcel Petit")
    shot(counter, "home-deliveries")

    # The neighbour opens the link on their phone, takes the parcel, then at the door the
    # resident types their code.
    phone = courier_phone
    phone.goto(str(asked["courier_url"]).replace("http://127.0.0.1", flows.url))
    expect(phone.locator(".lead")).to_contain_text("Pour Jeanne Martin, le mardi 1 décembre 2026")
    # the shop by its name, as a neighbour knows it (was its internal code, "bourg")
    expect(phone.locator(".panel").first).to_contain_text("point relais : Shop bourg.")
    phone.get_by_role("button", name="J’ai pris le colis").click()
    expect(phone.locator("#courier-code")).to_be_visible()
    assert _state(flows, "ACME00007101") == "out_for_delivery"
    assert axe_violations(phone) == []
    shot(phone, "courier-phone")
    phone.locator("#courier-code").fill("000000" if code != "000000" else "111111")
    phone.get_by_role("button", name="Confirmer la remise").click()
    expect(phone.locator(".flash-error")).to_be_visible()  # a wrong code is refused, counted
    assert _state(flows, "ACME00007101") == "out_for_delivery"
    phone.locator("#courier-code").fill(code)
    phone.get_by_role("button", name="Confirmer la remise").click()
    expect(phone.locator("#courier-done")).to_contain_text("Remis. Merci")
    assert _state(flows, "ACME00007101") == "delivered"
    # The link is dead once the delivery is over.
    phone.reload()
    expect(phone.locator("#courier-done")).to_have_count(0)
