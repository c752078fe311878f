"""The embedded default under gunicorn, as the Dockerfile runs it (config/gunicorn.conf.py):
the web workers run the jobs themselves, one at a time, and every message goes out once."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.gunicorn_process import gunicorn
from tests.e2e.jobs_processes import wait_for
from tests.e2e.test_worker_processes import (  # noqa: F401 - stacks: a fixture, by name
    Stack,
    build_stack,
    stacks,
)
from tests.integration.notifications.notify_servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def ready(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as answer:
        body: dict[str, Any] = json.loads(answer.read())
        return body


def test_under_gunicorn_the_web_workers_run_the_jobs_once(
        pg_url: str, tmp_path: Path, stacks: list[Stack]) -> None:  # noqa: F811 - by name
    stack = build_stack(pg_url, tmp_path, "redis://127.0.0.1:1/0", "unused",
                        JOBS_IN_PROCESS=True)
    stacks.append(stack)
    port = free_port()
    env = {**stack.env, "RELAY_OPS_BIND": f"127.0.0.1:{port}", "RELAY_OPS_WEB_WORKERS": "2"}
    with gunicorn(env, tmp_path / "gunicorn.log", port):
        for number in ("E2EWEB000001", "E2EWEB000002"):
            stack.world.ready(number)
        wait_for(lambda: {n.status for n in stack.notifications()} == {"sent"}, 30,
                 lambda: f"the messages: {stack.statuses()}")
        checks = ready(port)["checks"]
        assert checks["jobs"] == "in process" and checks["runner"] in ("active", "standby")
    lines = Path(stack.config["NOTIFY_FILE_PATH"]).read_text().splitlines()
    assert len(lines) == 4, (tmp_path / "gunicorn.log").read_text()  # two parcels, two channels
