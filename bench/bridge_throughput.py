"""The MQTT bridge's event throughput against a bare paho consumer of the same stream (issue 15).

    .venv/bin/python bench/bridge_throughput.py [--events 10000] [--soak-s 180]

One run, on PostgreSQL (database `relayops_bench_bridge`, dropped and re-created) and the
machine's Mosquitto (127.0.0.1:1883, or `--broker HOST:PORT`):

1. A stream of signed events of one provisioned locker (`fault`: the alert it raises, the
   cursor and the link, in the bridge's transaction) is published to
   (a) a bare paho consumer (a process of its own) that parses each message and acknowledges
   the highest seq every 20 messages, and (b) a real `relayops-bridge` process, which verifies
   each signature, applies the events on PostgreSQL and acknowledges after its commit.
   The publisher keeps at most `--window` events unacknowledged end to end (as the locker agent
   does), under Mosquitto's 1,000-message queue per client, so nothing is dropped.
   Rate = events / (first publication .. ack of the last seq). CPU per event is read from
   /proc: the consumer process, and for the bridge its process plus its PostgreSQL backends.
2. Memory: the bridge's RSS sampled every second while the same kind of stream flows at a
   steady `--soak-rate` for `--soak-s` seconds.

Checks (a failed one makes the exit status 1): every event of the bridge run applied exactly
once (the cursor at the last seq, the alert counting every event), nothing refused.
Results: bench/results/bridge-throughput-<time>.json and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench import lockers as bench_lockers  # noqa: E402
from bench.checkin import cpu_seconds, rss_mb  # noqa: E402
from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.identity import LockerIdentity  # noqa: E402

DB_NAME = "relayops_bench_bridge"
BRIDGE_APP_NAME = "relayops-bench-bridge"
ACK_EVERY = 20  # the bare consumer acknowledges as often as the bridge can (20 in flight)


# ---------------------------------------------------------------- the stream


def fault_body() -> p.Fault:
    # one open alert counted again, the cursor, the link
    return p.Fault(code="bench", compartment=1)


def signed_stream(identity: LockerIdentity, code: str, boot: str, first: int, count: int
                  ) -> list[bytes]:
    return [identity.sign(p.make_event(code, boot, seq, fault_body()))
            for seq in range(first, first + count)]


@dataclass
class AckWindow:
    """The publisher's view of the end-to-end acks (highest seq of `boot` acknowledged)."""

    boot: str
    acked: int = 0
    acked_at: float = 0.0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_ack(self, payload: bytes) -> None:
        body = json.loads(payload).get("body", {})
        if body.get("boot_id") != self.boot:
            return
        with self.changed:
            if body["seq"] > self.acked:
                self.acked, self.acked_at = body["seq"], time.perf_counter()
            self.changed.notify_all()

    def wait_until(self, seq: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while self.acked < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True


class Publisher:
    """Publishes a locker's events, at most `window` ahead of the end-to-end ack, like the
    agent's window (so Mosquitto's per-client queue never overflows)."""

    def __init__(self, broker: tuple[str, int], code: str, boot: str, window: int) -> None:
        self.code, self.window = code, window
        self.acks = AckWindow(boot)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-pub-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        self.client.on_message = lambda _c, _u, m: self.acks.on_ack(m.payload)
        self.client.connect(*broker)
        self.client.subscribe(p.ack_topic(code), 1)
        self.client.loop_start()
        time.sleep(0.3)  # SUBACK

    def send(self, messages: list[bytes], first_seq: int, rate: float | None = None,
             timeout_s: float = 300) -> tuple[float, float]:
        """Publish `messages` (seqs first_seq..); returns (start, time the last was acked)."""
        topic_name = p.evt_topic(self.code)
        start = time.perf_counter()
        for index, message in enumerate(messages):
            seq = first_seq + index
            if seq - self.window > self.acks.acked and not self.acks.wait_until(
                    seq - self.window, timeout_s):
                raise TimeoutError(f"no ack for seq {seq - self.window} in {timeout_s} s")
            if rate is not None:
                lag = start + index / rate - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
            self.client.publish(topic_name, message, qos=1)
        last = first_seq + len(messages) - 1
        if not self.acks.wait_until(last, timeout_s):
            raise TimeoutError(f"the last seq {last} was never acknowledged")
        return start, self.acks.acked_at

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ---------------------------------------------------------------- the bare consumer


class BareConsumer:
    """Subprocess mode: parse every event (JSON and protocol validation, as the bridge's
    first step), PUBACK automatically, publish an ack of the highest seq every ACK_EVERY
    messages (the stream's length is a multiple of it). No signature check, no database."""

    def __init__(self, code: str) -> None:
        self.code, self.count, self.seq = code, 0, 0

    def on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        envelope = p.receive(message.topic, message.payload).envelope
        assert isinstance(envelope, p.EventEnvelope)
        self.count += 1
        self.seq = max(self.seq, envelope.seq)
        if self.count % ACK_EVERY == 0:
            ack = p.make_ack(self.code, envelope.boot_id, self.seq)
            client.publish(p.ack_topic(self.code), p.encode(ack), qos=1)

    def on_connect(self, client: mqtt.Client, *_a: Any) -> None:
        client.subscribe(p.evt_topic(self.code), 1)

    def run(self, host: str, port: int) -> int:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{os.getpid()}")
        client.on_connect, client.on_message = self.on_connect, self.on_message
        client.connect(host, port)
        print("bare consumer connected", flush=True)
        client.loop_forever()
        return 0


# ---------------------------------------------------------------- measuring


def pg_backends(ctx: Any, application_name: str) -> list[int]:
    from sqlalchemy import text

    with ctx.db.read() as session:
        return [int(pid) for pid in session.scalars(text(
            "SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application_name})]


def processes_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def rate_and_cpu(publisher: Publisher, messages: list[bytes], first: int,
                 groups: Callable[[], dict[str, list[int]]]) -> dict[str, Any]:
    """Publish, time until the last ack; CPU of each group of processes (a callable: a pool
    may open a PostgreSQL backend during the run)."""
    before = {pid: cpu_seconds(pid) for pids in groups().values() for pid in pids}
    start, last_acked = publisher.send(messages, first)
    cpu = {name: sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in pids)
           for name, pids in groups().items()}
    seconds, total = last_acked - start, sum(cpu.values())
    return {"events": len(messages), "seconds": round(seconds, 3),
            "events_per_s": round(len(messages) / seconds),
            "cpu_ms_per_event": round(total * 1000 / len(messages), 3),
            "cpu_ms_per_event_by_process": {
                name: round(used * 1000 / len(messages), 3) for name, used in cpu.items()}}


@dataclass
class Locker:
    code: str
    site_id: int
    identity: LockerIdentity


def new_locker(ctx: Any) -> Locker:
    from relay_ops.services import locker_identity, locker_registry
    from relay_ops.services.principal import SYSTEM

    code = f"BB-{uuid.uuid4().hex[:6]}"
    site_id = int(locker_registry.register_locker(ctx, SYSTEM, {
        "code": code, "name": "bench", "locker_model": "bench-200", "address": "x",
        "postcode": "1", "city": "x", "latitude": 47.0, "longitude": -1.0})["id"])
    identity = LockerIdentity.from_bundle(locker_identity.provision(ctx, SYSTEM, site_id))
    return Locker(code, site_id, identity)


def bare_run(locker: Locker, args: argparse.Namespace) -> dict[str, Any]:
    host, port = bench_lockers.BROKER
    consumer = subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--bare-consumer", locker.code,
         "--broker", f"{host}:{port}"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    publisher = Publisher(bench_lockers.BROKER, locker.code, "bare", args.window)
    try:
        assert consumer.stdout is not None
        consumer.stdout.readline()  # connected
        time.sleep(0.5)  # its SUBACK
        warm = signed_stream(locker.identity, locker.code, "bare", 1, args.warmup)
        publisher.send(warm, 1)
        stream = signed_stream(locker.identity, locker.code, "bare", args.warmup + 1,
                               args.events)
        return rate_and_cpu(publisher, stream, args.warmup + 1,
                            lambda: {"consumer": [consumer.pid]})
    finally:
        publisher.close()
        consumer.terminate()
        consumer.wait(10)


def bridge_run(ctx: Any, url: str, locker: Locker, args: argparse.Namespace, tmp: Path
               ) -> dict[str, Any]:
    boot = f"bridge-{uuid.uuid4().hex[:6]}"
    log = tmp / "bridge.log"
    bridge = bench_lockers.start_bridge(f"{url}?application_name={BRIDGE_APP_NAME}",
                                        f"bench-{locker.code}", log)
    publisher = Publisher(bench_lockers.BROKER, locker.code, boot, args.window)
    try:
        def pids() -> dict[str, list[int]]:
            return {"bridge": [bridge.pid], "postgres": pg_backends(ctx, BRIDGE_APP_NAME)}

        warm = signed_stream(locker.identity, locker.code, boot, 1, args.warmup)
        publisher.send(warm, 1)
        stream = signed_stream(locker.identity, locker.code, boot, args.warmup + 1,
                               args.events)
        result = rate_and_cpu(publisher, stream, args.warmup + 1, pids)
        last = args.warmup + args.events
        if args.soak_s > 0:
            result["memory"] = soak(publisher, locker, boot, last + 1, bridge.pid, args)
            last += result["memory"]["events"]
        result["checks"] = checks(ctx, locker, boot, last, log)
        return result
    finally:
        publisher.close()
        bridge.terminate()
        bridge.wait(10)


def soak(publisher: Publisher, locker: Locker, boot: str, first: int, pid: int,
         args: argparse.Namespace) -> dict[str, Any]:
    """A steady stream for `soak_s` seconds; the bridge's RSS every second."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        began = time.monotonic()
        while not stop.wait(1.0):
            samples.append((round(time.monotonic() - began, 1), round(rss_mb(pid), 1)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    seq, began = first, time.monotonic()
    try:
        while time.monotonic() - began < args.soak_s:
            chunk = signed_stream(locker.identity, locker.code, boot, seq, args.soak_rate)
            publisher.send(chunk, seq, rate=args.soak_rate)
            seq += len(chunk)
    finally:
        stop.set()
        sampler.join()
    rss = [mb for _t, mb in samples]
    tenth = max(1, len(rss) // 10)
    return {"seconds": round(time.monotonic() - began, 1), "events": seq - first,
            "rate_per_s": args.soak_rate, "rss_mb_first_tenth": max(rss[:tenth]),
            "rss_mb_last_tenth": max(rss[-tenth:]), "rss_mb_max": max(rss),
            "rss_mb_min": min(rss), "samples": samples}


def checks(ctx: Any, locker: Locker, boot: str, last: int, log: Path) -> dict[str, Any]:
    from sqlalchemy import select

    from relay_ops.db.models import LockerAlert, LockerEventCursor

    with ctx.db.read() as session:
        cursor = session.scalar(select(LockerEventCursor.applied_seq).where(
            LockerEventCursor.site_id == locker.site_id, LockerEventCursor.boot_id == boot))
        counted = session.scalar(select(LockerAlert.occurrences).where(
            LockerAlert.site_id == locker.site_id, LockerAlert.kind == "fault_bench"))
    text = log.read_text()
    # the machine's broker also hands the bridge other lockers' retained statuses: only this
    # locker's lines count
    problems = [line for line in text.splitlines() if "Traceback" in line or (
        locker.code in line and ("refused" in line or "not applied" in line))]
    return {"cursor": cursor, "expected": last, "alert_occurrences": counted,
            "log_problems": problems[:5],
            "ok": cursor == last and counted == last and not problems}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="rounded up to 20s")
    parser.add_argument("--warmup", type=int, default=400)
    parser.add_argument("--window", type=int, default=500,
                        help="events published ahead of the end-to-end ack (< 1,000)")
    parser.add_argument("--soak-s", type=float, default=180)
    parser.add_argument("--soak-rate", type=int, default=500, help="events/s while soaking")
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--private-broker", action="store_true",
                        help="a Mosquitto of the bench's own, as config/mosquitto.conf "
                        "recommends (TCP_NODELAY, 100 messages in flight), instead of --broker")
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--label", default="", help="a word for the result file's name")
    parser.add_argument("--bare-consumer", metavar="LOCKER", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.events = -(-args.events // ACK_EVERY) * ACK_EVERY
    args.warmup = -(-args.warmup // ACK_EVERY) * ACK_EVERY
    host, _, port = args.broker.rpartition(":")
    args.broker_address = (host, int(port))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_consumer:
        return BareConsumer(args.bare_consumer).run(*args.broker_address)
    tmp = Path(tempfile.mkdtemp(prefix="relayops-bench-bridge-"))
    private = bench_lockers.PrivateMosquitto(tmp) if args.private_broker else None
    if private is not None:
        args.broker, args.broker_address = f"127.0.0.1:{private.port} (private)", (
            "127.0.0.1", private.port)
    bench_lockers.BROKER = args.broker_address
    try:
        return run(args, tmp, argv)
    finally:
        if private is not None:
            private.stop()


def run(args: argparse.Namespace, tmp: Path, argv: list[str] | None) -> int:
    url = bench_lockers.fresh_database(args.database)
    ctx = bench_lockers.backend(url)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    bare = bare_run(new_locker(ctx), args)
    bridge = bridge_run(ctx, url, new_locker(ctx), args, tmp)
    ctx.db.dispose()
    result = {
        "when": when, "command": " ".join(["bench/bridge_throughput.py", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_1min": os.getloadavg()[0]},
        "broker": args.broker, "window": args.window,
        "bare_paho": bare, "bridge": bridge,
        "ratio_events_per_s": round(bridge["events_per_s"] / bare["events_per_s"], 3),
        "ok": bridge["checks"]["ok"],
    }
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    label = f"-{args.label}" if args.label else ""
    out = ROOT / "bench" / "results" / f"bridge-throughput{label}-{when[:19].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = json.loads(json.dumps(result))
    shown["bridge"].get("memory", {}).pop("samples", None)
    print(json.dumps(shown, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
