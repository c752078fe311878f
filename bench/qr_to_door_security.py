"""QR-to-door with and without the locker link's security, in one run (issue 14's goal).

    .venv/bin/python bench/qr_to_door_security.py [--rounds 4] [--scans 45]

The whole path of a QR pickup: a QR scanned at a locker agent -> `credential_presented` over
MQTT -> the bridge (its own process) -> the backend on PostgreSQL decides -> `open_compartment`
over MQTT -> the agent opens the door. Timed from the reader's callback to the board's `open()`.

Three set-ups, each with its own locker (200 doors, stocked through the services), bridge and
Mosquitto, run in rotating rounds (A B C, B C A, C A B...) so all see the same machine:

- **secured**: the shipped production broker (config/mosquitto/production.conf: TLS, a login
  each for the bridge and the locker, the ACL), every message signed and verified as shipped;
- **tls**: the same production broker, with the benchmark-only unsigned link below: what TLS,
  logins and the ACL cost alone;
- **bare**: the development broker (config/mosquitto.conf: plain TCP on the loopback,
  anonymous) and, in both the agent and the bridge, the link as it was before signatures, by a
  benchmark-only stub (`install_unsigned_link`: messages go unsigned, every check passes, the
  bridge reads no key and takes no counter from the database). The product has no unsigned
  path: this stub exists only here, to give the "without".

Residents come one after another (each pickup's door closes and its work settles first). The
first scans of each round warm connections and are dropped. Results in
bench/results/qr-to-door-security-<time>.json and docs/benchmarks.md. Everything runs on
127.0.0.1 and every wait is bounded. It drops and re-creates the PostgreSQL database
`relayops_bench_link`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.lockers import (  # noqa: E402
    TimedBoard,
    backend,
    fresh_database,
    lockers_parcel_id,
    stocked_locker,
    summary,
    wait,
)
from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.agent.agent import LockerAgent  # noqa: E402
from firmware_bridge.agent.state import AgentSettings  # noqa: E402
from firmware_bridge.identity import LockerIdentity  # noqa: E402
from relay_ops.db.models import Parcel  # noqa: E402
from relay_ops.services import (  # noqa: E402
    accounts,
    locker_commands,
    locker_identity,
    locker_tokens,
    locker_views,
)
from relay_ops.services.context import Ctx  # noqa: E402
from relay_ops.services.principal import SYSTEM  # noqa: E402
from tests.integration.firmware_bridge.locker_harness import (  # noqa: E402
    PrivateBroker,
    ProductionMosquitto,
)

DB_NAME = "relayops_bench_link"
BRIDGE_USER = "relayops-bridge"
WARM_UP_SCANS = 3
SETUPS = ("bare", "tls", "secured")
_SHIPPED = (p.sign, p.check_signature, locker_identity.event_keys, locker_identity.take_counters,
            locker_commands.reserve_counters)


def install_unsigned_link() -> None:
    """Benchmark only: the link as it was before signatures, in this process. Messages go out
    unsigned and every check passes; the bridge neither reads the lockers' keys nor takes a
    counter from the database per publication (a counter from the wall clock in microseconds
    still rises from one round to the next, as the agent wants). The callers reach all four
    through their modules, so patching the modules is enough."""
    counter = itertools.count(time.time_ns() // 1000)

    def unsigned(envelope: p.Envelope, _key: Any, _kid: str) -> bytes:
        return p.encode(envelope)

    def any_key(_ctx: Ctx, codes: Iterable[str]) -> dict[str, Any]:
        return {code: "unchecked" for code in codes}

    def counters(_ctx_or_session: Any, _code: str, count: int) -> int:
        first = next(counter)
        for _ in range(count - 1):
            next(counter)
        return first

    p.sign = unsigned  # type: ignore[assignment]
    p.check_signature = lambda _received, _keys: None  # type: ignore[assignment]
    locker_identity.event_keys = any_key  # type: ignore[assignment]
    locker_identity.take_counters = counters  # type: ignore[assignment]
    locker_commands.reserve_counters = counters  # type: ignore[assignment]


def restore_signed_link() -> None:
    (p.sign, p.check_signature, locker_identity.event_keys,  # type: ignore[assignment]
     locker_identity.take_counters, locker_commands.reserve_counters) = _SHIPPED


class DevelopmentMosquitto(PrivateBroker):
    """config/mosquitto.conf as shipped, on a free port."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        super().__init__(directory)
        shipped = (ROOT / "config" / "mosquitto.conf").read_text()
        assert "listener 1883 127.0.0.1\n" in shipped
        self.config.write_text(shipped.replace("listener 1883 ", f"listener {self.port} ")
                               .replace("persistence true\n", "persistence false\n"))


@dataclass
class Setup:
    name: str
    tls: bool
    signed: bool
    broker: PrivateBroker
    site_id: int
    code: str
    numbers: list[str]
    doors: dict[str, int]
    bundle: dict[str, Any]
    bridge_env: dict[str, str]


