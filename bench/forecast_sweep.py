"""The forecast sweep (``forecast_sweep.forecast_all``) over a network of new sites (issue 15).

    .venv/bin/python bench/forecast_sweep.py --sites 1000 [--runs 2]

A fresh PostgreSQL database (``relayops_forecast_sweep``): the tests' world (two shops with
their parcels) and ``--sites`` more shops over mainland France, without a parcel yet
(``bench/refusal_at_scale.py``'s seeding, every other one without a shelf), the tables
analysed; then the sweep, ``--runs`` times, timed. Each new site is forecast from its nearest
neighbours of its kind (``forecast_learning.neighbours_demand``), the sweep's costliest case.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

from bench.profile_fast_path import ADMIN, analyze, build_world, fresh_database  # noqa: E402
from bench.refusal_at_scale import seed_sites  # noqa: E402
from relay_ops.services import forecast_sweep  # noqa: E402

DATABASE = "relayops_forecast_sweep"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--admin-url", default=ADMIN)
    args = parser.parse_args()
    url = fresh_database(args.admin_url, DATABASE)
    world = build_world(url)
    seed_sites(world, args.sites, seed=7)
    analyze(url)
    for _ in range(args.runs):
        start = time.perf_counter()
        done = forecast_sweep.forecast_all(world.ctx)
        print(f"sweep of {done['sites']} sites: {time.perf_counter() - start:.2f} s, "
              f"{done['days_at_risk']} days at risk", flush=True)
    world.ctx.db.dispose()


if __name__ == "__main__":
    main()
