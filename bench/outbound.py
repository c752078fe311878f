"""Sent parcels at the counter, in process (Flask test client, SQLite file, one thread): wall
and CPU per deposit (POST /sites/<id>/outbound), per read of the carrier's pickup list with
every deposit on it, and per collection (one number a request), as a carrier's round does.

    .venv/bin/python -m bench.outbound --count 200

It measures the service and view code without a server or a network: the figures compare
versions of this code on one machine (docs/benchmarks.md, "Sending"), not a deployment.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.test import TestResponse

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.services import accounts, carrier_sites, sites, staff_sign_in
from relay_ops.services.principal import SYSTEM

HOURS = {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")}
PASSWORD = "bench password 1234"  # noqa: S105 - a throwaway database


def measure(label: str, calls: list[Callable[[], TestResponse]]) -> None:
    walls = []
    cpu_start = time.process_time()
    for call in calls:
        started = time.perf_counter()
        response = call()
        walls.append(time.perf_counter() - started)
        assert response.status_code in (200, 201), response.get_json()
    cpu = (time.process_time() - cpu_start) / len(calls)
    walls.sort()
    print(f"{label}: n={len(walls)} median {walls[len(walls) // 2] * 1000:.1f} ms, "
          f"p95 {walls[int(len(walls) * 0.95)] * 1000:.1f} ms, CPU {cpu * 1000:.1f} ms/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="parcels deposited, collected")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="relayops-bench-outbound-"))
    app = create_app({"DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    ctx = app.extensions["relay_ops"]
    migrate.upgrade(ctx.db.engine)
    site = sites.create_site(ctx, SYSTEM, {
        "code": "bourg", "name": "Bourg", "kind": "shop", "address": "1 rue", "postcode": "44000",
        "city": "Bourg", "latitude": 47.5, "longitude": -1.3, "opening_hours": HOURS,
        "locations": [{"label": "A1", "size_class": "M", "capacity": args.count}]})["id"]
    accounts.create_carrier(ctx, SYSTEM, code="acme", name="Acme")
    carrier_sites.set_label_networks(ctx, SYSTEM, "acme", ["prefix:ACME"])
    carrier_sites.serve_site(ctx, SYSTEM, site, "acme", 48)
    sites.set_services(ctx, SYSTEM, site, ["receive", "send"])
    accounts.create_user(ctx, SYSTEM, username="bench", password=PASSWORD, role="shopkeeper",
                         site_codes=["bourg"])
    staff = {"Authorization": "Bearer " + staff_sign_in.log_in(ctx, "bench", PASSWORD).token}
    van = {"Authorization": "Bearer " + accounts.issue_carrier_key(ctx, SYSTEM, "acme").token}
    client = app.test_client()
    numbers = [f"ACME{i:08d}" for i in range(args.count)]
    measure("deposit", [
        lambda n=n: client.post(f"/api/v1/sites/{site}/outbound", headers=staff, json={
            "tracking_number": n, "sender": {"phone": "+33612345678"}})
        for n in numbers])
    measure(f"pickup list ({args.count} parcels)", [
        lambda: client.get(f"/api/v1/sites/{site}/outbound/pickup-list", headers=van)
        for _ in range(20)])
    measure("collection (one number)", [
        lambda n=n: client.post(f"/api/v1/sites/{site}/outbound/collections", headers=van,
                                json={"taken": [n]})
        for n in numbers])
    ctx.db.dispose()


if __name__ == "__main__":
    main()
