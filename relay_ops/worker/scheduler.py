"""The scheduler process: relays committed outbox rows to RQ every tick, and enqueues the
periodic sweeps when due, with RQ's own ``CronScheduler`` (rq.cron).

One scheduler acts at a time: it holds a leader lock in Redis, renewed every tick; others wait
as hot standbys and take over when the lock expires. A Redis outage is waited out: the rows
stay in the outbox and go out when Redis answers again. If Redis came back empty (restarted
without persistence), the rows it had been given are handed over again at once.

See docs/decisions/0001-job-scheduling.md for why this and not rq-scheduler or ``Repeat``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.cron import CronJob, CronScheduler
from rq.job import JobStatus

from relay_ops import jobs
from relay_ops.services.context import Ctx
from relay_ops.worker import relay, tasks
from relay_ops.worker.config import JobsConfig

log = logging.getLogger(__name__)

REDISPATCH = "outbox-redispatch"
# Holding a lock this many ticks lets a busy tick finish before a standby takes over.
LOCK_TICKS = 5
MAX_BACKOFF_S = 10.0
# A sweep's run in one of these states has not started yet.
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class Scheduler:
    def __init__(self, ctx: Ctx, config: Mapping[str, Any], redis: Redis,
                 tick_s: float = 1.0) -> None:
        self.ctx, self.config, self.redis, self.tick_s = ctx, config, redis, tick_s
        self.jc = JobsConfig.from_config(config)
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.renew = redis.register_script(_RENEW)
        self.cron = self._build_cron()
        self.leading = False
        self.stopping = threading.Event()

    def _build_cron(self) -> CronScheduler:
        cron = CronScheduler(connection=self.redis, name=f"{self.jc.prefix}:{self.name}")
        for name, every in jobs.sweep_intervals(
            self.config, [*jobs.active_sweeps(), REDISPATCH]
        ).items():
            cron.register(tasks.run_sweep, self.jc.sweeps_queue, args=(name,),
                          interval=max(1, round(every)), name=f"{self.jc.prefix}:{name}",
                          job_timeout=self.jc.job_timeout_s, result_ttl=3600)
        for name, sweep in jobs.SWEEPS.items():
            if sweep is None:
                log.info("sweep %s has no function yet; not scheduled", name)
        return cron

    def run(self) -> None:
        backoff = self.tick_s
        while not self.stopping.is_set():
            try:
                self.tick()
                backoff = self.tick_s
            except (RedisConnectionError, RedisTimeoutError) as err:
                # The web keeps committing rows to the outbox; they wait here for Redis.
                log.warning("Redis unavailable (%s); outbox rows wait, retrying in %.1fs",
                            err, backoff)
                self.leading = False
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self.stopping.wait(self.tick_s)
        self._resign()

    def tick(self) -> None:
        if not self._lead():
            return
        self._recover_if_redis_lost_data()
        relay.dispatch_pending(self.ctx, self.redis, self.jc)
        if self._enqueue_due_sweeps():
            self.cron.save()
        self.cron.heartbeat()

    def _enqueue_due_sweeps(self) -> bool:
        """RQ's ``CronScheduler.enqueue_jobs``, except that a sweep whose last run still waits
        in the queue is not queued again: on a busy queue the runs piled up, and one waiting
        run does what all of them would. It is queued at the first tick after that run starts."""
        enqueued = False
        for sweep in self.cron.get_jobs():
            if not sweep.should_run() or self._still_waiting(sweep):
                continue
            job = sweep.enqueue(self.redis)
            # RQ's own clock, as RQ's loop uses: the sweep's next time is RQ's business.
            sweep.set_enqueue_time(job.enqueued_at or job.created_at)
            enqueued = True
        return enqueued

    def _still_waiting(self, sweep: CronJob) -> bool:
        ids = sweep.get_job_ids(self.redis, 0, 0)
        job = relay.fetch(self.redis, ids[0]) if ids else None
        return job is not None and job.get_status(refresh=False) in WAITING

    def stop(self) -> None:
        self.stopping.set()

    def _lead(self) -> bool:
        ttl_ms = int(max(self.tick_s * LOCK_TICKS, 2.0) * 1000)
        held = bool(self.renew(keys=[self.jc.key("scheduler-leader")], args=[self.name, ttl_ms]))
        if held and not self.leading:
            log.info("scheduler %s is now the active one", self.name)
            self.cron.register_birth()
        elif not held and self.leading:
            log.info("scheduler %s lost the lead; standing by", self.name)
        self.leading = held
        return held

    def _recover_if_redis_lost_data(self) -> None:
        """A marker key lives as long as Redis keeps its data; when it is gone, the jobs RQ
        held are gone too, so every row handed over and not done is checked now."""
        if self.redis.set(self.jc.key("epoch"), self.name, nx=True):
            # Also true on a first start: then there is nothing to hand over, and it is cheap.
            found = relay.redispatch(self.ctx, self.redis, self.jc, older_than_s=0)
            if found["redispatched"]:
                log.warning("Redis had lost %d job(s); handed over again", found["redispatched"])

    def _resign(self) -> None:
        if not self.leading:
            return
        try:
            self.cron.register_death()
            key = self.jc.key("scheduler-leader")
            if self.redis.get(key) == self.name.encode():
                self.redis.delete(key)
        except (RedisConnectionError, RedisTimeoutError):
            pass  # the lock expires by itself
