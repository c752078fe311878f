"""The producer's own page: it signs in with its API key (as a carrier does) and sees its
orders and their states, and what it has to take back; never another producer's."""

from __future__ import annotations

import re
from html import unescape

import pytest

from relay_ops.services import (
    accounts,
    expiry,
    producer_announcements,
    producers,
    site_locations,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.pages.support import Pages
from tests.support import World


@pytest.fixture
def farms(world: World) -> World:
    for code, name in (("ferme", "Ferme des Trois Chênes"), ("rucher", "Rucher du Bourg")):
        producers.create_producer(world.ctx, SYSTEM, code=code, name=name)
    site_locations.add_locations(world.ctx, SYSTEM, world.shop_id, [
        {"label": "F1", "size_class": "M", "capacity": 2, "refrigerated": True}])
    sites.set_services(world.ctx, SYSTEM, world.shop_id, ["receive", "cold"])
    return world


def announce(world: World, producer_id: int, reference: str, **extra: object) -> None:
    order = producer_announcements.Order(reference=reference, site="bourg",
                                         phone="+33611223344", size_class="S",
                                         **extra)  # type: ignore[arg-type]
    status, _ = producer_announcements.announce(
        world.ctx, Principal(Role.PRODUCER, producer_id=producer_id), order)
    assert status == 201


def key(world: World, code: str) -> str:
    return producers.issue_producer_key(world.ctx, SYSTEM, code).token


def rows(html: str, table: str) -> list[str]:
    found = re.search(rf'<table id="{table}">(.*?)</table>', html, re.S)
    assert found, table
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.S)[1:]]


def test_a_producer_signs_in_with_its_key_and_sees_its_orders(
    farms: World, marie: Pages, clock: Clock
) -> None:
    announce(farms, 1, "LAIT-1", keep_cold=True, holding_hours=2)
    announce(farms, 1, "PAIN-1")
    announce(farms, 2, "MIEL-1")  # another producer's
    marie.post(f"/shop/{farms.shop_id}/producers", {"reference": "LAIT-1"})
    clock.advance(hours=3)
    expiry.expire_overdue(farms.ctx)
    ferme_key = key(farms, "ferme")
    ferme = Pages.producer(farms, ferme_key)
    with ferme.client.session_transaction() as session:
        assert ferme_key not in str(dict(session))  # the browser keeps a session, not the key
    html = unescape(ferme.text("/producer"))
    orders = rows(html, "orders")
    assert len(orders) == 2 and not any("MIEL-1" in r for r in orders)
    assert any(r.startswith("LAIT-1 ❄") and "Shop bourg" in r and "expiré — à reprendre" in r
               and "F1" in r for r in orders)
    assert any(r.startswith("PAIN-1") and "annoncé" in r for r in orders)
    assert rows(html, "take-back")[0].startswith("LAIT-1")
    assert "Shop bourg 1 rue de la Poste, Bourg" in rows(html, "take-back")[0]
    assert '>Mes commandes</a>' in html
    # Its state filter; an unknown state shows everything rather than an error page.
    only = unescape(ferme.text("/producer?state=announced"))
    assert [r.split()[0] for r in rows(only, "orders")] == ["PAIN-1"]
    assert len(rows(unescape(ferme.text("/producer?state=nonsense")), "orders")) == 2
    # Taken back at the counter, it leaves the list and says so.
    marie.post(f"/shop/{farms.shop_id}/producers",
               {"reference": "LAIT-1", "producer": "ferme", "action": "take_back"})
    after = unescape(ferme.text("/producer"))
    assert "Rien à reprendre." in after
    assert any("reprise par vous" in r for r in rows(after, "orders"))


def test_the_producer_page_in_english(farms: World) -> None:
    announce(farms, 1, "PAIN-1")
    ferme = Pages.producer(farms, key(farms, "ferme"))
    ferme.post("/lang/en", {"next": "/"})
    html = unescape(ferme.text("/producer"))
    assert "My orders" in html and "Nothing to take back." in html
    assert "announced" in rows(html, "orders")[0]


def test_only_a_producer_key_opens_the_producer_page(farms: World, marie: Pages) -> None:
    anonymous = Pages(farms.client.application.test_client(), farms)
    assert anonymous.get("/producer").headers["Location"].startswith("/producer/login")
    anonymous.refresh_csrf("/producer/login")
    for wrong in ("pk_x.nope", accounts.issue_carrier_key(farms.ctx, SYSTEM, "acme").token):
        assert anonymous.post("/producer/login", {"api_key": wrong}).status_code == 401
    assert marie.get("/producer").status_code == 403
    ferme = Pages.producer(farms, key(farms, "ferme"))
    assert ferme.get(f"/shop/{farms.shop_id}/producers").status_code == 403
    assert ferme.get("/carrier").status_code == 403
    assert ferme.get("/").headers["Location"] == "/producer"
    # A producer key does not open the carriers' sign-in either.
    carrier_login = Pages(farms.client.application.test_client(), farms)
    carrier_login.refresh_csrf("/carrier/login")
    assert carrier_login.post("/carrier/login",
                              {"api_key": key(farms, "rucher")}).status_code == 401
