"""A site without a day of history is forecast from its neighbours, not as a site that gets
nothing (issue 16: a village shop closed on Mondays, forecast on the Tuesday of its first
week, said 0 parcels for certain where 40 to 140 places were wanted).

Its rate is its places times the first attempts per place that its nearest sites of its kind
learned for themselves, the spread between them its level's uncertainty; their lead shares
pooled are its own. A site open for weeks without a parcel has a history: none."""

from __future__ import annotations

from datetime import timedelta

import pytest

from relay_ops.db.models import Site
from relay_ops.domain import forecast as model
from relay_ops.services import forecast, forecast_learning, sites
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.integration.test_fast_path_statements import listing, statements
from tests.integration.test_forecast import near_shop
from tests.integration.test_forecast_learning import build_history
from tests.support import World, shop


def inputs_of(world: World, site_id: int) -> model.SiteInputs:
    with world.ctx.db.read() as session:
        site = session.get(Site, site_id)
        assert site is not None
        return forecast.inputs_for(world.ctx, session, site)


def test_a_new_shop_is_forecast_from_its_neighbours_demand_per_place(
    world: World, clock: Clock
) -> None:
    build_history(world, clock)  # "bourg" (15 places), a few first refusals at "voisin" (10)
    new_id = near_shop(world, capacity=30)
    bourg, voisin = inputs_of(world, world.shop_id), inputs_of(world, world.other_shop_id)
    assert bourg.baseline > 1 and voisin.baseline > 0

    new = inputs_of(world, new_id)

    network = model.network_rate([(bourg.baseline, 15), (voisin.baseline, 10)])
    assert network is not None
    assert new.baseline > 0
    assert new.baseline == pytest.approx(network.per_place * 30)
    assert new.rate_var == pytest.approx((network.per_place_var * 30 * 30, 0.0, 0.0))
    assert new.trend == 0.0 and new.rate_drift == world.ctx.settings.forecast.rate_drift
    # Their announcements' leads: most of tomorrow is announced, little of next week.
    assert len(new.lead_share) == 8 and new.lead_share[1] > new.lead_share[7]
    week = model.forecast(new)[7]
    assert week.high > week.predicted > 0


def test_its_neighbours_are_read_in_five_statements_whatever_their_parcels(
    world: World, clock: Clock
) -> None:
    build_history(world, clock)
    new_id = near_shop(world, capacity=30)
    with world.ctx.db.read() as session, statements(world.ctx) as seen:
        site = session.get(Site, new_id)
        assert site is not None
        index = forecast_learning.demand_index(world.ctx, session, clock.now)
        seen.clear()
        found = forecast_learning.neighbours_demand(world.ctx, session, [site], clock.now,
                                                    index)
    assert site.id in found and len(seen) == 5, listing(seen)


def test_new_sites_forecast_together_read_one_statement_each_and_four_for_all(
    world: World, clock: Clock
) -> None:
    """The sweep reads its sites together: new sites' neighbours are found one statement a
    site, then read for all of them at once; each site's rate is the one it has alone."""
    build_history(world, clock)
    new_ids = [near_shop(world, code, capacity=places)
               for code, places in (("pres", 30), ("loin", 12), ("gare", 7))]
    with world.ctx.db.read() as session, statements(world.ctx) as seen:
        new = [site for site in (session.get(Site, i) for i in new_ids) if site is not None]
        index = forecast_learning.demand_index(world.ctx, session, clock.now)
        alone = {site.id: forecast_learning.neighbours_demand(
            world.ctx, session, [site], clock.now, index)[site.id] for site in new}
        seen.clear()
        together = forecast_learning.neighbours_demand(world.ctx, session, new, clock.now,
                                                       index)
    assert together == alone and len(seen) == 3 + 4, listing(seen)
    assert len({rate.level for rate, _ in together.values()}) == 3  # per place: not alike


def test_a_shop_open_for_weeks_without_a_parcel_is_known_to_get_none(
    world: World, clock: Clock
) -> None:
    """Its open days without parcels are its history: the neighbours do not speak for it."""
    build_history(world, clock)
    clock.advance(days=-40)
    quiet_id = near_shop(world, capacity=30)
    clock.advance(days=40)
    quiet = inputs_of(world, quiet_id)
    assert quiet.baseline == 0.0 and quiet.rate_var == (0.0, 0.0, 0.0)


def test_without_a_neighbour_of_its_kind_within_reach_nothing_is_guessed(
    world: World, clock: Clock
) -> None:
    build_history(world, clock)
    far = shop("loin", 48.5, -1.29, [("A1", "L", 30)])  # 110 km north
    far_id = sites.create_site(world.ctx, SYSTEM, far)["id"]
    lone = inputs_of(world, far_id)
    assert lone.baseline == 0.0 and lone.rate_var == (0.0, 0.0, 0.0)
    near = inputs_of(world, near_shop(world, capacity=30))
    assert near.baseline > 0  # the same world, a shop within reach: guessed
    assert forecast_learning.PRIOR_REACH_KM < 110


def test_the_day_a_shop_was_created_is_not_a_day_of_its_demand(
    world: World, clock: Clock
) -> None:
    """Registered yesterday morning, a Monday it opens: no carrier could announce it a parcel
    yesterday, so yesterday's zero is no history and its neighbours still speak for it."""
    build_history(world, clock)
    clock.advance(days=-1)
    new_id = near_shop(world, capacity=30)
    clock.advance(days=1)
    with world.ctx.db.read() as session:
        site = session.get(Site, new_id)
        assert site is not None
        closed = forecast.site_closed_on(session, site)
        assert not closed(clock.now.date() - timedelta(days=1))
        daily = forecast_learning.first_attempts_per_open_day(
            world.ctx, session, site, clock.now, closed)
    assert daily == []
    assert inputs_of(world, new_id).baseline > 0
