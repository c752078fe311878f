"""Reading parcels: the views every answer is built from, the lookups the use cases share,
a parcel, its history, a shop's inventory."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from relay_ops.db.models import (
    Carrier,
    Parcel,
    ParcelEvent,
    PickupCredential,
    Site,
)
from relay_ops.domain import tracking
from relay_ops.domain.errors import (
    NotFound,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import HELD_STATES, State
from relay_ops.services import numbers
from relay_ops.services.context import Ctx
from relay_ops.services.principal import (
    Principal,
    Role,
    require_parcel,
    require_role,
    require_site,
)

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)


HELD = [s.value for s in HELD_STATES]


READY = State.READY_FOR_PICKUP.value


def parcel_view(parcel: Parcel, viewer: Principal) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": parcel.id,
        "tracking_number": parcel.tracking_number,
        "state": parcel.state,
        "direction": parcel.direction,
        "unannounced": parcel.unannounced,
        "carrier": parcel.carrier.code if parcel.carrier else None,
        "site": parcel.site.code,
        "location": parcel.location.label if parcel.location else None,
        "compartment": parcel.compartment.number if parcel.compartment else None,
        "size_class": parcel.size_class,
        "expected_date": parcel.expected_date.isoformat() if parcel.expected_date else None,
        "holding_deadline": iso(parcel.holding_deadline),
        # The rule that set the period (standard, season, load, forecast, perishable).
        "holding_rule": parcel.holding_rule,
        "extended": parcel.extended,
        "checked_in_at": iso(parcel.checked_in_at),
        "closed_at": iso(parcel.closed_at),
        # A carrier sees its own parcels only: another carrier's parcel in the group is not
        # its business, nor is the recipient's other mail.
        "group": None if viewer.role is Role.CARRIER else group_view(parcel),
    }
    if viewer.role in (Role.OPERATOR, Role.CARRIER, Role.SHOPKEEPER, Role.RESIDENT):
        view["recipient"] = {"name": parcel.recipient_name}
    if viewer.role in (Role.OPERATOR, Role.CARRIER):
        view["recipient"].update(
            phone=parcel.recipient_phone, email=parcel.recipient_email,
            locale=parcel.recipient_locale,
        )
    return view


def group_view(parcel: Parcel) -> dict[str, Any] | None:
    """The parcels a ready parcel's recipient code also hands over ("2 parcels, same code"),
    or None when the code covers this parcel alone."""
    if parcel.state != READY:
        return None
    for credential in parcel.credentials:
        if credential.live and credential.holder == "recipient":
            together = [p for p in credential.parcels if p.state == READY]
            if len(together) > 1:
                return {
                    "size": len(together),
                    "same_code": True,
                    "parcels": [shelf_ref(p) for p in together],
                }
    return None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_view(event: ParcelEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "action": event.action,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "actor": {"kind": event.actor_kind, "id": event.actor_id},
        "site_id": event.site_id,
        "reason": event.reason,
        "data": event.data,
    }


def locked_parcel(session: Session, parcel_id: int) -> Parcel | None:
    return session.get(Parcel, parcel_id, with_for_update=True)


def site_for_staff(session: Session, actor: Principal, site_id: int, *, lock: bool) -> Site:
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    site = session.get(Site, site_id, with_for_update=lock)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def shelf_ref(parcel: Parcel) -> dict[str, Any]:
    return {"id": parcel.id, "tracking_number": parcel.tracking_number,
            "location": parcel.location.label if parcel.location else None}


def left_view(parcel: Parcel) -> dict[str, Any]:
    return {**shelf_ref(parcel), "state": parcel.state}


def get_parcel(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    with ctx.db.read() as session:
        parcel = require_parcel(actor, session.get(Parcel, parcel_id), parcel_id)
        return parcel_view(parcel, actor)


def find_parcel(ctx: Ctx, actor: Principal, tracking_number: str,
                carrier_code: str | None = None) -> dict[str, Any]:
    """The parcel under this number that the actor may see (numbers are unique per carrier:
    staff who see two carriers' parcels under one name the carrier)."""
    number = tracking.validate(tracking_number)
    with ctx.db.read() as session:
        parcel = numbers.require_visible(session, actor, number, carrier_code=carrier_code)
        return parcel_view(parcel, actor)


def parcel_history(ctx: Ctx, actor: Principal, parcel_id: int) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        require_parcel(actor, session.get(Parcel, parcel_id), parcel_id)
        events = session.scalars(
            select(ParcelEvent).where(ParcelEvent.parcel_id == parcel_id).order_by(ParcelEvent.id)
        )
        return [event_view(e) for e in events]


@dataclass(frozen=True)
class InventoryFilter:
    states: tuple[str, ...] = ()
    expiring_within_hours: int | None = None
    unannounced: bool | None = None
    carrier_code: str | None = None


def inventory(
    ctx: Ctx, actor: Principal, site_id: int, filters: InventoryFilter, page: int, per_page: int
) -> dict[str, Any]:
    """Parcels at a site (by default the ones on hand), oldest first, a page at a time."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    unknown = set(filters.states) - {s.value for s in State}
    if unknown:
        raise ValidationFailed(f"unknown states: {', '.join(sorted(unknown))}")
    query = select(Parcel).where(Parcel.site_id == site_id)
    query = query.where(Parcel.state.in_(filters.states or HELD))
    if filters.expiring_within_hours is not None:
        horizon = ctx.now() + timedelta(hours=filters.expiring_within_hours)
        query = query.where(
            Parcel.state == State.READY_FOR_PICKUP.value, Parcel.holding_deadline <= horizon
        )
    if filters.unannounced is not None:
        query = query.where(Parcel.unannounced.is_(filters.unannounced))
    if filters.carrier_code:
        query = query.join(Carrier, Parcel.carrier_id == Carrier.id).where(
            Carrier.code == filters.carrier_code
        )
    with ctx.db.read() as session:
        if session.get(Site, site_id) is None:
            raise NotFound(f"no site {site_id}")
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(
            query.order_by(Parcel.holding_deadline, Parcel.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
            # group_view reads each parcel's codes and their parcels: load them in bulk.
            .options(selectinload(Parcel.credentials).selectinload(PickupCredential.parcels))
        )
        return {
            "items": [parcel_view(p, actor) for p in rows],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
