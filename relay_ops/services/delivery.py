"""Delivering a queued notification: render it for its recipient, send it once, record it.

Called by whatever runs jobs (the in-process runner of the embedded default, or an RQ
worker). It is idempotent: a notification already sent or failed for good is not sent again.
If a process dies after the provider accepted a message but before it was recorded, the retry
sends it with the same idempotency key (SMTP Message-ID, SMS ``Idempotency-Key``), which the
provider uses to drop the duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from relay_ops.db.models import Notification, Parcel, ParcelEvent, PickupCredential, Site
from relay_ops.domain.holding import SHORTENED_RULES
from relay_ops.domain.hours import ALWAYS_OPEN, DAYS, opens_some_day
from relay_ops.notifications.messages import (
    Channel,
    MessageContext,
    MessageKind,
    MissingContextError,
    render,
)
from relay_ops.notifications.senders import (
    OutgoingMessage,
    PermanentSendError,
    Sender,
    TransientSendError,
)
from relay_ops.services import home_delivery, locker_sending, outbound
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of, live_credentials
from relay_ops.services.notify import NO_OPENING_HOURS
from relay_ops.services.resident import qr_url, tracking_url

# A parcel's whole life needs about six messages per channel; more means a loop or abuse,
# and SMS cost money.
MAX_MESSAGES_PER_PARCEL = 12
DAY_NAMES = {
    "fr": ("lun.", "mar.", "mer.", "jeu.", "ven.", "sam.", "dim."),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}

SenderFactory = Callable[[Channel], Sender]
log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A transient failure: the job runner retries with backoff."""


@dataclass(frozen=True)
class Outcome:
    status: str
    provider_id: str | None = None


def hours_text(hours: Any, locale: str) -> str:
    if hours == ALWAYS_OPEN:
        return "24h/24, 7j/7" if locale == "fr" else "24/7"
    names = DAY_NAMES.get(locale, DAY_NAMES["fr"])
    parts = []
    for day, name in zip(DAYS, names, strict=True):
        ranges = hours.get(day) or []
        if ranges:
            parts.append(f"{name} " + ", ".join(f"{a}-{b}" for a, b in ranges))
    return "; ".join(parts)


def deliver(ctx: Ctx, notification_id: int, sender_for: SenderFactory) -> Outcome:
    with ctx.db.read() as session:
        notification = session.get(Notification, notification_id)
        if notification is None:
            return Outcome("gone")
        if notification.status in ("sent", "failed", "skipped"):
            return Outcome(notification.status, notification.provider_id)
        parcel = session.get(Parcel, notification.parcel_id)
        assert parcel is not None
        sent_before = session.scalar(select(func.count()).where(
            Notification.parcel_id == parcel.id, Notification.status == "sent"))
        message = _message(ctx, session, notification, parcel)
        state = parcel.state
    if isinstance(message, str):
        # Visible to operators (GET /parcels/{id}/notifications) and in the log: a resident
        # who never gets their code is a fault to mend, never a quiet skip.
        log.warning("notification %s failed: %s", notification_id, message)
        return _record(ctx, notification_id, "failed", error=message)
    if message is None:
        # E.g. a "ready" message for a parcel picked up before it went out: nothing to say.
        return _record(ctx, notification_id, "skipped",
                       error=f"no longer applies: the parcel is {state}")
    if (sent_before or 0) >= MAX_MESSAGES_PER_PARCEL:
        return _record(ctx, notification_id, "failed", error="message cap for this parcel")
    try:
        result = sender_for(Channel(notification.channel)).send(message)
    except TransientSendError as err:
        _record(ctx, notification_id, "queued", error=str(err), response=err.provider_response)
        raise RetryLater(str(err)) from err
    except PermanentSendError as err:
        return _record(ctx, notification_id, "failed", error=str(err),
                       response=err.provider_response)
    return _record(ctx, notification_id, "sent", provider_id=result.provider_id,
                   response=result.provider_response)


def _message(ctx: Ctx, session: Any, notification: Notification,
             parcel: Parcel) -> OutgoingMessage | str | None:
    """The message to send; a reason (str) it cannot be sent; None if it no longer applies."""
    channel = Channel(notification.channel)
    address = parcel.recipient_email if channel is Channel.EMAIL else parcel.recipient_phone
    if not address:
        return "no recipient address (never given, or purged)"
    if not _still_applies(notification.kind, parcel.state):
        return None
    site: Site = parcel.site
    if not opens_some_day(site.opening_hours):
        return (f"{NO_OPENING_HOURS} ({site.code}): an operator sets them (PUT "
                f"/api/v1/sites/{site.id}/opening-hours, or relay-ops site hours {site.code}) "
                "and the ready messages are sent again")
    context = MessageContext(
        tracking_number=parcel.tracking_number,
        carrier_name=_sender_name(parcel),
        site_name=site.name,
        site_address=site.postal_address,
        opening_hours=hours_text(site.opening_hours, parcel.recipient_locale),
        tracking_url=_link(ctx, parcel),
        deadline=_deadline(notification, parcel),
        **_code_facts(ctx, session, notification, parcel),
        picked_up_at=parcel.closed_at if parcel.state == "picked_up" else None,
        previous_site_name=(
            _previous_site_name(session, parcel) if notification.kind == "rerouted" else None
        ),
        dropped_off_at=parcel.checked_in_at if parcel.direction == "outbound" else None,
        collected_at=parcel.closed_at if parcel.state == "collected" else None,
        holding_shortened=parcel.holding_rule in SHORTENED_RULES,
        **_home_delivery_facts(session, notification, parcel),
        # A parcel kept at the carrier's depot: the day it now arrives (services/no_room.py).
        expected_day=parcel.expected_date if notification.kind == "depot_hold" else None,
    )
    try:
        rendered = render(MessageKind(notification.kind), channel, parcel.recipient_locale,
                          context)
    except MissingContextError as err:
        # The message still applies (checked above), so a missing value is a fault.
        return f"the message cannot be written: {err}"
    return OutgoingMessage.from_rendered(channel, address, rendered,
                                         f"relayops-notification-{notification.id}")


