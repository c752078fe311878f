"""The site directory: sites listed and filtered (kind, services, distance, room, open now), and
the nearest sites with room (a full shop's refusal names one, a reroute plans with them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Site
from relay_ops.domain import site_services
from relay_ops.domain.geo import distance_km
from relay_ops.domain.site_kinds import in_season
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from relay_ops.services.site_calendar import site_is_open
from relay_ops.services.sites import Occupancy, occupancy_of, site_view, today


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
