"""What does not go as planned with a sent parcel (docs/outbound.md): its carrier refuses it,
its sender takes it back at the counter, or its carrier is late for it. The deposit, the
pickup list and the collection are `outbound.py` and `pickup_lists.py`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import OutboundParcel, Parcel
from relay_ops.domain import outbound
from relay_ops.domain.errors import (
    NoShelves,
    NotFound,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history, locker_take_back, notify
from relay_ops.services.carrier_sites import (
    TO_COLLECT,
)
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import lock_locker_of
from relay_ops.services.locker_sync import collection_reservation_id
from relay_ops.services.outbound import STAFF, outbound_view, with_views
from relay_ops.services.principal import SYSTEM, Principal, Role, require_role

# ---------------------------------------------------------------- refusals and hand-backs


def refuse(ctx: Ctx, actor: Principal, parcel_id: int, reason: str) -> dict[str, Any]:
    """The carrier will not take a parcel (badly packed, too heavy...): it stays on the shelf
    (in its locker door), off the pickup list, and its sender is told to come and take it
    back (at a locker, with a new code of its own: ``locker_take_back``)."""
    require_role(actor, Role.CARRIER, *STAFF)
    if not reason.strip():
        raise ValidationFailed("say why the parcel is refused")
    now = ctx.now()
    with ctx.db.transaction() as session:
        lock_locker_of(session, parcel_id)  # a locker's row before its parcel's, as always
        parcel = _sent_parcel(session, actor, parcel_id)
        carriers_door_code = collection_reservation_id(parcel)  # named before the refusal
        history.apply(session, parcel, Action.REFUSE, actor, now, reason=reason.strip()[:300])
        locker_take_back.refused_in_door(ctx, session, parcel, carriers_door_code)
        notify.queue(session, parcel, "refused")
        return outbound_view(session, parcel)


def hand_back(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    """The sender takes their parcel back at the counter (refused, damaged, or changed their
    mind): it leaves the shelf, ``returned`` to its sender."""
    require_role(actor, *STAFF)
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = _sent_parcel(session, actor, parcel_id)
        if parcel.site.kind == "locker":  # its door must open, and its closing says it left
            raise NoShelves("at a locker the sender takes a refused parcel back with "
                            "the code of the 'refused' message")
        history.apply(session, parcel, Action.HAND_BACK, actor, now,
                      reason="given back to its sender")
        return outbound_view(session, parcel)


def _sent_parcel(session: Session, actor: Principal, parcel_id: int) -> Parcel:
    """A sent parcel the actor may act on (a carrier: its own; staff: their shops'), locked;
    anything else is not found."""
    parcel = session.get(Parcel, parcel_id, with_for_update=True)
    if parcel is None or parcel.direction != outbound.DIRECTION or not (
        parcel.carrier_id == actor.carrier_id if actor.role is Role.CARRIER
        else actor.role is Role.OPERATOR or parcel.site_id in actor.site_ids
    ):
        raise NotFound(f"no sent parcel {parcel_id}")
    return parcel


# ---------------------------------------------------------------- late carriers


def raise_overdue_alerts(ctx: Ctx, limit: int = 1000) -> list[int]:
    """Parcels still waiting past their carrier's agreed delay: each gets one
    ``collection_overdue`` event and shows on the operator's and the carrier's overdue
    list. Safe to run anywhere, any time (the parcel row is locked, the alert raised once)."""
    now = ctx.now()
    with ctx.db.read() as session:
        ids = list(session.scalars(
            select(OutboundParcel.parcel_id)
            .join(Parcel, Parcel.id == OutboundParcel.parcel_id)
            .where(OutboundParcel.collect_by < now, OutboundParcel.overdue_since.is_(None),
                   Parcel.state.in_(TO_COLLECT))
            .order_by(OutboundParcel.collect_by).limit(limit)
        ))
    raised = []
    for parcel_id in ids:
        with ctx.db.transaction() as session:
            parcel = session.get(Parcel, parcel_id, with_for_update=True)
            extra = session.get(OutboundParcel, parcel_id)
            if (parcel is None or extra is None or extra.overdue_since is not None
                    or parcel.state not in TO_COLLECT or extra.collect_by >= now):
                continue  # collected, or alerted, in the meantime
            extra.overdue_since = now
            history.record(session, parcel, outbound.COLLECTION_OVERDUE, parcel.state,
                           SYSTEM, now, reason="not collected within the carrier's delay",
                           data={"collect_by": extra.collect_by.isoformat()})
            raised.append(parcel_id)
    return raised


def overdue(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    """Sent parcels their carrier is late for: operators see all, a carrier its own, a
    shopkeeper their shops'."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER, Role.CARRIER)
    with ctx.db.read() as session:
        query = (
            select(Parcel).join(OutboundParcel, OutboundParcel.parcel_id == Parcel.id)
            .where(OutboundParcel.overdue_since.is_not(None), Parcel.state.in_(TO_COLLECT))
            .order_by(OutboundParcel.collect_by, Parcel.id)
        )
        if actor.role is Role.CARRIER:
            query = query.where(Parcel.carrier_id == actor.carrier_id)
        elif actor.role is Role.SHOPKEEPER:
            query = query.where(Parcel.site_id.in_(actor.site_ids))
        return [outbound_view(session, p) for p in session.scalars(with_views(query))]
