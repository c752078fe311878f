"""Operators' view of background work: queues, failed jobs and their errors, retries, and each
parcel's messages with what the provider answered."""

from __future__ import annotations

from typing import Annotated, Any

from flask import current_app
from pydantic import Field

from relay_ops.services import notify
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.schemas import Strict
from relay_ops.worker import admin
from relay_ops.worker.config import redis_of

OPERATOR = (Role.OPERATOR,)


class FailedJobsQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=500)] = 100


def _redis() -> Any:
    return redis_of(current_app._get_current_object())  # type: ignore[attr-defined]


@endpoint("/parcels/<id:parcel_id>/notifications", summary="A parcel's messages and their fate",
          tag="parcels", roles=OPERATOR, errors=(403, 404),
          description="One item per message and channel: queued, sent or failed, attempts, "
                      "the provider's id and answer, the last error.",
          response=r.NotificationListOut)
def parcel_notifications(principal: Principal, parcel_id: int) -> Any:
    return {"items": notify.for_parcel(ctx(), principal, parcel_id)}


@endpoint("/jobs", summary="Queues and the outbox backlog", tag="jobs", roles=OPERATOR,
          errors=(403,),
          description="`mode` is `rq` (workers) or `in_process` (embedded default). With RQ, "
                      "`queues` counts jobs queued and in each registry; `redis` says whether "
                      "Redis answers. `outbox` counts job rows per status.",
          response=r.JobsOverviewOut)
def jobs_overview(principal: Principal) -> Any:
    return admin.overview(ctx(), principal, current_app.config, _redis())


@endpoint("/jobs/failed", summary="Failed jobs and their errors", tag="jobs", roles=OPERATOR,
          query=FailedJobsQuery, errors=(403, 503),
          response=r.FailedJobListOut)
def failed_jobs(principal: Principal, query: FailedJobsQuery) -> Any:
    return {"items": admin.failed(ctx(), principal, current_app.config, _redis(), query.limit)}


@endpoint("/jobs/failed/<job_id>/retry", "POST", summary="Run a failed job again", tag="jobs",
          roles=OPERATOR, errors=(403, 404, 503),
          response=r.JobRetriedOut)
def retry_job(principal: Principal, job_id: str) -> Any:
    return admin.retry(ctx(), principal, current_app.config, _redis(), job_id)
