"""The registry of sites (relay shops, lockers, overflow storage): created, read, their status
and the services they offer; below every other site module, the site's row, today's date at
the site and its occupancy.

Beside it: ``site_locations`` (shelf locations), ``site_calendar`` (closing days, open or
closed) and ``site_search`` (the directory, the nearest sites with room)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, Location, Parcel, Site
from relay_ops.domain import site_services
from relay_ops.domain.errors import Conflict, NotFound, ValidationFailed
from relay_ops.domain.geo import box_around
from relay_ops.domain.hours import ALWAYS_OPEN, validate_site_hours
from relay_ops.domain.lifecycle import HELD_STATES
from relay_ops.domain.site_kinds import LOCKER, SITE_KINDS, has_shelves, season_of
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site

SITE_STATUSES = ("open", "closed", "saturated")
HELD = [s.value for s in HELD_STATES]
NO_SHELVES = "shelf locations belong to shops and storage sites; lockers have compartments"


def site_view(site: Site, occupancy: Occupancy | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": site.id,
        "code": site.code,
        "name": site.name,
        "kind": site.kind,
        "network": site.network,
        "address": site.address,
        "postcode": site.postcode,
        "city": site.city,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "area": site.area,
        "opening_hours": site.opening_hours,
        "step_free_access": site.step_free_access,
        "services": list(site.services or []),
        "status": site.status,
        "closing_days": [{"day": c.day.isoformat(), "reason": c.reason} for c in site.closing_days],
    }
    if site.season_from is not None or site.season_to is not None:
        view["season"] = {"from": _iso_day(site.season_from), "to": _iso_day(site.season_to)}
    if occupancy is not None:
        view["capacity"] = occupancy.capacity
        view["held"] = occupancy.held
        view["free"] = occupancy.free
    return view


def _iso_day(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def create_site(ctx: Ctx, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if data["kind"] not in SITE_KINDS:
        raise ValidationFailed(f"kind is one of {', '.join(SITE_KINDS)}")
    season_from, season_to = season_of(data["kind"], data.get("season"))
    hours = validate_site_hours(_hours_at_creation(data))
    services = site_services.checked(
        data["services"] if "services" in data else site_services.default_for(data["kind"]))
    with ctx.db.transaction() as session:
        site = Site(
            code=data["code"],
            name=data["name"],
            kind=data["kind"],
            network=data.get("network"),
            address=data["address"],
            postcode=data["postcode"],
            city=data["city"],
            latitude=data["latitude"],
            longitude=data["longitude"],
            area=data.get("area", "countryside"),
            opening_hours=hours,
            step_free_access=data.get("step_free_access", False),
            locker_model=data.get("locker_model"),
            services=services,
            season_from=season_from,
            season_to=season_to,
        )
        session.add(site)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"site code {data['code']!r} is taken") from None
        for loc in data.get("locations", []):
            add_location_row(ctx, session, site, loc)
        session.flush()
        return site_view(site, occupancy_of(session, site, ctx.today()))


def _hours_at_creation(data: dict[str, Any]) -> object:
    """A locker is open around the clock unless told otherwise; a shop (or a storage site)
    must say when it opens: there is no honest default for a counter, and its messages state
    the hours."""
    if "opening_hours" in data:
        return data["opening_hours"]
    if data["kind"] == LOCKER:
        return ALWAYS_OPEN
    raise ValidationFailed(
        'a shop needs its opening_hours, e.g. {"mon": [["09:00", "12:30"], ["14:00", "19:00"]]}'
    )


def add_location_row(ctx: Ctx, session: Session, site: Site, loc: dict[str, Any]) -> Location:
    """A shelf location checked and added to the session (at creation, or later by
    ``site_locations.add_locations``)."""
    if not has_shelves(site.kind):
        raise ValidationFailed(NO_SHELVES)
    if loc["size_class"] not in ctx.settings.size_classes:
        known = ", ".join(ctx.settings.size_classes)
        raise ValidationFailed(f"size class {loc['size_class']!r} unknown; use {known}")
    if int(loc["capacity"]) < 1:
        raise ValidationFailed("a location holds at least one parcel")
    location = Location(
        site_id=site.id, label=loc["label"], size_class=loc["size_class"],
        capacity=int(loc["capacity"]), refrigerated=bool(loc.get("refrigerated", False)),
    )
    session.add(location)
    return location


def today(ctx: Ctx) -> date:
    return ctx.today()


def site_row(session: Session, site_id: int, *, lock: bool = False) -> Site:
    site = session.get(Site, site_id, with_for_update=lock)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def get_site(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site = site_row(session, site_id)
        return site_view(site, occupancy_of(session, site, ctx.today()))


def site_id_for_code(ctx: Ctx, code: str) -> int:
    with ctx.db.read() as session:
        site_id = session.scalar(select(Site.id).where(Site.code == code))
        if site_id is None:
            raise NotFound(f"no site {code!r}")
        return site_id


@dataclass(frozen=True)
class Occupancy:
    capacity: int
    held: int

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.held)


def occupancy_of(session: Session, site: Site, day: date | None = None) -> Occupancy:
    """Capacity and parcels held; a shop's capacity counts its temporary shelves of ``day``
    (none when ``day`` is None: the permanent places only)."""
    return occupancies(session, [site], day)[site.id]


def occupancies(session: Session, sites: Sequence[Site], day: date | None = None
                ) -> dict[int, Occupancy]:
    """:func:`occupancy_of` for many sites in at most three statements, whatever their
    number (a directory or a search reads the room of dozens of sites at once)."""
    ids = [site.id for site in sites]
    if not ids:
        return {}
    places = capacities(session, sites, day)
    held = dict(session.execute(
        select(Parcel.site_id, func.count())
        .where(Parcel.site_id.in_(ids), Parcel.state.in_(HELD))
        .group_by(Parcel.site_id)
    ).all())
    return {site.id: Occupancy(capacity=places[site.id], held=int(held.get(site.id) or 0))
            for site in sites}


def capacity_of(session: Session, site: Site, day: date | None = None) -> int:
    """The places of :func:`occupancy_of`, without counting the parcels held."""
    return capacities(session, [site], day)[site.id]


def capacities(session: Session, sites: Sequence[Site], day: date | None = None
               ) -> dict[int, int]:
    """Each site's places: a shop's (or a storage site's) shelf places in service on ``day``,
    a locker's doors in service; one statement per kind of place asked."""
    shelved = [site.id for site in sites if has_shelves(site.kind)]
    lockers = [site.id for site in sites if not has_shelves(site.kind)]
    places: dict[int, int] = {}
    if shelved:
        places.update(session.execute(
            select(Location.site_id, func.sum(Location.capacity))
            .where(Location.site_id.in_(shelved), Location.active.is_(True),
                   in_service_on(day))
            .group_by(Location.site_id)
        ).all())
    if lockers:
        places.update(session.execute(
            select(Compartment.site_id, func.count())
            .where(Compartment.site_id.in_(lockers), Compartment.state != "out_of_service")
            .group_by(Compartment.site_id)
        ).all())
    return {site.id: int(places.get(site.id) or 0) for site in sites}


def in_service_on(day: date | None) -> ColumnElement[bool]:
    """The SQL form of :func:`location_in_service`'s dates (day None: permanent only)."""
    if day is None:
        return and_(Location.valid_from.is_(None), Location.valid_until.is_(None))
    return and_(or_(Location.valid_from.is_(None), Location.valid_from <= day),
                or_(Location.valid_until.is_(None), Location.valid_until >= day))


def in_box_around(lat: float, lon: float, km: float) -> ColumnElement[bool]:
    """The sites in the box of coordinates that holds every point within ``km`` of (lat,
    lon) (``geo.box_around``): the far ones left out by the coordinates' index, before a
    caller computes the exact distances of the rest."""
    box = box_around(lat, lon, km)
    return and_(Site.latitude.between(box.lat_min, box.lat_max),
                Site.longitude.between(box.lon_min, box.lon_max))


def set_status(ctx: Ctx, actor: Principal, site_id: int, status: str) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR)
    if status not in SITE_STATUSES:
        raise ValidationFailed(f"status is one of {', '.join(SITE_STATUSES)}")
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        site.status = status
        return site_view(site)


def set_services(ctx: Ctx, actor: Principal, site_id: int, services: list[str]) -> dict[str, Any]:
    """The services a site offers the public (its operator, or its own shopkeeper, says)."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER, Role.SYSTEM)
    require_site(actor, site_id)
    checked = site_services.checked(services)
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        site.services = checked
        return site_view(site)
