"""Prometheus metrics: what the engineers running the network watch between benchmarks.

The benchmarks (docs/benchmarks.md) say what a check-in or a locker event costs on a test
machine; these say what it costs in service, where the data and the load are real:

- the web app: every request's duration, by Flask endpoint (the rule's name, a closed set,
  never the URL with its ids), method and status, as a histogram (p50 and p99 per endpoint
  in PromQL), served at ``/metrics`` to a scraper holding ``METRICS_TOKEN``;
- the jobs (notifications, locker commands' follow-ups, sweeps' work), wherever they run:
  each run's outcome and duration by job, and the time from its row's commit to its end
  (the commit-to-send delay of a resident's message), counted in ``relay_ops/outbox.py``,
  which both runners go through; served by the web app's ``/metrics`` (the embedded runner
  runs in the web process) and by ``relay-ops worker --metrics-port``;
- read from the database at each scrape of ``/metrics`` (``ReadAtScrape``): the outbox's
  backlog (jobs pending, handed to a queue, given up on; the oldest one's wait) and the
  lockers (links online and offline, open alerts by kind);
- the MQTT bridge: events applied, messages refused for their signature, batches that
  failed, what waits in its inbox and behind a gap, and whether it is connected
  (``BridgeCollector``, read from the bridge when scraped: nothing on its hot path), served
  by ``relay-ops bridge --metrics-port``.

Under gunicorn each web worker is a process of its own: ``config/gunicorn.conf.py`` gives
them a shared ``PROMETHEUS_MULTIPROC_DIR``, where prometheus_client keeps each worker's
values in a file, and a scrape sums the workers; the master folds an exited worker's counts
into one archive file (``worker_exited``) and empties the directory as it starts.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from relay_ops.domain.errors import NotFound, Unauthenticated

log = logging.getLogger(__name__)

KEY = "relay_ops.metrics"  # the app's WebMetrics, in app.extensions
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# From a pickup by code on a quiet machine (~5 ms) to a 5,000-parcel manifest (~1-2 s).
BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A message's wait: the goal is p99 <= 2 s at 20 messages/s (issue 15); retries wait minutes.
WAIT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Any other method is a client's invention: one label for them all, or a scanner could make
# the server keep a series per made-up method.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "relay_ops_metrics_started"  # in flask.g: when the request began (perf_counter)


class JobMetrics:
    """The jobs' metrics: one set per process, whichever runner runs them (registered in no
    registry of their own: each exposition registers them in its own)."""

    def __init__(self) -> None:
        self.runs = Counter("relayops_jobs", "Job runs, by job and outcome (done or error: "
                            "an error is retried, or fails the job on its last attempt)",
                            ("job", "outcome"), registry=None)
        self.seconds = Histogram("relayops_job_run_seconds", "The job's handler's run time",
                                 ("job",), buckets=BUCKETS, registry=None)
        self.commit_to_done = Histogram(
            "relayops_job_commit_to_done_seconds",
            "From the commit of the change that queued the job to the job done",
            ("job",), buckets=WAIT_BUCKETS, registry=None)

    def register_in(self, registry: CollectorRegistry) -> None:
        for collector in (self.runs, self.seconds, self.commit_to_done):
            registry.register(collector)


JOBS = JobMetrics()


class WebMetrics:
    """The web app's metrics, in a registry of its own (an app per test, one per process in
    service), with the jobs' (the embedded runner runs them in the web process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "relayops_http_request_duration_seconds",
            "Time from the request's arrival in Flask to its response, by endpoint",
            ("endpoint", "method", "status"), buckets=BUCKETS, registry=self.registry)
        JOBS.register_in(self.registry)


def init_app(app: Flask) -> None:
    app.extensions[KEY] = WebMetrics()
    # First of all before_request functions: one that answers early (a rate limit, a
    # refused credential) still has its response timed.
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_observed)


def web_registry(app: Flask) -> CollectorRegistry:
    """The app's registry: where a process that runs more than the web (the demo's bridge)
    adds its collectors."""
    registry: CollectorRegistry = app.extensions[KEY].registry
    return registry


def _started() -> None:
    setattr(g, _STARTED, time.perf_counter())


def _observed(response: Response) -> Response:
    started = g.pop(_STARTED, None)
    if started is not None:
        metrics: WebMetrics = current_app.extensions[KEY]
        metrics.requests.labels(
            request.endpoint or "unmatched",
            request.method if request.method in METHODS else "other",
            str(response.status_code),
        ).observe(time.perf_counter() - started)
    return response


def scrape(app: Flask, authorization: str | None, *read_now: Collector) -> Response:
    """The exposition, for a scraper that sends ``Authorization: Bearer <METRICS_TOKEN>``,
    with the figures ``read_now`` collect for this scrape (the database's: the same whichever
    worker answers, never summed). Without ``METRICS_TOKEN`` set, metrics are off (404): the
    counter's pages and the API are public, so is their host; the figures say how busy each
    shop's counter is."""
    expected = app.config.get("METRICS_TOKEN")
    if not expected:
        raise NotFound("metrics are off: set METRICS_TOKEN to serve them")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                             str(expected).encode()):
        raise Unauthenticated("metrics need the bearer token METRICS_TOKEN")
    body = generate_latest(_exposed_registry(app.extensions[KEY].registry))
    if read_now:
        extra = CollectorRegistry()  # not described first: that would read them twice
        for collector in read_now:
            extra.register(collector)
        body += generate_latest(extra)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _exposed_registry(own: CollectorRegistry) -> CollectorRegistry:
    """Under gunicorn, every worker's values (files in the shared directory); else this
    process's."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return own
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def forget_previous_run() -> None:
    """gunicorn's ``on_starting``: a directory the deployment names outlives the server; the
    counts of a previous run would otherwise be summed with this one's (and a gauge's pids
    would be taken for live workers)."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        for stale in Path(folder).glob("*.db"):
            stale.unlink()


