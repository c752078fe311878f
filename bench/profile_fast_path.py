"""Where the web process's CPU goes in a check-in and a pickup by code (issue 15), in process.

    .venv/bin/python bench/profile_fast_path.py --requests 300            # CPU ms per request
    .venv/bin/python bench/profile_fast_path.py --requests 300 --profile  # and cProfile's top
    .venv/bin/python bench/profile_fast_path.py --requests 40 --round-trips  # and round trips

A fresh PostgreSQL database (``relayops_profile_fast``), the tests' small world (two shops, a
carrier, a shopkeeper), ``--requests`` parcels announced in one manifest and the tables
analysed (``--no-analyze``: not); then each is checked in through Flask's test client, then
each picked up by its code. The process's CPU time (``time.process_time``) per request is
printed for each phase: the web side only (PostgreSQL's backends are another process;
``bench/fast_path.py`` measures both under gunicorn). Flask's test client adds its own WSGI
environ building, a little more than a real server's.

``--refused SHARE``: that share of the check-ins is refused (a number no carrier announced:
409), each followed by a check-in that succeeds; a refusal rolls its transaction back, which
once made the connection plan every statement again (relay_ops/db/keep_prepared.py).
PostgreSQL's CPU per request is printed too, from the benchmark database's backends (/proc).

``--round-trips``: every pooled connection is traced by libpq, and each phase also prints the
client's round trips to PostgreSQL per request (each extended-protocol ``Sync`` or simple
``Query`` it sent: statements, ``BEGIN``, ``COMMIT``, pings), a count load does not blur.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

from sqlalchemy import create_engine, event, text  # noqa: E402

from relay_ops import create_app  # noqa: E402
from relay_ops.db import migrate  # noqa: E402
from relay_ops.services import site_locations  # noqa: E402
from relay_ops.services.context import Ctx  # noqa: E402
from relay_ops.services.principal import SYSTEM  # noqa: E402
from tests.support import World, make_world  # noqa: E402

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DATABASE = "relayops_profile_fast"


def fresh_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def analyze(url: str) -> None:
    """Statistics on every table, as autovacuum keeps them on a database in service: without
    them PostgreSQL plans for empty tables (seen: the grouping lookup scanning the codes for
    each of the shop's parcels, 13 ms a check-in and growing with every parcel)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()


def build_world(url: str) -> World:
    app = create_app({
        "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "JOBS_IN_PROCESS": False,
        "NOTIFY_FILE_PATH": "/dev/null", "PUBLIC_BASE_URL": "http://relayops.test",
    })
    ctx: Ctx = app.extensions["relay_ops"]
    # A Tuesday morning in the shops' opening hours, as the tests have it.
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    app.extensions["relay_ops"] = Ctx(db=ctx.db, settings=ctx.settings, clock=lambda: start)
    world = make_world(app.extensions["relay_ops"], app.test_client())
    # Room for every parcel of the run: the tests' shop holds 15.
    site_locations.add_locations(world.ctx, SYSTEM, world.shop_id,
                                 [{"label": f"Z{i}", "size_class": c, "capacity": 100_000}
                                  for i, c in enumerate(world.ctx.settings.size_classes)])
    return world


class RoundTrips:
    """Counts the client's round trips on every connection the world's engine opens from now
    on (a libpq trace per connection, read back)."""

    def __init__(self, world: World) -> None:
        self.traces: list[Any] = []
        world.ctx.db.dispose()  # connections opened before are not traced: open them again
        event.listen(world.ctx.db.engine, "connect", self._trace)

    def _trace(self, dbapi: Any, _record: Any) -> None:
        trace = tempfile.TemporaryFile("w+")
        self.traces.append(trace)
        dbapi.pgconn.trace(trace.fileno())

    def count(self) -> int:
        sent = 0
        for trace in self.traces:
            trace.seek(0)
            for line in trace:
                fields = line.split("\t")
                if len(fields) > 3 and fields[1] == "F" and fields[3].strip() in ("Sync", "Query"):
                    sent += 1
        return sent


def postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL backends connected to the benchmark database."""
    from bench.checkin import backends_of, cpu_seconds

    return sum(cpu_seconds(pid) for pid in backends_of(DATABASE))


def timed(name: str, n: int, one: Callable[[int], Any], profile: bool,
          trips: RoundTrips | None = None) -> None:
    # CPU time, not wall: waiting for PostgreSQL is not the web process's cost.
    profiler = cProfile.Profile(time.process_time) if profile else None
    sent0 = trips.count() if trips else 0
    pg0 = postgres_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(n):
        one(i)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    pg = postgres_cpu() - pg0
    print(f"{name}: {n} requests, web CPU {1000 * cpu / n:.2f} ms/request, "
          f"PostgreSQL CPU {1000 * pg / n:.2f} ms/request, wall {1000 * wall / n:.2f} "
          "ms/request", flush=True)
    if trips:
        print(f"{name}: {(trips.count() - sent0) / n:.1f} round trips to PostgreSQL per "
              "request (new connections' setup included)", flush=True)
    if profiler:
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--round-trips", action="store_true",
                        help="count the round trips to PostgreSQL per request (libpq trace)")
    parser.add_argument("--admin-url", default=ADMIN)
    parser.add_argument("--refused", type=float, default=0.0,
                        help="share of check-ins refused (unannounced numbers), 0 to 1")
    parser.add_argument("--no-analyze", action="store_true",
                        help="leave the tables without statistics (a database just migrated)")
    args = parser.parse_args()
    url = fresh_database(args.admin_url, DATABASE)
    world = build_world(url)
    trips = RoundTrips(world) if args.round_trips else None
    n = args.requests
    numbers = [f"ACME{i:08d}" for i in range(1, n + 1)]
    for chunk in range(0, n, 500):
        assert world.announce(*numbers[chunk:chunk + 500]).status_code == 201
    if not args.no_analyze:
        analyze(url)
    ids: list[int] = []

    every = round(1 / args.refused) if args.refused else 0
    refused = 0

    def check_in(i: int) -> None:
        nonlocal refused
        if every and i % every == 0:
            response = world.check_in(f"NOTANNOUNCED{i:06d}")
            assert response.status_code == 409, response.json
            refused += 1
        response = world.check_in(numbers[i])
        assert response.status_code == 201, response.json
        ids.append(response.json["parcel"]["id"])

    timed("check-in" + (f" (and before 1 in {every}, a refused one: its cost counted in)"
                        if every else ""), n,
          check_in, args.profile, trips)
    codes = [world.code_of(pid) for pid in ids]

    def pick_up(i: int) -> None:
        response = world.pick_up(code=codes[i])
        assert response.status_code == 200, response.json

    timed("pickup by code", n, pick_up, args.profile, trips)
    world.ctx.db.dispose()


if __name__ == "__main__":
    main()
