"""The embedded default's job runner in the web process: one runs per database (a lock), the
others stand by, and ``/ready`` says when nothing runs the jobs while they wait."""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import select

from relay_ops import jobs, runner_lock
from relay_ops.db.models import OutboxMessage
from tests.support import World


def statuses(world: World) -> list[str]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


def a_runner(app: Flask, world: World) -> jobs.InProcessRunner:
    return jobs.InProcessRunner(world.ctx, app.config,
                                lock=runner_lock.for_database(world.ctx.db))


def test_one_runner_runs_per_database_and_a_standby_takes_over(
        app: Flask, world: World) -> None:
    first, second = a_runner(app, world), a_runner(app, world)
    try:
        world.ready("WEBRUN000001")
        first.run_once()
        second.run_once()
        assert (first.active, second.active) == (True, False)
        assert statuses(world) == ["done", "done"]
        world.ready("WEBRUN000002")
        second.run_once()  # standing by: it runs nothing
        assert statuses(world) == ["done", "done", "pending", "pending"]
        assert first.lock is not None
        first.lock.release()  # its process ended
        second.run_once()
        assert second.active
        assert statuses(world) == ["done"] * 4
    finally:
        for runner in (first, second):
            assert runner.lock is not None
            runner.lock.release()


def test_readiness_says_when_no_runner_runs_the_jobs_waiting(app: Flask, world: World) -> None:
    client = app.test_client()
    assert client.get("/ready").json["status"] == "ready"  # nothing waits: an idle shop
    world.ready("WEBRUN000003")
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["status"] == "degraded"
    assert ready.json["checks"]["runner"] == "none"
    assert ready.json["checks"]["outbox_waiting"] == 2

    runner = jobs.start_in_web(app)  # what gunicorn's post_worker_init does
    assert runner is not None
    try:
        deadline = time.monotonic() + 20
        while statuses(world) != ["done", "done"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert statuses(world) == ["done", "done"]
        ready = client.get("/ready")
        assert ready.json["status"] == "ready" and ready.json["checks"]["runner"] == "active"
    finally:
        jobs.stop_in_web(app)


def test_readiness_is_content_with_a_runner_in_another_process(app: Flask, world: World) -> None:
    elsewhere = runner_lock.for_database(world.ctx.db)  # e.g. `relay-ops run-jobs`
    assert elsewhere.acquire()
    try:
        world.ready("WEBRUN000004")
        ready = app.test_client().get("/ready").json
        assert ready["status"] == "ready" and ready["checks"]["runner"] == "elsewhere"
    finally:
        elsewhere.release()
    assert app.test_client().get("/ready").json["checks"]["runner"] == "none"
