"""Short circuits: local producers' accounts and their orders as the producer and the shop see
them (docs/producers.md). An order is announced in ``producer_announcements``, deposited at
the counter and taken back by its producer in ``producer_counter``.

A producer's order is a parcel whose sender is the producer: an inbound parcel row with no
carrier, and a ``producer_orders`` row beside it. At the counter it goes through the check-in
(``services/checkin.py``), which gives it a shelf (a refrigerated one when it must be kept
cold), a deadline (hours, bounded by the sell-by time and the shop's hours), the resident's
code and message, by the same rules as any parcel.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload

from relay_ops.db.models import Parcel, Producer, ProducerOrder
from relay_ops.domain.errors import Conflict, NotFound, ValidationFailed
from relay_ops.domain.lifecycle import FINAL_STATES, State
from relay_ops.services import api_tokens
from relay_ops.services.api_tokens import IssuedToken
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import STAFF, iso
from relay_ops.services.principal import Principal, Role, require_role, require_site

# What the producer takes back: the states in which an order waits for it (on a shelf, or in
# a locker's door: services/locker_take_back.py).
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
        producer = producer_by_code(session, code)
        return api_tokens.add_api_key(ctx, session, "pk", label, fixed, producer_id=producer.id)


def producer_by_code(session: Session, code: str) -> Producer:
    producer = session.scalar(select(Producer).where(Producer.code == code))
    if producer is None:
        raise NotFound(f"no producer {code!r}")
    return producer


# ---------------------------------------------------------------- views and lists


def orders_query() -> Select[Any]:
    return (select(Parcel).join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
            .options(contains_eager(Parcel.producer_order).joinedload(ProducerOrder.producer),
                     joinedload(Parcel.site), joinedload(Parcel.location)))


def order_row(session: Session, producer_id: int | None, reference: str) -> Parcel | None:
    return session.scalars(orders_query().where(ProducerOrder.producer_id == producer_id,
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
        query = orders_query().where(ProducerOrder.producer_id == actor.producer_id)
        if state is not None:
            query = query.where(Parcel.state == state)
        rows = session.scalars(query.order_by(ProducerOrder.announced_at.desc(),
                                              Parcel.id.desc()).limit(limit))
        return [order_view(p) for p in rows]


def my_order(ctx: Ctx, actor: Principal, reference: str) -> dict[str, Any]:
    require_role(actor, Role.PRODUCER)
    with ctx.db.read() as session:
        parcel = order_row(session, actor.producer_id, reference)
        if parcel is None:
            raise NotFound(f"no order {reference!r}")
        return order_view(parcel)


def take_back_list(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    """The producer's pickup list: its orders nobody collected (or damaged), shop by shop,
    waiting on the shelf for it to take them back."""
    require_role(actor, Role.PRODUCER)
    with ctx.db.read() as session:
        rows = session.scalars(
            orders_query().where(ProducerOrder.producer_id == actor.producer_id,
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
    today = ctx.today()
    day_start = ctx.day_start(today)
    with ctx.db.read() as session:
        rows = session.scalars(
            orders_query().where(
                Parcel.site_id == site_id,
                or_(Parcel.state.not_in([s.value for s in FINAL_STATES]),
                    Parcel.closed_at >= day_start),
                or_(Parcel.closed_at.is_(None), Parcel.closed_at < day_start + timedelta(days=1)),
            ).order_by(ProducerOrder.announced_at, Parcel.id)
        )
        return [order_view(p) for p in rows]
