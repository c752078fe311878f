"""The outbox relay: committed job rows become RQ jobs, and rows Redis lost are handed over again.

Each row becomes the RQ job ``<prefix>_outbox_<row id>``. Before enqueueing, the relay checks
that no job with that id exists, so a row handed over twice (a crash between enqueueing and
recording it, a re-dispatch) never makes two jobs. Only one relay runs at a time (the
scheduler's leader lock), so check-then-enqueue does not race.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from relay_ops import outbox
from relay_ops.db.models import OutboxMessage
from relay_ops.services.context import Ctx
from relay_ops.worker.config import JobsConfig

log = logging.getLogger(__name__)

RUN_OUTBOX_JOB = "relay_ops.worker.tasks.run_outbox_job"
# A finished job's hash is kept this long (seconds): long enough for the stale check to see it.
RESULT_TTL_S = 24 * 3600


def dispatch_pending(ctx: Ctx, redis: Redis, jc: JobsConfig, limit: int = 500) -> int:
    """Hand committed rows to RQ. Returns how many were handed over."""
    ids = outbox.due_for_dispatch(ctx.db, ctx.now(), limit)
    queue = Queue(jc.jobs_queue, connection=redis)
    for message_id in ids:
        if not Job.exists(jc.job_id(message_id), connection=redis):
            _enqueue(queue, jc, message_id)
    outbox.mark_dispatched(ctx.db, ids, ctx.now())
    return len(ids)


def _enqueue(queue: Queue, jc: JobsConfig, message_id: int) -> Job:
    return queue.enqueue(
        RUN_OUTBOX_JOB, message_id,
        job_id=jc.job_id(message_id),
        retry=jc.retry(),
        job_timeout=jc.job_timeout_s,
        result_ttl=RESULT_TTL_S,
        description=f"outbox row {message_id}",
    )


def redispatch(ctx: Ctx, redis: Redis, jc: JobsConfig, older_than_s: float | None = None
               ) -> dict[str, int]:
    """Look at rows handed to RQ long ago and not done: hand over again those Redis lost (a
    restart without persistence), and mark failed those RQ gave up on. Jobs RQ still holds
    (queued, scheduled for a retry, running) are left to RQ."""
    age = jc.stale_after_s if older_than_s is None else older_than_s
    cutoff = ctx.now() - timedelta(seconds=age)
    queue = Queue(jc.jobs_queue, connection=redis)
    result = {"redispatched": 0, "failed": 0}
    for message_id in outbox.dispatched_before(ctx.db, cutoff):
        job = fetch(redis, jc.job_id(message_id))
        if job is None:
            _enqueue(queue, jc, message_id)
            outbox.touch_dispatched(ctx.db, message_id, ctx.now())
            result["redispatched"] += 1
        elif job.get_status(refresh=False) == JobStatus.FAILED:
            record_final_failure(ctx, message_id, last_error(job))
            result["failed"] += 1
    if result["redispatched"]:
        log.warning("handed %d outbox row(s) to RQ again: Redis had lost them",
                    result["redispatched"])
    return result


def record_final_failure(ctx: Ctx, message_id: int, error: str) -> None:
    from relay_ops import jobs

    with ctx.db.read() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None or message.status in (outbox.DONE, outbox.FAILED):
            return
        name, payload = message.name, dict(message.payload)
    outbox.record_failure(ctx.db, message_id, error, final=True)
    jobs.give_up(ctx, name, payload, error)


def fetch(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except Exception:  # NoSuchJobError, or a hash RQ can no longer read: treat as lost
        return None


def last_error(job: Job) -> str:
    """The last line of the traceback: the exception and its message."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or ""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "failed without a traceback (the worker died)"
