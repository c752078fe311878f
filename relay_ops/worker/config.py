"""Names and policies shared by everything that talks to RQ, read from the app's config."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask
from redis import Redis
from rq import Retry

# Fail fast when Redis is down: a web request (readiness, operator pages) must not hang on it.
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JobsConfig:
    prefix: str
    retry_intervals: tuple[int, ...]
    job_timeout_s: int
    stale_after_s: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> JobsConfig:
        prefix = str(config["JOBS_PREFIX"])
        if not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
            raise ValueError(f"JOBS_PREFIX {prefix!r}: use letters, digits, '_' and '-' only")
        return cls(
            prefix=prefix,
            retry_intervals=tuple(int(x) for x in config["JOB_RETRY_INTERVALS"]),
            job_timeout_s=int(config["JOB_TIMEOUT_S"]),
            stale_after_s=float(config["OUTBOX_STALE_AFTER_S"]),
        )

    @property
    def jobs_queue(self) -> str:
        """Work from the outbox (messages to residents): latency matters."""
        return f"{self.prefix}-jobs"

    @property
    def sweeps_queue(self) -> str:
        return f"{self.prefix}-sweeps"

    @property
    def queues(self) -> list[str]:
        return [self.jobs_queue, self.sweeps_queue]

    def job_id(self, outbox_id: int) -> str:
        """One RQ job id per outbox row, so handing a row over twice never makes two jobs."""
        return f"{self.prefix}_outbox_{outbox_id}"

    def outbox_id(self, job_id: str) -> int | None:
        head = f"{self.prefix}_outbox_"
        return int(job_id[len(head):]) if job_id.startswith(head) else None

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def retry(self) -> Retry | None:
        intervals = list(self.retry_intervals)
        return Retry(max=len(intervals), interval=intervals) if intervals else None


def connect(config: Mapping[str, Any]) -> Redis:
    return Redis.from_url(
        config["REDIS_URL"],
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


def redis_of(app: Flask) -> Redis | None:
    """The app's Redis client, or None in the embedded default (jobs run in process)."""
    if app.config["JOBS_IN_PROCESS"]:
        return None
    if "relay_ops.redis" not in app.extensions:
        app.extensions["relay_ops.redis"] = connect(app.config)
    client: Redis = app.extensions["relay_ops.redis"]
    return client
