"""/metrics and the access log under gunicorn, as the Dockerfile runs it
(config/gunicorn.conf.py): whichever worker answers the scrape, it counts the requests every
worker served, those gunicorn has recycled included; each access line names its request."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.gunicorn_process import get, gunicorn
from tests.e2e.jobs_processes import wait_for
from tests.integration.notifications.notify_servers import free_port
from tests.integration.test_metrics import SCRAPER, TOKEN, count_of, samples

pytestmark = pytest.mark.slow


def web_env(tmp_path: Path, port: int, **settings: str) -> dict[str, str]:
    return {**os.environ, "RELAY_OPS_BIND": f"127.0.0.1:{port}",
            "RELAY_OPS_DATABASE_URL": f"sqlite:///{tmp_path / 'web.sqlite3'}",
            "RELAY_OPS_JOBS_IN_PROCESS": "false", **settings}


def test_the_access_log_names_each_request_by_its_id(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "gunicorn.log"
    with gunicorn(web_env(tmp_path, port, RELAY_OPS_WEB_WORKERS="1"), log, port):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/health")
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
            request_id = answer.headers["X-Request-Id"]
        get(port, "/health", {"X-Request-Id": "proxy-0000000042"})
        wait_for(lambda: "request=proxy-0000000042" in log.read_text(), 10, log.read_text)
        lines = log.read_text().splitlines()
        assert any('"GET /health HTTP/1.1" 200' in line and line.endswith(f"request={request_id}")
                   for line in lines), lines


def test_a_scrape_sums_the_requests_of_every_web_worker(tmp_path: Path) -> None:
    port, shared = free_port(), tmp_path / "metrics"
    shared.mkdir()
    # a previous run's counts, which the master forgets as it starts
    (shared / "counter_archive.db").write_bytes(b"left by an earlier run")
    (shared / "histogram_archive.db").write_bytes(b"left by an earlier run")
    env = web_env(tmp_path, port, RELAY_OPS_WEB_WORKERS="2", RELAY_OPS_METRICS_TOKEN=TOKEN,
                  PROMETHEUS_MULTIPROC_DIR=str(shared),
                  # each worker recycled after 40 to 43 requests: several in this test
                  RELAY_OPS_WEB_MAX_REQUESTS="40")
    with gunicorn(env, tmp_path / "gunicorn.log", port):
        sent = 1  # the check that it answers
        # A new connection each time: the workers take turns accepting, and exit after
        # their fortieth-odd request; gunicorn starts others.
        for _ in range(300):
            get(port, "/health")
            sent += 1
        # The recycled workers' files folded into one archive: a few files, not one a worker.
        wait_for(lambda: (shared / "histogram_archive.db").exists(), 10, "a worker recycled")
        wait_for(lambda: len(list(shared.glob("histogram_*.db"))) <= 3, 10,
                 lambda: f"the live workers' files and the archive: {list(shared.iterdir())}")
        for _scrape in range(4):  # each scrape may land on either worker: the same sum
            scraped = samples(get(port, "/metrics", SCRAPER))
            assert count_of(scraped, "meta.health", "GET", "200") == sent
