"""A producer announces an order (docs/producers.md): its input judged (a contact the message
reaches, a size, a holding period in hours, a sell-by time ahead), a label no parcel has, a shop
that takes it (with a fridge for "keep cold") or a locker's door reserved for it. The same
order again answers with its state; another under the same reference is refused."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, ProducerOrder, Site
from relay_ops.domain import site_services
from relay_ops.domain.errors import Conflict, NotFound, SellByOutOfReach, ValidationFailed
from relay_ops.domain.lifecycle import State
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import checkin_registration, history, locker_sending
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import locked_locker
from relay_ops.services.parcel_views import iso
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.producers import order_row, order_view

# An order's label, printed by the producer and scanned at the counter like a tracking number.
LABEL_PREFIX = "PRD"


# The longest holding period a producer may set: a fortnight, a shop's standard period.
MAX_HOLDING_HOURS = 14 * 24


# A sell-by time further ahead is no perishable's (and a year 9999 is a typing slip).
MAX_SELL_BY_AHEAD = timedelta(days=366)


@dataclass(frozen=True)
class Order:
    """A catalogue-free order: what the producer says of it, no more."""

    reference: str
    site: str
    phone: str | None = None
    email: str | None = None
    locale: str = "fr"
    name: str | None = None
    size_class: str | None = None
    keep_cold: bool = False
    holding_hours: int | None = None
    sell_by: datetime | None = None

    def fingerprint(self) -> str:
        content = {**self.__dict__, "sell_by": iso(self.sell_by)}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def announce(ctx: Ctx, actor: Principal, order: Order) -> tuple[int, dict[str, Any]]:
    """(status, answer): 201 and the order's label the first time; the same order again is
    answered 200 with its current state; another order under the same reference is refused."""
    require_role(actor, Role.PRODUCER)
    order = _checked(ctx, order)
    digest = order.fingerprint()
    now = ctx.now()
    with ctx.db.transaction() as session:
        previous = order_row(session, actor.producer_id, order.reference)
        if previous is not None:
            if previous.producer_order is None or previous.producer_order.fingerprint != digest:
                raise Conflict(
                    f"order {order.reference!r} was announced with other details; an order's "
                    "reference names one order", reference=order.reference,
                )
            return 200, order_view(previous)
        site = _site_taking_orders(session, order.site, keep_cold=order.keep_cold)
        parcel = Parcel(
            tracking_number=_new_label(session), carrier_id=None, site_id=site.id,
            state=State.ANNOUNCED.value, recipient_name=order.name,
            recipient_phone=order.phone, recipient_email=order.email,
            recipient_locale=order.locale,
        )
        checkin_registration.set_size(ctx, parcel, order.size_class, None)
        session.add(parcel)
        session.flush()
        row = ProducerOrder(
            parcel_id=parcel.id, producer_id=actor.producer_id, reference=order.reference,
            keep_cold=order.keep_cold, holding_hours=order.holding_hours,
            sell_by=order.sell_by, announced_at=now, fingerprint=digest,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            # The same reference announced at the same moment by another request: once
            # that one is committed, a retry gets its answer (or its refusal).
            raise Conflict(f"order {order.reference!r} is being announced; retry",
                           reference=order.reference) from None
        history.record(session, parcel, "announced", None, actor, now,
                       data={"reference": order.reference, "keep_cold": order.keep_cold})
        session.flush()
        session.refresh(parcel, ["producer_order", "site"])
        if site.kind == "locker":  # its door now, opened by the producer's code
            locker_sending.reserve_for_order(ctx, session, site, parcel, actor,
                                             keep_cold=order.keep_cold, sell_by=order.sell_by)
        return 201, order_view(parcel)


def _checked(ctx: Ctx, order: Order) -> Order:
    """The producer's input, judged before anything is written: a contact the message can
    reach, a known size, a holding period within bounds, a sell-by time still ahead."""
    reference = order.reference.strip()
    if not reference:
        raise ValidationFailed("an order has the producer's reference")
    if not (order.phone or order.email):
        raise ValidationFailed("the recipient's phone or e-mail is required: the resident is "
                               "told the order is ready, with its code")
    try:
        phone = normalize_recipient(Channel.SMS, order.phone) if order.phone else None
        email = normalize_recipient(Channel.EMAIL, order.email) if order.email else None
    except InvalidRecipient as err:
        raise ValidationFailed(f"the recipient's contact: {err}") from None
    classes = ctx.settings.size_classes
    if order.size_class is not None and order.size_class not in classes:
        raise ValidationFailed(f"size class {order.size_class!r} unknown; use "
                               f"{', '.join(classes)}")
    if order.holding_hours is not None and not 1 <= order.holding_hours <= MAX_HOLDING_HOURS:
        raise ValidationFailed(f"holding_hours is 1 to {MAX_HOLDING_HOURS}")
    if order.sell_by is not None:
        if order.sell_by.tzinfo is None:
            raise ValidationFailed("sell_by needs its time zone (e.g. 2026-12-05T18:00:00+01:00)")
        if order.sell_by <= ctx.now():
            raise SellByOutOfReach("the sell-by time has passed")
        if order.sell_by - ctx.now() > MAX_SELL_BY_AHEAD:
            raise SellByOutOfReach("a sell-by time more than a year ahead: leave it out, the "
                                   "holding period is enough")
    return Order(
        reference=reference, site=order.site, phone=phone, email=email, locale=order.locale,
        name=order.name, size_class=order.size_class, keep_cold=order.keep_cold,
        holding_hours=order.holding_hours, sell_by=order.sell_by,
    )


def _site_taking_orders(session: Session, code: str, *, keep_cold: bool) -> Site:
    """A shop, or a locker (locked: its doors are allocated in this transaction)."""
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"no site {code!r}")
    if site.kind == "locker":
        site = locked_locker(session, site.id)
    if site.status == "closed":
        raise ValidationFailed(f"{site.name} is closed and takes no orders")
    if keep_cold and site.kind == "shop":
        # Refused when announced, while the producer can still choose another shop; at the
        # counter the fridge's free places decide (``no-cold-place``), at a locker its
        # refrigerated doors.
        site_services.require(site.services or [], "cold", site.name, site.code)
    return site


def _new_label(session: Session) -> str:
    """A label no parcel has: ``PRD`` and 10 hexadecimal digits (never S10-shaped)."""
    while True:
        label = LABEL_PREFIX + secrets.token_hex(5).upper()
        if session.scalar(select(Parcel.id).where(Parcel.tracking_number == label)) is None:
            return label
