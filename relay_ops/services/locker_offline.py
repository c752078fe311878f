"""Deposits and collections a locker decided alone while offline (protocol 9.5),
reconciled with what the backend did meanwhile.

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerLink, Parcel, Site
from relay_ops.domain.lifecycle import State
from relay_ops.services import (
    history,
    locker_commands,
    locker_compartments,
    locker_sync,
    locker_take_back,
    numbers,
)
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import box_of, held_in, locker_actor
from relay_ops.services.principal import Principal, Role


def offline_deposit(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                    body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """A carrier deposited with a reservation, the locker deciding alone (protocol 9.5).
    Journaled before the door opened: remembered on the parcel (its `verified_at`); the
    deposit itself is the `door_closed` that follows (ready, credential, message, sync).
    Conflicts follow what physically happened: the parcel is in that door now."""
    box = box_of(session, site, body["compartment"])
    parcel = _parcel_by_ref(session, site, body.get("parcel_ref"))
    if box is None:
        raise_alert(session, site, "offline_deposit_conflict", f"reservation "
               f"{body['reservation_id']} names no compartment {body['compartment']}")
        return
    if parcel is None:
        _quarantine(ctx, session, site, box, f"holds {body.get('parcel_ref') or 'a parcel'} "
                    "deposited offline, unknown here", None)
        return
    # the carrier, or the producer or sender who came for it (`locker_take_back`)
    actor = locker_take_back.taker(parcel) or (
        Principal(Role.CARRIER, carrier_id=parcel.carrier_id) if parcel.carrier_id
        else locker_actor(site))
    history.record(session, parcel, "offline_deposit_verified", parcel.state, actor, now,
                   data={"verified_at": body["verified_at"], "compartment": box.number,
                         "credential": body["reservation_id"]})
    if parcel.state != State.ANNOUNCED.value or parcel.site_id != site.id:
        where = "" if parcel.site_id == site.id else f" for {parcel.site.code}"
        _quarantine(ctx, session, site, box, f"holds {parcel.tracking_number} deposited "
                    f"offline while {parcel.state}{where}", parcel)
        return
    if parcel.compartment_id != box.id:
        _move_reservation_to(ctx, session, site, link, parcel, box, actor, now)


def _parcel_by_ref(session: Session, site: Site, ref: str | None) -> Parcel | None:
    if not ref:
        return None
    return numbers.for_locker(session, site.id, ref, lock=True)


def _quarantine(ctx: Ctx, session: Session, site: Site, box: Compartment, why: str,
                parcel: Parcel | None) -> None:
    """A door holds what the backend cannot account for: nobody else gets it until an
    operator has looked (the alert says what is inside)."""
    raise_alert(session, site, "offline_deposit_conflict", why, compartment=box.number,
           parcel=parcel)
    box.state, box.fault_reason = "out_of_service", why[:200]
    locker_commands.queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": box.number, "reason": box.fault_reason}, ctx.now(),
                          ttl_s=ctx.settings.locker.sync_ttl_s)


def _move_reservation_to(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                         parcel: Parcel, box: Compartment, actor: Principal,
                         now: datetime) -> None:
    """The reservation the locker used was released (or moved) by the backend meanwhile:
    the parcel is in `box` anyway, so the backend follows. Whoever held that door loses it
    (the next sweep or the carrier's app finds them another), and an operator is told."""
    if held_in(session, box) is not None:
        _quarantine(ctx, session, site, box, f"holds {parcel.tracking_number} deposited "
                    f"offline next to {held_in(session, box).tracking_number}", parcel)  # type: ignore[union-attr]
        return
    released = []
    other = locker_compartments.reserved_parcel(session, box)
    if other is not None and other.id != parcel.id:
        if locker_compartments.is_advance_reservation(box):
            released.append(locker_sync.deposit_reservation_id(other, box))
        other.compartment_id = None
        history.record(session, other, "reservation_released", other.state, actor, now,
                       reason="its door was used by an offline deposit",
                       data={"compartment": box.number})
    if parcel.compartment_id is not None:  # its own door, reserved again elsewhere
        old = session.get(Compartment, parcel.compartment_id)
        if old is not None and old.state == "reserved":
            if locker_compartments.is_advance_reservation(old):
                released.append(locker_sync.deposit_reservation_id(parcel, old))
            old.state, old.reserved_until, old.reserved_session_id = "free", None, None
    parcel.compartment_id = box.id
    box.reserved_session_id = None
    if box.state not in ("door_open", "out_of_service"):
        box.state = "reserved"
    raise_alert(session, site, "offline_deposit_reconciled", f"{parcel.tracking_number} was "
           "deposited offline in a door no longer reserved for it; the backend follows",
           compartment=box.number, parcel=parcel)
    if released:
        locker_sync.queue_sync(ctx, session, site, link, released=released)


def offline_collection(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """A carrier took a parcel back with a collection reservation, the locker deciding alone
    (protocol 9.5): remembered on the parcel; the collection itself is the `door_closed`
    (empty) that follows, recorded at `verified_at`."""
    parcel = _parcel_by_ref(session, site, body.get("parcel_ref"))
    if parcel is None or parcel.site_id != site.id:
        raise_alert(session, site, "offline_collection_conflict",
               f"{body.get('parcel_ref')} is not known at this locker",
               compartment=body["compartment"])
        return
    # the carrier, or the producer or sender who came for it (`locker_take_back`)
    actor = locker_take_back.taker(parcel) or (
        Principal(Role.CARRIER, carrier_id=parcel.carrier_id) if parcel.carrier_id
        else locker_actor(site))
    history.record(session, parcel, "offline_collection_verified", parcel.state, actor, now,
                   data={"verified_at": body["verified_at"], "compartment": body["compartment"],
                         "credential": body["reservation_id"]})
    held_there = parcel.compartment is not None \
        and parcel.compartment.number == body["compartment"]
    if not held_there:
        raise_alert(session, site, "offline_collection_conflict", f"{parcel.tracking_number} "
               f"was {parcel.state}, not in compartment {body['compartment']}, when its "
               "carrier opened it", compartment=body["compartment"], parcel=parcel)
