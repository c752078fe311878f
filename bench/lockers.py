"""Locker benchmarks, in one run (figures in docs/benchmarks.md, section "Lockers"):

1. QR scanned at a simulated locker -> open command received by it, through the bridge (a
   separate process) and PostgreSQL, over the machine's Mosquitto; against the raw MQTT round
   trip (publish, echo, receive) measured in the same run.
2. Allocation: 500 parcels into a 1,000-compartment locker (domain `CompartmentPool`), and the
   one-parcel rule (`choose_compartment`) for comparison.

    /work/main/.venv/bin/python bench/lockers.py [--scans 200]

The bridge's event throughput is `bench/bridge_throughput.py` (signed events, as lockers send
them since issue 14; this bench's unsigned stream of before was refused by the bridge).

It drops and re-creates the PostgreSQL database `relayops_bench_lockers` on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, select, text, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_bridge.agent.agent import LockerAgent  # noqa: E402
from firmware_bridge.agent.drivers import SimulatedBoard  # noqa: E402
from firmware_bridge.agent.state import AgentSettings  # noqa: E402
from firmware_bridge.identity import LockerIdentity  # noqa: E402
from relay_ops import create_app  # noqa: E402
from relay_ops.db import migrate  # noqa: E402
from relay_ops.db.models import OutboxMessage, Parcel  # noqa: E402
from relay_ops.domain import sizing  # noqa: E402
from relay_ops.services import (  # noqa: E402
    accounts,
    locker_dropoff,
    locker_events,
    locker_identity,
    locker_registry,
    locker_tokens,
    locker_views,
    manifests,
)
from relay_ops.services.context import Ctx  # noqa: E402
from relay_ops.services.principal import SYSTEM, Principal, Role  # noqa: E402

BROKER = ("127.0.0.1", 1883)
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DB_NAME = "relayops_bench_lockers"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 2), "p90_ms": round(pct(ms, 90), 2),
            "p95_ms": round(pct(ms, 95), 2), "p99_ms": round(pct(ms, 99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2)}


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.002)
    raise TimeoutError(what)


# ---------------------------------------------------------------- database


def fresh_database(name: str = DB_NAME) -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def backend(url: str, models: dict[str, int] | None = None) -> Ctx:
    """The backend's services on `url`; `models`: locker models of N small compartments."""
    models = models or {"bench-200": 200}
    app = create_app({"DATABASE_URL": url, "LOG_LEVEL": "WARNING", "LOCKER_MODELS": {
        name: {"compartments": [{"size_class": "S", "count": count}]}
        for name, count in models.items()}})
    return app.extensions["relay_ops"]


def start_bridge(url: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), RELAY_OPS_DATABASE_URL=url,
               RELAY_OPS_MQTT_SHARE_GROUP=group, RELAY_OPS_LOG_LEVEL="WARNING")
    process = subprocess.Popen([sys.executable, "-m", "relay_ops.cli", "bridge", "--broker",
                                f"{BROKER[0]}:{BROKER[1]}", "--log-level", "INFO"],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=log.open("w"))
    wait(lambda: "bridge connected" in log.read_text(), 30, "bridge connected")
    time.sleep(0.3)  # its SUBACK
    return process


# ---------------------------------------------------------------- 1. QR to door


class TimedBoard(SimulatedBoard):
    def __init__(self, numbers: list[int]) -> None:
        super().__init__(numbers)
        self.opened_at: dict[int, float] = {}

    def open(self, n: int) -> bool:
        self.opened_at[n] = time.perf_counter()
        return super().open(n)