def _code_facts(ctx: Ctx, session: Any, notification: Notification, parcel: Parcel
                ) -> dict[str, Any]:
    """The code a message gives: a recipient's pickup code, its QR code and the parcels it
    also hands over; a sender's at a locker (its drop-off code and QR code, or the code that
    takes a refused parcel back)."""
    holder = "sender" if parcel.direction == "outbound" else "recipient"
    credential = next((c for c in live_credentials(session, parcel.id) if c.holder == holder),
                      None)
    if credential is None:
        return {"pickup_code": None, "qr_url": None, "other_parcels": ()}
    code = code_of(ctx, credential)
    if holder == "sender":
        drop_off = notification.kind == "drop_off_code"
        return {"pickup_code": code, "other_parcels": (),
                "qr_url": locker_sending.drop_off_qr_url(ctx, parcel.id) if drop_off else None}
    return {"pickup_code": code, "qr_url": qr_url(ctx, parcel.id),
            "other_parcels": _waiting_with(parcel, credential)}


def _deadline(notification: Notification, parcel: Parcel) -> Any:
    """The holding deadline; for a drop-off code, until when its door is held."""
    if notification.kind == "drop_off_code":
        return parcel.compartment.reserved_until if parcel.compartment else None
    return parcel.holding_deadline


def _home_delivery_facts(session: Any, notification: Notification, parcel: Parcel
                         ) -> dict[str, Any]:
    """Who brings the parcel, on which day, when it was delivered: home delivery messages."""
    if not notification.kind.startswith("home_"):
        return {}
    courier_name, day = home_delivery.message_facts(session, parcel)
    return {"courier_name": courier_name, "delivery_day": day,
            "delivered_at": parcel.closed_at if parcel.state == "delivered" else None}


def _link(ctx: Ctx, parcel: Parcel) -> str:
    """A recipient's tracking page; a sender's receipt (it outlives the collection)."""
    if parcel.direction == "outbound":
        return outbound.receipt_url(ctx, parcel.id)
    return tracking_url(ctx, parcel.id)


# Messages about a parcel waiting to be picked up: once it left that state (picked up,
# expired, declared...) before the message went out, there is nothing left to say. Any other
# message, once owed, is sent or fails visibly.
WHILE_READY = ("ready", "reminder")


def _still_applies(kind: str, state: str) -> bool:
    if kind == "drop_off_code":  # deposited (or lapsed) before it went out: nothing to say
        return state == "announced"
    return kind not in WHILE_READY or state == "ready_for_pickup"


def _waiting_with(parcel: Parcel, code: PickupCredential | None) -> tuple[str, ...]:
    """The other parcels still ready that the recipient's code also hands over: read when the
    message goes out, so one picked up or expired meanwhile is not announced."""
    if code is None:
        return ()
    return tuple(p.tracking_number for p in code.parcels
                 if p.id != parcel.id and p.state == "ready_for_pickup")


def _previous_site_name(session: Any, parcel: Parcel) -> str | None:
    """Where a rerouted parcel was first addressed: its latest reroute event says."""
    event = session.scalar(
        select(ParcelEvent)
        .where(ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == "reroute")
        .order_by(ParcelEvent.id.desc())
    )
    if event is None:
        return None
    origin = session.scalar(select(Site).where(Site.code == event.data.get("from_site")))
    return origin.name if origin else event.data.get("from_site")


def _record(ctx: Ctx, notification_id: int, status: str, *, provider_id: str | None = None,
            response: str | None = None, error: str | None = None) -> Outcome:
    """What became of one attempt, in one UPDATE (the row lock and the write together)."""
    values: dict[str, Any] = {"attempts": Notification.attempts + 1, "status": status,
                              "error": error}
    if response:
        values["provider_response"] = response[:4000]
    if status == "sent":
        values.update(provider_id=provider_id, sent_at=ctx.now())
    with ctx.db.transaction() as session:
        found = session.execute(
            update(Notification).where(Notification.id == notification_id).values(**values)
            .returning(Notification.id),
            execution_options={"synchronize_session": False},
        ).one_or_none()
    assert found is not None, f"notification {notification_id} vanished while being sent"
    return Outcome(status, provider_id)


def give_up(ctx: Ctx, notification_id: int, error: str) -> None:
    """Retries are exhausted: the notification is failed, with the last error kept."""
    with ctx.db.transaction() as session:
        notification = session.get(Notification, notification_id, with_for_update=True)
        if notification is not None and notification.status == "queued":
            notification.status = "failed"
            notification.error = error[:4000]


def revive(session: Session, notification_id: int) -> None:
    """An operator retries a job that gave up: its notification is owed again. In the caller's
    transaction, the one that revives the job's outbox row: a worker never sees one without
    the other."""
    notification = session.get(Notification, notification_id, with_for_update=True)
    if notification is not None and notification.status == "failed":
        notification.status = "queued"


def _sender_name(parcel: Parcel) -> str:
    """Who the parcel comes from, as its messages name it: its carrier, or the producer whose
    order it is (an order has no carrier, and its ready message must still go out)."""
    if parcel.carrier is not None:
        return parcel.carrier.name
    order = parcel.producer_order
    return order.producer.name if order is not None else ""
