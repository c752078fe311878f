"""Notifications throughput (issue 15): one ``relay-ops worker`` and one ``relay-ops scheduler``,
as deployed (PostgreSQL, Redis, JOBS_IN_PROCESS=false), sending every resident's message to a
local SMTP sink (aiosmtpd) and a local HTTP SMS sink on 127.0.0.1.

Three phases, one run:

1. **drain**: ``--messages`` messages (half e-mail, half SMS: one check-in owes both) are
   committed and handed to RQ while no worker runs; then the worker starts. Reported: messages/s
   between the first and the last message the sinks received, the worker's CPU per message
   (its own and its children's: the forked work horses) and its PostgreSQL backends' CPU.
2. **rate**: check-ins at ``--rate`` messages/s for ``--duration`` seconds; commit-to-send
   latency (check-in committed in the bench → message received by the sink) p50/p99.
3. all along: the worker's resident memory (its process and its children), sampled every
   ``--sample-every`` seconds; ``--duration 600`` gives the 10-minute memory run.

Checks for every run: every notification ``sent``, each one received by its sink exactly once
(by Idempotency-Key and Message-ID), nothing left in the outbox.

    .venv/bin/python bench/notifications.py --messages 1000 --duration 60

It drops and re-creates the database ``relayops_bench_notify`` (``--database``) and uses Redis
at ``--redis`` under a prefix of its own, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

import psycopg  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from redis import Redis  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench import seed  # noqa: E402
from bench.checkin import children_of, cpu_seconds, machine_busy, rss_mb  # noqa: E402
from relay_ops.db.models import Notification, OutboxMessage  # noqa: E402
from relay_ops.domain.pickup_token import generate_private_key, private_key_to_pem  # noqa: E402
from relay_ops.services import api_tokens, checkin, manifests  # noqa: E402
from relay_ops.services.principal import Principal  # noqa: E402

HOST = "127.0.0.1"
GOALS = {"messages_per_s_min": 50.0, "p99_s_max": 2.0}
KEY_PREFIX = "relayops-notification-"


# ---------------------------------------------------------------- the sinks


@dataclass
class Received:
    """What the sinks took: (wall time, idempotency key or Message-ID) per message."""

    sms: list[tuple[float, str]] = field(default_factory=list)
    mail: list[tuple[float, str]] = field(default_factory=list)


class _MailHandler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        message_id = ""
        for line in content.split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode()
                break
        self.received.mail.append((time.time(), message_id))
        return "250 2.0.0 Ok: queued"


class _SmsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, for a client that wants it
    server: _SmsSink

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.sms.append((time.time(), self.headers.get("Idempotency-Key", "")))
        body = b'{"id": "bench", "status": "queued"}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _SmsSink(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, received: Received) -> None:
        super().__init__((HOST, 0), _SmsHandler)
        self.received = received


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Sinks:
    def __init__(self) -> None:
        self.received = Received()
        self.smtp_port = _free_port()
        self.smtp = Controller(_MailHandler(self.received), hostname=HOST, port=self.smtp_port)
        self.smtp.start()
        self.sms = _SmsSink(self.received)
        threading.Thread(target=self.sms.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def sms_url(self) -> str:
        return f"http://{HOST}:{self.sms.server_address[1]}/v1/sms"

    def count(self) -> int:
        return len(self.received.sms) + len(self.received.mail)

    def stop(self) -> None:
        self.smtp.stop()
        self.sms.shutdown()
        self.sms.server_close()


# ---------------------------------------------------------------- processes and sampling


class Process:
    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "relay_ops.cli", *command], env=env, cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.log = log

    def tree(self) -> list[int]:
        return [self.popen.pid, *children_of(self.popen.pid)]

    def cpu(self) -> float:
        """Its own CPU seconds and its children's: those alive, and those it reaped (cutime)."""
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return sum(cpu_seconds(p) for p in self.tree()) + reaped

    def rss(self) -> float:
        return sum(rss_mb(p) for p in self.tree())

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class Sampler(threading.Thread):
    """Every ``every`` seconds: the worker's memory, and the CPU of the PostgreSQL backends
    whose application_name is the worker's (each backend's last reading is kept, so one that
    ended still counts up to its last sample)."""

    def __init__(self, pg_url: str, worker: Process, every: float) -> None:
        super().__init__(daemon=True)
        self.pg_url, self.worker, self.every = pg_url, worker, every
        self.rss: list[tuple[float, float]] = []
        self.backend_cpu: dict[int, float] = {}
        self.stopping = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        with psycopg.connect(self.pg_url, autocommit=True) as conn:
            while not self.stopping.is_set():
                self.sample(conn)
                self.stopping.wait(self.every)
            self.sample(conn)

    def sample(self, conn: psycopg.Connection[Any]) -> None:
        self.rss.append((round(time.monotonic() - self.started_at, 1), round(self.worker.rss(), 1)))
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'relayops-worker'")]
        for pid in pids:
            self.backend_cpu[pid] = max(self.backend_cpu.get(pid, 0.0), cpu_seconds(pid))

    def pg_cpu(self) -> float:
        return sum(self.backend_cpu.values())

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


