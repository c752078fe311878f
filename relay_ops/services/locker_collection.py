"""Parcels a carrier collects from a locker: expired and damaged ones going back (held for
their carrier: a collection reservation, the residents' PINs revoked) and parcels sent from
the locker going out (docs/outbound.md, "At a locker"), taken door after door in a session."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import LockerSession, Parcel, PickupCredential, Site
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.locker_commands import open_door
from relay_ops.services.locker_compartments import link_of, parcels_in
from relay_ops.services.locker_dropoff import open_session_for, session_view
from relay_ops.services.locker_sync import TO_COLLECT, collection_reservation, queue_sync
from relay_ops.services.principal import Principal


def start_collection(ctx: Ctx, actor: Principal, session_id: int) -> dict[str, Any]:
    """The carrier takes back this locker's expired parcels and takes the parcels sent from
    it: doors open one at a time, the next when the previous one closes (a carrier has two
    hands)."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        row, site = open_session_for(ctx, session, actor, session_id, now)
        waiting = list(session.scalars(
            select(Parcel).where(
                Parcel.site_id == site.id, Parcel.carrier_id == actor.carrier_id,
                Parcel.state.in_(TO_COLLECT),
                Parcel.compartment_id.is_not(None),
            ).order_by(Parcel.id)
        ))
        row.collect_queue = [p.id for p in waiting]
        if waiting:
            open_next_collection(ctx, session, site, row, now)
        return {**session_view(row), "to_collect": [p.tracking_number for p in waiting]}


def open_next_collection(ctx: Ctx, session: Session, site: Site, row: LockerSession,
                         now: datetime) -> Parcel | None:
    queue = list(row.collect_queue or [])
    while queue:
        parcel = session.get(Parcel, queue[0])
        if parcel is not None and parcel.state in TO_COLLECT \
                and parcel.compartment is not None:
            if parcel.compartment.state != "out_of_service":
                open_door(ctx, session, site, parcel.compartment, "collection", parcel, now)
                return parcel
        queue.pop(0)
        row.collect_queue = queue
    return None


def held_for_collection(ctx: Ctx, session: Session, parcel: Parcel,
                        dead: list[PickupCredential]) -> None:
    """A parcel in a locker expired or was declared damaged: its PINs die at the locker and
    its carrier (a producer's order: its producer) may collect it offline (a `collection`
    reservation). The caller locked the
    locker's row before the parcel's (the order every locker use case takes)."""
    box = parcel.compartment
    if box is None or parcel.site.kind != "locker":
        return
    site = parcel.site
    # One reservation per door: a door shared by a recipient's parcels (one carrier's, with
    # one deadline) opens once for the carrier, who takes them all.
    shared = any(p.id != parcel.id and p.state in (State.EXPIRED.value, State.DAMAGED.value)
                 for p in parcels_in(session, box))
    # A producer's order has no carrier: its producer's code takes it back (`opener_code`).
    # A parcel with neither (checked in unannounced, no carrier named) waits for an operator.
    owner = parcel.carrier_id is not None or parcel.producer_order is not None
    added = [collection_reservation(ctx, site, parcel, box)] if owner and not shared else []
    queue_sync(ctx, session, site, link_of(session, site), removed=dead, reservations=added)
