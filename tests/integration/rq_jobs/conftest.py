"""RQ against the machine's real Redis. Each test gets its own key prefix (queues, job ids,
locks), removed afterwards, so tests and other users of that Redis never see each other."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis

from relay_ops import create_app
from relay_ops.services.context import Ctx
from relay_ops.worker import runtime
from tests.conftest import Clock
from tests.integration.notifications.notify_servers import (  # noqa: F401 - fixtures by name
    SmsGateway,
    sms_gateway,
)

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def forget_prefix(url: str, prefix: str) -> None:
    redis = Redis.from_url(url, socket_connect_timeout=2)
    try:
        for key in redis.scan_iter(f"*{prefix}*", count=1000):
            redis.delete(key)
    finally:
        redis.close()


@pytest.fixture
def jobs_prefix() -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    yield prefix
    forget_prefix(SHARED_REDIS, prefix)


def rq_config(database_url: str, tmp_path: Path, prefix: str, **extra: Any) -> dict[str, Any]:
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "NOTIFY_FILE_PATH": str(tmp_path / "notifications.jsonl"),
        "PUBLIC_BASE_URL": "http://relayops.test",
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        "JOBS_IN_PROCESS": False,
        "REDIS_URL": SHARED_REDIS,
        "JOBS_PREFIX": prefix,
        # Retries at once: a burst worker in the test runs them without waiting.
        "JOB_RETRY_INTERVALS": [0, 0],
        **extra,
    }


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    """Settings a test module adds to the app's (e.g. an SMTP server for e-mails)."""
    return {}


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: Clock, jobs_prefix: str,
        sms_gateway: SmsGateway,  # noqa: F811 - the fixture above
        extra_settings: dict[str, Any]) -> Iterator[Flask]:
    application = create_app(rq_config(
        database_url, tmp_path, jobs_prefix, NOTIFY_SMS_BACKEND="webhook",
        SMS_WEBHOOK_URL=sms_gateway.url, SMS_WEBHOOK_TOKEN="gateway-token", **extra_settings))
    ctx: Ctx = application.extensions["relay_ops"]
    application.extensions["relay_ops"] = Ctx(db=ctx.db, settings=ctx.settings, clock=clock)
    runtime.use(application)
    yield application
    runtime._app = None
    ctx.db.dispose()