# ---------------------------------------------------------------- the run


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise TimeoutError(f"waited {timeout_s}s for {what}")


def announce(world: seed.World, count: int) -> None:
    """``count`` parcels through the manifest service, each for a recipient of its own: one
    recipient's parcels share a code (grouping), and a backlog all for one person would make
    every message list thousands of parcels waiting with it."""
    for first in range(0, count, seed.BATCH):
        numbers = range(first, min(first + seed.BATCH, count))
        status, answer = manifests.announce(world.ctx, world.carrier, {
            "reference": f"bench-{first}",
            "parcels": [
                {"tracking_number": seed.tracking_number(n), "site": seed.shop_code(0),
                 "recipient": {"name": f"Resident {n}", "phone": f"+3361{n:07d}",
                               "email": f"resident{n}@example.org"}}
                for n in numbers
            ],
        })
        if status != 201 or answer["accepted"] != len(numbers):
            raise RuntimeError(f"seeding refused parcels: {answer['rejected']}")


def check_in(world: seed.World, shopkeeper: Principal, n: int) -> int:
    answer = checkin.check_in(world.ctx, shopkeeper, world.site_ids[0], seed.tracking_number(n))
    return int(answer["parcel"]["id"])


def message_ids(world: seed.World, domain: str, parcel_ids: list[int]) -> dict[str, int]:
    """Every key a sink may have seen (the SMS Idempotency-Key, the e-mail Message-ID) → the
    notification id it stands for."""
    from relay_ops.notifications.senders import SmtpSender

    smtp = SmtpSender(HOST, 25, f"bench@{domain}")
    keys: dict[str, int] = {}
    with world.ctx.db.read() as session:
        for nid in session.scalars(select(Notification.id)
                                   .where(Notification.parcel_id.in_(parcel_ids))):
            keys[f"{KEY_PREFIX}{nid}"] = nid
            keys[smtp.message_id(f"{KEY_PREFIX}{nid}")] = nid
    return keys


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    logdir = Path(tempfile.mkdtemp(prefix="relayops-bench-notify-"))
    db_url = f"{args.pg}/{args.database}"
    sa_url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    prefix = f"bn{uuid.uuid4().hex[:10]}"
    sinks = Sinks()
    secrets = {k: f"bench-{k.lower()}-{os.urandom(8).hex()}" for k in
               ("SECRET_KEY", "PICKUP_CODE_PEPPER", "PICKUP_CODE_DERIVATION_KEY",
                "API_TOKEN_PEPPER", "LOCKER_PIN_KEY_SECRET")}
    secrets["LOCKER_TOKEN_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    secrets["LOCKER_COMMAND_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    config: dict[str, Any] = {
        "ENV": "production", "DATABASE_URL": sa_url, "LOG_LEVEL": "WARNING",
        "REDIS_URL": args.redis, "JOBS_IN_PROCESS": False, "JOBS_PREFIX": prefix,
        "PUBLIC_BASE_URL": "https://relayops.example.org",
        "NOTIFY_EMAIL_BACKEND": "smtp", "SMTP_HOST": HOST, "SMTP_PORT": sinks.smtp_port,
        "SMTP_FROM": "RelayOps <relais@bench.example.org>",
        "NOTIFY_SMS_BACKEND": "webhook", "SMS_WEBHOOK_URL": sinks.sms_url,
        "SMS_WEBHOOK_TOKEN": "bench-token", **secrets,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_OPS_")}
    env |= {f"RELAY_OPS_{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in config.items()}
    env["PYTHONPATH"] = str(REPO)
    worker_env = env | {"RELAY_OPS_DATABASE_URL": f"{sa_url}?application_name=relayops-worker"}

    print(f"database {args.database}: re-creating, migrating, seeding", flush=True)
    seed.recreate_database(f"{args.pg}/postgres", args.database)
    world = seed.build(config, 1)
    parcels_needed = args.messages // 2 + int(args.rate / 2 * args.duration) + 10
    announce(world, parcels_needed)
    shopkeeper = api_tokens.authenticate(world.ctx, world.shopkeeper_token)

    scheduler = Process(["scheduler"], env, logdir / "scheduler.log")
    worker: Process | None = None
    result: dict[str, Any] = {"started": started.isoformat(), "args": vars(args),
                              "logs": str(logdir)}
    try:
        # 1. drain: the backlog waits in RQ, then one worker takes it.
        drain_ids = [check_in(world, shopkeeper, n) for n in range(args.messages // 2)]
        owed = len(drain_ids) * 2
        wait_until(lambda: _dispatched(world) >= owed, 60, "the scheduler to hand the rows to RQ")
        print(f"drain: {owed} messages owed and in RQ; starting the worker", flush=True)
        worker = Process(["worker"], worker_env, logdir / "worker.log")
        sampler = Sampler(db_url, worker, args.sample_every)
        sampler.start()
        cpu0, busy0 = worker.cpu(), machine_busy()
        wait_until(lambda: sinks.count() >= owed, args.timeout, "the drain")
        cpu1, busy1, pg1 = worker.cpu(), machine_busy(), sampler.pg_cpu()
        times = sorted(t for t, _ in sinks.received.sms + sinks.received.mail)
        span = times[-1] - times[0]
        result["drain"] = {
            "messages": owed, "seconds": round(span, 2),
            "messages_per_s": round((owed - 1) / span, 1),
            "worker_cpu_ms_per_message": round((cpu1 - cpu0) * 1000 / owed, 2),
            "pg_cpu_ms_per_message": round(pg1 * 1000 / owed, 2),
            "machine_busy": round((busy1[0] - busy0[0]) / (busy1[1] - busy0[1]), 2),
        }
        print(f"  {result['drain']}", flush=True)

        # 2. a steady rate: commit-to-send latency.
        time.sleep(2)  # the drain's tail (the rows' done marks) out of the way
        before = sinks.count()
        committed: dict[int, float] = {}
        cpu2, pg2, busy2 = worker.cpu(), sampler.pg_cpu(), machine_busy()
        interval = 2 / args.rate  # one check-in owes two messages
        first, t0 = len(drain_ids) + 1, time.monotonic()
        k = 0
        while time.monotonic() - t0 < args.duration:
            target = t0 + k * interval
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            committed[check_in(world, shopkeeper, first + k)] = time.time()
            k += 1
        offering_s = time.monotonic() - t0
        owed_rate = len(committed) * 2
        wait_until(lambda: sinks.count() >= before + owed_rate, args.timeout, "the rate phase")
        cpu3, pg3, busy3 = worker.cpu(), sampler.pg_cpu(), machine_busy()
        keys = message_ids(world, "bench.example.org", list(committed))
        with world.ctx.db.read() as session:
            parcel_of = dict(session.execute(select(Notification.id, Notification.parcel_id)
                                             .where(Notification.parcel_id.in_(committed))).all())
        latencies = [t - committed[parcel_of[keys[key]]]
                     for t, key in sinks.received.sms + sinks.received.mail if key in keys]
        offered = owed_rate / offering_s
        result["rate"] = {
            "messages": owed_rate, "target_per_s": args.rate,
            "offered_per_s": round(offered, 1),
            "commit_to_send_p50_s": round(percentile(latencies, 0.5), 3),
            "commit_to_send_p99_s": round(percentile(latencies, 0.99), 3),
            "commit_to_send_max_s": round(max(latencies), 3),
            "worker_cpu_ms_per_message": round((cpu3 - cpu2) * 1000 / owed_rate, 2),
            "pg_cpu_ms_per_message": round((pg3 - pg2) * 1000 / owed_rate, 2),
            "machine_busy": round((busy3[0] - busy2[0]) / (busy3[1] - busy2[1]), 2),
        }
        print(f"  rate: {result['rate']}", flush=True)
        time.sleep(2)
        sampler.stop()
        rss = [mb for _, mb in sampler.rss]
        result["worker_rss_mb"] = {"first": rss[0], "min": min(rss), "max": max(rss),
                                   "last": rss[-1], "samples": sampler.rss}
        print(f"  worker RSS MB: first {rss[0]}, min {min(rss)}, max {max(rss)}, "
              f"last {rss[-1]} ({len(rss)} samples)", flush=True)
        result["checks"] = checks(world, sinks, keys_all=message_ids(
            world, "bench.example.org", drain_ids + list(committed)))
        print(f"checks: {result['checks']}", flush=True)
    finally:
        if worker is not None:
            worker.stop()
        scheduler.stop()
        sinks.stop()
        world.ctx.db.dispose()
        _forget(args.redis, prefix)
    result["goals"] = GOALS
    return result


def _dispatched(world: seed.World) -> int:
    with world.ctx.db.read() as session:
        return int(session.scalar(select(func.count()).where(
            OutboxMessage.status == "dispatched")) or 0)


def checks(world: seed.World, sinks: Sinks, keys_all: dict[str, int]) -> dict[str, Any]:
    seen = [keys_all.get(k) for _, k in sinks.received.sms + sinks.received.mail]
    with world.ctx.db.read() as session:
        statuses = dict(session.execute(select(Notification.status, func.count())
                                        .group_by(Notification.status)).all())
        outbox = dict(session.execute(select(OutboxMessage.status, func.count())
                                      .group_by(OutboxMessage.status)).all())
    unknown = sum(1 for s in seen if s is None)
    duplicates = len(seen) - len(set(seen))
    ok = (unknown == 0 and duplicates == 0 and set(statuses) == {"sent"}
          and set(outbox) == {"done"} and statuses["sent"] == len(seen))
    return {"ok": ok, "received": len(seen), "duplicates": duplicates, "unknown": unknown,
            "notifications": statuses, "outbox": outbox}


def _forget(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}*", f"rq:*{prefix}*"):
            keys = list(redis.scan_iter(match=pattern, count=1000))
            for start in range(0, len(keys), 500):
                redis.delete(*keys[start:start + 500])
    finally:
        redis.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=1000, help="the drain's backlog")
    p.add_argument("--rate", type=float, default=20.0, help="messages/s offered in phase 2")
    p.add_argument("--duration", type=float, default=60, help="seconds of phase 2")
    p.add_argument("--sample-every", type=float, default=1.0, help="seconds between samples")
    p.add_argument("--timeout", type=float, default=900, help="seconds a phase may take")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--database", default="relayops_bench_notify")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--out", type=Path, default=None, help="JSON result file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    out = args.out or REPO / "bench" / "results" / (
        f"notifications-{datetime.now(UTC):%Y%m%d-%H%M%S}.json")
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"results: {out}")
    return 0 if result["checks"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
