"""Doors opening and closing (protocol 8): a door opened with no command or credential is
raised at once; a deposit, a pickup or a collection is recorded when its door closes, with
what the door held, each in its module (``locker_door_deposit``, ``locker_door_pickup``,
``locker_door_collection``).

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerLink, Site
from relay_ops.services import locker_compartments
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import UNEXPECTED_OPENING, raise_alert
from relay_ops.services.locker_door_collection import collection_closed
from relay_ops.services.locker_door_deposit import deposit_closed
from relay_ops.services.locker_door_parcels import box_of, held_in
from relay_ops.services.locker_door_pickup import pickup_closed


def door_opened(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = box_of(session, site, body["compartment"])
    if box is None:
        return
    purpose = body.get("purpose")
    if purpose is None and body.get("credential_id") is None:
        _unexpected_opening(session, site, box)
        purpose = "maintenance"
    if box.state != "out_of_service":
        box.state = "door_open"
    box.opened_for, box.door_opened_at = purpose, ts


def _unexpected_opening(session: Session, site: Site, box: Compartment) -> None:
    """A door the locker opened for no command and no credential (forced, a manual key, a
    board obeying someone else): an alarm at once, naming what was inside. Offline, it comes
    with the first batch the locker replays."""
    inside = locker_compartments.parcels_in(session, box)
    names = ", ".join(p.tracking_number for p in inside) or "nothing"
    raise_alert(session, site, UNEXPECTED_OPENING,
           f"door {box.number} opened with no command or credential; inside: {names}",
           compartment=box.number, parcel=inside[0] if inside else None)


def door_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = box_of(session, site, body["compartment"])
    if box is None:
        return
    purpose = body.get("opened_for") or box.opened_for
    occupied: bool | None = body.get("occupied")
    box.opened_for, box.door_opened_at = None, None
    if purpose == "deposit":
        deposit_closed(ctx, session, site, link, box, occupied, body.get("credential_id"), now,
                       body.get("corr_id"))
    elif purpose == "pickup":
        pickup_closed(ctx, session, site, link, box, occupied, body.get("credential_id"), now)
    elif purpose == "collection":
        collection_closed(ctx, session, site, link, box, occupied, body.get("credential_id"),
                          now)
    else:
        locker_compartments.settle(session, box)
        if occupied is True and held_in(session, box) is None:
            raise_alert(session, site, "unexpected_item", "a door closed on something the backend "
                   "does not know of", compartment=box.number)
