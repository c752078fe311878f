"""The outbox relay and the worker tasks on real Redis, with the product's worker class (RQ's
SimpleWorker with a short command poll: RQ's own waits up to a minute for its command listener
when a burst ends) in this process (the real worker process is tested in
tests/e2e/test_worker_processes.py)."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from relay_ops import outbox
from relay_ops.db.models import Notification, OutboxMessage
from relay_ops.worker import admin, relay
from relay_ops.worker.config import JobsConfig, redis_of
from relay_ops.worker.supervise import RelayWorker
from tests.integration.notifications.notify_servers import SmsGateway
from tests.support import World, is_problem


def jc(app: Flask) -> JobsConfig:
    return JobsConfig.from_config(app.config)


def redis(app: Flask) -> Redis:
    client = redis_of(app)
    assert client is not None
    return client


def dispatch(app: Flask, world: World) -> int:
    return relay.dispatch_pending(world.ctx, redis(app), jc(app))


def work(app: Flask) -> None:
    RelayWorker(jc(app).queues, connection=redis(app), name=f"{jc(app).prefix}-worker").work(
        burst=True)


def queued(app: Flask) -> int:
    return Queue(jc(app).jobs_queue, connection=redis(app)).count


def outbox_statuses(world: World) -> list[str]:
    with world.ctx.db.read() as session:
        return list(session.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


def sms_notification(world: World) -> Notification:
    with world.ctx.db.read() as session:
        found = session.scalar(select(Notification).where(Notification.channel == "sms"))
        assert found is not None
        return found


def distinct_sms(gateway: SmsGateway) -> int:
    """What a provider delivers: it drops a repeated Idempotency-Key."""
    return len({r.headers["Idempotency-Key"] for r in gateway.requests})


def test_each_committed_row_becomes_one_rq_job_however_often_it_is_handed_over(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:
    world.ready("RQJOB0000001")
    assert outbox_statuses(world) == ["pending", "pending"]
    assert dispatch(app, world) == 2
    assert outbox_statuses(world) == ["dispatched", "dispatched"]
    assert dispatch(app, world) == 0
    # A relay that died after enqueueing but before recording it hands the rows over again.
    with world.ctx.db.transaction() as session:
        for row in session.scalars(select(OutboxMessage)):
            row.status = "pending"
    assert dispatch(app, world) == 2
    assert queued(app) == 2
    work(app)
    assert outbox_statuses(world) == ["done", "done"]
    assert len(sms_gateway.requests) == 1
    assert json.loads(sms_gateway.requests[0].body)["to"] == "+33612345678"
    note = sms_notification(world)
    assert (note.status, note.provider_id, note.attempts) == ("sent", "msg-7f3a", 1)
    assert note.provider_response and "msg-7f3a" in note.provider_response


def test_a_transient_failure_is_retried_then_failed_and_an_operator_retries_it(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:
    sms_gateway.script.status, sms_gateway.script.body = 503, '{"error": "overloaded"}'
    parcel = world.ready("RQJOB0000002")
    dispatch(app, world)
    work(app)
    assert len(sms_gateway.requests) == 3  # the first try and JOB_RETRY_INTERVALS' two retries
    note = sms_notification(world)
    assert note.status == "failed" and "503" in (note.error or "")
    failed = world.operator.get("/jobs/failed")
    assert failed.status_code == 200
    [item] = failed.json["items"]
    assert item["queue"] == jc(app).jobs_queue and "RetryLater" in item["error"]
    assert item["outbox_id"] is not None
    notifications = world.operator.get(f"/parcels/{parcel['id']}/notifications").json["items"]
    assert {(n["channel"], n["status"]) for n in notifications} == {
        ("email", "sent"), ("sms", "failed")}

    assert is_problem(world.shopkeeper.post(f"/jobs/failed/{item['id']}/retry"), 403,
                      "forbidden")
    sms_gateway.script.status, sms_gateway.script.body = 201, '{"id": "msg-2", "status": "ok"}'
    assert world.operator.post(f"/jobs/failed/{item['id']}/retry").status_code == 200
    assert is_problem(world.operator.post(f"/jobs/failed/{item['id']}/retry"), 404, "not-found")
    work(app)
    note = sms_notification(world)
    assert (note.status, note.provider_id) == ("sent", "msg-2")
    assert outbox_statuses(world) == ["done", "done"]
    assert world.operator.get("/jobs/failed").json["items"] == []
    assert distinct_sms(sms_gateway) == 1


def test_a_permanent_failure_is_recorded_once_and_not_retried(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:
    sms_gateway.script.status, sms_gateway.script.body = 400, '{"error": "invalid number"}'
    world.ready("RQJOB0000003")
    dispatch(app, world)
    work(app)
    assert len(sms_gateway.requests) == 1
    note = sms_notification(world)
    assert (note.status, note.attempts) == ("failed", 1)
    assert "invalid number" in (note.provider_response or "")
    assert outbox_statuses(world) == ["done", "done"]  # the job did its work: record the failure
    assert world.operator.get("/jobs/failed").json["items"] == []


def test_jobs_redis_lost_are_handed_over_again_and_sent_once(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:
    world.ready("RQJOB0000004")
    dispatch(app, world)
    # Redis restarted without persistence: every job and queue of ours is gone.
    for key in redis(app).scan_iter(f"*{jc(app).prefix}*"):
        redis(app).delete(key)
    assert queued(app) == 0
    assert relay.redispatch(world.ctx, redis(app), jc(app)) == {"redispatched": 0, "failed": 0}
    assert relay.redispatch(world.ctx, redis(app), jc(app), older_than_s=0) == {
        "redispatched": 2, "failed": 0}
    assert relay.redispatch(world.ctx, redis(app), jc(app), older_than_s=0) == {
        "redispatched": 0, "failed": 0}
    work(app)
    assert outbox_statuses(world) == ["done", "done"]
    assert len(sms_gateway.requests) == 1


def test_operators_see_the_queues_and_only_operators(
        app: Flask, world: World) -> None:
    world.ready("RQJOB0000005")
    dispatch(app, world)
    overview = world.operator.get("/jobs")
    assert overview.status_code == 200
    body = overview.json
    assert body["mode"] == "rq" and body["redis"] == "ok"
    assert body["outbox"]["dispatched"] == 2
    assert body["queues"][0] == {"name": jc(app).jobs_queue, "queued": 2, "started": 0,
                                 "scheduled": 0, "deferred": 0, "failed": 0, "finished": 0}
    for api, status, slug in ((world.shopkeeper, 403, "forbidden"),
                              (world.carrier, 403, "forbidden"),
                              (world.anonymous, 401, "unauthenticated")):
        for path in ("/jobs", "/jobs/failed", "/parcels/1/notifications"):
            assert is_problem(api.get(path), status, slug), (path, api)
        assert is_problem(api.post("/jobs/failed/x/retry"), status, slug)


def test_a_retried_job_taken_by_a_worker_at_once_still_sends_its_message(
        app: Flask, world: World, sms_gateway: SmsGateway,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle worker takes a requeued job the instant it is in the queue: the row and its
    notification must already be owed again by then, or the message is lost for good."""
    sms_gateway.script.status, sms_gateway.script.body = 503, '{"error": "overloaded"}'
    world.ready("RQJOB0000006")
    dispatch(app, world)
    work(app)
    assert sms_notification(world).status == "failed"
    [item] = world.operator.get("/jobs/failed").json["items"]

    class TakenAtOnce(FailedJobRegistry):
        def requeue(self, job_or_id: Job | str, at_front: bool = False) -> Job:
            requeued = super().requeue(job_or_id, at_front)
            work(app)  # before the operator's request has even returned
            return requeued

    monkeypatch.setattr(admin, "FailedJobRegistry", TakenAtOnce)
    sms_gateway.script.status, sms_gateway.script.body = 201, '{"id": "msg-3", "status": "ok"}'
    assert world.operator.post(f"/jobs/failed/{item['id']}/retry").status_code == 200
    note = sms_notification(world)
    assert (note.status, note.provider_id) == ("sent", "msg-3")
    assert outbox_statuses(world) == ["done", "done"]
    assert distinct_sms(sms_gateway) == 1


def test_a_run_whose_process_died_counts_as_an_attempt(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:
    world.ready("RQJOB0000007")
    dispatch(app, world)
    with world.ctx.db.read() as session:
        sms_row = max(session.scalars(select(OutboxMessage.id)))
    # A work horse claims the row and is killed before it records anything.
    assert outbox.claim(world.ctx.db, sms_row) is not None
    work(app)  # RQ runs the job again
    with world.ctx.db.read() as session:
        attempts = dict(session.execute(select(OutboxMessage.id, OutboxMessage.attempts)).all())
    assert attempts[sms_row] == 2
    assert sorted(attempts.values()) == [1, 2]
    assert outbox_statuses(world) == ["done", "done"]