def stock(ctx: Ctx, code: str, site_id: int, count: int) -> list[str]:
    """`count` parcels ready in the locker, deposited through the services (the door events
    are applied as the bridge would, from a bench 'boot')."""
    carrier = Principal(Role.CARRIER, carrier_id=1)
    numbers = [f"BQ{code[-6:].upper()}{i:05d}" for i in range(count)]
    _, answer = manifests.announce(ctx, carrier, {
        "reference": f"B-{uuid.uuid4().hex[:6]}",
        "parcels": [{"tracking_number": n, "site": code, "size_class": "S",
                     "recipient": {"name": "Bench", "email": "bench@example.org"}}
                    for n in numbers]})
    assert answer["accepted"] == count, str(answer)[:300]
    session = locker_dropoff.open_session(ctx, carrier, site_id)
    boot, seq = "bench-stock", 0
    for number in numbers:
        door = locker_dropoff.deposit(ctx, carrier, session["id"], number)["compartment"]
        for type_, body in (("door_opened", {"compartment": door, "purpose": "deposit"}),
                            ("door_closed", {"compartment": door, "occupied": True})):
            seq += 1
            locker_events.apply_event(ctx, code, boot, seq, type_, body, ctx.now())
    locker_dropoff.close_session(ctx, carrier, session["id"])
    return numbers


def stocked_locker(ctx: Ctx, count: int, prefix: str = "BQ"
                   ) -> tuple[int, str, list[str], dict[str, int]]:
    """A new `bench-200` locker holding `count` ready parcels: its id, code, the parcels'
    numbers and each one's door."""
    code = f"{prefix}-{uuid.uuid4().hex[:6]}"
    site_id = locker_registry.register_locker(ctx, SYSTEM, {
        "code": code, "name": "bench", "locker_model": "bench-200", "address": "x",
        "postcode": "1", "city": "x", "latitude": 47.0, "longitude": -1.0})["id"]
    numbers = stock(ctx, code, site_id, count)
    with ctx.db.transaction() as session:
        # the commands written while stocking were played by `stock`: never to be published
        session.execute(update(OutboxMessage).where(OutboxMessage.target == code)
                        .values(status="done"))
        doors = {parcel.tracking_number: parcel.compartment.number for parcel in session.scalars(
            select(Parcel).where(Parcel.tracking_number.in_(numbers)))}
    return site_id, code, numbers, doors


def qr_to_door(ctx: Ctx, url: str, scans: int, tmp: Path) -> dict[str, Any]:
    site_id, code, numbers, doors = stocked_locker(ctx, scans)
    bridge = start_bridge(url, f"bench-{code}", tmp / "bridge-qr.log")
    board = TimedBoard(list(range(1, 201)))
    agent = LockerAgent(code, board, *BROKER, tmp / f"{code}.sqlite3",
                        settings=AgentSettings(poll_s=0.001, forward_timeout_s=10),
                        identity=LockerIdentity.from_bundle(
                            locker_identity.provision(ctx, SYSTEM, site_id)))
    latencies: list[float] = []
    try:
        agent.start()
        wait(lambda: locker_views.locker_view(ctx, SYSTEM, site_id)["link"]["online"], 20, "online")
        for number in numbers:
            parcel_id = lockers_parcel_id(ctx, number)
            token = locker_tokens.qr_token(ctx, parcel_id)
            assert token is not None
            door = doors[number]
            start = time.perf_counter()
            board.scan(token)
            wait(lambda d=door: d in board.opened_at, 10, f"door {door}")
            latencies.append(board.opened_at.pop(door) - start)
            board.close_door(door, occupied=False)
            # residents come one after another, not back to back: let the pickup's own work
            # (door_closed, its credential sync and acks) finish before the next scan
            time.sleep(0.3)
    finally:
        agent.stop()
        bridge.terminate()
        bridge.wait(10)
    return summary(latencies[5:])  # the first scans warm connections and caches


def lockers_parcel_id(ctx: Ctx, number: str) -> int:
    from relay_ops.services import parcel_views

    return int(parcel_views.find_parcel(ctx, SYSTEM, number)["id"])


