"""A locker's door closed after a pickup (protocol 8, 9.1, 9.2): what left the door is picked up
(late, offline or not ready, it is recorded and raised), its credentials die, what stayed is
left behind and raised."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerLink, Parcel, PickupCredential, Site
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import history, locker_compartments, locker_sync, notify
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import (
    credential_by_ref,
    live_credentials_of,
    locker_actor,
    opening_verified_at,
    taken_by_opening,
)


def pickup_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                  box: Compartment, occupied: bool | None, credential_id: str | None,
                  now: datetime) -> None:
    inside = locker_compartments.parcels_in(session, box)
    if not inside:
        locker_compartments.settle(session, box)
        return
    ready = [p for p in inside if p.state == State.READY_FOR_PICKUP.value]
    # a door shared by one recipient's parcels is opened by their one code; the damaged one
    # beside a ready one waits for its carrier
    taken = taken_by_opening(inside, ready, occupied)
    if not taken:
        for parcel in inside:
            raise_alert(session, site, "parcel_left_behind", f"{parcel.tracking_number} is still "
                   "inside after a pickup", compartment=box.number, parcel=parcel)
            history.record(session, parcel, "left_behind", parcel.state, locker_actor(site),
                           now, data={"compartment": box.number})
        box.state = "occupied"
        return
    verified_at = opening_verified_at(session, inside, credential_id,
                                      "offline_pickup_verified")
    removed: list[PickupCredential] = []
    for parcel in taken:
        removed += _record_pickup(ctx, session, site, link, parcel, box, credential_id,
                                  verified_at or now, received_at=now if verified_at else None)
    locker_compartments.settle(session, box)
    if box.fault_reason:
        box.state = "out_of_service"
    locker_sync.queue_sync(ctx, session, site, link, removed=removed)


def _record_pickup(ctx: Ctx, session: Session, site: Site, link: LockerLink, parcel: Parcel,
                   box: Compartment, credential_id: str | None, at: datetime, *,
                   received_at: datetime | None = None) -> list[PickupCredential]:
    """The parcel left the door it was in; returns the credentials that died with it (the
    caller syncs them and settles the door)."""
    live = live_credentials_of(session, parcel)
    used = credential_by_ref(session, credential_id) if credential_id else None
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number,
                            "credential": credential_id}
    if received_at is not None:
        data.update(offline=True, received_at=received_at.isoformat())
    if parcel.holding_deadline is not None and at > parcel.holding_deadline:
        data["late"] = True  # protocol 9.1: accepted, not expired retroactively
    if parcel.state != State.READY_FOR_PICKUP.value:
        # protocol 9.2: the parcel is physically gone whatever the backend thought
        raise_alert(session, site, "pickup_of_unavailable_parcel",
               f"{parcel.tracking_number} was {parcel.state} when it was taken",
               compartment=box.number, parcel=parcel)
        history.record(session, parcel, "taken_while_" + parcel.state, parcel.state,
                       locker_actor(site), at, data=data)
    else:
        history.apply(session, parcel, Action.PICK_UP, locker_actor(site), at, data=data)
        notify.queue(session, parcel, "picked_up")
    for credential in live:
        if credential is used or (used is None and credential.holder == "recipient"):
            credential.used_at = at
        else:
            credential.revoked_at = at
    parcel.compartment_id = None
    return live
