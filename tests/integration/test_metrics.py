"""Prometheus metrics (relay_ops/metrics.py): every request timed under its endpoint, method
and status; /metrics only for the scraper holding METRICS_TOKEN; the bridge's figures."""

from __future__ import annotations

import logging
import queue
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from relay_ops import jobs, outbox
from relay_ops.db.models import LockerLink, Site
from relay_ops.metrics import BridgeCollector, serve_bridge_metrics, serve_job_metrics
from relay_ops.services import locker_registry, notify
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.integration.notifications.notify_servers import free_port
from tests.support import World

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "scraper-secret-token"
SCRAPER = {"Authorization": f"Bearer {TOKEN}"}
DURATIONS = "relayops_http_request_duration_seconds"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exposition's samples by name and labels (the format parsed, not searched)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def count_of(scraped: dict[Any, float], endpoint: str, method: str, status: str) -> float:
    labels = (("endpoint", endpoint), ("method", method), ("status", status))
    return scraped.get((DURATIONS + "_count", labels), 0.0)


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_each_request_is_counted_under_its_endpoint_method_and_status(
        world: World, client: FlaskClient) -> None:
    parcel = world.ready("MET000000001")  # a manifest and a check-in
    assert world.check_in("MET000000001").status_code == 200  # already checked in
    assert world.check_in("MET000000404").status_code == 409  # nobody announced it
    code = world.code_of(parcel["id"])
    assert world.pick_up(code=code).status_code == 200
    client.get(f"/api/v1/parcels/{10**30}")  # an id no route takes: no endpoint
    client.open("/health", method="BREW")  # a made-up method: one label for all of them

    scraped = samples(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))
    assert count_of(scraped, "api.announce", "POST", "201") == 1
    assert count_of(scraped, "api.check_in", "POST", "201") == 1
    assert count_of(scraped, "api.check_in", "POST", "200") == 1
    assert count_of(scraped, "api.check_in", "POST", "409") == 1
    assert count_of(scraped, "api.pick_up", "POST", "200") == 1
    assert count_of(scraped, "unmatched", "GET", "404") == 1
    assert count_of(scraped, "unmatched", "other", "405") == 1
    assert not any("BREW" in str(key) or "10000" in str(key) for key in scraped)
    # A histogram: the requests under 10 s are all of them; their time is a real duration.
    labels = (("endpoint", "api.check_in"), ("method", "POST"), ("status", "201"))
    assert scraped[(DURATIONS + "_bucket", (*labels[:1], ("le", "10.0"), *labels[1:]))] == 1
    assert 0 < scraped[(DURATIONS + "_sum", labels)] < 10


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_only_the_scraper_holding_the_token_reads_the_metrics(
        world: World, client: FlaskClient) -> None:
    refused = [
        client.get("/metrics"),
        client.get("/metrics", headers={"Authorization": "Bearer not-the-token"}),
        client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
        client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
        # a staff token opens the API, not the metrics
        client.get("/metrics", headers={"Authorization": f"Bearer {world.operator.token}"}),
    ]
    assert [r.status_code for r in refused] == [401] * 5
    assert {r.json["type"] for r in refused} == {"/api/v1/problems/unauthenticated"}
    answer = client.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    # the refusals were counted, the scrape that counts them comes after them
    scraped = samples(answer.get_data(as_text=True))
    assert count_of(scraped, "meta.metrics_exposition", "GET", "401") == 5


def test_without_a_token_configured_there_are_no_metrics(app: Flask,
                                                         client: FlaskClient) -> None:
    assert app.config["METRICS_TOKEN"] is None  # the default
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer None"}):
        answer = client.get("/metrics", headers=headers)
        assert answer.status_code == 404, headers
        assert answer.json["type"] == "/api/v1/problems/not-found"


