"""A site's shelf locations (added, marked cold, listed with the parcels they hold) and its
occupancy: places in service on a day, held, free."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import Location, Parcel, Site
from relay_ops.domain import season
from relay_ops.domain.errors import Conflict, NoShelves, NotFound
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.sites import (
    HELD,
    NO_SHELVES,
    Occupancy,
    add_location_row,
    occupancy_of,
    site_row,
)


def set_refrigerated(
    ctx: Ctx, actor: Principal, site_id: int, label: str, refrigerated: bool
) -> list[dict[str, Any]]:
    """Mark a shelf location as a cold place (a fridge) or not: only cold places take "keep
    cold" items (domain/sizing.py). Items already there stay where they are."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER, Role.SYSTEM)
    require_site(actor, site_id)
    with ctx.db.transaction() as session:
        # The site's lock, as a check-in takes it: no check-in reads the shelf half-changed.
        site = site_row(session, site_id, lock=True)
        location = session.scalar(
            select(Location).where(Location.site_id == site.id, Location.label == label)
        )
        if location is None:
            raise NotFound(f"no location {label!r} at {site.code}")
        location.refrigerated = refrigerated
        session.flush()
        return locations_view(session, site)


def add_locations(
    ctx: Ctx, actor: Principal, site_id: int, locations: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        site = site_row(session, site_id)
        if not has_shelves(site.kind):
            # The site's kind refuses the body a shop takes (at creation, the document's
            # rule on `kind` and `locations` refuses it: 422 there).
            raise NoShelves(NO_SHELVES)
        for loc in locations:
            add_location_row(ctx, session, site, loc)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict("a location with this label exists at this site") from None
        return locations_view(session, site)


def locations_view(session: Session, site: Site) -> list[dict[str, Any]]:
    used = used_per_location(session, site.id)
    return [
        {
            "id": loc.id,
            "label": loc.label,
            "size_class": loc.size_class,
            "capacity": loc.capacity,
            "used": used.get(loc.id, 0),
            "active": loc.active,
            "refrigerated": loc.refrigerated,
            "valid_from": loc.valid_from.isoformat() if loc.valid_from else None,
            "valid_until": loc.valid_until.isoformat() if loc.valid_until else None,
        }
        for loc in session.scalars(
            select(Location).where(Location.site_id == site.id).order_by(Location.label)
        )
    ]


def list_locations(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    require_site(actor, site_id)
    with ctx.db.read() as session:
        return locations_view(session, site_row(session, site_id))


def used_per_location(session: Session, site_id: int) -> dict[int, int]:
    """Parcels held on each shelf location of a site (the shelf policy's input too): the
    counters ``history.apply`` keeps, not a count of the shop's held parcels."""
    rows = session.execute(select(Location.id, Location.held).where(Location.site_id == site_id))
    return {loc_id: held for loc_id, held in rows}


def shelf_load(site: Site, day: date) -> Occupancy:
    """A shop's shelf places in service on ``day`` and the parcels on its shelves, from the
    counters of its locations (loaded with the site on the check-in's path): no count of its
    parcels."""
    return Occupancy(capacity=sum(loc.capacity for loc in site.locations
                                  if location_in_service(loc, day)),
                     held=sum(loc.held for loc in site.locations))


def location_in_service(loc: Location, day: date) -> bool:
    """Active, and within its dates if it is a temporary shelf (domain/season.py)."""
    return loc.active and season.in_service(loc.valid_from, loc.valid_until, day)


def occupancy(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site = site_row(session, site_id)
        occ = occupancy_of(session, site, ctx.today())
        by_state = dict(
            session.execute(
                select(Parcel.state, func.count())
                .where(Parcel.site_id == site.id, Parcel.state.in_(HELD))
                .group_by(Parcel.state)
            ).all()
        )
        return {
            "site": site.code,
            "capacity": occ.capacity,
            "held": occ.held,
            "free": occ.free,
            "ratio": round(occ.held / occ.capacity, 3) if occ.capacity else None,
            "by_state": by_state,
            "locations": locations_view(session, site) if has_shelves(site.kind) else [],
        }
