"""Short circuits: local producers' accounts, their order announcements, the deposit at the
counter, the orders' states, and the orders nobody collected going back to their producer
(docs/producers.md).

A producer's order is a parcel whose sender is the producer: an inbound parcel row with no
carrier, and a ``producer_orders`` row beside it. At the counter it goes through the check-in
(``services/checkin.py``), which gives it a shelf (a refrigerated one when it must be kept
cold), a deadline (hours, bounded by the sell-by time and the shop's hours), the resident's
code and message, by the same rules as any parcel.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload

from relay_ops.db.models import Parcel, Producer, ProducerOrder, Site
from relay_ops.domain import site_services
from relay_ops.domain.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    NotFound,
    OnBehalfOf,
    ProducerChoiceNeeded,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import FINAL_STATES, Action, State
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import accounts, checkin, history, locker_sending
from relay_ops.services.accounts import IssuedToken
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import locked_locker
from relay_ops.services.parcel_views import STAFF, iso
from relay_ops.services.principal import Principal, Role, require_role, require_site

# An order's label, printed by the producer and scanned at the counter like a tracking number.
LABEL_PREFIX = "PRD"
# The longest holding period a producer may set: a fortnight, a shop's standard period.
MAX_HOLDING_HOURS = 14 * 24
# A sell-by time further ahead is no perishable's (and a year 9999 is a typing slip).
MAX_SELL_BY_AHEAD = timedelta(days=366)
# What the producer takes back: the states in which an order waits on the shelf for it.
TO_TAKE_BACK = (State.EXPIRED.value, State.DAMAGED.value)


# ---------------------------------------------------------------- accounts


def create_producer(ctx: Ctx, actor: Principal, *, code: str, name: str) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if not name.strip():
        raise ValidationFailed("a producer has a name (the one its customers know)")
    with ctx.db.transaction() as session:
        producer = Producer(code=code, name=name.strip())
        session.add(producer)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"producer code {code!r} is taken") from None
        return producer_view(producer)


def producer_view(producer: Producer) -> dict[str, Any]:
    return {"id": producer.id, "code": producer.code, "name": producer.name}


def list_producers(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER, Role.SYSTEM)
    with ctx.db.read() as session:
        return [producer_view(p) for p in session.scalars(select(Producer).order_by(Producer.code))]


def issue_producer_key(
    ctx: Ctx, actor: Principal, code: str, label: str = "", fixed: str | None = None
) -> IssuedToken:
    """A new API key for a producer (as a carrier's): shown once, never stored."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        producer = _producer_by_code(session, code)
        return accounts.add_api_key(ctx, session, "pk", label, fixed, producer_id=producer.id)


def _producer_by_code(session: Session, code: str) -> Producer:
    producer = session.scalar(select(Producer).where(Producer.code == code))
    if producer is None:
        raise NotFound(f"no producer {code!r}")
    return producer


# ---------------------------------------------------------------- announcing an order


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
        previous = _order_row(session, actor.producer_id, order.reference)
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
        checkin.set_size(ctx, parcel, order.size_class, None)
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
            raise ValidationFailed("the sell-by time has passed")
        if order.sell_by - ctx.now() > MAX_SELL_BY_AHEAD:
            raise ValidationFailed("a sell-by time more than a year ahead: leave it out, the "
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


# ---------------------------------------------------------------- views and lists


def _orders() -> Select[Any]:
    return (select(Parcel).join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
            .options(contains_eager(Parcel.producer_order).joinedload(ProducerOrder.producer),
                     joinedload(Parcel.site), joinedload(Parcel.location)))


def _order_row(session: Session, producer_id: int | None, reference: str) -> Parcel | None:
    return session.scalars(_orders().where(ProducerOrder.producer_id == producer_id,
                                           ProducerOrder.reference == reference)).first()


def order_view(parcel: Parcel) -> dict[str, Any]:
    """An order as its producer and the shop see it: its state, never the resident's code."""
    order = parcel.producer_order
    assert order is not None
    return {
        "reference": order.reference,
        "label": parcel.tracking_number,
        "producer": order.producer.code,
        "producer_name": order.producer.name,
        "site": parcel.site.code,
        "site_name": parcel.site.name,
        "state": parcel.state,
        "size_class": parcel.size_class,
        "keep_cold": order.keep_cold,
        "holding_hours": order.holding_hours,
        "sell_by": iso(order.sell_by),
        "announced_at": iso(order.announced_at),
        "deposited_at": iso(parcel.checked_in_at),
        "holding_deadline": iso(parcel.holding_deadline),
        "location": parcel.location.label if parcel.location else None,
        # at a locker: the door reserved for it, then holding it
        "compartment": parcel.compartment.number if parcel.compartment else None,
        "closed_at": iso(parcel.closed_at),
    }


def my_orders(
    ctx: Ctx, actor: Principal, state: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """A producer's own orders (never another's), newest first."""
    require_role(actor, Role.PRODUCER)
    with ctx.db.read() as session:
        query = _orders().where(ProducerOrder.producer_id == actor.producer_id)
        if state is not None:
            query = query.where(Parcel.state == state)
        rows = session.scalars(query.order_by(ProducerOrder.announced_at.desc(),
                                              Parcel.id.desc()).limit(limit))
        return [order_view(p) for p in rows]


def my_order(ctx: Ctx, actor: Principal, reference: str) -> dict[str, Any]:
    require_role(actor, Role.PRODUCER)
    with ctx.db.read() as session:
        parcel = _order_row(session, actor.producer_id, reference)
        if parcel is None:
            raise NotFound(f"no order {reference!r}")
        return order_view(parcel)


def take_back_list(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    """The producer's pickup list: its orders nobody collected (or damaged), shop by shop,
    waiting on the shelf for it to take them back."""
    require_role(actor, Role.PRODUCER)
    with ctx.db.read() as session:
        rows = session.scalars(
            _orders().where(ProducerOrder.producer_id == actor.producer_id,
                            Parcel.state.in_(TO_TAKE_BACK))
            .order_by(Parcel.site_id, Parcel.holding_deadline, Parcel.id)
        )
        # at a locker, the door to open with the producer's code (the view's compartment)
        return [{**order_view(p), "site_address": f"{p.site.address}, {p.site.city}",
                 "at_locker": p.site.kind == "locker"} for p in rows]


def site_day(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """The shop's producer orders of the day: those still to come, those on its shelves, and
    those that left it today (collected, or taken back), oldest announcement first."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    tz = ctx.settings.timezone
    today = ctx.now().astimezone(tz).date()
    day_start = datetime.combine(today, time(0), tz)
    with ctx.db.read() as session:
        rows = session.scalars(
            _orders().where(
                Parcel.site_id == site_id,
                or_(Parcel.state.not_in([s.value for s in FINAL_STATES]),
                    Parcel.closed_at >= day_start),
                or_(Parcel.closed_at.is_(None), Parcel.closed_at < day_start + timedelta(days=1)),
            ).order_by(ProducerOrder.announced_at, Parcel.id)
        )
        return [order_view(p) for p in rows]


# ---------------------------------------------------------------- at the counter


def deposit(
    ctx: Ctx, actor: Principal, site_id: int, reference: str, producer_code: str | None = None
) -> tuple[int, dict[str, Any]]:
    """The shopkeeper scans an order the producer brings (its reference, or its label): it
    is checked in like any parcel. The same scan again changes nothing (200)."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    with ctx.db.read() as session:
        parcel = _order_at_site(session, site_id, reference.strip(), producer_code)
        label = parcel.tracking_number
    answer = checkin.check_in(ctx, actor, site_id, label)
    with ctx.db.read() as session:
        row = session.scalars(_orders().where(Parcel.tracking_number == label)).one()
        answer["order"] = order_view(row)
    return (200 if answer["status"] == "already_checked_in" else 201), answer


def _order_at_site(
    session: Session, site_id: int, reference: str, producer_code: str | None
) -> Parcel:
    """The order named by a scan at this shop: its label, or the producer's reference (with
    the producer's code when two producers used the same reference here)."""
    by_label = session.scalars(_orders().where(Parcel.tracking_number == reference.upper(),
                                               Parcel.site_id == site_id)).first()
    if by_label is not None:
        return by_label
    query = _orders().where(ProducerOrder.reference == reference, Parcel.site_id == site_id)
    if producer_code is not None:
        query = query.join(Producer, Producer.id == ProducerOrder.producer_id).where(
            Producer.code == producer_code)
    found = list(session.scalars(query.order_by(Parcel.id)))
    if not found:
        raise NotFound(f"no producer's order {reference!r} for this shop")
    if len(found) > 1:
        producers = sorted(p.producer_order.producer.code for p in found if p.producer_order)
        raise ProducerChoiceNeeded(
            f"several producers have an order {reference!r} here: name the producer",
            producers=producers,
        )
    return found[0]


def take_back(
    ctx: Ctx, actor: Principal, site_id: int, references: list[str],
    producer_code: str | None = None,
) -> list[dict[str, Any]]:
    """The producer takes back its uncollected orders at the shop: each becomes
    ``returned``. A producer acts for itself; staff name the producer they hand over to.
    Each reference gets its own answer; one that is not this producer's here changes
    nothing."""
    require_role(actor, Role.PRODUCER, *STAFF)
    now = ctx.now()
    with ctx.db.transaction() as session:
        if actor.role is Role.PRODUCER:
            producer_id = actor.producer_id
        else:
            require_site(actor, site_id)
            if producer_code is None:
                raise OnBehalfOf("name the producer who takes its orders back")
            producer_id = _producer_by_code(session, producer_code).id
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        if site.kind == "locker":  # its door must open, and its closing says it left
            raise ValidationFailed("at a locker the producer's code opens the door of each "
                                   "order to take back (GET /producer/lockers/{id}/code)")
        return [_take_back_one(session, actor, site_id, producer_id, ref, now)
                for ref in references]


def _take_back_one(
    session: Session, actor: Principal, site_id: int, producer_id: int | None, reference: str,
    now: datetime,
) -> dict[str, Any]:
    try:
        parcel = session.scalars(
            _orders().where(ProducerOrder.producer_id == producer_id,
                            ProducerOrder.reference == reference, Parcel.site_id == site_id)
            .with_for_update(of=Parcel)
        ).first()
        if parcel is None:
            raise NotFound(f"no order {reference!r} of this producer here")
        if parcel.state not in TO_TAKE_BACK:
            raise InvalidTransition(
                f"order {reference!r} is {parcel.state}: only uncollected or damaged orders go "
                "back to their producer", state=parcel.state)
        # Its code died when it expired (or was declared damaged): nothing else to release.
        history.apply(session, parcel, Action.COLLECT, actor, now,
                      reason="taken back by its producer")
    except DomainError as err:
        return {"reference": reference, "status": "refused", "reason": err.slug,
                "detail": err.detail}
    return {"reference": reference, "status": "returned", "label": parcel.tracking_number}
