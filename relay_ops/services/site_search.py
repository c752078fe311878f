"""The site directory: sites listed and filtered (kind, services, distance, room, open now), and
the nearest sites with room (a full shop's refusal names one, a reroute plans with them)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from relay_ops.db.models import Site
from relay_ops.domain import site_services
from relay_ops.domain.geo import box_around, distance_km
from relay_ops.domain.site_kinds import in_season
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from relay_ops.services.site_calendar import sites_open
from relay_ops.services.sites import Occupancy, occupancies, site_view, today

# Sites whose room is read at once, nearest first: in a full area the nearest are full too.
ROOM_READ_BATCH = 16


def nearest_with_room(
    ctx: Ctx, session: Session, lat: float, lon: float, *, exclude: int | None = None,
    radius_km: float | None = None, open_now: bool = False, limit: int = 5,
) -> list[tuple[Site, float, Occupancy]]:
    """Sites with free room, nearest first (a storage site only in its season).

    Every full shop's refusal asks it: the sites are ranked by distance from their
    coordinates alone, then their room is read a batch at a time, nearest first, until
    ``limit`` are found, so the statements run grow with the full sites passed over, not with
    the size of the network."""
    day = today(ctx)
    found: list[tuple[Site, float, Occupancy]] = []
    ranked = _ranked_by_distance(session, lat, lon, day, exclude, radius_km)
    for start in range(0, len(ranked), ROOM_READ_BATCH):
        batch = ranked[start:start + ROOM_READ_BATCH]
        sites = _sites(session, [site_id for site_id, _ in batch])
        rooms = occupancies(session, list(sites.values()), day)
        opened = sites_open(ctx, session, list(sites.values()), ctx.now()) if open_now else {}
        for site_id, km in batch:
            site, room = sites[site_id], rooms[site_id]
            if room.free <= 0 or (open_now and not opened[site_id]):
                continue
            found.append((site, km, room))
            if len(found) == limit:
                return found
    return found


def _ranked_by_distance(
    session: Session, lat: float, lon: float, day: date, exclude: int | None,
    radius_km: float | None,
) -> list[tuple[int, float]]:
    """The ids of the sites not closed (a storage site in its season), within ``radius_km``,
    nearest first, with their distance; from five columns, no site object made."""
    rows = session.execute(
        select(Site.id, Site.latitude, Site.longitude, Site.season_from, Site.season_to)
        .where(Site.status != "closed")
    )
    ranked = []
    for site_id, site_lat, site_lon, season_from, season_to in rows:
        if site_id == exclude or not in_season(season_from, season_to, day):
            continue
        km = distance_km(lat, lon, site_lat, site_lon)
        if radius_km is None or km <= radius_km:
            ranked.append((site_id, km))
    ranked.sort(key=lambda ranked_site: (ranked_site[1], ranked_site[0]))
    return ranked


def _sites(session: Session, ids: list[int]) -> dict[int, Site]:
    return {site.id: site for site in session.scalars(select(Site).where(Site.id.in_(ids)))}


def list_sites(
    ctx: Ctx, actor: Principal, *, near: tuple[float, float] | None = None,
    radius_km: float | None = None, has_room: bool = False, open_now: bool = False,
    kind: str | None = None, services: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The directory; ``services``: only sites that offer all of them."""
    wanted = site_services.checked(services)
    with ctx.db.read() as session:
        # Each view lists the site's closing days: read for all the sites at once.
        query = select(Site).options(selectinload(Site.closing_days)).order_by(Site.code)
        if kind:
            query = query.where(Site.kind == kind)
        if actor.role is Role.SHOPKEEPER:
            query = query.where(Site.id.in_(actor.site_ids))
        if near is not None and radius_km is not None:
            # The sites outside the box that holds the circle are left out by the index.
            box = box_around(*near, radius_km)
            query = query.where(Site.latitude.between(box.lat_min, box.lat_max),
                                Site.longitude.between(box.lon_min, box.lon_max))
        result = []
        listed = [site for site in session.scalars(query)
                  if site_services.offers_all(site.services or [], wanted)]
        rooms = occupancies(session, listed, today(ctx))
        open_at_once = sites_open(ctx, session, listed, ctx.now())
        for site in listed:
            occ = rooms[site.id]
            view = site_view(site, occ)
            if near is not None:
                view["distance_km"] = round(distance_km(*near, site.latitude, site.longitude), 3)
                if radius_km is not None and view["distance_km"] > radius_km:
                    continue
            if has_room and occ.free <= 0:
                continue
            view["open_now"] = open_at_once[site.id]
            if open_now and not view["open_now"]:
                continue
            result.append(view)
        if near is not None:
            result.sort(key=lambda v: v["distance_km"])
        return result
