"""The site directory: sites listed and filtered (kind, services, distance, room, open now), and
the nearest sites with room (a full shop's refusal names one, a reroute plans with them)."""

from __future__ import annotations

from datetime import date
from math import pi
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from relay_ops.db.models import Site
from relay_ops.domain import site_services
from relay_ops.domain.geo import EARTH_RADIUS_KM, distance_km
from relay_ops.domain.site_kinds import in_season
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from relay_ops.services.site_calendar import sites_open
from relay_ops.services.sites import (
    Occupancy,
    in_box_around,
    occupancies,
    site_view,
)

# Sites whose room is read at once, nearest first: in a full area the nearest are full too.
ROOM_READ_BATCH = 16
# The first circle searched (km), then four times wider each time until enough sites are
# found or the whole earth is searched: a refusal reads the sites near it, not the network.
FIRST_RING_KM = 16.0
WHOLE_EARTH_KM = pi * EARTH_RADIUS_KM


def nearest_with_room(
    ctx: Ctx, session: Session, lat: float, lon: float, *, exclude: int | None = None,
    radius_km: float | None = None, open_now: bool = False, limit: int = 5,
) -> list[tuple[Site, float, Occupancy]]:
    """Sites with free room, nearest first (a storage site only in its season).

    Every full shop's refusal asks it, so what it reads grows with the sites near it, not
    with the network: the sites in a circle are ranked by distance from their coordinates
    (read in the circle's box), then their room is read a batch at a time, nearest first,
    until ``limit`` are found; short of that, a circle four times wider, beyond the first."""
    day = ctx.today()
    found: list[tuple[Site, float, Occupancy]] = []
    limit_km = WHOLE_EARTH_KM if radius_km is None else min(radius_km, WHOLE_EARTH_KM)
    # ``inside``: the radius searched already (its sites were ranked and their room read)
    ring, inside = min(FIRST_RING_KM, limit_km), -1.0
    while True:
        ranked = [(site_id, km) for site_id, km
                  in _ranked_by_distance(session, lat, lon, day, exclude, ring) if km > inside]
        for start in range(0, len(ranked), ROOM_READ_BATCH):
            found += _with_room(ctx, session, ranked[start:start + ROOM_READ_BATCH], day,
                                open_now)
            if len(found) >= limit:
                return found[:limit]
        if ring >= limit_km:
            return found
        ring, inside = min(4 * ring, limit_km), ring


def _with_room(ctx: Ctx, session: Session, batch: list[tuple[int, float]], day: date,
               open_now: bool) -> list[tuple[Site, float, Occupancy]]:
    """The sites of ``batch`` (ids and distances, nearest first) with free room (and open
    now, if asked), in that order."""
    sites = _sites(session, [site_id for site_id, _ in batch])
    rooms = occupancies(session, list(sites.values()), day)
    opened = sites_open(ctx, session, list(sites.values()), ctx.now()) if open_now else {}
    return [(sites[site_id], km, rooms[site_id]) for site_id, km in batch
            if rooms[site_id].free > 0 and (not open_now or opened[site_id])]


def _ranked_by_distance(
    session: Session, lat: float, lon: float, day: date, exclude: int | None, radius_km: float,
) -> list[tuple[int, float]]:
    """The ids of the sites not closed (a storage site in its season) within ``radius_km``,
    nearest first, with their distance; from the five columns of the sites in the circle's
    box, no site object made."""
    rows = session.execute(
        select(Site.id, Site.latitude, Site.longitude, Site.season_from, Site.season_to)
        .where(Site.status != "closed", in_box_around(lat, lon, radius_km))
    )
    ranked = []
    for site_id, site_lat, site_lon, season_from, season_to in rows:
        if site_id == exclude or not in_season(season_from, season_to, day):
            continue
        km = distance_km(lat, lon, site_lat, site_lon)
        if km <= radius_km:
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
            query = query.where(in_box_around(*near, radius_km))
        result = []
        listed = [site for site in session.scalars(query)
                  if site_services.offers_all(site.services or [], wanted)]
        rooms = occupancies(session, listed, ctx.today())
        open_at_once = sites_open(ctx, session, listed, ctx.now(), closing={
            site.id: {closing.day for closing in site.closing_days} for site in listed})
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
