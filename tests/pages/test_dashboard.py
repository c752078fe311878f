from __future__ import annotations

import re
from html import unescape

from flask import Flask

from relay_ops.services import checkin, pickup, sites, stats
from relay_ops.services.principal import SYSTEM, Principal, Role
from relay_ops.web.pages.dashboard import Panel, register_panel
from tests.conftest import Clock
from tests.pages.support import Pages
from tests.support import World, shop


def test_occupancy_and_flows_come_from_the_parcel_events(world: World, clock: Clock) -> None:
    world.ready("RR123456785FR")
    world.ready("PARCELSTAT0001")
    # Another recipient: the same one's parcels would share a code (and one pickup).
    world.announce("PARCELSTAT0002", recipient={"name": "Paul", "phone": "+33698765432"})
    clock.advance(days=1)  # the API tokens expire meanwhile: the next day goes to the services
    shopkeeper = Principal(Role.SHOPKEEPER, user_id=2, site_ids=frozenset({world.shop_id}))
    parcel = checkin.check_in(world.ctx, shopkeeper, world.shop_id, "PARCELSTAT0002")["parcel"]
    pickup.pick_up(world.ctx, shopkeeper, world.shop_id, code=world.code_of(parcel["id"]))
    series = stats.daily(world.ctx, Principal(Role.OPERATOR), None, days=3)
    assert [(d.arrivals, d.pickups, d.held) for d in series.days] == [
        (0, 0, 0), (2, 0, 2), (1, 1, 2)]
    assert series.capacity == 25  # bourg 10 + 5, voisin 10


def test_a_shopkeeper_counts_only_her_shops(world: World) -> None:
    world.ready("RR123456785FR")
    paul = Principal(Role.SHOPKEEPER, user_id=3, site_ids=frozenset({world.other_shop_id}))
    assert sum(d.arrivals for d in stats.daily(world.ctx, paul, None, days=2).days) == 0


def test_the_dashboard_draws_its_charts(operator: Pages, world: World) -> None:
    world.ready("RR123456785FR")
    html = operator.text("/ops")
    assert html.count('<svg class="chart"') == 2
    assert "<title>Colis par jour</title>" in html and "<title>Occupation</title>" in html
    assert 'class="bar-in"' in html and 'class="line-held"' in html
    assert "Shop bourg" in html and "Shop voisin" in html
    assert "1 place occupée sur 15" in html  # one place: the singular
    one_site = operator.text(f"/ops?site={world.other_shop_id}")
    assert "aujourd&#39;hui 0 pour 10 places" in one_site


def test_expiring_and_returning_parcels_are_listed(operator: Pages, world: World,
                                                   clock: Clock) -> None:
    world.ready("RR123456785FR")
    clock.advance(days=9)
    operator = Pages.signed_in(world, "op")
    html = operator.text("/ops")
    assert "Expirent sous 48 h (1)" in html


def test_other_parts_can_add_a_panel(app: Flask, operator: Pages, tmp_path: object) -> None:
    app.jinja_env.globals["panel_test_template"] = True
    from jinja2 import ChoiceLoader, DictLoader

    app.jinja_loader = ChoiceLoader(  # type: ignore[assignment]
        [DictLoader({"lockers/panel.html": "<p>{{ data.online }} consignes en ligne</p>"}),
         app.jinja_loader])
    register_panel(app, Panel("lockers", "lockers/panel.html", lambda principal: {"online": 3}))
    assert "3 consignes en ligne" in operator.text("/ops")


def test_the_dashboard_shows_each_site_s_volumes_per_flow(
    operator: Pages, world: World, clock: Clock
) -> None:
    world.ready("RR123456785FR")
    clock.advance(days=1)
    world.sign_in_again()
    world.ready("PARCELSTAT0003")
    operator = Pages.signed_in(world, "op")
    html = operator.text("/ops")
    assert "Volumes par flux" in html
    row = re.search(r'<tr id="volumes-bourg">(.*?)</tr>', html, re.S)
    assert row
    cells = re.findall(r'<td data-label="([^"]+)">(.*?)</td>', row.group(1), re.S)
    figures = {unescape(label): re.sub(r"<[^>]+>|\s+", "", value) for label, value in cells}
    assert figures["Reçus"] == "1/2"  # today, then the last 7 days
    assert figures["Déposés pour l'envoi"] == "0/0"
    assert len(figures) == 9
    total = re.search(r'<tr id="volumes-total">(.*?)</tr>', html, re.S)
    assert total and "<strong>1</strong> <small>/ 2</small>" in total.group(1)


def test_the_dashboard_counts_what_the_no_room_policy_decided(operator: Pages,
                                                              world: World) -> None:
    assert "Aucun colis sans place dans les jours qui viennent." in operator.text("/ops")
    storage = dict(shop("salle", 47.5067, -1.2917, [("T1", "L", 3)]), kind="storage",
                   name="Salle des fêtes")
    sites.create_site(world.ctx, SYSTEM, storage)
    assert world.operator.post("/no-room-policies", json={
        "steps": ["storage", "hold"]}).status_code == 201
    body = {"reference": "PEAK", "expected_date": "2026-12-02", "parcels": [
        {"tracking_number": f"DASH{i:08d}", "site": "bourg",
         "recipient": {"name": "Jeanne", "phone": "+33612345678"}} for i in range(24)]}
    parcels = world.carrier.post("/manifests", json=body).json["parcels"]
    steps = [p["reroute"]["decision"]["step"] for p in parcels if "saturation" in p]
    assert steps.count("storage") >= 1 and steps.count("hold") >= 1  # 3 places, then held
    html = operator.text("/ops")
    assert "Aucune place à portée" in html and 'id="no-room-table"' in html
    row = re.search(r'<td data-label="Site">bourg</td>(.*?)</tr>', html, re.S)
    assert row is not None
    counts = [int(n) for n in re.findall(r'<td data-label="[^"]+">(?:⚠ <strong>)?(\d+)', row[1])]
    assert counts == [steps.count("storage"), steps.count("hold"), 0, 0]
    assert "stockage de débordement" in html  # the kind of the new site
