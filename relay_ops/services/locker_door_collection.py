"""A locker's door closed after a collection (protocol 8, 9.5): what its carrier took is
collected (or taken back by whoever brought it: locker_take_back), what stayed is raised, and
the carrier's session opens the next door to collect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerLink, LockerSession, Parcel, Site
from relay_ops.domain.lifecycle import Action
from relay_ops.services import (
    history,
    locker_collection,
    locker_compartments,
    locker_sync,
    locker_take_back,
    notify,
)
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import (
    live_credentials_of,
    opening_verified_at,
    session_actor,
    taken_by_opening,
)
from relay_ops.services.principal import Principal, Role


def collection_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                      box: Compartment, occupied: bool | None, credential_id: str | None,
                      now: datetime) -> None:
    inside = locker_compartments.parcels_in(session, box)
    due = [p for p in inside
           if p.state in locker_sync.TO_COLLECT or locker_sync.is_refused_sent(p)]
    parcel = due[0] if due else (inside[0] if inside else None)
    row = session.scalar(select(LockerSession).where(
        LockerSession.site_id == site.id, LockerSession.status == "open"
    ).order_by(LockerSession.id.desc()).limit(1)) if parcel is None else _collecting(
        session, site, parcel)
    taken = taken_by_opening(inside, due, occupied)  # a ready parcel beside the due ones stays
    if parcel is not None and not taken:
        raise_alert(session, site, "collection_left_behind", f"{parcel.tracking_number} was not "
               "taken by the carrier", compartment=box.number, parcel=parcel)
    verified_at = opening_verified_at(session, inside, credential_id,
                                      "offline_collection_verified")
    for gone in taken:
        _record_collection(ctx, session, site, link, gone, box, row, credential_id, now,
                           verified_at)
    locker_compartments.settle(session, box)
    if row is not None and row.status == "open":
        left = {p.id for p in taken}
        row.collect_queue = [pid for pid in (row.collect_queue or []) if pid not in left]
        locker_collection.open_next_collection(ctx, session, site, row, now)


def _record_collection(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       parcel: Parcel, box: Compartment, row: LockerSession | None,
                       credential_id: str | None, now: datetime,
                       verified_at: datetime | None) -> None:
    """The parcel left with its carrier (going back, or sent from the locker). Decided by
    the locker alone (a collection reservation), it happened at `verified_at`; a parcel no
    longer waiting for it is recorded as taken and raised to an operator (protocol 9.5)."""
    at = verified_at or now
    actor = (Principal(Role.CARRIER, carrier_id=row.carrier_id) if row
             else session_actor(session, box, site, parcel))
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number}
    if verified_at is not None:
        data.update(offline=True, received_at=now.isoformat(), reservation=credential_id)
    owner = locker_take_back.taker(parcel)  # a producer's order, a refused sent parcel
    if owner is not None:
        locker_take_back.record_taken_back(ctx, session, site, link, parcel, owner, at, data)
        return
    if parcel.state in locker_sync.TO_COLLECT:
        history.apply(session, parcel, Action.COLLECT, actor, at,
                      reason="collected from the locker", data=data)
        if parcel.direction == "outbound":
            notify.queue(session, parcel, "collected")  # the sender: it has left
    else:
        raise_alert(session, site, "collection_of_unavailable_parcel",
               f"{parcel.tracking_number} was {parcel.state} when its carrier took it",
               compartment=box.number, parcel=parcel)
        history.record(session, parcel, "taken_while_" + parcel.state, parcel.state, actor, at,
                       data=data)
        for credential in live_credentials_of(session, parcel):
            credential.revoked_at = at
    parcel.compartment_id = None
    if parcel.carrier_id is not None:  # the locker forgets the collection reservation
        locker_sync.queue_sync(ctx, session, site, link,
                           released=[locker_sync.collection_reservation_id(parcel)])


def _collecting(session: Session, site: Site, parcel: Parcel) -> LockerSession | None:
    for row in session.scalars(select(LockerSession).where(
            LockerSession.site_id == site.id, LockerSession.status == "open")):
        if parcel.id in (row.collect_queue or []):
            return row
    return None
