"""Season capacity on the pages: a shop's temporary shelves, the dashboard's block."""

from __future__ import annotations

from datetime import date, timedelta

from relay_ops.db.models import SiteForecast
from relay_ops.services import demand_index
from relay_ops.services.principal import SYSTEM
from tests.pages.support import Pages
from tests.support import HOURS, World


def test_a_shop_declares_and_withdraws_a_temporary_shelf(marie: Pages, world: World) -> None:
    page = marie.text(f"/shop/{world.shop_id}")
    assert "Étagères temporaires" in page and "Aucune étagère temporaire déclarée." in page
    response = marie.post(f"/shop/{world.shop_id}/temporary-shelves", {
        "label": "NOEL", "size_class": "L", "capacity": "12",
        "valid_from": "03/12/2026", "valid_until": "24/12/2026"})
    assert response.status_code == 303
    page = marie.text(f"/shop/{world.shop_id}")
    assert "NOEL" in page and "12 places (L) du 3 déc. 2026 au 24 déc. 2026" in page
    listed = world.shopkeeper.get(f"/sites/{world.shop_id}/temporary-shelves").json["items"]
    marie.post(f"/shop/{world.shop_id}/temporary-shelves/{listed[0]['id']}/delete")
    assert "Aucune étagère temporaire déclarée." in marie.text(f"/shop/{world.shop_id}")


def test_a_bad_temporary_shelf_is_refused_in_words(marie: Pages, world: World) -> None:
    reversed_ = marie.post(f"/shop/{world.shop_id}/temporary-shelves", {
        "label": "T1", "capacity": "5", "valid_from": "24/12/2026", "valid_until": "03/12/2026"})
    assert reversed_.status_code == 422
    huge = marie.post(f"/shop/{world.shop_id}/temporary-shelves", {
        "label": "T1", "capacity": "99999999999", "valid_from": "03/12/2026",
        "valid_until": "24/12/2026"})
    assert huge.status_code == 422 and "en chiffres" in huge.get_data(as_text=True)
    american = marie.post(f"/shop/{world.shop_id}/temporary-shelves", {
        "label": "T1", "capacity": "5", "valid_from": "12/24/2026", "valid_until": "12/31/2026"})
    assert american.status_code == 422
    assert world.shopkeeper.get(f"/sites/{world.shop_id}/temporary-shelves").json["items"] == []


def test_the_dashboard_recommends_extra_places_per_shop(operator: Pages, world: World) -> None:
    with world.ctx.db.transaction() as session:
        for site_id, highs, capacity in ((world.shop_id, [10, 18, 22, 16, 14, 12, 21, 9], 15),
                                         (world.other_shop_id, [5] * 8, 10)):
            for i, high in enumerate(highs):
                session.add(SiteForecast(
                    site_id=site_id, day=date(2026, 12, 1) + timedelta(days=i),
                    computed_at=world.ctx.now(), predicted=high - 1.0, low=0, high=high,
                    capacity=capacity, arrivals=1.0, closed=False, at_risk=high > capacity))
    html = operator.text("/ops")
    block = html.split('id="season-title"')[1]
    assert "Capacité de saison" in html
    bourg = block.split("Shop bourg")[1].split("</tr>")[0]
    assert "7 places du 2 déc. 2026 au 4 déc. 2026" in bourg
    assert "6 places du 7 déc. 2026 au 7 déc. 2026" in bourg
    assert "NOEL" not in bourg  # no temporary shelf yet
    voisin = block.split("Shop voisin")[1].split("</tr>")[0]
    assert "✔ aucune place en plus" in voisin
    # A shelf the shop declares shows beside the recommendation (declaring computes the
    # forecast again: tests/integration/test_season.py checks that the shelf is counted).
    assert world.shopkeeper.post(f"/sites/{world.shop_id}/temporary-shelves", json={
        "label": "NOEL", "size_class": "L", "capacity": 7, "valid_from": "2026-12-02",
        "valid_until": "2026-12-04"}).status_code == 201
    block = operator.text("/ops").split('id="season-title"')[1]
    bourg = block.split("Shop bourg")[1].split("</tr>")[0]
    assert "NOEL : 7 places du 2 déc. 2026 au 4 déc. 2026" in bourg


