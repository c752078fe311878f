"""Messages owed to residents are rendered and written by the file sender, once each."""

import json
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from relay_ops import outbox
from relay_ops.db.models import Notification
from relay_ops.jobs import handlers
from tests.support import World


def run_jobs(app: Flask, world: World) -> int:
    return outbox.run_pending_jobs(world.ctx.db, handlers(world.ctx, app.config), world.ctx.now)


def sent_lines(app: Flask) -> list[dict]:
    path = Path(app.config["NOTIFY_FILE_PATH"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_ready_message_carries_the_code_and_goes_out_once(app: Flask, world: World) -> None:
    parcel = world.ready("MSG000000001")
    assert run_jobs(app, world) == 2
    assert run_jobs(app, world) == 0
    lines = sent_lines(app)
    assert sorted(x["channel"] for x in lines) == ["email", "sms"]
    code = world.code_of(parcel["id"])
    assert all(code in x["body"] for x in lines)
    with world.ctx.db.read() as session:
        statuses = session.scalars(select(Notification.status)).all()
    assert statuses == ["sent", "sent"]


def test_a_job_run_twice_sends_one_message(app: Flask, world: World) -> None:
    world.ready("MSG000000002")
    run_jobs(app, world)
    send = handlers(world.ctx, app.config)["notifications.send"]
    with world.ctx.db.read() as session:
        first = session.scalars(select(Notification.id)).first()
    send({"notification_id": first})
    assert len(sent_lines(app)) == 2


def test_an_invalid_phone_fails_for_good_without_retries(app: Flask, world: World) -> None:
    world.carrier.post("/manifests", json={"reference": "BAD", "parcels": [{
        "tracking_number": "MSG000000003", "site": "bourg",
        "recipient": {"phone": "not a phone"}}]})
    world.check_in("MSG000000003")
    run_jobs(app, world)
    with world.ctx.db.read() as session:
        notification = session.scalars(select(Notification)).one()
    assert notification.status == "failed" and notification.attempts == 1
    assert run_jobs(app, world) == 0
