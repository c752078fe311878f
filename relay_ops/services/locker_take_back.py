"""Parcels that leave a locker door back to whoever brought them, not to a carrier: a
producer's order nobody collected (or declared damaged) taken back with the producer's code,
and a sent parcel its carrier refused taken back by its sender with a new code
(docs/producers.md and docs/outbound.md, "At a locker").

Both ride the carriers' offline path: a ``collection`` reservation synced to the locker whose
``code_hash`` is the keyed hash of the taker's code (``locker_sync.opener_code``). The locker
opens the door on the code alone, online or not; the door closed empty is recorded here
(called by ``locker_doors`` in its transaction). A parcel left in its door too long raises
an alert to the operator (``raise_take_back_alerts``, a sweep): the door is scarce.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Compartment,
    LockerAlert,
    LockerLink,
    Parcel,
    ParcelEvent,
    ProducerOrder,
    Site,
)
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history, locker_sync
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import issue_credential, live_credentials
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_compartments import link_of
from relay_ops.services.principal import SYSTEM, Principal, Role
from relay_ops.services.producers import TO_TAKE_BACK

# How long a door may hold what its producer or sender should have taken back before an
# operator is told: a perishable order for a day; a refused parcel as long as a drop-off code.
ORDER_ALERT_AFTER = timedelta(hours=24)
REFUSED_ALERT_AFTER = timedelta(days=3)
TAKE_BACK_OVERDUE = "take_back_overdue"


def taker(parcel: Parcel) -> Principal | None:
    """Who takes this parcel out of its door, when it is not a carrier: an order's producer,
    a refused parcel's sender (who acts through the locker: no account); None otherwise."""
    order = parcel.producer_order
    if order is not None and parcel.state in TO_TAKE_BACK:
        return Principal(Role.PRODUCER, producer_id=order.producer_id)
    if locker_sync.is_refused_sent(parcel):
        return Principal(Role.LOCKER, name=f"locker:{parcel.site.code}")
    return None


def record_taken_back(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                      parcel: Parcel, actor: Principal, at: datetime, data: dict[str, Any]
                      ) -> None:
    """The door closed empty on a parcel its producer or sender came for: ``returned``, its
    code spent, and the locker forgets the reservation."""
    reservation = locker_sync.collection_reservation_id(parcel)  # before the state changes
    if actor.role is Role.PRODUCER:
        history.apply(session, parcel, Action.COLLECT, actor, at,
                      reason="taken back by its producer", data=data)
    else:
        history.apply(session, parcel, Action.HAND_BACK, actor, at,
                      reason="taken back by its sender", data={**data, "by": "sender"})
    for credential in live_credentials(session, parcel.id):
        credential.used_at = at
    parcel.compartment_id = None
    locker_sync.queue_sync(ctx, session, site, link, released=[reservation])


def refused_in_door(ctx: Ctx, session: Session, parcel: Parcel, released: str) -> None:
    """A sent parcel its carrier refused while it waits in a locker door (the caller applied
    the refusal, holding the locker's row lock): the carrier's code no longer opens the door
    (``released``, its collection reservation), and a new code of the sender's does. The
    ``refused`` message gives the sender that code."""
    box = parcel.compartment
    if box is None or parcel.site.kind != "locker":
        return
    site = parcel.site
    issue_credential(ctx, session, parcel, holder=locker_sync.SENDER)
    locker_sync.queue_sync(ctx, session, site, link_of(session, site), released=[released],
                           reservations=[locker_sync.collection_reservation(ctx, site, parcel,
                                                                            box)])


def waiting_for_its_owner(session: Session, now: datetime) -> list[tuple[Parcel, datetime]]:
    """Parcels in a locker door waiting for their producer or sender, with the moment they
    began to wait, for those waiting past their alert delay."""
    rows = session.execute(
        select(Parcel, Compartment).join(Compartment, Parcel.compartment_id == Compartment.id)
        .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        .where(((ProducerOrder.parcel_id.is_not(None))
                & Parcel.state.in_(TO_TAKE_BACK))
               | ((Parcel.direction == "outbound")
                  & (Parcel.state == locker_sync.TO_HAND_BACK)))
        .order_by(Parcel.id)
    ).all()
    late = []
    for parcel, _box in rows:
        since = session.scalar(select(ParcelEvent.at).where(
            ParcelEvent.parcel_id == parcel.id, ParcelEvent.to_state == parcel.state,
            ParcelEvent.from_state != parcel.state)  # the transition, not a fact since
            .order_by(ParcelEvent.id.desc()).limit(1))
        delay = ORDER_ALERT_AFTER if parcel.producer_order is not None else REFUSED_ALERT_AFTER
        if since is not None and since + delay < now:
            late.append((parcel, since))
    return late


def raise_take_back_alerts(ctx: Ctx) -> int:
    """Doors still holding what their producer or sender should have taken back: one
    ``take_back_overdue`` alert per parcel for the operator (raised once; it stays open until
    resolved), and an event in the parcel's history. Safe to run anywhere, any time."""
    now = ctx.now()
    raised = 0
    with ctx.db.transaction() as session:
        for parcel, since in waiting_for_its_owner(session, now):
            known = session.scalar(select(LockerAlert.id).where(
                LockerAlert.kind == TAKE_BACK_OVERDUE, LockerAlert.parcel_id == parcel.id))
            if known is not None:
                continue
            box = parcel.compartment
            who = "its producer" if parcel.producer_order is not None else "its sender"
            raise_alert(session, parcel.site, TAKE_BACK_OVERDUE,
                        f"{parcel.tracking_number} waits in door {box.number if box else '?'} "
                        f"for {who} since {since.isoformat()}",
                        compartment=box.number if box else None, parcel=parcel)
            history.record(session, parcel, TAKE_BACK_OVERDUE, parcel.state,
                           SYSTEM, now,
                           reason=f"not taken back by {who}",
                           data={"since": since.isoformat()})
            raised += 1
    return raised
