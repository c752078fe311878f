"""An operator's retry in the embedded default: the failing outbox row is due again at once,
revived in one transaction with its notification (relay_ops/worker/admin.py)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from relay_ops import jobs, outbox
from relay_ops.db.models import Notification, OutboxMessage
from tests.integration.notifications.notify_servers import (  # noqa: F401 - a fixture by name
    SmsGateway,
    sms_gateway,
)
from tests.support import World, is_problem


def test_an_operator_retries_a_failing_row_and_it_runs_at_once(
        app: Flask, world: World, sms_gateway: SmsGateway) -> None:  # noqa: F811 - by name
    app.config.update(NOTIFY_SMS_BACKEND="webhook", SMS_WEBHOOK_URL=sms_gateway.url,
                      SMS_WEBHOOK_TOKEN="tok")
    sms_gateway.script.status, sms_gateway.script.body = 503, '{"error": "overloaded"}'

    def run() -> int:
        return outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, app.config),
                                       world.ctx.now)

    world.ready("RETRYIP00001")
    assert run() == 1  # the e-mail; the SMS waits for its retry, 30 s later
    [item] = world.operator.get("/jobs/failed").json["items"]
    assert item["id"].startswith("outbox_") and "503" in item["error"]
    assert run() == 0

    sms_gateway.script.status, sms_gateway.script.body = 201, '{"id": "msg-9", "status": "ok"}'
    assert is_problem(world.shopkeeper.post(f"/jobs/failed/{item['id']}/retry"), 403,
                      "forbidden")
    assert world.operator.post(f"/jobs/failed/{item['id']}/retry").status_code == 200
    assert run() == 1
    with world.ctx.db.read() as session:
        sms = session.scalar(select(Notification).where(Notification.channel == "sms"))
        rows = session.execute(select(OutboxMessage.status, OutboxMessage.attempts)
                               .order_by(OutboxMessage.id)).all()
    assert sms is not None and (sms.status, sms.provider_id) == ("sent", "msg-9")
    assert [tuple(r) for r in rows] == [("done", 1), ("done", 2)]
    assert is_problem(world.operator.post(f"/jobs/failed/{item['id']}/retry"), 404, "not-found")
    assert is_problem(world.operator.post("/jobs/failed/outbox_999/retry"), 404, "not-found")
