"""One locker's events split over several bridges by the shared subscription: how long each
event waits from its publication to its commit.

    .venv/bin/python bench/shared_bridges.py --bridges 1 2 --events 40 --burst 4 --runs 3

A fresh PostgreSQL database (``relayops_bench_bridges``), one locker registered and
provisioned, ``--bridges`` bridges in this process on the machine's Mosquitto sharing a
subscription group of their own; a publisher signs events as the locker does and sends them
in bursts of ``--burst`` (``--pause`` seconds apart), the way a carrier's session or a
resident's pickup makes them. A thread reads the locker's event cursor every 5 ms: an
event's latency is from its publication to the first read that shows it applied. The
publisher never answers ``resend_events`` (a locker would); those asked for are counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench.profile_fast_path import ADMIN, fresh_database  # noqa: E402
from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.bridge import Bridge, BridgeSettings  # noqa: E402
from firmware_bridge.identity import LockerIdentity  # noqa: E402
from relay_ops import create_app  # noqa: E402
from relay_ops.db.models import LockerEventCursor  # noqa: E402
from relay_ops.services import locker_identity, locker_registry  # noqa: E402
from relay_ops.services.context import Ctx  # noqa: E402
from relay_ops.services.principal import SYSTEM  # noqa: E402

BROKER = ("127.0.0.1", 1883)


def one_run(ctx: Ctx, bridges: int, events: int, burst: int, pause: float) -> dict[str, Any]:
    code = f"BENCH-{uuid.uuid4().hex[:8]}"
    site_id = locker_registry.register_locker(ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
    identity = LockerIdentity.from_bundle(locker_identity.provision(ctx, SYSTEM, site_id))
    group = f"bench-{uuid.uuid4().hex[:8]}"
    running = [Bridge(ctx, *BROKER, BridgeSettings(share_group=group)) for _ in range(bridges)]
    for bridge in running:
        bridge.start()
        assert bridge.wait_connected(10)
    resends: list[bytes] = []
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{code}-publisher")
    publisher.on_message = lambda _c, _u, message: resends.append(message.payload)
    publisher.connect(*BROKER)
    publisher.subscribe(p.cmd_topic(code), qos=1)
    publisher.loop_start()
    time.sleep(0.5)  # the bridges' and the publisher's subscriptions in place
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with ctx.db.read() as session:
                applied = session.scalar(select(LockerEventCursor.applied_seq).where(
                    LockerEventCursor.site_id == site_id)) or 0
            now = time.monotonic()
            for seq in range(len(seen) + 1, applied + 1):
                seen.setdefault(seq, now)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for seq in range(1, events + 1):
        body = (p.DoorOpened(compartment=1) if seq % 2 else
                p.DoorClosed(compartment=1, occupied=False))
        sent[seq] = time.monotonic()
        publisher.publish(p.evt_topic(code), identity.sign(p.make_event(code, "boot-1", seq, body)),
                          qos=1)
        if seq % burst == 0:
            time.sleep(pause)
    deadline = time.monotonic() + 30
    while len(seen) < events and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join()
    publisher.loop_stop()
    publisher.disconnect()
    for bridge in running:
        bridge.stop()
    waits = sorted((seen[seq] - sent[seq]) * 1000 for seq in seen)
    asked = sum(1 for payload in resends if b'"resend_events"' in payload)
    return {"bridges": bridges, "events": events, "applied": len(seen),
            "p50_ms": round(statistics.median(waits), 1) if waits else None,
            "p90_ms": round(waits[max(0, int(len(waits) * 0.9) - 1)], 1) if waits else None,
            "max_ms": round(waits[-1], 1) if waits else None, "resends_asked": asked}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bridges", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--burst", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default="relayops_bench_bridges",
                        help="the PostgreSQL database dropped and made afresh")
    args = parser.parse_args()
    url = fresh_database(ADMIN, args.database)
    app = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
    ctx: Ctx = app.extensions["relay_ops"]
    results = []
    for _ in range(args.runs):
        for bridges in args.bridges:
            result = one_run(ctx, bridges, args.events, args.burst, args.pause)
            results.append(result)
            print(json.dumps(result))
    ctx.db.dispose()
    return 0 if all(r["applied"] == r["events"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
