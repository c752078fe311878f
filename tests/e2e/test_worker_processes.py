"""Background work end to end: a real ``relay-ops scheduler`` and ``relay-ops worker`` (an RQ
worker running the jobs in its own process) on PostgreSQL and Redis, sending through a real
SMTP server and a local HTTP SMS gateway. Each message must reach its channel once per event,
with nobody calling the sweeps, when the worker is killed mid-send, and across Redis
restarts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import select, update

from relay_ops import create_app
from relay_ops.db.models import Notification, OutboxMessage, Parcel, ParcelEvent
from relay_ops.worker import relay
from relay_ops.worker.config import JobsConfig
from tests.conftest import empty_database
from tests.e2e.jobs_processes import RedisServer, RelayOpsProcess, children, wait_for
from tests.integration.notifications.notify_servers import SmsGateway, SmtpServer, free_port
from tests.integration.rq_jobs.conftest import SHARED_REDIS, forget_prefix
from tests.integration.test_metrics import samples
from tests.support import World, make_world

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SWEEPS_EVERY_SECOND = {"expiry": 1, "reminders": 1, "outbox-redispatch": 1,
                       "personal-data-purge": 1, "locker-reservations": 1}


@dataclass
class Stack:
    config: dict[str, Any]
    env: dict[str, str]
    app: Flask
    world: World
    tmp: Path

    def process(self, *command: str) -> RelayOpsProcess:
        return RelayOpsProcess(list(command), self.env, self.tmp / f"{command[0]}.log")

    def notifications(self) -> list[Notification]:
        with self.world.ctx.db.read() as session:
            return list(session.scalars(select(Notification).order_by(Notification.id)))

    def statuses(self) -> list[tuple[int, str, str, str, str | None]]:
        return [(n.parcel_id, n.kind, n.channel, n.status, n.error)
                for n in self.notifications()]

    def kind_of_key(self) -> dict[str, tuple[int, str, str]]:
        """Idempotency key → (parcel, kind, channel): what each delivered message was."""
        return {f"relayops-notification-{n.id}": (n.parcel_id, n.kind, n.channel)
                for n in self.notifications()}


def build_stack(pg_url: str, tmp: Path, redis_url: str, prefix: str,
                **settings: Any) -> Stack:
    config: dict[str, Any] = {
        "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "JOBS_IN_PROCESS": False,
        "JOBS_PREFIX": prefix, "JOB_RETRY_INTERVALS": [1, 1, 1],
        "SWEEP_INTERVALS": SWEEPS_EVERY_SECOND, "OUTBOX_STALE_AFTER_S": 2,
        "PUBLIC_BASE_URL": "http://relayops.test", "NOTIFY_FILE_PATH": str(tmp / "sent.jsonl"),
        "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, **settings,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_OPS_")}
    env.update({f"RELAY_OPS_{k}": v if isinstance(v, str) else json.dumps(v)
                for k, v in config.items()})
    env["PYTHONPATH"] = str(ROOT)  # this checkout's code, whichever one the venv installed
    app = create_app({"TESTING": True, **config})
    world = make_world(app.extensions["relay_ops"], app.test_client())
    return Stack(config, env, app, world, tmp)


@pytest.fixture
def prefix() -> Iterator[str]:
    value = f"e{uuid.uuid4().hex[:12]}"
    yield value
    forget_prefix(SHARED_REDIS, value)


@pytest.fixture
def stacks(pg_url: str) -> Iterator[list[Stack]]:
    built: list[Stack] = []
    yield built
    for stack in built:
        stack.app.extensions["relay_ops"].db.dispose()
    empty_database(pg_url)


def set_parcel(stack: Stack, parcel_id: int, **values: Any) -> None:
    with stack.world.ctx.db.transaction() as session:
        session.execute(update(Parcel).where(Parcel.id == parcel_id).values(**values))


def test_every_message_goes_out_once_and_the_sweeps_run_by_themselves(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack],
        sms_gateway: SmsGateway, smtp_server: SmtpServer) -> None:
    stack = build_stack(
        pg_url, tmp_path, SHARED_REDIS, prefix,
        NOTIFY_SMS_BACKEND="webhook", SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="tok",
        NOTIFY_EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port,
        SMTP_FROM="relais@example.org")
    stacks.append(stack)
    world, now = stack.world, datetime.now(UTC)
    metrics_port = free_port()
    scheduler = stack.process("scheduler").start()
    worker = stack.process("worker", "--metrics-port", str(metrics_port)).start()
    try:
        picked, overdue, reminded, old = (world.ready(n)["id"] for n in (
            "E2EJOB000001", "E2EJOB000002", "E2EJOB000003", "E2EJOB000004"))
        # Residents come with the code their message gave them.
        wait_for(lambda: all(n.status == "sent" for n in stack.notifications()), 30,
                 lambda: f"the ready messages: {stack.statuses()}")
        for parcel_id in (picked, old):
            assert world.pick_up(code=world.code_of(parcel_id)).status_code == 200
        # Messages already owed go out first; then time "passes" for three of the parcels.
        wait_for(lambda: all(n.status == "sent" for n in stack.notifications()), 30,
                 lambda: f"the ready and picked_up messages: {stack.statuses()}")
        set_parcel(stack, overdue, holding_deadline=now - timedelta(minutes=1))
        set_parcel(stack, reminded, holding_deadline=now + timedelta(hours=3),
                   checked_in_at=now - timedelta(days=9))
        set_parcel(stack, old, closed_at=now - timedelta(days=31))

        expected = {(picked, "ready"), (picked, "picked_up"), (overdue, "ready"),
                    (overdue, "expired"), (reminded, "ready"), (reminded, "reminder"),
                    (old, "ready"), (old, "picked_up")}

        def purged() -> bool:
            with world.ctx.db.read() as session:
                return session.get(Parcel, old).personal_data_purged_at is not None  # type: ignore[union-attr]

        wait_for(lambda: len(sms_gateway.requests) >= 8 and len(smtp_server.handler.received)
                 >= 8 and purged(), 40, "eight messages per channel and the purge")
        time.sleep(1.5)  # sweeps keep running: nothing may go out twice
        # The worker's metrics: each of the sixteen messages sent by one job run, counted
        # with its wait since its commit (relay_ops/metrics.py).
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
            figures = samples(answer.read().decode())
    finally:
        scheduler.stop()
        worker.stop()
    send = (("job", "notifications.send"),)
    assert figures[("relayops_jobs_total", (*send, ("outcome", "done")))] == 16
    assert figures[("relayops_job_commit_to_done_seconds_count", send)] == 16
    keys = stack.kind_of_key()
    sms = [keys[r.headers["Idempotency-Key"]] for r in sms_gateway.requests]
    # An e-mail's Message-ID is what the notification recorded as the provider's id.
    by_message_id = {n.provider_id: (n.parcel_id, n.kind, n.channel)
                     for n in stack.notifications() if n.channel == "email"}
    mails = [by_message_id[_message_id(e.content)] for e in smtp_server.handler.received]
    assert sorted(sms) == sorted((p, k, "sms") for p, k in expected), worker.output()
    assert sorted(mails) == sorted((p, k, "email") for p, k in expected)
    assert {n.status for n in stack.notifications()} == {"sent"}
    with world.ctx.db.read() as session:
        row = session.get(Parcel, old)
        assert row is not None and row.recipient_phone is None and row.recipient_name is None
        assert session.get(Parcel, overdue).state == "expired"  # type: ignore[union-attr]
        actions = session.scalars(select(ParcelEvent.action).where(ParcelEvent.parcel_id == old)
                                  .order_by(ParcelEvent.id)).all()
        statuses = set(session.scalars(select(OutboxMessage.status)))
    assert actions[-1] == "personal_data_purged" and "check_in" in actions
    assert statuses == {"done"}


def _message_id(content: bytes | str) -> str:
    text = content.decode() if isinstance(content, bytes) else content
    for line in text.splitlines():
        if line.lower().startswith("message-id:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no Message-ID")


def test_a_worker_killed_mid_batch_restarts_and_each_message_reaches_its_sink_once(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack],
        sms_gateway: SmsGateway, smtp_server: SmtpServer) -> None:
    """kill -9 of the worker (jobs run in its own process) while it waits for the SMS
    gateway's answer, in the middle of a batch of e-mails and SMS. Restarted under its name, it
    retries the job it was running at once. The message in flight reached the gateway twice
    with one Idempotency-Key (no protocol can know whether a send whose answer was lost went
    through), so a provider that drops repeats by key, as real gateways do, delivers each
    message exactly once; every other message reached its sink once, and the notification
    rows were written once."""
    stack = build_stack(
        pg_url, tmp_path, SHARED_REDIS, prefix,
        NOTIFY_SMS_BACKEND="webhook", SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="tok",
        NOTIFY_EMAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port,
        SMTP_FROM="relais@example.org")
    stacks.append(stack)
    sms_gateway.script.delay = 0.6  # the gateway is slow: the worker waits for its answers
    name = f"{prefix}-worker-1"
    scheduler = stack.process("scheduler").start()
    first = stack.process("worker", "--name", name).start()
    second = stack.process("worker", "--name", name)
    try:
        for n in range(6):
            stack.world.ready(f"E2EKILL0000{n}")
        wait_for(lambda: len(sms_gateway.requests) >= 3, 40, "three SMS of the batch")
        # The moment a new SMS reaches the gateway, the worker waits for its answer: kill it.
        seen = len(sms_gateway.requests)
        wait_for(lambda: len(sms_gateway.requests) > seen, 20, "the next SMS")
        os.kill(first.pid, signal.SIGKILL)
        assert first.process is not None
        first.process.wait(timeout=10)
        in_flight = sms_gateway.requests[-1].headers["Idempotency-Key"]
        sms_gateway.script.delay = 0
        second.start()
        wait_for(lambda: len(stack.notifications()) == 12 and all(
            n.status == "sent" for n in stack.notifications()), 60,
            lambda: f"the whole batch: {stack.statuses()}")
        time.sleep(1.5)  # sweeps keep running: nothing may go out again
    finally:
        scheduler.stop()
        first.stop()
        second.stop()
    keys = stack.kind_of_key()
    sms_keys = [r.headers["Idempotency-Key"] for r in sms_gateway.requests]
    # The one repeat is the SMS in flight when the worker died, under the same key.
    assert sorted(sms_keys) == sorted([*(k for k, v in keys.items() if v[2] == "sms"),
                                       in_flight]), second.output()
    mail_ids = [_message_id(e.content) for e in smtp_server.handler.received]
    assert sorted(mail_ids) == sorted(n.provider_id for n in stack.notifications()
                                      if n.channel == "email")
    assert {(n.status, n.attempts) for n in stack.notifications()} == {("sent", 1)}
    assert "was running when it died; retried" in second.output()
    with stack.world.ctx.db.read() as session:
        runs = [(payload["notification_id"], attempts) for payload, attempts in session.execute(
            select(OutboxMessage.payload, OutboxMessage.attempts)
            .where(OutboxMessage.attempts > 1))]
    killed = next(n.id for n in stack.notifications()
                  if f"relayops-notification-{n.id}" == in_flight)
    assert runs == [(killed, 2)]  # the killed run counts, and only that job ran twice


def test_across_redis_restarts_the_counter_keeps_working_and_messages_go_out_once(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack],
        sms_gateway: SmsGateway) -> None:
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    stack = build_stack(pg_url, tmp_path, redis.url, prefix, NOTIFY_SMS_BACKEND="webhook",
                        SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="tok")
    stacks.append(stack)
    world, client = stack.world, stack.app.test_client()
    scheduler, worker = stack.process("scheduler").start(), stack.process("worker").start()
    try:
        world.ready("E2EREDIS0001")
        wait_for(lambda: len(sms_gateway.requests) == 1, 30, "the first SMS")

        # Redis dies: the shop keeps checking parcels in, readiness says what is missing.
        redis.crash()
        world.ready("E2EREDIS0002")
        ready = client.get("/ready")
        assert ready.status_code == 200 and ready.json["status"] == "degraded"
        assert ready.json["checks"]["outbox_waiting"] >= 2
        redis.start()
        wait_for(lambda: len(sms_gateway.requests) == 2, 40,
                 lambda: f"the SMS held during the outage: {stack.statuses()}")
        assert client.get("/ready").json["status"] == "ready"

        # Redis restarts empty while a job waits in it: the scheduler sees the loss and hands
        # the row over again.
        worker.stop()
        world.ready("E2EREDIS0003")
        wait_for(lambda: _statuses(stack) == {"done": 4, "dispatched": 2}, 20,
                 lambda: f"the third parcel's jobs in Redis: {_statuses(stack)}")
        redis.crash()
        redis.start()
        worker.start()
        wait_for(lambda: _statuses(stack) == {"done": 6}, 40,
                 lambda: f"the lost jobs: {_statuses(stack)}")
        time.sleep(1.5)
    finally:
        scheduler.stop()
        worker.stop()
        redis.crash()
    assert assert_no_crash(scheduler) and len(sms_gateway.requests) == 3, worker.output()
    assert len({r.headers["Idempotency-Key"] for r in sms_gateway.requests}) == 3
    assert {n.status for n in stack.notifications()} == {"sent"}
    lines = Path(stack.config["NOTIFY_FILE_PATH"]).read_text().splitlines()
    assert len(lines) == 3  # the e-mails, through the file sender


def _statuses(stack: Stack) -> dict[str, int]:
    with stack.world.ctx.db.read() as session:
        found = session.scalars(select(OutboxMessage.status)).all()
    return {s: found.count(s) for s in set(found)}


def assert_no_crash(process: RelayOpsProcess) -> bool:
    return "Traceback" not in process.output()


def relay_now(stack: Stack) -> int:
    """The scheduler's relay, run once from the test: these tests watch workers only."""
    redis = Redis.from_url(stack.config["REDIS_URL"], socket_connect_timeout=2)
    try:
        return relay.dispatch_pending(stack.world.ctx, redis,
                                      JobsConfig.from_config(stack.app.config))
    finally:
        redis.close()


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for whoever adopted it to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_worker_started_while_redis_is_down_waits_for_it_and_then_works(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack],
        sms_gateway: SmsGateway) -> None:
    redis = RedisServer(free_port(), tmp_path)  # not started yet: Redis is down
    stack = build_stack(pg_url, tmp_path, redis.url, prefix, NOTIFY_SMS_BACKEND="webhook",
                        SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="tok")
    stacks.append(stack)
    worker = stack.process("worker").start()
    try:
        wait_for(lambda: "a new worker starts" in worker.output() or not worker.alive(), 30,
                 "the worker to meet the missing Redis")
        assert worker.alive(), worker.output()
        redis.start()
        stack.world.ready("E2EWAIT00001")
        assert relay_now(stack) == 2
        wait_for(lambda: {n.status for n in stack.notifications()} == {"sent"}, 40,
                 lambda: f"the messages once Redis answers: {stack.statuses()}")
        assert len(sms_gateway.requests) == 1
    finally:
        worker.stop()
        redis.crash()


