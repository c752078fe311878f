"""Sites' forecast inputs read together are those each site has read alone (issue 15).

The reroute planner reads the inputs of every neighbour of a full area at once
(``forecast.inputs_of_sites``: each part one statement for all of them). A site's inputs
must not depend on the sites read with it: on a world where each site has a history of its
own (a shop's parcels, flows and closing days, another shop's sent parcels, a third holding
places for the first one's proposals, a locker with a door out of service), every site's
inputs read together equal its own.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from relay_ops.db.models import ClosingDay, Site
from relay_ops.domain import forecast as model
from relay_ops.services import forecast, locker_registry
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.integration.test_forecast import TOMORROW, announce_many
from tests.integration.test_forecast_flows import build_flows_history
from tests.integration.test_forecast_learning import build_history
from tests.integration.test_locker_full_reroute import NEAR, register
from tests.integration.test_reservations import add_shop
from tests.support import World


def same_inputs(alone: model.SiteInputs, together: model.SiteInputs) -> None:
    """Every field equal; the closed days (a function) compared over the windows and the
    horizon."""
    for field in fields(model.SiteInputs):
        if field.name != "closed_on":
            assert getattr(together, field.name) == getattr(alone, field.name), field.name
    days = [alone.today + timedelta(days=i) for i in range(-80, alone.horizon + 1)]
    assert [together.closed_on(d) for d in days] == [alone.closed_on(d) for d in days]


def test_sites_read_together_have_the_inputs_each_has_alone(world: World, clock: Clock
                                                            ) -> None:
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    build_flows_history(world, clock)
    with world.ctx.db.transaction() as session:  # build_history declares the same one again
        session.execute(delete(ClosingDay))
    build_history(world, clock)
    pres = add_shop(world, "pres", 47.5300, 6)
    locker = register(world, NEAR)  # doors, not shelves: its places are counted apart
    locker_registry.set_compartment_service(world.ctx, SYSTEM, locker, 1, in_service=False,
                                            reason="jammed")
    with world.ctx.db.transaction() as session:
        session.add(ClosingDay(site_id=world.other_shop_id, day=clock.now.date()
                               + timedelta(days=3)))
    proposed = [p for p in announce_many(world.carrier, 20, day=TOMORROW)["parcels"]
                if p.get("reroute", {}).get("status") == "proposed"]
    assert proposed  # places held at pres for parcels still announced at the shop
    with world.ctx.db.read() as session:
        sites = list(session.scalars(select(Site).order_by(Site.id)))
        together = forecast.inputs_of_sites(world.ctx, session, sites)
        alone = {site.id: forecast.inputs_for(world.ctx, session, site) for site in sites}
    assert sorted(together) == sorted(alone) == sorted(site.id for site in sites)
    for site in sites:
        same_inputs(alone[site.id], together[site.id])
    shop, other, near = alone[world.shop_id], alone[world.other_shop_id], alone[pres]
    assert alone[locker].capacity == 5 and alone[locker].extra_capacity == {}
    # Each site has inputs of its own, so a part read for the wrong site would show.
    assert shop.held and shop.announced and shop.baseline > 0
    assert shop.hazards != other.hazards and other.flows != shop.flows
    assert near.announced and not near.held and near.capacity == 6
    assert other.closed_on(clock.now.date() + timedelta(days=3))
    assert not shop.closed_on(clock.now.date() + timedelta(days=3))
