"""The operator's volumes per flow (``stats.flow_volumes``, GET /api/v1/stats/flows, the
dashboard's table) over a history of parcel events, in process on an SQLite file: wall and
CPU per call, and the SQL statements it runs.

    .venv/bin/python -m bench.flow_volumes --sites 20 --parcels 2500

Each parcel gets two events (received then picked up, or one in five sent then collected),
spread over the last 8 days, so about 7/8 of them fall in the 7-day window. The figures
compare versions of this code on one machine (docs/benchmarks.md), not a deployment.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import Parcel, ParcelEvent
from relay_ops.services import sites, stats
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.support import shop

NOW = datetime(2026, 12, 8, 9, tzinfo=UTC)


def history(ctx: Ctx, site_ids: list[int], per_site: int) -> int:
    """Parcels and their events written in bulk (the services would take minutes)."""
    with ctx.db.transaction() as session:
        for site_id in site_ids:
            session.execute(insert(Parcel), [
                {"tracking_number": f"B{site_id}X{n:07d}", "site_id": site_id,
                 "state": "picked_up", "direction": "outbound" if n % 5 == 0 else "inbound"}
                for n in range(per_site)])
        parcels = session.execute(select(Parcel.id, Parcel.site_id, Parcel.direction)).all()
        rows: list[dict[str, Any]] = []
        for k, (parcel_id, site_id, direction) in enumerate(parcels):
            at = NOW - timedelta(hours=k % (8 * 24))
            actions = ("drop_off", "collect") if direction == "outbound" else (
                "check_in", "pick_up")
            rows += [{"parcel_id": parcel_id, "site_id": site_id, "action": action,
                      "to_state": "picked_up", "at": at, "actor_kind": "system"}
                     for action in actions]
        session.execute(insert(ParcelEvent), rows)
        return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--parcels", type=int, default=2500, help="parcels per site")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="relayops-bench-flows-"))
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}"})
    base = app.extensions["relay_ops"]
    migrate.upgrade(base.db.engine)
    ctx = Ctx(db=base.db, settings=base.settings, clock=lambda: NOW)
    site_ids = [sites.create_site(ctx, SYSTEM, shop(f"s{i}", 47.5, -1.3, [("A1", "L", 10)]))[
        "id"] for i in range(args.sites)]
    events = history(ctx, site_ids, args.parcels)
    operator = Principal(Role.OPERATOR)
    statements: list[str] = []
    event.listen(Engine, "before_cursor_execute",
                 lambda _c, _k, sql, *_: statements.append(sql))
    stats.flow_volumes(ctx, operator)
    per_call = len(statements)
    walls, cpus = [], []
    for _ in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        stats.flow_volumes(ctx, operator)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    walls.sort()
    cpus.sort()
    print(f"{args.sites} sites, {events} events: {per_call} statements a call; "
          f"median wall {walls[len(walls) // 2] * 1000:.1f} ms, "
          f"median CPU {cpus[len(cpus) // 2] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
