"""What a big manifest costs, in process (issue 15: 5,000 parcels announced in ≤ 2 s).

    .venv/bin/python bench/profile_manifest.py --on-hand 100000 --parcels 5000
    .venv/bin/python bench/profile_manifest.py --on-hand 100000 --parcels 5000 --profile
    .venv/bin/python bench/profile_manifest.py --on-hand 1100 --parcels 5000 \
        --capacity 100 --neighbours 10          # a whole area full: every parcel a reroute

A fresh PostgreSQL database (``relayops_profile_manifest``) with one shop (room for every
parcel, as in ``bench/fast_path.py``), ``--on-hand`` parcels on its shelves (announced through
the manifest service, then put on the shelf in bulk SQL with their check-in events spread over
the last ten days, so the forecast has a history to learn from), then one manifest of
``--parcels`` parcels announced through ``manifests.announce``: the wall and CPU time of that
call are printed, and with ``--profile`` cProfile's top functions (CPU clock). The
announcement includes the saturation check (``reroute.check_manifest``: the forecast of every
touched site, computed and stored). With ``--analyze`` the tables are analysed after seeding,
as autovacuum would have done on a live database: the planner's choices (and PostgreSQL's JIT
compilation, which statistics can trigger) are then those of production.

The hard case (``--capacity``, ``--neighbours``): each shop has ``--capacity`` places, and
``--neighbours`` more shops stand within reach of the first (55 m apart, the shortest reach
is 2 km), the ``--on-hand`` parcels spread over all of them. The manifest, all for the first
shop, then saturates it: each parcel over its forecast's room is offered the neighbours (the
carrier's default policy: a proposal with a place held), or, every neighbour full too, the
no-room policy. The answer's count of reroutes is printed.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

from sqlalchemy import text  # noqa: E402

from bench import seed  # noqa: E402
from relay_ops import heap  # noqa: E402
from relay_ops.db import bulk  # noqa: E402
from relay_ops.services import accounts, forecast, manifests, no_room, reroute  # noqa: E402
from relay_ops.services.context import Ctx  # noqa: E402
from relay_ops.services.principal import SYSTEM  # noqa: E402

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE = "relayops_profile_manifest"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday morning, as the tests have it


def shelve(ctx: Ctx, count: int) -> None:
    """Put the ``count`` announced parcels on the shelf, checked in over the last ten days
    (their rows as a check-in leaves them: ``history.keep_firsts``)."""
    with ctx.db.engine.begin() as connection:
        connection.execute(text("""
            UPDATE parcels SET state = 'ready_for_pickup',
                   checked_in_at = CAST(:now AS timestamptz) - (id % 10) * interval '1 day',
                   first_check_in_at = CAST(:now AS timestamptz) - (id % 10) * interval '1 day',
                   first_attempt_at = CAST(:now AS timestamptz) - (id % 10) * interval '1 day',
                   first_attempt_site_id = site_id,
                   holding_deadline = CAST(:now AS timestamptz) + (10 - id % 10) * interval '1 day'
             WHERE state = 'announced' AND id <= (SELECT min(id) FROM parcels) + :count - 1
        """), {"now": NOW, "count": count})
        connection.execute(text("""
            INSERT INTO parcel_events (parcel_id, at, action, from_state, to_state, actor_kind,
                                       site_id, data)
            SELECT id, checked_in_at, 'check_in', 'announced', 'ready_for_pickup', 'system',
                   site_id, '{}'
              FROM parcels WHERE state = 'ready_for_pickup'
        """))
        connection.execute(text("""
            UPDATE locations SET held = sub.n FROM (
                SELECT min(l.id) AS id, count(p.id) AS n FROM locations l
                  JOIN parcels p ON p.site_id = l.site_id AND p.state = 'ready_for_pickup'
                 GROUP BY l.site_id) sub
             WHERE locations.id = sub.id
        """))


def crowd(ctx: Ctx, capacity: int) -> None:
    """Each shop ``capacity`` places (over its four shelves), the shops 55 m apart in a row
    from the first: all within the shortest reach of each other (2 km) up to 36 of them."""
    with ctx.db.engine.begin() as connection:
        connection.execute(text("UPDATE locations SET capacity = :each"),
                           {"each": max(1, capacity // 4)})
        connection.execute(text(
            "UPDATE sites SET latitude = 47.5 + (id - (SELECT min(id) FROM sites)) * 0.0005"))


# The stages ``--stages`` times: (module, function), each called through its module, so a
# wrapper put there sees every call.
STAGES = [(manifests, "_announce_parcels"), (reroute, "check_manifest"), (reroute, "offer"),
          (no_room, "record_batched"), (forecast, "refresh"), (forecast, "inputs_of_sites"),
          (reroute, "_store_forecasts"), (bulk, "insert_objects"), (bulk, "insert_rows")]


def time_stages() -> dict[str, list[float]]:
    """Wall time and calls of each of :data:`STAGES`, by wrappers (no profiler: its overhead
    falls unevenly on Python and on the database's waits)."""
    spent: dict[str, list[float]] = {}
    for module, name in STAGES:
        label = f"{module.__name__.rsplit('.', 1)[-1]}.{name}"
        spent[label] = [0.0, 0]
        setattr(module, name, _timed(getattr(module, name), spent[label]))
    return spent


def _timed(function: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
            spent[1] += 1
    return timed


def http_poster(world: seed.World, body: dict[str, Any]
                ) -> Callable[[], tuple[int, dict[str, Any]]]:
    """POST ``body`` to /api/v1/manifests through the app's test client, as the bench
    carrier: its key and the request's bytes made before the clock starts."""
    key = accounts.issue_carrier_key(world.ctx, SYSTEM, "bench").token
    world.app.extensions["relay_ops"] = world.ctx  # the requests run on the bench's clock
    client = world.app.test_client()
    raw = json.dumps(body)

    def post() -> tuple[int, dict[str, Any]]:
        response = client.post("/api/v1/manifests", data=raw, content_type="application/json",
                               headers={"Authorization": f"Bearer {key}"})
        return response.status_code, response.get_json()

    return post


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on-hand", type=int, default=100_000)
    parser.add_argument("--parcels", type=int, default=5_000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--admin-url", default=ADMIN)
    parser.add_argument("--analyze", action="store_true",
                        help="ANALYZE the tables after seeding, as autovacuum would on a live "
                             "database (the default measures fresh tables, no statistics)")
    parser.add_argument("--capacity", type=int, default=0,
                        help="places per shop (default: room for every parcel)")
    parser.add_argument("--neighbours", type=int, default=0,
                        help="more shops within reach of the first, as full as it")
    parser.add_argument("--stages", action="store_true",
                        help="print the wall time of the announcement's main stages")
    parser.add_argument("--http", action="store_true",
                        help="POST the manifest through the app (werkzeug's test client, no "
                             "socket) with a carrier key: the request's parsing, validation "
                             "and answer counted in")
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave the objects alive before the request in the collector's "
                             "scans, as web workers did before relay_ops/heap.py")
    args = parser.parse_args()
    seed.recreate_database(args.admin_url.replace("+psycopg", ""), DATABASE)
    url = args.admin_url.rsplit("/", 1)[0] + "/" + DATABASE
    world = seed.build({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "JOBS_IN_PROCESS": False,
                        "NOTIFY_FILE_PATH": "/dev/null"}, shops=1 + args.neighbours)
    if args.capacity:
        crowd(world.ctx, args.capacity)
    ctx = Ctx(db=world.ctx.db, settings=world.ctx.settings,
              clock=lambda: NOW - timedelta(days=11))
    world.ctx = ctx
    seed.announce(world, args.on_hand)
    shelve(ctx, args.on_hand)
    if args.analyze:
        with ctx.db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    world.ctx = Ctx(db=ctx.db, settings=ctx.settings, clock=lambda: NOW)
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    body = {"reference": "profiled", "parcels": [
        {"tracking_number": seed.tracking_number(args.on_hand + n), "site": seed.shop_code(0),
         "recipient": {"name": "Jeanne Martin", "phone": "+33612345678"}}
        for n in range(args.parcels)]}
    stages = time_stages() if args.stages else None
    post = http_poster(world, body) if args.http else None
    # What a ready web worker holds is out of the collector's scans (config/gunicorn.conf.py);
    # here that is the seeded world too, which a worker does not hold.
    if not args.no_freeze:
        heap.freeze_startup_objects()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    if post is not None:
        status, answer = post()
    else:
        status, answer = manifests.announce(world.ctx, world.carrier, body)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if status != 201 or answer["accepted"] != args.parcels:
        raise SystemExit(f"the manifest was not accepted whole: {status} {answer.get('rejected')}")
    reroutes = Counter(r["reroute"]["status"] for r in answer["parcels"] if "reroute" in r)
    print(f"manifest of {args.parcels} with {args.on_hand} on hand: wall {wall:.2f} s, "
          f"web CPU {cpu:.2f} s; reroutes {dict(reroutes) or 'none'}", flush=True)
    for label, (seconds, calls) in (stages or {}).items():
        print(f"  {label}: {seconds:.3f} s in {calls} calls")
    if profiler:
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(35)
        stats.sort_stats("tottime").print_stats(25)
    world.ctx.db.dispose()


if __name__ == "__main__":
    main()
