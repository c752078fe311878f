"""The sites near a full one: every full shop's refusal names the nearest with room
(``site_search.nearest_with_room``) and the reroute planner weighs those within reach
(``reroute_planner.Planner``), so what they read must not grow with the network (a national
one has thousands of sites): the sites near a point are found by their coordinates' index
(the box of a circle, ``geo.box_around``)."""

from __future__ import annotations

from datetime import date

from relay_ops.db.models import Site
from relay_ops.services import sites
from relay_ops.services.principal import SYSTEM
from relay_ops.services.reroute_planner import Planner
from relay_ops.services.site_search import ROOM_READ_BATCH, nearest_with_room
from tests.integration.test_fast_path_statements import counted, listing
from tests.integration.test_forecast import near_shop
from tests.support import World, shop

BOURG = (47.5167, -1.2917)  # the world's shop; "voisin" is 10 km west


def add_shops(world: World, prefix: str, count: int, *, lat: float, room: bool) -> None:
    """``count`` shops on a line at latitude ``lat``: with a free place each, or with no
    shelf at all (no room)."""
    for i in range(count):
        places = [("A1", "M", 4)] if room else []
        sites.create_site(world.ctx, SYSTEM,
                          shop(f"{prefix}{i}", lat, BOURG[1] + 0.001 * i, places))


def nearest(world: World, limit: int) -> tuple[list[tuple[str, float, int]], list[str]]:
    def search() -> list[tuple[str, float, int]]:
        with world.ctx.db.read() as session:
            return [(site.code, round(km, 1), room.free) for site, km, room in nearest_with_room(
                world.ctx, session, *BOURG, exclude=world.shop_id, limit=limit)]
    return counted(world.ctx, search)


def test_the_nearest_with_room_is_found_past_the_full_ones_nearer(world: World) -> None:
    # More full shops between Bourg and Voisin than one batch reads.
    add_shops(world, "full", ROOM_READ_BATCH + 4, lat=BOURG[0] + 0.01, room=False)
    found, _ = nearest(world, limit=1)
    assert found == [("voisin", 10.0, 10)]
    # Shops 200 km north with room come after Voisin, nearest first.
    add_shops(world, "north", 3, lat=BOURG[0] + 1.8, room=True)
    found, _ = nearest(world, limit=3)
    assert [code for code, _, _ in found] == ["voisin", "north0", "north1"]
    assert all(free == 4 for _, _, free in found[1:])


def test_the_circles_searched_one_after_the_other_keep_the_nearest_first(world: World) -> None:
    """Sites with room 15, 17 and 70 km north: on either side of the first circle (16 km)
    and of the second (64 km), they come nearest first, after Voisin (10 km)."""
    for code, km in (("n70", 70.0), ("n17", 17.0), ("n15", 15.0)):
        sites.create_site(world.ctx, SYSTEM, shop(code, BOURG[0] + km / 111.195, BOURG[1],
                                                  [("A1", "M", 4)]))
    found, _ = nearest(world, limit=3)
    assert found == [("voisin", 10.0, 10), ("n15", 15.0, 4), ("n17", 17.0, 4)]
    found, _ = nearest(world, limit=5)
    assert [code for code, _, _ in found] == ["voisin", "n15", "n17", "n70"]


def test_its_statements_do_not_grow_with_the_sites_it_does_not_need(world: World) -> None:
    add_shops(world, "full", ROOM_READ_BATCH + 4, lat=BOURG[0] + 0.01, room=False)
    add_shops(world, "far", 40, lat=BOURG[0] + 2.0, room=True)
    found, seen = nearest(world, limit=2)
    assert [code for code, _, _ in found] == ["voisin", "far0"]
    add_shops(world, "farther", 200, lat=BOURG[0] + 3.0, room=True)
    found_again, seen_again = nearest(world, limit=2)
    assert found_again == found
    assert len(seen_again) == len(seen), listing(seen_again)
    # Within 16 km, the ranking and two batches (sixteen full shops, then four and Voisin);
    # within 64 km, the ranking alone; within 256 km, the ranking and a batch of the far
    # ones. A batch: its sites, their shelf places and their parcels held.
    assert len(seen) == (1 + 2 * 3) + 1 + (1 + 3), listing(seen)


def test_the_reroute_planner_loads_the_sites_in_reach_not_the_network(world: World) -> None:
    near_shop(world)  # "pres", 1.5 km north of Bourg; "voisin" is 10 km west, out of reach
    add_shops(world, "far", 30, lat=BOURG[0] + 2.0, room=True)
    with world.ctx.db.transaction() as session:
        origin = session.get(Site, world.shop_id)
        assert origin is not None
        planner = Planner(world.ctx, session)
        options = planner.options(origin, date(2026, 12, 2))
        assert [option.site.code for option in options] == ["pres"]
        # Voisin is in the box of Bourg's reach, the shops 220 km north are never loaded.
        assert {site.code for site in planner.sites_near(origin)} == {"bourg", "pres", "voisin"}
        loaded = {o.code for o in session.identity_map.values() if isinstance(o, Site)}
        assert not any(code.startswith("far") for code in loaded), loaded


def test_the_public_directory_reads_its_sites_in_the_same_statements_whatever_their_number(
        world: World) -> None:
    """A resident's app asks for the sites near them; anyone may ask: a request must not cost
    a statement per site of the network."""
    assert world.other_shopkeeper.post(f"/sites/{world.other_shop_id}/closing-days",
                                       json={"day": "2026-12-01"}).status_code == 201

    def near_bourg() -> list[tuple[str, bool]]:
        response = world.anonymous.get("/sites", near=f"{BOURG[0]},{BOURG[1]}", radius_km=12)
        assert response.status_code == 200, response.json
        return [(item["code"], item["open_now"]) for item in response.json["items"]]

    def everything() -> int:
        return len(world.anonymous.get("/sites").json["items"])

    add_shops(world, "far", 10, lat=BOURG[0] + 2.0, room=True)
    listed, seen = counted(world.ctx, near_bourg)
    # Voisin is closed today (a closing day); Bourg is open at 09:00 on a Tuesday.
    assert listed == [("bourg", True), ("voisin", False)]
    # The closing days listed are those that say whether a site is open now: read once.
    assert sum("FROM closing_days" in statement for statement in seen) == 1, listing(seen)
    total, seen_all = counted(world.ctx, everything)
    assert total == 12
    add_shops(world, "farther", 100, lat=BOURG[0] + 3.0, room=True)
    again, seen_again = counted(world.ctx, near_bourg)
    assert again == listed and len(seen_again) == len(seen), listing(seen_again)
    total, seen_all_again = counted(world.ctx, everything)
    assert total == 112 and len(seen_all_again) == len(seen_all), listing(seen_all_again)
