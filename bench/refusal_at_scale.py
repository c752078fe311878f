"""A full shop's refusal in networks of growing size (issue 16): what a refused check-in costs
when the network holds 10, 1,000 or 10,000 other sites.

    .venv/bin/python bench/refusal_at_scale.py --sites 0 1000 10000 --refusals 30

Each size gets a fresh PostgreSQL database (``--database``, ``relayops_refusal_scale``): the
tests' world (Bourg, full after five L parcels; Voisin 10 km away), then ``--sites`` more shops
drawn uniformly over mainland France (a shelf of 4 places each, every other one without a free
place: no shelf), seeded in multi-row inserts; Bourg's next open day is at risk (forty parcels
announced for it), so each refusal also runs the counter's decision (the reroute planner, then
the no-room policy: none is set, a ``none`` row). Then ``--refusals`` L parcels announced for
today are refused one by one through the API: wall time and statements per refusal (the
engine's ``before_cursor_execute``), and the answer's nearest site with room. A refusal's
answer must be a 409 ``site-at-capacity`` every time (checked).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

from sqlalchemy import event, insert  # noqa: E402

from bench.profile_fast_path import ADMIN, analyze, build_world, fresh_database  # noqa: E402
from relay_ops.db.models import Location, Site  # noqa: E402
from relay_ops.domain.hours import ALWAYS_OPEN  # noqa: E402
from tests.support import World  # noqa: E402

DATABASE = "relayops_refusal_scale"
FRANCE = ((43.0, 50.9), (-4.4, 7.6))  # mainland France's latitudes and longitudes, roughly
TODAY, TOMORROW = "2026-12-01", "2026-12-02"


def seed_sites(world: World, count: int, seed: int) -> None:
    """``count`` shops over France, every other one with no shelf (no room), in chunks of
    multi-row inserts."""
    chance = random.Random(seed)
    with world.ctx.db.transaction() as session:
        for start in range(0, count, 1000):
            rows = [{
                "code": f"net{i}", "name": f"Shop net{i}", "kind": "shop",
                "address": "1 rue de la Poste", "postcode": "44000", "city": "Ailleurs",
                "latitude": chance.uniform(*FRANCE[0]), "longitude": chance.uniform(*FRANCE[1]),
                "area": "countryside", "opening_hours": ALWAYS_OPEN, "services": [],
            } for i in range(start, min(count, start + 1000))]
            ids = session.scalars(insert(Site).returning(Site.id), rows).all()
            with_room = [{"site_id": site_id, "label": "A1", "size_class": "L", "capacity": 4}
                         for n, site_id in enumerate(ids) if n % 2 == 0]
            if with_room:
                session.execute(insert(Location), with_room)


def announce(world: World, prefix: str, count: int, day: str) -> list[str]:
    numbers = [f"{prefix}{i:08d}" for i in range(count)]
    body = {"reference": f"{prefix}-{day}", "expected_date": day, "parcels": [
        {"tracking_number": n, "site": "bourg", "size_class": "L",
         "recipient": {"name": "Jeanne", "phone": "+33612345678"}} for n in numbers]}
    response = world.carrier.post("/manifests", json=body)
    assert response.status_code == 201, response.json
    return numbers


def one_size(sites: int, refusals: int, seed: int, admin_url: str, database: str
             ) -> dict[str, Any]:
    url = fresh_database(admin_url, database)
    world = build_world(url)
    # build_world gives Bourg room for a whole run: take it back to its own 5 L places.
    with world.ctx.db.transaction() as session:
        session.query(Location).filter(Location.site_id == world.shop_id,
                                       Location.label.like("Z%")).delete()
    seed_sites(world, sites, seed)
    today = announce(world, "TODAY", 5 + refusals, TODAY)
    announce(world, "TOMORROW", 40, TOMORROW)
    for number in today[:5]:
        assert world.check_in(number).status_code == 201
    analyze(url)
    counted: list[int] = []
    seen = [0]

    def count(*_: Any) -> None:
        seen[0] += 1

    event.listen(world.ctx.db.engine, "before_cursor_execute", count)
    walls, nearest, decided = [], set(), set()
    for number in today[5:]:
        seen[0] = 0
        began = time.perf_counter()
        response = world.check_in(number)
        walls.append(1000 * (time.perf_counter() - began))
        assert response.status_code == 409, response.json
        assert response.json["type"].endswith("site-at-capacity"), response.json
        counted.append(seen[0])
        nearest.add((response.json.get("nearest_site") or {}).get("code"))
        decided.add((response.json.get("reroute") or {}).get("status", "nothing"))
    event.remove(world.ctx.db.engine, "before_cursor_execute", count)
    world.ctx.db.dispose()
    return {
        "other_sites": sites, "refusals": refusals,
        "wall_ms_median": round(statistics.median(walls), 1),
        "wall_ms_max": round(max(walls), 1),
        "statements_median": statistics.median(counted),
        "nearest_site": sorted(code for code in nearest if code),
        "decided": sorted(decided),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[0, 1000, 10000])
    parser.add_argument("--refusals", type=int, default=30)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--admin-url", default=ADMIN)
    parser.add_argument("--database", default=DATABASE, help="made afresh for each size")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = []
    for sites in args.sites:
        result = one_size(sites, args.refusals, args.seed, args.admin_url, args.database)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
