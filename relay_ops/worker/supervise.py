"""``relay-ops worker``: an RQ worker that outlives Redis outages and behaves as a service.

RQ's worker retries when Redis drops while it waits for a job, but dies when Redis drops at
another moment (recording a job's end, a heartbeat), and its constructor already talks to
Redis. Here a worker that could not start or died of a Redis connection error is replaced by a
fresh one once Redis answers; a job it was running stays in RQ's started registry and is
retried by RQ's maintenance, or handed over again by the outbox relay if Redis lost it.

As a service: SIGTERM (``systemctl stop``, ``docker stop``) ends it, idle or after the job it
runs; a worker killed outright restarts under its name at once and retries the job it was
running; its child (RQ's scheduler process) dies with it.

It runs jobs in its own process (RQ's ``SimpleWorker``), not in a work horse forked per job:
a message costs a few milliseconds, the fork cost more than the work, and one engine and one
SMTP connection now serve every job. See docs/decisions/0005-notification-worker.md.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.registry import StartedJobRegistry
from rq.utils import as_text

from relay_ops.worker.config import JobsConfig, connect

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
HEALTHY_RUN_S = 60.0
# RQ looks for jobs abandoned by a dead worker at this period (its default is 10 minutes).
MAINTENANCE_INTERVAL_S = 60
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PUBSUB_POLL_S = 1.0


class RelayWorker(SimpleWorker):
    """RQ's non-forking worker, told apart from RQ's where a supervised service needs it."""

    signalled_to_stop = False

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        # RQ notes a stop only when busy; an idle worker raises StopRequested and returns from
        # work() as it does on an error, and the supervisor would start a new one.
        self.signalled_to_stop = True
        # RQ stops an idle worker by raising StopRequested from this handler, wherever the
        # main thread is; code of RQ's that catches Exception (its maintenance) may swallow
        # it. The flag makes the loop stop at its next turn all the same.
        self._stop_requested = True
        super().request_stop(signum, frame)

    def subscribe(self) -> None:
        # RQ's, with a short poll: RQ listens for commands with a one-minute wait, and on
        # shutdown it unsubscribes, then waits for that listener (redis-py 8 joins it), so a
        # SIGTERM took up to a minute (docker stop kills after 10 s).
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment] # RQ types it None
            sleep_time=PUBSUB_POLL_S, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def register_birth(self) -> None:
        if self._namesake_is_dead():
            # Killed outright (SIGKILL, OOM), a worker leaves its registration in Redis for
            # worker_ttl + 60 s and RQ refuses its name meanwhile: let the dead one go.
            log.warning("worker %s: its previous life was killed; registering again", self.name)
            self._abandon_executions_of_previous_life()
            self.register_death()
        super().register_birth()

    def _abandon_executions_of_previous_life(self) -> None:
        """The job the dead namesake was running is retried now, as RQ's maintenance would
        once its heartbeat expired (job timeout + 60 s for a non-forking worker): its
        execution is marked expired and RQ's own cleanup retries it (``Retry``) or fails it."""
        for execution in self.get_current_executions(refresh=True):
            try:
                job = self.job_class.fetch(execution.job_id, connection=self.connection,
                                           serializer=self.serializer)
            except NoSuchJobError:
                continue  # expired: the outbox relay hands its row over again
            registry = StartedJobRegistry(job.origin, connection=self.connection,
                                          job_class=self.job_class, serializer=self.serializer)
            self.connection.zadd(registry.key, {execution.composite_key: 0}, xx=True)
            log.warning("worker %s: job %s was running when it died; retried", self.name, job.id)
            registry.cleanup()

    def _namesake_is_dead(self) -> bool:
        """A live registration under this name by a process of this host that no longer runs
        (or by this very process, before a restart). Another host's is never judged."""
        hostname, pid, death = (as_text(v) if v is not None else None for v in
                                self.connection.hmget(self.key, ["hostname", "pid", "death"]))
        if hostname is None or death is not None or hostname != self.hostname:
            return False
        return pid is not None and (int(pid) == os.getpid() or not _running(int(pid)))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Dead and not yet reaped by its parent (Linux; elsewhere, taken for alive)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


_forking_pid = 0


def children_die_with_this_process() -> None:
    """Every process forked from here on (RQ's scheduler process; a work horse, should a
    forking worker run) gets SIGTERM when this one dies, even by SIGKILL: an orphan horse would
    go on with a job nobody records, an orphan scheduler would hold RQ's scheduler lock for
    good. Linux only; a no-op
    elsewhere. Call it once, in the worker's own process (it applies to every later fork)."""
    if not sys.platform.startswith("linux"):
        return
    os.register_at_fork(before=_note_forking_pid, after_in_child=_die_with_parent)


def _note_forking_pid() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != _forking_pid:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)


class _StopSignals:
    """SIGTERM/SIGINT between two workers' lives (RQ's worker installs its own while it
    works): the supervisor stops instead of starting a new worker."""

    def __init__(self) -> None:
        self.requested = False
        self.previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        self.install()

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def run_worker(config: Mapping[str, Any], *, burst: bool = False, name: str | None = None,
               max_restarts: int | None = None) -> None:
    jc = JobsConfig.from_config(config)
    stop = _StopSignals()
    try:
        _supervise(config, jc, stop, burst=burst, name=name, max_restarts=max_restarts)
    finally:
        stop.restore()


def _supervise(config: Mapping[str, Any], jc: JobsConfig, stop: _StopSignals, *, burst: bool,
               name: str | None, max_restarts: int | None) -> None:
    backoff, restarts = 1.0, 0
    while not stop.requested:
        started = time.monotonic()
        try:
            # Inside the try: the constructor asks Redis for this client's address.
            worker = RelayWorker(jc.queues, connection=connect(config), name=name,
                                 maintenance_interval=MAINTENANCE_INTERVAL_S)
            if stop.requested:
                return
            worker.work(with_scheduler=True, burst=burst)
            # RQ's loop logs and returns on an unexpected error (a Redis one, mostly); only a
            # requested stop or an empty burst is an end.
            if burst or worker.signalled_to_stop:
                return
            reason = "the worker stopped on an error (logged above)"
        except (RedisConnectionError, RedisTimeoutError) as err:
            reason = f"Redis unavailable ({err})"
        finally:
            stop.install()  # RQ's handlers belong to the worker that just ended
        restarts += 1
        if time.monotonic() - started > HEALTHY_RUN_S:
            backoff = 1.0  # a new outage, not the same one going on
        if max_restarts is not None and restarts > max_restarts:
            raise RuntimeError(f"gave up after {max_restarts} restarts: {reason}")
        log.warning("%s; a new worker starts in %.0fs", reason, backoff)
        stop.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
