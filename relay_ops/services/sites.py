"""Sites (relay shops, lockers, overflow storage), their shelf locations, closing days and
occupancy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from relay_ops.db.models import ClosingDay, Compartment, Location, Parcel, Site
from relay_ops.domain import season, site_services
from relay_ops.domain.errors import Conflict, NoShelves, NotFound, ValidationFailed
from relay_ops.domain.geo import distance_km
from relay_ops.domain.hours import (
    ALWAYS_OPEN,
    is_open,
    opens_on,
    validate_site_hours,
)
from relay_ops.domain.lifecycle import HELD_STATES
from relay_ops.domain.site_kinds import LOCKER, SITE_KINDS, has_shelves, in_season, season_of
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
            _add_location(ctx, session, site, loc)
        session.flush()
        return site_view(site, occupancy_of(session, site, today(ctx)))


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


def _add_location(ctx: Ctx, session: Session, site: Site, loc: dict[str, Any]) -> Location:
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
            _add_location(ctx, session, site, loc)
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


def today(ctx: Ctx) -> date:
    return ctx.now().astimezone(ctx.settings.timezone).date()


def site_row(session: Session, site_id: int, *, lock: bool = False) -> Site:
    site = session.get(Site, site_id, with_for_update=lock)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def get_site(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site = site_row(session, site_id)
        return site_view(site, occupancy_of(session, site, today(ctx)))


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
    if has_shelves(site.kind):
        capacity = session.scalar(
            select(func.coalesce(func.sum(Location.capacity), 0)).where(
                Location.site_id == site.id, Location.active.is_(True), in_service_on(day)
            )
        )
    else:
        capacity = session.scalar(
            select(func.count()).where(
                Compartment.site_id == site.id, Compartment.state != "out_of_service"
            )
        )
    held = session.scalar(
        select(func.count()).where(Parcel.site_id == site.id, Parcel.state.in_(HELD))
    )
    return Occupancy(capacity=int(capacity or 0), held=int(held or 0))


def in_service_on(day: date | None) -> ColumnElement[bool]:
    """The SQL form of :func:`location_in_service`'s dates (day None: permanent only)."""
    if day is None:
        return and_(Location.valid_from.is_(None), Location.valid_until.is_(None))
    return and_(or_(Location.valid_from.is_(None), Location.valid_from <= day),
                or_(Location.valid_until.is_(None), Location.valid_until >= day))


def occupancy(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site = site_row(session, site_id)
        occ = occupancy_of(session, site, today(ctx))
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


def closing_days_of(session: Session, site_id: int) -> set[date]:
    return set(session.scalars(select(ClosingDay.day).where(ClosingDay.site_id == site_id)))


def closed_on(session: Session, site: Site) -> Callable[[date], bool]:
    """The days the site does not open: closing days and days its hours skip."""
    return closed_given(site, closing_days_of(session, site.id))


def closed_given(site: Site, closing: set[date]) -> Callable[[date], bool]:
    """:func:`closed_on` with the closing days already read (with the site, on the check-in's
    path); days before the first one asked about need not be among them.

    Answers are remembered per day: the forecast asks about the same few days once per
    parcel on hand (hundreds of thousands of calls for a big manifest, issue 15)."""
    hours = site.opening_hours
    answers: dict[date, bool] = {}

    def closed(day: date) -> bool:
        if day not in answers:
            answers[day] = not opens_on(hours, closing, day)
        return answers[day]

    return closed


def declare_closing_day(
    ctx: Ctx, actor: Principal, site_id: int, day: date, reason: str | None
) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    if day < ctx.now().astimezone(ctx.settings.timezone).date():
        # Today's date is state the document cannot state: a conflict, not an invalid body.
        raise Conflict("closing days are declared for today or later")
    with ctx.db.transaction() as session:
        site = site_row(session, site_id)
        existing = session.scalar(
            select(ClosingDay).where(ClosingDay.site_id == site.id, ClosingDay.day == day)
        )
        if existing is None:
            session.add(ClosingDay(site_id=site.id, day=day, reason=reason))
        else:
            existing.reason = reason
        session.flush()
        session.refresh(site)
        return site_view(site)


def remove_closing_day(ctx: Ctx, actor: Principal, site_id: int, day: date) -> None:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    with ctx.db.transaction() as session:
        row = session.scalar(
            select(ClosingDay).where(ClosingDay.site_id == site_id, ClosingDay.day == day)
        )
        if row is None:
            raise NotFound(f"site {site_id} is not closed on {day.isoformat()}")
        session.delete(row)


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


def site_is_open(ctx: Ctx, session: Session, site: Site, when: datetime) -> bool:
    if site.status == "closed":
        return False
    closed_days = closing_days_of(session, site.id)
    return is_open(site.opening_hours, closed_days, when, ctx.settings.timezone)


def nearest_with_room(
    ctx: Ctx, session: Session, lat: float, lon: float, *, exclude: int | None = None,
    radius_km: float | None = None, open_now: bool = False, limit: int = 5,
) -> list[tuple[Site, float, Occupancy]]:
    """Sites with free room, nearest first (a storage site only in its season)."""
    found = []
    day = today(ctx)
    for site in session.scalars(select(Site).where(Site.status != "closed")):
        if site.id == exclude or not in_season(site.season_from, site.season_to, day):
            continue
        km = distance_km(lat, lon, site.latitude, site.longitude)
        if radius_km is not None and km > radius_km:
            continue
        occ = occupancy_of(session, site, day)
        if occ.free <= 0 or (open_now and not site_is_open(ctx, session, site, ctx.now())):
            continue
        found.append((site, km, occ))
    found.sort(key=lambda t: t[1])
    return found[:limit]


def list_sites(
    ctx: Ctx, actor: Principal, *, near: tuple[float, float] | None = None,
    radius_km: float | None = None, has_room: bool = False, open_now: bool = False,
    kind: str | None = None, services: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The directory; ``services``: only sites that offer all of them."""
    wanted = site_services.checked(services)
    with ctx.db.read() as session:
        query = select(Site).order_by(Site.code)
        if kind:
            query = query.where(Site.kind == kind)
        if actor.role is Role.SHOPKEEPER:
            query = query.where(Site.id.in_(actor.site_ids))
        result = []
        for site in session.scalars(query):
            if not site_services.offers_all(site.services or [], wanted):
                continue
            occ = occupancy_of(session, site, today(ctx))
            view = site_view(site, occ)
            if near is not None:
                view["distance_km"] = round(distance_km(*near, site.latitude, site.longitude), 3)
                if radius_km is not None and view["distance_km"] > radius_km:
                    continue
            if has_room and occ.free <= 0:
                continue
            view["open_now"] = site_is_open(ctx, session, site, ctx.now())
            if open_now and not view["open_now"]:
                continue
            result.append(view)
        if near is not None:
            result.sort(key=lambda v: v["distance_km"])
        return result