def raw_round_trip(count: int) -> dict[str, Any]:
    """Publish on A (QoS 1), an echo client republishes on B (QoS 1), receive: two hops through
    the broker, like scan -> bridge -> locker, with a message of the same size."""
    from firmware_bridge.net import disable_nagle

    suffix = uuid.uuid4().hex[:8]
    ping, pong = f"bench/{suffix}/ping", f"bench/{suffix}/pong"
    payload = b"x" * 420  # about a credential_presented event with a token
    got = threading.Event()

    echo = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"echo-{suffix}")
    echo.on_message = lambda c, _u, m: c.publish(pong, m.payload, qos=1)
    caller = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"call-{suffix}")
    caller.on_message = lambda _c, _u, _m: got.set()
    for client, topic_name in ((echo, ping), (caller, pong)):
        client.connect(*BROKER)
        client.subscribe(topic_name, 1)
        client.loop_start()
    time.sleep(0.5)
    for client in (echo, caller):  # as the bridge and the agent do
        disable_nagle(client)
    trips: list[float] = []
    try:
        for _ in range(count + 5):
            got.clear()
            start = time.perf_counter()
            caller.publish(ping, payload, qos=1)
            if not got.wait(5):
                raise TimeoutError("raw round trip")
            trips.append(time.perf_counter() - start)
    finally:
        for client in (echo, caller):
            client.loop_stop()
            client.disconnect()
    return summary(trips[5:])


# ---------------------------------------------------------------- 2. allocation


def allocation(parcels: int = 500, compartments: int = 1000, rounds: int = 20
               ) -> dict[str, Any]:
    classes = list(sizing.DEFAULT_SIZE_CLASSES.values())
    boxes = [sizing.Compartment(i + 1, classes[i % len(classes)]) for i in range(compartments)]
    rng = random.Random(7)
    items = [(rng.randint(10, 480), rng.randint(10, 380), rng.randint(10, 640))
             for _ in range(parcels)]
    pool_times, naive_times = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        pool = sizing.CompartmentPool(boxes)
        placed = sum(1 for item in items if pool.take(item) is not None)
        pool_times.append(time.perf_counter() - start)
    for _ in range(2):
        free = list(boxes)
        start = time.perf_counter()
        for item in items:
            chosen = sizing.choose_compartment(free, item)
            if chosen is not None:
                free.remove(chosen)
        naive_times.append(time.perf_counter() - start)
    return {"parcels": parcels, "compartments": compartments, "placed": placed,
            "pool_ms": summary(pool_times), "choose_compartment_loop_ms":
            round(min(naive_times) * 1000, 1)}


class PrivateMosquitto:
    """A Mosquitto of the bench's own, configured as config/mosquitto.conf recommends."""

    def __init__(self, tmp: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             "set_tcp_nodelay true\nmax_inflight_messages 100\n")
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def on_broker(ctx: Ctx, url: str, args: argparse.Namespace, tmp: Path,
              broker: tuple[str, int]) -> dict[str, Any]:
    global BROKER
    BROKER = broker
    try:
        raw = raw_round_trip(args.scans)
        qr = qr_to_door(ctx, url, min(args.scans, 195), tmp)
    finally:
        BROKER = ("127.0.0.1", 1883)
    return {"raw_mqtt_round_trip": raw, "qr_to_door": qr,
            "p99_over_raw_ms": round(qr["p99_ms"] - raw["p99_ms"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="relayops-bench-lockers-"))  # journals, bridge logs
    url = fresh_database()
    ctx = backend(url)
    accounts.create_carrier(ctx, SYSTEM, code="bench", name="Bench")
    result: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "allocation": allocation(),
        "machine_mosquitto_1883": on_broker(ctx, url, args, tmp, ("127.0.0.1", 1883)),
    }
    private = PrivateMosquitto(tmp)
    try:
        result["private_mosquitto_tuned"] = on_broker(ctx, url, args, tmp,
                                                      ("127.0.0.1", private.port))
    finally:
        private.stop()
    ctx.db.dispose()
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    out = ROOT / "bench" / "results" / f"lockers-{result['when'][:19].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