def job_figures(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {key: value for key, value in samples(text).items() if key[0].startswith("relayops_job")}


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_jobs_are_counted_with_their_wait_since_the_commit_that_queued_them(
        app: Flask, world: World, client: FlaskClient, clock: Clock) -> None:
    """The jobs' metrics are the process's (both runners count them in relay_ops/outbox.py):
    read as differences around what this test runs."""
    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return job_figures(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))

    def run() -> int:
        return outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, app.config),
                                       world.ctx.now)

    before = scrape()
    world.ready("MET000000002")  # its two messages (e-mail and SMS) queued at the check-in
    with world.ctx.db.transaction() as session:  # and a job no handler knows
        outbox.enqueue_job(session, "no-such-job", {}, "metrics-test-unknown-job")
    clock.advance(seconds=3)
    assert run() == 2
    after = scrape()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    job = notify.SEND_JOB
    assert grew("relayops_jobs_total", job=job, outcome="done") == 2
    assert grew("relayops_jobs_total", job="unknown", outcome="error") == 1
    assert grew("relayops_jobs_total", job="no-such-job", outcome="error") == 0
    assert grew("relayops_job_run_seconds_count", job=job) == 2
    # Both waited the 3 s the clock moved between their commit and their end.
    assert grew("relayops_job_commit_to_done_seconds_sum", job=job) == pytest.approx(6.0)
    assert grew("relayops_job_commit_to_done_seconds_bucket", job=job, le="2.0") == 0
    assert grew("relayops_job_commit_to_done_seconds_bucket", job=job, le="5.0") == 2


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_the_outbox_backlog_is_read_at_each_scrape(
        app: Flask, world: World, client: FlaskClient, clock: Clock) -> None:
    def backlog() -> dict[str, float]:
        scraped = samples(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))
        return {f"{name}{dict(labels).get('status', '')}": value
                for (name, labels), value in scraped.items()
                if name.startswith("relayops_outbox")}

    assert backlog() == {"relayops_outbox_jobspending": 0, "relayops_outbox_jobsdispatched": 0,
                         "relayops_outbox_jobsfailed": 0,
                         "relayops_outbox_oldest_waiting_seconds": 0}
    world.ready("MET000000004")  # its e-mail and its SMS queued
    clock.advance(seconds=90)
    assert backlog() == {"relayops_outbox_jobspending": 2, "relayops_outbox_jobsdispatched": 0,
                         "relayops_outbox_jobsfailed": 0,
                         "relayops_outbox_oldest_waiting_seconds": 90}
    outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, app.config), world.ctx.now)
    assert backlog()["relayops_outbox_jobspending"] == 0
    assert backlog()["relayops_outbox_oldest_waiting_seconds"] == 0


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_the_lockers_links_and_open_alerts_are_read_at_each_scrape(
        world: World, client: FlaskClient, ctx: Ctx) -> None:
    def fleet() -> dict[str, float]:
        scraped = samples(client.get("/metrics", headers=SCRAPER).get_data(as_text=True))
        return {f"{name}{dict(labels)}": value for (name, labels), value in scraped.items()
                if name.startswith("relayops_locker")}

    assert fleet() == {"relayops_lockers{'link': 'online'}": 0,
                       "relayops_lockers{'link': 'offline'}": 0}
    ids = [locker_registry.register_locker(ctx, SYSTEM, {
        "code": f"MET-LOCKER-{n}", "name": "Casier", "locker_model": "mini-6",
        "address": "Place", "postcode": "44440", "city": "Riaillé", "latitude": 47.5,
        "longitude": -1.3})["id"] for n in range(3)]
    with ctx.db.transaction() as session:
        session.execute(update(LockerLink).where(LockerLink.site_id == ids[0])
                        .values(online=True))
        for site_id, kind in ((ids[0], "door_jammed"), (ids[1], "door_jammed"),
                              (ids[2], "forged_message")):
            site = session.get(Site, site_id)
            assert site is not None
            raise_alert(session, site, kind, "metrics test")
    assert fleet() == {"relayops_lockers{'link': 'online'}": 1,
                       "relayops_lockers{'link': 'offline'}": 2,
                       "relayops_locker_alerts_open{'kind': 'door_jammed'}": 2,
                       "relayops_locker_alerts_open{'kind': 'forged_message'}": 1}


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_a_database_that_does_not_answer_leaves_the_backlog_out_not_the_rest(
        client: FlaskClient, ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(_db: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(outbox, "waiting", unreachable)
    client.get("/health")
    answer = client.get("/metrics", headers=SCRAPER)
    assert answer.status_code == 200
    names = {name for name, _ in samples(answer.get_data(as_text=True))}
    assert not any(name.startswith("relayops_outbox") for name in names)
    assert DURATIONS + "_count" in names


def test_the_worker_serves_the_jobs_metrics_over_http() -> None:
    port = free_port()
    server = serve_job_metrics(port, "127.0.0.1")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
            names = {family.name for family in
                     text_string_to_metric_families(answer.read().decode())}
        assert {"relayops_jobs", "relayops_job_run_seconds",
                "relayops_job_commit_to_done_seconds"} <= names
    finally:
        server.shutdown()
        server.server_close()


class FakeBridge:
    """The figures a Bridge keeps (firmware_bridge/bridge.py), set by the test."""

    def __init__(self) -> None:
        self.applied_count, self.refused_count, self.failed_batches = 0, 0, 0
        self.inbox: queue.Queue[int] = queue.Queue()
        self.behind, self.connected = 0, False

    def inbox_depth(self) -> int:
        return self.inbox.qsize()

    def events_behind_gaps(self) -> int:
        return self.behind

    def is_connected(self) -> bool:
        return self.connected


def test_the_bridge_figures_are_read_at_each_scrape_over_http() -> None:
    bridge = FakeBridge()
    port = free_port()
    server = serve_bridge_metrics(bridge, port, "127.0.0.1")
    try:
        def scrape() -> dict[str, float]:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
                return {name: value for (name, _), value in samples(answer.read().decode()).items()}

        first = scrape()
        assert first["relayops_bridge_events_applied_total"] == 0
        assert first["relayops_bridge_connected"] == 0
        bridge.applied_count, bridge.refused_count, bridge.failed_batches = 640, 3, 1
        for n in range(7):
            bridge.inbox.put(n)
        bridge.behind, bridge.connected = 12, True
        second = scrape()
        assert second["relayops_bridge_events_applied_total"] == 640
        assert second["relayops_bridge_messages_refused_total"] == 3
        assert second["relayops_bridge_batches_failed_total"] == 1
        assert second["relayops_bridge_inbox_messages"] == 7
        assert second["relayops_bridge_events_behind_gaps"] == 12
        assert second["relayops_bridge_connected"] == 1
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_bridge_gives_the_collector_every_figure_it_reads() -> None:
    """The collector's protocol against the Bridge class itself (not only the fake above)."""
    from firmware_bridge.bridge import Bridge

    bridge = Bridge(ctx=None, host="127.0.0.1", port=1)  # type: ignore[arg-type] - not started
    names = {family.name for family in BridgeCollector(bridge).collect()}
    assert names == {"relayops_bridge_events_applied", "relayops_bridge_messages_refused",
                     "relayops_bridge_batches_failed", "relayops_bridge_inbox_messages",
                     "relayops_bridge_events_behind_gaps", "relayops_bridge_connected"}


@pytest.mark.app_config(METRICS_TOKEN=TOKEN)
def test_the_shipped_alerting_rules_name_only_metrics_that_exist(
        world: World, client: FlaskClient) -> None:
    """config/prometheus/alerts.yml against what the web app, the jobs and the bridge expose,
    and the endpoint and job names its selectors use against the app's own."""
    world.ready("MET000000003")  # a check-in, and its messages sent: every series exists
    outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, client.application.config),
                            world.ctx.now)
    text = client.get("/metrics", headers=SCRAPER).get_data(as_text=True)
    # the samples' names, and the families' (a family may have no sample yet: no open alert)
    exposed = {name for name, _ in samples(text)}
    exposed |= {family.name for family in text_string_to_metric_families(text)}
    from firmware_bridge.bridge import Bridge

    bridge = Bridge(ctx=None, host="127.0.0.1", port=1)  # type: ignore[arg-type] - not started
    exposed |= {sample.name for family in BridgeCollector(bridge).collect()
                for sample in family.samples}
    rules = yaml.safe_load((ROOT / "config/prometheus/alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in expressions for name in re.findall(r"\brelayops_\w+", expr)}
    assert named and named <= exposed, named - exposed
    endpoints = {rule.endpoint for rule in client.application.url_map.iter_rules()}
    for expr in expressions:
        for selector in re.findall(r'endpoint=~"([^"]+)"', expr):
            assert set(selector.split("|")) <= endpoints, selector
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs.handlers(world.ctx, client.application.config), job


WRITER = """
import sys
from prometheus_client import Counter, Histogram
runs = Counter("relayops_probe", "probe", ["kind"])
seconds = Histogram("relayops_probe_seconds", "probe", buckets=(1.0, 5.0))
for _ in range(int(sys.argv[1])):
    runs.labels("a").inc()
    seconds.observe(2.0)
print(__import__("os").getpid())
"""


def test_a_dead_workers_counts_move_to_the_archive_and_its_files_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """gunicorn recycles workers: each leaves its files, folded at its exit into one archive
    (metrics.worker_exited), so a scrape reads the live workers' files and one more, and
    sums the same counts as before the fold."""
    import subprocess
    import sys

    from relay_ops import metrics

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    pids = [int(subprocess.run([sys.executable, "-c", WRITER, str(n)], env=env, check=True,
                               capture_output=True, text=True).stdout) for n in (3, 4, 5)]

    def totals() -> dict[str, float]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return {f"{s.name}{dict(s.labels)}": s.value
                for family in registry.collect() for s in family.samples}

    before = totals()
    assert before["relayops_probe_total{'kind': 'a'}"] == 12
    assert before["relayops_probe_seconds_bucket{'le': '5.0'}"] == 12
    assert before["relayops_probe_seconds_bucket{'le': '1.0'}"] == 0
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for done, pid in enumerate(pids[:2], start=1):
        metrics.worker_exited(pid)
        assert totals() == before, f"after {done} exits"
    assert {p.name for p in tmp_path.iterdir()} == {
        "counter_archive.db", f"counter_{pids[2]}.db", "histogram_archive.db",
        f"histogram_{pids[2]}.db"}
    metrics.worker_exited(pids[2])
    assert totals() == before
    assert {p.name for p in tmp_path.iterdir()} == {"counter_archive.db",
                                                    "histogram_archive.db"}


def test_a_worker_file_that_cannot_be_folded_is_logged_and_dropped_not_raised(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    """gunicorn's master runs the fold (child_exit): an exception there would stop the
    master, and the web with it. A damaged file loses its worker's counts, nothing more."""
    import subprocess
    import sys

    from relay_ops import metrics

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    [healthy, damaged] = [int(subprocess.run(
        [sys.executable, "-c", WRITER, str(n)], env=env, check=True, capture_output=True,
        text=True).stdout) for n in (2, 5)]
    # A key that is not UTF-8 where the damaged worker's first sample's name was.
    raw = bytearray((tmp_path / f"counter_{damaged}.db").read_bytes())
    raw[8 + 4] = 0xFF
    (tmp_path / f"counter_{damaged}.db").write_bytes(bytes(raw))
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    metrics.worker_exited(healthy)
    with caplog.at_level(logging.ERROR, logger="relay_ops.metrics"):
        metrics.worker_exited(damaged)  # does not raise
    assert f"worker {damaged}'s counter values lost" in caplog.text
    assert {p.name for p in tmp_path.iterdir()} == {"counter_archive.db",
                                                    "histogram_archive.db"}
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    totals = {f"{s.name}{dict(s.labels)}": s.value
              for family in registry.collect() for s in family.samples}
    assert totals["relayops_probe_total{'kind': 'a'}"] == 2  # the damaged worker's 5 lost
    assert totals["relayops_probe_seconds_bucket{'le': '5.0'}"] == 7  # its histogram kept
