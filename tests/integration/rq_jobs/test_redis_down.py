"""Redis down: the counter keeps working, messages wait in the outbox, readiness says so."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from relay_ops import create_app
from relay_ops.services.context import Ctx
from tests.conftest import Clock
from tests.integration.notifications.notify_servers import free_port
from tests.integration.rq_jobs.conftest import rq_config
from tests.support import is_problem, make_world


def test_without_redis_check_ins_and_pickups_go_on_and_readiness_is_degraded(
        database_url: str, tmp_path: Path, clock: Clock, jobs_prefix: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = create_app(rq_config(database_url, tmp_path, jobs_prefix, REDIS_URL=closed))
    base: Ctx = app.extensions["relay_ops"]
    app.extensions["relay_ops"] = Ctx(db=base.db, settings=base.settings, clock=clock)
    try:
        world = make_world(app.extensions["relay_ops"], app.test_client())
        parcel = world.ready("NOREDIS00001")
        assert world.pick_up(code=world.code_of(parcel["id"])).status_code == 200

        ready = world.client.get("/ready")
        assert ready.status_code == 200
        assert ready.json["status"] == "degraded"
        assert ready.json["checks"]["database"] == "ok"
        assert ready.json["checks"]["redis"].startswith("degraded")
        assert ready.json["checks"]["outbox_waiting"] == 4  # ready and picked_up, two channels

        overview = world.operator.get("/jobs").json
        assert overview["redis"].startswith("unavailable") and overview["outbox"]["pending"] == 4
        assert is_problem(world.operator.get("/jobs/failed"), 503, "jobs-backend-unavailable")
    finally:
        base.db.dispose()


def test_readiness_with_redis_up(app: Flask) -> None:
    ready = app.test_client().get("/ready")
    assert (ready.status_code, ready.json["status"]) == (200, "ready")
    assert ready.json["checks"] == {"database": "ok", "redis": "ok", "jobs": "rq"}


def test_the_embedded_default_needs_no_redis(tmp_path: Path) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
                      "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    client: FlaskClient = app.test_client()
    ready = client.get("/ready")
    assert (ready.status_code, ready.json["status"]) == (200, "ready")
    assert ready.json["checks"]["redis"] == "not used"
    app.extensions["relay_ops"].db.dispose()
