"""``relay-ops worker``: an RQ worker that outlives Redis outages.

RQ's worker retries when Redis drops while it waits for a job, but dies when Redis drops at
another moment (recording a job's end, a heartbeat). Here a worker that died of a Redis
connection error is replaced by a fresh one once Redis answers; a job it was running stays in
RQ's started registry and is retried by RQ's maintenance, or handed over again by the outbox
relay if Redis lost it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker

from relay_ops.worker.config import JobsConfig, connect

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
HEALTHY_RUN_S = 60.0
# RQ looks for jobs abandoned by a dead worker at this period (its default is 10 minutes).
MAINTENANCE_INTERVAL_S = 60


def run_worker(config: Mapping[str, Any], *, burst: bool = False, name: str | None = None,
               max_restarts: int | None = None) -> None:
    jc = JobsConfig.from_config(config)
    backoff, restarts = 1.0, 0
    while True:
        worker = Worker(jc.queues, connection=connect(config), name=name,
                        maintenance_interval=MAINTENANCE_INTERVAL_S)
        started = time.monotonic()
        try:
            worker.work(with_scheduler=True, burst=burst)
            # RQ's loop logs and returns on an unexpected error (a Redis one, mostly); only a
            # requested stop or an empty burst is an end.
            if burst or getattr(worker, "_stop_requested", False):
                return
            reason = "the worker stopped on an error (logged above)"
        except (RedisConnectionError, RedisTimeoutError) as err:
            reason = f"Redis unavailable ({err})"
        restarts += 1
        if time.monotonic() - started > HEALTHY_RUN_S:
            backoff = 1.0  # a new outage, not the same one going on
        if max_restarts is not None and restarts > max_restarts:
            raise RuntimeError(f"gave up after {max_restarts} restarts: {reason}")
        log.warning("%s; a new worker starts in %.0fs", reason, backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
