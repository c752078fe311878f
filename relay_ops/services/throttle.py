"""Throttling guesses: too many failures for one key in a window refuses further tries.

Failures are rows in the database, so every web worker and process sees the same count, and
the count survives a restart. Rows older than the longest window can be deleted at any time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from relay_ops.db.models import FailedAttempt
from relay_ops.domain.errors import TooManyAttempts


@dataclass(frozen=True)
class Limit:
    scope: str
    attempts: int
    window: timedelta
    advice: str


# A shop counter sees a few mistyped codes an hour; hundreds mean someone is guessing.
PICKUP_CODES = Limit("pickup-code", 20, timedelta(minutes=10),
                     "give the tracking number together with the code")
SIGN_IN = Limit("sign-in", 10, timedelta(minutes=15), "wait a few minutes")


def check(session: Session, limit: Limit, key: str, now: datetime) -> None:
    recent = session.scalar(
        select(func.count()).where(
            FailedAttempt.scope == limit.scope, FailedAttempt.key == key,
            FailedAttempt.at > now - limit.window,
        )
    )
    if (recent or 0) >= limit.attempts:
        raise TooManyAttempts(f"too many failed attempts: {limit.advice}",
                              retry_after_s=int(limit.window.total_seconds()))


def record_failure(session: Session, limit: Limit, key: str, now: datetime) -> None:
    session.add(FailedAttempt(scope=limit.scope, key=key, at=now))


def forget_older_than(session: Session, before: datetime) -> int:
    result = session.execute(delete(FailedAttempt).where(FailedAttempt.at < before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
