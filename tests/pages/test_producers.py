"""The counter's "Producteurs" page: the day's producer orders, an order scanned in (a cold
place for "keep cold"), an uncollected one handed back to its producer; French and English."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest

from relay_ops.services import expiry, producer_announcements, producers, site_locations, sites
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.pages.support import Pages
from tests.support import World


@pytest.fixture
def ferme(world: World) -> Principal:
    """A producer, and a fridge (F1) at the Bourg shop."""
    made = producers.create_producer(world.ctx, SYSTEM, code="ferme",
                                     name="Ferme des Trois Chênes")
    site_locations.add_locations(world.ctx, SYSTEM, world.shop_id, [
        {"label": "F1", "size_class": "M", "capacity": 1, "refrigerated": True}])
    sites.set_services(world.ctx, SYSTEM, world.shop_id, ["receive", "cold"])
    return Principal(Role.PRODUCER, producer_id=int(made["id"]))


def order(world: World, producer: Principal, reference: str, **extra: Any) -> None:
    status, _ = producer_announcements.announce(world.ctx, producer, producer_announcements.Order(
        reference=reference, site="bourg", phone="+33611223344", size_class="S", **extra))
    assert status == 201


def scan(marie: Pages, world: World, reference: str, **form: str) -> str:
    response = marie.post(f"/shop/{world.shop_id}/producers", {"reference": reference, **form})
    assert response.status_code == 200
    return unescape(response.get_data(as_text=True))


def result(html: str, part: str) -> str:
    found = re.search(rf'id="result-{part}">(.*?)</p>', html, re.S)
    assert found, part
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def orders_table(html: str) -> str:
    found = re.search(r'<table id="orders">(.*?)</table>', html, re.S)
    assert found
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


def test_the_counter_links_to_the_producers_page(marie: Pages, world: World) -> None:
    html = marie.text(f"/shop/{world.shop_id}/scan")
    assert f'href="/shop/{world.shop_id}/producers">Producteurs</a>' in html
    page = unescape(marie.text(f"/shop/{world.shop_id}/producers"))
    assert "Aucune commande de producteur aujourd'hui." in page


def test_an_order_scanned_in_shows_its_cold_shelf_and_joins_the_day_s_list(
    marie: Pages, world: World, ferme: Principal
) -> None:
    order(world, ferme, "LAIT-1", keep_cold=True, holding_hours=6)
    order(world, ferme, "MIEL-1")
    html = scan(marie, world, "LAIT-1")
    assert result(html, "title") == "✔ Commande reçue"
    assert result(html, "location") == "Emplacement F1 ❄"
    assert "Le client est prévenu" in result(html, "message")
    table = orders_table(html)
    assert "LAIT-1 ❄" in table and "Ferme des Trois Chênes" in table
    assert "MIEL-1" in table and "annoncé" in table
    again = scan(marie, world, "LAIT-1")
    assert result(again, "title") == "ℹ Déjà là"


def test_no_cold_place_is_said_plainly(marie: Pages, world: World, ferme: Principal) -> None:
    order(world, ferme, "LAIT-1", keep_cold=True)
    order(world, ferme, "LAIT-2", keep_cold=True)
    scan(marie, world, "LAIT-1")
    html = scan(marie, world, "LAIT-2")
    assert result(html, "title") == "✖ Pas de place au froid"
    assert "aucune place réfrigérée" in result(html, "message")


def test_an_uncollected_order_is_handed_back_to_its_producer(
    marie: Pages, world: World, ferme: Principal, clock: Clock
) -> None:
    order(world, ferme, "MIEL-1", holding_hours=2)
    scan(marie, world, "MIEL-1")
    clock.advance(hours=3)
    expiry.expire_overdue(world.ctx)
    page = unescape(marie.text(f"/shop/{world.shop_id}/producers"))
    assert "à rendre à son producteur" in orders_table(page)
    html = scan(marie, world, "MIEL-1", action="take_back", producer="ferme")
    assert result(html, "title") == "✔ Rendue"
    assert "rendue à son producteur" in orders_table(html)


def test_the_page_speaks_english_on_request(marie: Pages, world: World, ferme: Principal
                                            ) -> None:
    order(world, ferme, "LAIT-1", keep_cold=True)
    marie.post("/lang/en", {"next": "/"})
    html = scan(marie, world, "LAIT-1")
    assert result(html, "title") == "✔ Order received"
    assert "Today's producer orders (1)" in html


def test_each_order_to_hand_back_has_its_button(
    marie: Pages, world: World, ferme: Principal, clock: Clock
) -> None:
    order(world, ferme, "MIEL-2", holding_hours=2)
    order(world, ferme, "PAIN-2")
    scan(marie, world, "MIEL-2")
    clock.advance(hours=3)
    expiry.expire_overdue(world.ctx)
    page = unescape(marie.text(f"/shop/{world.shop_id}/producers"))
    buttons = re.findall(r'name="reference" value="([^"]+)">\s*<input type="hidden" '
                         r'name="producer" value="([^"]+)">\s*<button class="primary" '
                         r'name="action" value="take_back">Rendre à Ferme des Trois Chênes',
                         page)
    assert buttons == [("MIEL-2", "ferme")]  # the order still to come has none
    html = scan(marie, world, "MIEL-2", action="take_back", producer="ferme")
    assert result(html, "title") == "✔ Rendue"
    assert 'value="take_back">Rendre à' not in html
