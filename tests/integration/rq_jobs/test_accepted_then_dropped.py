"""A provider took the message, and the line dropped before it said so: the worker cannot tell
a message sent from one lost. The retry must carry the same idempotency key (SMS
``Idempotency-Key``, e-mail ``Message-ID``) so that the provider drops the repeat, and the
notification is recorded sent once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import Notification, OutboxMessage
from tests.integration.notifications.notify_servers import (  # noqa: F401 - fixtures by name
    SmsGateway,
    SmtpServer,
    smtp_server,
)
from tests.integration.rq_jobs.test_rq_relay import dispatch, work
from tests.support import World


@pytest.fixture
def extra_settings(smtp_server: SmtpServer) -> dict[str, Any]:  # noqa: F811 - by name
    return {"NOTIFY_EMAIL_BACKEND": "smtp", "SMTP_HOST": smtp_server.host,
            "SMTP_PORT": smtp_server.port, "SMTP_FROM": "relais@example.org"}


def message_id(raw: bytes | str | None) -> str:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return next(line.split(":", 1)[1].strip() for line in text.splitlines()
                if line.lower().startswith("message-id:"))


def test_a_message_taken_by_the_provider_before_the_line_dropped_goes_again_under_its_key(
        app: Flask, world: World, sms_gateway: SmsGateway,
        smtp_server: SmtpServer) -> None:  # noqa: F811 - by name
    sms_gateway.script.drop_after_accepting = 1
    smtp_server.handler.drop_after_accepting = 1
    world.ready("DROPPED00001")
    assert dispatch(app, world) == 2
    work(app)  # each job fails on the dropped line, and RQ retries it at once

    with world.ctx.db.read() as session:
        notes = {n.channel: n for n in session.scalars(select(Notification))}
        rows = session.execute(select(OutboxMessage.status, OutboxMessage.attempts)).all()
    sms, email = notes["sms"], notes["email"]
    # Both providers got the message twice, under one key: they deliver it once.
    keys = [r.headers["Idempotency-Key"] for r in sms_gateway.requests]
    assert keys == [f"relayops-notification-{sms.id}"] * 2
    assert {json.loads(r.body)["reference"] for r in sms_gateway.requests} == {keys[0]}
    ids = [message_id(e.original_content) for e in smtp_server.handler.received]
    assert len(ids) == 2 and set(ids) == {email.provider_id}
    # Recorded once as sent, the dropped try kept as an attempt.
    assert (sms.status, sms.provider_id, sms.attempts) == ("sent", "msg-7f3a", 2)
    assert (email.status, email.attempts) == ("sent", 2)
    assert sorted(rows) == [("done", 2), ("done", 2)]