def test_sigterm_stops_an_idle_worker_and_its_scheduler_process(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack]) -> None:
    stack = build_stack(pg_url, tmp_path, SHARED_REDIS, prefix)
    stacks.append(stack)
    worker = stack.process("worker").start()
    try:
        wait_for(lambda: children(worker.pid) and "Listening on" in worker.output(), 30,
                 "the worker waiting for jobs, with its scheduler process")
        scheduler_process = children(worker.pid)
        assert worker.process is not None
        worker.process.terminate()  # what systemctl stop and docker stop send
        try:
            code = worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"SIGTERM did not stop the worker: {worker.output()}") from None
        assert code == 0, worker.output()
        wait_for(lambda: not any(running(pid) for pid in scheduler_process), 10,
                 "the scheduler process to end with the worker")
    finally:
        worker.stop()


def test_a_worker_killed_outright_takes_its_children_along_and_restarts_under_its_name(
        pg_url: str, tmp_path: Path, prefix: str, stacks: list[Stack],
        sms_gateway: SmsGateway) -> None:
    stack = build_stack(pg_url, tmp_path, SHARED_REDIS, prefix, NOTIFY_SMS_BACKEND="webhook",
                        SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="tok")
    stacks.append(stack)
    name = f"{prefix}-worker-1"
    first = stack.process("worker", "--name", name).start()
    second = stack.process("worker", "--name", name)
    try:
        wait_for(lambda: children(first.pid) and "Listening on" in first.output(), 30,
                 "the first worker with its scheduler process")
        orphans = children(first.pid)
        os.kill(first.pid, signal.SIGKILL)  # only the worker, as the OOM killer would
        assert first.process is not None
        first.process.wait(timeout=10)  # reaped, as systemd or docker would
        wait_for(lambda: not any(running(pid) for pid in orphans), 15,
                 "the worker's children to die with it")
        # Restarted at once under the same name (systemd's Restart=always), it works.
        second.start()
        stack.world.ready("E2ENAME00001")
        assert relay_now(stack) == 2
        wait_for(lambda: {n.status for n in stack.notifications()} == {"sent"}
                 or not second.alive(), 40, lambda: f"the messages: {stack.statuses()}")
        assert second.alive(), second.output()
        assert len(sms_gateway.requests) == 1
    finally:
        first.stop()
        second.stop()
