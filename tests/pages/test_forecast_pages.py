"""The occupancy forecast on the operator's dashboard and on the shop page."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from relay_ops.db.models import Parcel, PlaceReservation
from relay_ops.services import forecast_sweep, forecast_views
from relay_ops.services.principal import Principal, Role
from tests.pages.support import Pages
from tests.support import World

TOMORROW = "2026-12-02"  # the test clock is Tuesday 1 December 2026


def _crowd(world: World, n: int = 30) -> None:
    numbers = [f"CROWD{i:06d}" for i in range(n)]
    assert world.announce(*numbers, expected_date=TOMORROW).status_code == 201


def test_the_shop_page_draws_the_forecast_and_its_table(marie: Pages, world: World) -> None:
    world.ready("RR123456785FR")
    page = marie.text(f"/shop/{world.shop_id}")
    assert "Prévision des 7 prochains jours" in page
    assert "<title>Prévision pour Shop bourg</title>" in page
    assert 'class="band"' in page and 'class="line-capacity"' in page
    assert "La prévision sous forme de tableau" in page
    # today and the 7 days after, in the table (each cell named by its column on a phone)
    assert page.count('<tr><td data-label="Jour">') >= 8
    assert "Aucun jour à risque" in page


def test_days_at_risk_are_flagged_in_words(marie: Pages, world: World) -> None:
    _crowd(world)
    page = marie.text(f"/shop/{world.shop_id}")
    assert "Jours à risque" in page
    assert "⚠ à risque" in page  # in the table, not only as colour
    assert 'class="tick flag-risk">à risque</text>' in page  # and under the chart's day
    assert "jour(s) risquent de dépasser 15 places" in page  # the chart's description


def test_closing_days_show_in_the_forecast(marie: Pages, world: World) -> None:
    marie.post(f"/shop/{world.shop_id}/closing-days", {"day": "2026-12-03"})
    page = marie.text(f"/shop/{world.shop_id}")
    assert 'class="tick flag-closed">fermé</text>' in page
    assert '<td data-label="Statut" class="closed">fermé</td>' in page


def test_a_shopkeeper_sees_no_forecast_of_another_shop(marie: Pages, world: World) -> None:
    marie.text(f"/shop/{world.other_shop_id}", status=404)
    marie.text("/ops", status=403)
    mine = forecast_views.overview(
        world.ctx, Principal(Role.SHOPKEEPER, user_id=2, site_ids=frozenset({world.shop_id})))
    assert [f["code"] for f in mine] == ["bourg"]


def test_the_dashboard_lists_every_sites_forecast(operator: Pages, world: World) -> None:
    _crowd(world)
    html = operator.text("/ops")
    assert 'id="forecast-table"' in html
    assert "Shop bourg" in html and "Shop voisin" in html
    assert len(re.findall(r'<td data-label="[^"]+" class="risk">⚠', html)) >= 1
    assert "/ 15" in html and "/ 10" in html  # against each site's capacity
    assert html.count('<svg class="chart"') == 2  # the forecast chart waits for a site
    one = operator.text(f"/ops?site={world.shop_id}")
    assert one.count('<svg class="chart"') == 3
    assert "<title>Prévision pour Shop bourg</title>" in one


def test_the_dashboard_reads_stored_forecasts(operator: Pages, world: World) -> None:
    forecast_sweep.forecast_all(world.ctx)
    _crowd(world, 5)  # announcing refreshes bourg's stored forecast in its transaction
    views = {f["code"]: f for f in forecast_views.overview(world.ctx, Principal(Role.OPERATOR))}
    assert len(views["bourg"]["days"]) == 8
    assert views["bourg"]["days"][1]["arrivals"] >= 4


def test_the_shop_page_shows_the_places_kept_for_rerouted_parcels(
    marie: Pages, world: World
) -> None:
    """A place held at this shop tomorrow for a parcel still announced at another site (a
    proposal's first option): the table's "Places gardées" says 1 that day, 0 the others."""
    assert world.announce("KEPT00000001", site="voisin", expected_date=TOMORROW).status_code == 201
    with world.ctx.db.transaction() as session:
        parcel_id = session.scalar(
            select(Parcel.id).where(Parcel.tracking_number == "KEPT00000001"))
        session.add(PlaceReservation(
            site_id=world.shop_id, day=date.fromisoformat(TOMORROW), parcel_id=parcel_id,
            reason="test", status="held", created_at=world.ctx.now()))
    page = marie.text(f"/shop/{world.shop_id}")
    kept = dict(re.findall(
        r'<td data-label="Jour">([^<]+)</td>.*?<td data-label="Places gardées">(\d+)</td>', page))
    assert len(kept) >= 8
    assert sorted(kept.values()) == ["0"] * (len(kept) - 1) + ["1"]
