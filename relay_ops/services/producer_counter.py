"""A producer's order at the shop's counter: deposited (scanned by its label or its reference,
then checked in like any parcel by checkin.py) and, uncollected or damaged, taken back by its
producer (at a locker its producer's code opens the door instead: locker_take_back.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, Producer, ProducerOrder, Site
from relay_ops.domain.errors import (
    DomainError,
    InvalidTransition,
    NoShelves,
    NotFound,
    OnBehalfOf,
    ProducerChoiceNeeded,
)
from relay_ops.domain.lifecycle import Action
from relay_ops.services import checkin, history
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import STAFF
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.producers import TO_TAKE_BACK, order_view, orders_query, producer_by_code


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
        row = session.scalars(orders_query().where(Parcel.tracking_number == label)).one()
        answer["order"] = order_view(row)
    return (200 if answer["status"] == "already_checked_in" else 201), answer


def _order_at_site(
    session: Session, site_id: int, reference: str, producer_code: str | None
) -> Parcel:
    """The order named by a scan at this shop: its label, or the producer's reference (with
    the producer's code when two producers used the same reference here)."""
    by_label = session.scalars(orders_query().where(Parcel.tracking_number == reference.upper(),
                                               Parcel.site_id == site_id)).first()
    if by_label is not None:
        return by_label
    query = orders_query().where(ProducerOrder.reference == reference, Parcel.site_id == site_id)
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
            producer_id = producer_by_code(session, producer_code).id
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        if site.kind == "locker":  # its door must open, and its closing says it left
            raise NoShelves("at a locker the producer's code opens the door of each "
                            "order to take back (GET /producer/lockers/{id}/code)")
        return [_take_back_one(session, actor, site_id, producer_id, ref, now)
                for ref in references]


def _take_back_one(
    session: Session, actor: Principal, site_id: int, producer_id: int | None, reference: str,
    now: datetime,
) -> dict[str, Any]:
    try:
        parcel = session.scalars(
            orders_query().where(ProducerOrder.producer_id == producer_id,
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
