"""Personal-data retention: recipients' name, phone and e-mail are erased some days after the
parcel's life ended (picked up, returned, cancelled...), and the history stays without them.

What is erased: the ``recipient_*`` columns (and their keyed hashes), proxies' names on pickup
credentials, and any copy of the address a provider echoed into a notification's recorded
response or error. What stays:
the parcel row, its events (they never held personal data), the notifications' statuses and
provider ids. A ``personal_data_purged`` event records when it happened.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    HomeDelivery,
    IdempotencyRecord,
    Notification,
    Parcel,
    PickupCredential,
)
from relay_ops.domain.lifecycle import FINAL_STATES
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import history
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM

FINAL = [s.value for s in FINAL_STATES]
REDACTED = "[purged]"


def purge_due(ctx: Ctx, retention_days: int, limit: int = 1000) -> list[int]:
    """Erase the personal data of parcels closed more than ``retention_days`` ago."""
    now = ctx.now()
    cutoff = now - timedelta(days=retention_days)
    with ctx.db.read() as session:
        ids = list(session.scalars(
            select(Parcel.id)
            .where(Parcel.state.in_(FINAL), Parcel.closed_at <= cutoff,
                   Parcel.personal_data_purged_at.is_(None))
            .order_by(Parcel.closed_at)
            .limit(limit)
        ))
    purged = []
    for parcel_id in ids:
        with ctx.db.transaction() as session:
            parcel = session.get(Parcel, parcel_id, with_for_update=True)
            if (parcel is None or parcel.personal_data_purged_at is not None
                    or parcel.closed_at is None or parcel.closed_at > cutoff):
                continue
            _erase(session, parcel)
            parcel.personal_data_purged_at = now
            history.record(session, parcel, "personal_data_purged", parcel.state, SYSTEM, now,
                           data={"retention_days": retention_days})
            purged.append(parcel_id)
    _forget_replays(ctx, cutoff)
    return purged


def _erase(session: Session, parcel: Parcel) -> None:
    couriers = [n for n in session.scalars(select(HomeDelivery.courier_name).where(
        HomeDelivery.parcel_id == parcel.id)) if n]
    secrets = sorted(set(_variants(parcel) + couriers), key=len, reverse=True)
    parcel.recipient_name = parcel.recipient_phone = parcel.recipient_email = None
    # The keyed hashes only serve to group ready parcels (a closed one never groups), and a
    # phone number's hash can be found by hashing them all: they go too.
    parcel.recipient_phone_key = parcel.recipient_email_key = None
    for credential in session.scalars(
        select(PickupCredential).where(PickupCredential.parcel_id == parcel.id)
    ):
        credential.holder_name = None
    # The neighbour or volunteer a resident named to bring a parcel home.
    session.execute(update(HomeDelivery).where(HomeDelivery.parcel_id == parcel.id)
                    .values(courier_name=None).execution_options(synchronize_session=False))
    for notification in session.scalars(
        select(Notification).where(Notification.parcel_id == parcel.id)
    ):
        notification.provider_response = _redact(notification.provider_response, secrets)
        notification.error = _redact(notification.error, secrets)


def _variants(parcel: Parcel) -> list[str]:
    """The values as given and as sent (providers echo the normalised number)."""
    values = [v for v in (parcel.recipient_name, parcel.recipient_phone, parcel.recipient_email)
              if v]
    for channel, value in ((Channel.SMS, parcel.recipient_phone),
                           (Channel.EMAIL, parcel.recipient_email)):
        if value:
            try:
                values.append(normalize_recipient(channel, value))
            except InvalidRecipient:
                pass  # never sendable, so never echoed
    # Longest first, so a name inside an address does not leave the rest of the address.
    return sorted(set(values), key=len, reverse=True)


def _redact(text: str | None, secrets: list[str]) -> str | None:
    if not text:
        return text
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _forget_replays(ctx: Ctx, cutoff: datetime) -> None:
    """Stored API answers (for Idempotency-Key replays) may show a recipient; replays that old
    serve nobody."""
    with ctx.db.transaction() as session:
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff))
