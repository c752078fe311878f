"""Replaying answers to requests sent again with the same ``Idempotency-Key``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from relay_ops.db.models import IdempotencyRecord
from relay_ops.domain.errors import IdempotencyKeyReused
from relay_ops.services.context import Ctx

MAX_KEY_LENGTH = 200


@dataclass(frozen=True)
class Stored:
    status: int
    body: Any


def lookup(ctx: Ctx, principal_key: str, key: str, fingerprint: str) -> Stored | None:
    with ctx.db.read() as session:
        record = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.principal == principal_key, IdempotencyRecord.key == key
            )
        )
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request"
            )
        return Stored(record.status_code, record.response["body"])


def store(ctx: Ctx, principal_key: str, key: str, fingerprint: str, status: int, body: Any) -> None:
    try:
        with ctx.db.transaction() as session:
            session.add(IdempotencyRecord(
                principal=principal_key, key=key, fingerprint=fingerprint,
                status_code=status, response={"body": body},
            ))
    except IntegrityError:
        # A concurrent request with the same key stored its answer first; both answers come
        # from the same effect-once service call, so keeping the first is right.
        return