def test_the_dashboard_sizes_the_overflow_storage_and_names_the_shops_it_misses(
    operator: Pages, world: World
) -> None:
    """Bourg's overflow goes to the town hall room within its reach (1.1 km); voisin's
    (10 km west, 9.8 km from the room: within reach) too, until the room's season ends."""
    room = world.operator.post("/sites", json={
        "code": "salle", "name": "Salle du conseil", "kind": "storage",
        "address": "Mairie", "postcode": "44000", "city": "Bourg", "latitude": 47.5067,
        "longitude": -1.2917, "opening_hours": HOURS, "season": {"to": "2026-12-05"},
        "locations": [{"label": "T1", "size_class": "L", "capacity": 3}]})
    assert room.status_code == 201, room.json
    with world.ctx.db.transaction() as session:
        for site_id, highs, capacity in ((world.shop_id, [10, 18, 22, 16, 14, 12, 21, 9], 15),
                                         (world.other_shop_id, [5, 5, 5, 5, 5, 13, 5, 5], 10),
                                         (room.json["id"], [0] * 8, 3)):
            for i, high in enumerate(highs):
                session.add(SiteForecast(
                    site_id=site_id, day=date(2026, 12, 1) + timedelta(days=i),
                    computed_at=world.ctx.now(), predicted=high - 1.0, low=0, high=high,
                    capacity=capacity, arrivals=1.0, closed=False, at_risk=high > capacity))
    block = operator.text("/ops").split('id="storage-title"')[1]
    assert "Stockage de débordement" in operator.text("/ops")
    salle = block.split("Salle du conseil")[1].split("</tr>")[0]
    assert "bourg, voisin" in salle
    # bourg: 3, 7, 1 beyond its places on the 2nd to the 4th; the room has 3.
    assert "4 places du 3 déc. 2026 au 3 déc. 2026" in salle
    # expected: 1 under each upper bound here, so bourg short of 6 on the 3rd (3 for the room)
    assert "Besoin attendu" in block
    assert salle.split("4 places du 3 déc. 2026")[1].count("3 places du 3 déc. 2026") == 1
    unserved = block.split('id="storage-unserved"')[1].split("</p>")[0]
    assert "Aucun site de stockage ouvert à portée" in unserved
    assert "Shop bourg (6 places au plus)" in unserved
    assert "Shop voisin (3 places au plus)" in unserved


def test_the_dashboard_says_whether_the_season_ahead_is_declared(operator: Pages,
                                                                   world: World) -> None:
    """Without a declared season the week-ahead forecast counts ordinary days (more than a
    quarter short before the benchmark's December peak): the operator is told, and how to
    declare it; once declared, what the forecasts count."""
    block = operator.text("/ops").split('id="season-title"')[1]
    missing = block.split('id="demand-missing"')[1].split("</p>")[0]
    assert "Aucune saison déclarée du 1 déc. 2026 au 8 déc. 2026" in missing
    assert "relay-ops demand-index from-last-year" in missing
    assert 'id="demand-declared"' not in block
    demand_index.declare(world.ctx, SYSTEM, [(date(2026, 12, 3), 1.4), (date(2026, 12, 4), 1.8),
                                             (date(2026, 12, 20), 2.5)])
    block = operator.text("/ops").split('id="season-title"')[1]
    declared = block.split('id="demand-declared"')[1].split("</p>")[0]
    # Only the days of the forecasts' horizon: 20 December is beyond it.
    assert "du 3 déc. 2026 au 4 déc. 2026 : 2 jour(s), jusqu'à 1,8 fois" in declared
    assert 'id="demand-missing"' not in block