def make_setup(ctx: Ctx, url: str, tmp: Path, name: str, count: int) -> Setup:
    tls, signed = name in ("tls", "secured"), name == "secured"
    site_id, code, numbers, doors = stocked_locker(ctx, count, prefix="BS")
    env = dict(os.environ, PYTHONPATH=str(ROOT), RELAY_OPS_DATABASE_URL=url,
               RELAY_OPS_MQTT_SHARE_GROUP=f"bench-{code}", RELAY_OPS_LOG_LEVEL="WARNING")
    bundle = locker_identity.provision(ctx, SYSTEM, site_id)
    if tls:
        (tmp / f"broker-{code}").mkdir(parents=True)
        broker: PrivateBroker = ProductionMosquitto(tmp / f"broker-{code}")
        password = f"pw-{uuid.uuid4().hex}"
        assert isinstance(broker, ProductionMosquitto)
        broker.write_passwords(locker_identity.password_file(ctx, [(BRIDGE_USER, password)]))
        bundle["broker"].update(url=broker.url, ca_cert=broker.ca_pem)
        env.update(RELAY_OPS_MQTT_TLS="true",
                   RELAY_OPS_MQTT_TLS_CA_FILE=str(tmp / f"broker-{code}" / "ca.crt"),
                   RELAY_OPS_MQTT_USERNAME=BRIDGE_USER, RELAY_OPS_MQTT_PASSWORD=password)
    else:
        broker = DevelopmentMosquitto(tmp / f"broker-{code}")
        bundle["broker"].update(url=f"mqtt://127.0.0.1:{broker.port}")
    broker.start()
    return Setup(name, tls, signed, broker, site_id, code, numbers,
                 doors, bundle, env)


BRIDGE_LAUNCHER = (
    "import sys; from bench.qr_to_door_security import install_unsigned_link;"
    " install_unsigned_link(); from relay_ops.cli import main; sys.argv[0] = 'relay-ops'; main()"
)


@contextmanager
def running_bridge(setup: Setup, log: Path) -> Iterator[None]:
    args = ["bridge", "--broker", f"127.0.0.1:{setup.broker.port}", "--log-level", "INFO"]
    command = ([sys.executable, "-m", "relay_ops.cli", *args] if setup.signed
               else [sys.executable, "-c", BRIDGE_LAUNCHER, *args])
    process = subprocess.Popen(command, env=setup.bridge_env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        wait(lambda: "bridge connected" in log.read_text(), 30, f"{setup.name} bridge connected")
        time.sleep(0.3)  # its SUBACK
        yield
    finally:
        process.terminate()
        process.wait(10)


def scan_round(ctx: Ctx, setup: Setup, numbers: list[str], tmp: Path, round_: int
               ) -> list[float]:
    board = TimedBoard(list(range(1, 201)))
    agent = LockerAgent(setup.code, board, "127.0.0.1", setup.broker.port,
                        tmp / f"{setup.code}.sqlite3",
                        settings=AgentSettings(poll_s=0.001, forward_timeout_s=10),
                        identity=LockerIdentity.from_bundle(setup.bundle))
    latencies: list[float] = []
    with running_bridge(setup, tmp / f"bridge-{setup.name}-{round_}.log"):
        agent.start()
        try:
            wait(lambda: locker_views.locker_view(ctx, SYSTEM, setup.site_id)["link"]["online"],
                 20, f"{setup.name} locker online")
            for number in numbers:
                token = locker_tokens.qr_token(ctx, lockers_parcel_id(ctx, number))
                assert token is not None
                door = setup.doors[number]
                start = time.perf_counter()
                board.scan(token)
                wait(lambda d=door: d in board.opened_at, 10, f"{setup.name} door {door}")
                latencies.append(board.opened_at.pop(door) - start)
                board.close_door(door, occupied=False)
                time.sleep(0.3)  # the pickup's door_closed, sync and acks settle first
        finally:
            agent.stop()
    return latencies[WARM_UP_SCANS:]


def in_mode(setup: Setup) -> Callable[[], None]:
    if setup.signed:
        restore_signed_link()
    else:
        install_unsigned_link()
    return restore_signed_link


def picked_up(ctx: Ctx, numbers: list[str]) -> int:
    with ctx.db.read() as session:
        return sum(1 for state in session.scalars(
            select(Parcel.state).where(Parcel.tracking_number.in_(numbers)))
            if state == "picked_up")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--scans", type=int, default=45, help="per round and set-up")
    args = parser.parse_args()
    per_setup = args.rounds * args.scans
    if per_setup > 200:
        parser.error("rounds x scans must fit one locker of 200 doors")
    tmp = Path(tempfile.mkdtemp(prefix="relayops-bench-link-"))
    url = fresh_database(DB_NAME)
    ctx = backend(url)
    accounts.create_carrier(ctx, SYSTEM, code="bench", name="Bench")
    setups = [make_setup(ctx, url, tmp, name, per_setup) for name in SETUPS]
    samples: dict[str, list[float]] = {s.name: [] for s in setups}
    loads = [load_average()]
    try:
        for round_ in range(args.rounds):
            shift = round_ % len(setups)
            order = setups[shift:] + setups[:shift]
            for setup in order:
                batch = setup.numbers[round_ * args.scans:(round_ + 1) * args.scans]
                restore = in_mode(setup)
                try:
                    samples[setup.name] += scan_round(ctx, setup, batch, tmp, round_)
                finally:
                    restore()
            loads.append(load_average())
    finally:
        for setup in setups:
            setup.broker.stop()
    for setup in setups:  # the bench's own check: every scan was a real pickup, once
        assert picked_up(ctx, setup.numbers) == per_setup, setup.name
    ctx.db.dispose()
    figures = {name: summary(samples[name]) for name in SETUPS}
    bare = figures["bare"]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_per_round": loads},
        "rounds": args.rounds, "scans_per_round": args.scans,
        **figures,
        "added_ms": {name: {q: round(figures[name][q] - bare[q], 2)
                            for q in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms")}
                     for name in SETUPS[1:]},
    }
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    out = (ROOT / "bench" / "results"
           / f"qr-to-door-security-{result['when'][:19].replace(':', '')}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
