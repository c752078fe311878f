"""What operators see and do: queues, failed jobs with their errors, and a retry.

With RQ (JOBS_IN_PROCESS=False) failed jobs are RQ's (its FailedJobRegistry, which also holds
failed sweeps); in the embedded default, jobs are outbox rows retried in process, and the
"failed" ones are those whose last run raised.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from relay_ops import jobs, outbox
from relay_ops.db.models import OutboxMessage
from relay_ops.domain.errors import DomainError, NotFound
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.worker import relay
from relay_ops.worker.config import JobsConfig

REGISTRIES = ("started", "scheduled", "deferred", "failed", "finished")


class JobsBackendUnavailable(DomainError):
    slug = "jobs-backend-unavailable"
    title = "The job queue (Redis) does not answer"
    status = 503


def uses_rq(config: Mapping[str, Any]) -> bool:
    return not config["JOBS_IN_PROCESS"]


def overview(ctx: Ctx, actor: Principal, config: Mapping[str, Any],
             redis: Redis | None) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    result: dict[str, Any] = {
        "mode": "rq" if uses_rq(config) else "in_process",
        "outbox": outbox.counts(ctx.db),
    }
    if redis is None:
        return result
    jc = JobsConfig.from_config(config)
    try:
        result["queues"] = [_queue_counts(Queue(name, connection=redis)) for name in jc.queues]
        result["redis"] = "ok"
    except RedisError as err:
        result["redis"] = f"unavailable: {type(err).__name__}"
    return result


def _queue_counts(queue: Queue) -> dict[str, Any]:
    counts = {"name": queue.name, "queued": queue.count}
    for name in REGISTRIES:
        counts[name] = getattr(queue, f"{name}_job_registry").count
    return counts


def failed(ctx: Ctx, actor: Principal, config: Mapping[str, Any], redis: Redis | None,
           limit: int = 100) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if redis is None:
        return _failing_rows(ctx, limit)
    jc = JobsConfig.from_config(config)
    items: list[dict[str, Any]] = []
    try:
        for name in jc.queues:
            registry = FailedJobRegistry(name, connection=redis)
            for job in Job.fetch_many(registry.get_job_ids(0, limit - 1), connection=redis):
                if job is not None:
                    items.append(_job_view(jc, job))
    except RedisError as err:
        raise JobsBackendUnavailable(f"Redis does not answer ({type(err).__name__})") from err
    return items[:limit]


def _job_view(jc: JobsConfig, job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "queue": job.origin,
        "function": job.func_name,
        "args": list(job.args),
        "outbox_id": jc.outbox_id(job.id),
        "error": relay.last_error(job),
        "enqueued_at": _iso(job.enqueued_at),
        "ended_at": _iso(job.ended_at),
    }


def _failing_rows(ctx: Ctx, limit: int) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == outbox.JOB, OutboxMessage.status != outbox.DONE,
                   OutboxMessage.last_error.is_not(None))
            .order_by(OutboxMessage.id).limit(limit)
        )
        return [{"id": f"outbox_{m.id}", "queue": "in-process", "function": m.name,
                 "args": [m.payload], "outbox_id": m.id, "error": m.last_error,
                 "enqueued_at": _iso(m.created_at), "ended_at": None,
                 "next_attempt_at": _iso(m.available_at)} for m in rows]


def retry(ctx: Ctx, actor: Principal, config: Mapping[str, Any], redis: Redis | None,
          job_id: str) -> dict[str, Any]:
    """Run a failed job again now.

    The outbox row and what it stands for (the notification) are revived first, in one
    transaction, and only then is the job handed over: a worker that takes it at once must find
    the work owed, or it would mark the row done and leave the notification queued for good.
    """
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if redis is None:
        return _retry_row(ctx, job_id)
    jc = JobsConfig.from_config(config)
    try:
        job = Job.fetch(job_id, connection=redis)
        registry = FailedJobRegistry(job.origin, connection=redis)
        if job.id not in registry:
            raise NotFound(f"no failed job {job_id}")
        message_id = jc.outbox_id(job_id)
        if message_id is not None:
            _revive(ctx, message_id, handed_over=True)
        registry.requeue(job)
    except (NoSuchJobError, InvalidJobOperation):
        raise NotFound(f"no failed job {job_id}") from None
    except RedisError as err:
        # A row revived but not requeued is left to the redispatch sweep, which finds its
        # job still failed in RQ and records the failure again: never owed and forgotten.
        raise JobsBackendUnavailable(f"Redis does not answer ({type(err).__name__})") from err
    return {"id": job_id, "status": "queued"}


def _revive(ctx: Ctx, message_id: int, *, handed_over: bool,
            only_failed: bool = False) -> bool:
    """Revive the row and its notification in one transaction; False if nothing is owed (the
    row is done or gone, or, with ``only_failed``, never failed)."""
    with ctx.db.transaction() as session:
        message = session.get(OutboxMessage, message_id, with_for_update=True)
        if message is None or message.status == outbox.DONE:
            return False
        if only_failed and not message.last_error:
            return False
        outbox.revive(message, ctx.now(), handed_over=handed_over)
        jobs.revive(session, message.name, dict(message.payload))
    return True


def _retry_row(ctx: Ctx, job_id: str) -> dict[str, Any]:
    prefix = "outbox_"
    if not job_id.startswith(prefix) or not job_id[len(prefix):].isdigit():
        raise NotFound(f"no failed job {job_id}")
    if not _revive(ctx, int(job_id[len(prefix):]), handed_over=False, only_failed=True):
        raise NotFound(f"no failed job {job_id}")
    return {"id": job_id, "status": "queued"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