def worker_exited(pid: int) -> None:
    """gunicorn's ``child_exit``, in the master: the dead worker's live values (gauges) leave
    the sums; its counts are added to an archive file and its own files removed.

    Without the archive, every worker gunicorn recycles (``max_requests``) would leave its
    files behind, and each scrape would read thousands of them after a few days. Only the
    master writes the archive; a scrape landing in the instant between the archive's write
    and the dead file's removal counts that worker twice, once. A fold that fails loses that
    worker's counts and is logged: it never raises into gunicorn's master, which would stop."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if not folder:
        return
    multiprocess.mark_process_dead(pid, folder)
    for kind in ("counter", "histogram"):
        dead = Path(folder) / f"{kind}_{pid}.db"
        if not dead.exists():
            continue
        try:
            _fold(dead, Path(folder) / f"{kind}_archive.db")
        except Exception:  # a full disk, a damaged file: the master must outlive it
            log.exception("metrics: worker %s's %s values lost, not folded", pid, kind)
            dead.unlink(missing_ok=True)


def _fold(dead: Path, archive: Path) -> None:
    """Add a dead process's values to the archive's, key by key (a key is a sample: metric,
    labels, bucket), then remove its file."""
    merged = MmapedDict(str(archive))
    try:
        for key, value, timestamp, _position in MmapedDict.read_all_values_from_file(
                str(dead)):
            current, _ = merged.read_value(key)
            merged.write_value(key, current + value, timestamp)
    finally:
        merged.close()
    dead.unlink()


class ReadAtScrape(Collector):
    """Figures ``read`` from the database at each scrape: the same whichever worker answers,
    never summed over them. A database that does not answer leaves them out of the scrape,
    not the rest of it."""

    def __init__(self, what: str, read: Callable[[], Iterable[Metric]]) -> None:
        self.what, self.read = what, read

    def collect(self) -> Iterator[Metric]:
        try:
            families = list(self.read())
        except SQLAlchemyError as error:
            log.warning("metrics: %s not read (%s)", self.what, type(error).__name__)
            return
        yield from families


def outbox_backlog(statuses: Mapping[str, int], oldest_age: float | None) -> Iterator[Metric]:
    """The jobs not done per status, and how long the oldest pending one has waited (None:
    none waits)."""
    jobs = GaugeMetricFamily("relayops_outbox_jobs", "Jobs not done, by status (failed: given "
                             "up on, GET /api/v1/jobs/failed)", labels=["status"])
    for status, count in sorted(statuses.items()):
        jobs.add_metric([status], count)
    yield jobs
    yield GaugeMetricFamily("relayops_outbox_oldest_waiting_seconds",
                            "How long the oldest job not yet done has waited (0: none)",
                            value=oldest_age or 0.0)


def locker_fleet(links: Mapping[str, int], alerts: Mapping[str, int]) -> Iterator[Metric]:
    """The network's lockers: links online and offline, open alerts by kind."""
    lockers = GaugeMetricFamily("relayops_lockers", "Lockers by the state of their link",
                                labels=["link"])
    for state, count in sorted(links.items()):
        lockers.add_metric([state], count)
    yield lockers
    open_alerts = GaugeMetricFamily("relayops_locker_alerts_open",
                                    "Open locker alerts, by kind", labels=["kind"])
    for kind, count in sorted(alerts.items()):
        open_alerts.add_metric([kind], count)
    yield open_alerts


# ----------------------------------------------------------------------------- the bridge


class BridgeFigures(Protocol):
    """What the bridge counts as it runs (firmware_bridge/bridge.py)."""

    applied_count: int
    refused_count: int
    failed_batches: int

    def inbox_depth(self) -> int: ...

    def events_behind_gaps(self) -> int: ...

    def is_connected(self) -> bool: ...


class BridgeCollector(Collector):
    """The bridge's figures, read when scraped."""

    def __init__(self, bridge: BridgeFigures) -> None:
        self.bridge = bridge

    def collect(self) -> Iterator[Metric]:
        bridge = self.bridge
        yield CounterMetricFamily("relayops_bridge_events_applied",
                                  "Locker events applied with their effects",
                                  value=bridge.applied_count)
        yield CounterMetricFamily("relayops_bridge_messages_refused",
                                  "Messages refused: not signed by their locker's key",
                                  value=bridge.refused_count)
        yield CounterMetricFamily("relayops_bridge_batches_failed",
                                  "Batches not applied (the lockers resend them)",
                                  value=bridge.failed_batches)
        yield GaugeMetricFamily("relayops_bridge_inbox_messages",
                                "Messages received and not yet applied",
                                value=bridge.inbox_depth())
        yield GaugeMetricFamily("relayops_bridge_events_behind_gaps",
                                "Events kept aside until the ones before them arrive",
                                value=bridge.events_behind_gaps())
        yield GaugeMetricFamily("relayops_bridge_connected",
                                "1 while the bridge is connected to the broker",
                                value=1 if bridge.is_connected() else 0)


def serve_job_metrics(port: int, address: str) -> Any:
    """An HTTP server, in a thread of the RQ worker's process, answering scrapes on
    ``address:port`` with the jobs' metrics."""
    registry = CollectorRegistry(auto_describe=True)
    JOBS.register_in(registry)
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server


def serve_bridge_metrics(bridge: BridgeFigures, port: int, address: str) -> Any:
    """An HTTP server, in a thread of the bridge's process, answering scrapes on
    ``address:port`` (the bridge has no web app of its own)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(BridgeCollector(bridge))
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
