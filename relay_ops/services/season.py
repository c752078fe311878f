"""Season capacity (docs/forecast.md, "Season capacity"): the temporary shelves a shop (or a
storage site: a second room, a container) declares for a period, the extra places the
forecast says each shop needs, and the places the overflow storage sites need for what the
shops within their reach cannot take.

A temporary shelf is a shelf location with dates (``valid_from``/``valid_until``): the
check-in puts parcels on it and the forecast counts its places only within them
(``site_locations.location_in_service``, ``forecast.temporary_capacity``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from relay_ops.db.models import Location, Parcel, Site
from relay_ops.domain import season
from relay_ops.domain.errors import Conflict, NoShelves, NotFound, ValidationFailed
from relay_ops.domain.holding import SHORTENED_RULES
from relay_ops.domain.lifecycle import State
from relay_ops.domain.site_kinds import STORAGE, has_shelves, in_season
from relay_ops.services import forecast, forecast_views
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.reroute_planner import within_reach
from relay_ops.services.sites import site_row


@dataclass(frozen=True)
class TemporaryShelf:
    label: str
    size_class: str
    capacity: int
    valid_from: date
    valid_until: date
    refrigerated: bool = False


def declare_temporary_shelf(
    ctx: Ctx, actor: Principal, site_id: int, shelf: TemporaryShelf
) -> dict[str, Any]:
    """A shop (its shopkeeper, or an operator) adds a shelf for a period; the shop's forecast
    is computed again in the same transaction, so the dashboard and the next reroute
    decision see the places at once."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    season.check_temporary_shelf(shelf.valid_from, shelf.valid_until, shelf.capacity,
                                 ctx.today())
    if shelf.size_class not in ctx.settings.size_classes:
        known = ", ".join(ctx.settings.size_classes)
        raise ValidationFailed(f"size class {shelf.size_class!r} unknown; use {known}")
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        if not has_shelves(site.kind):
            raise NoShelves("temporary shelves belong to shops and storage sites; lockers "
                            "have doors")
        location = Location(
            site_id=site.id, label=shelf.label, size_class=shelf.size_class,
            capacity=shelf.capacity, refrigerated=shelf.refrigerated,
            valid_from=shelf.valid_from, valid_until=shelf.valid_until,
        )
        session.add(location)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"a location labelled {shelf.label!r} exists at this shop") from None
        forecast.refresh(ctx, session, site)
        return shelf_view(location)


def withdraw_temporary_shelf(ctx: Ctx, actor: Principal, site_id: int, shelf_id: int) -> None:
    """Take back a temporary shelf that holds no parcel (one that does is emptied first:
    its parcels' residents were told where they are)."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        location = session.get(Location, shelf_id, with_for_update=True)
        if location is None or location.site_id != site.id or location.valid_from is None:
            raise NotFound(f"no temporary shelf {shelf_id} at this shop")
        if location.held:
            raise Conflict(f"shelf {location.label} still holds {location.held} parcel(s)",
                           held=location.held)
        session.delete(location)
        session.flush()
        forecast.refresh(ctx, session, site)


def temporary_shelves(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site_row(session, site_id)
        return [shelf_view(loc) for loc in session.scalars(
            select(Location).where(Location.site_id == site_id,
                                   Location.valid_from.is_not(None))
            .order_by(Location.valid_from, Location.label))]


def shelf_view(loc: Location) -> dict[str, Any]:
    assert loc.valid_from is not None and loc.valid_until is not None
    return {
        "id": loc.id, "label": loc.label, "size_class": loc.size_class,
        "capacity": loc.capacity, "held": loc.held or 0, "refrigerated": loc.refrigerated,
        "valid_from": loc.valid_from.isoformat(), "valid_until": loc.valid_until.isoformat(),
    }


Forecasts = list[dict[str, Any]]  # ``forecast_views.overview``'s answer


def recommendations(
    ctx: Ctx, actor: Principal, site_id: int | None = None,
    forecasts: Forecasts | None = None,
) -> list[dict[str, Any]]:
    """Per shop, the extra places that would take each day of its forecast out of risk,
    grouped into periods (``domain.season.extra_places``), from the stored forecast (the
    dashboard's, ``forecast_views.overview``, or ``forecasts`` when the caller read it
    already); temporary shelves already declared are counted in that forecast's capacity, so
    what is left is what is still missing."""
    require_role(actor, Role.OPERATOR)
    shortened = shortened_holding(ctx)
    declared = declared_shelves(ctx)
    found = []
    for site in forecasts if forecasts is not None else forecast_views.overview(ctx, actor):
        if site["kind"] != "shop" or (site_id is not None and site["id"] != site_id):
            continue
        needs = [season.DayNeed(date.fromisoformat(d["day"]), d["high"], d["capacity"])
                 for d in site["days"]]
        found.append({
            "site": site["code"], "id": site["id"], "name": site["name"],
            **places_view(season.extra_places(needs)),
            "shortened_holding": shortened.get(site["id"], {}),
            "temporary_shelves": declared.get(site["id"], []),
        })
    if site_id is not None and not found:
        raise NotFound(f"no shop {site_id}")
    return found


def storage_recommendations(ctx: Ctx, actor: Principal, forecasts: Forecasts | None = None
                            ) -> dict[str, list[dict[str, Any]]]:
    """When the whole area is full: per storage site, the extra places that would take the
    overflow of the shops within reach beside what is already sent there, and the shops
    whose overflow no storage site reaches (``domain.season.share_overflow``). Each shop's
    shortfall is the tail of its forecast beyond its places (temporary shelves included:
    ``domain.season.shortfall``); the places are read at the band's quantile of the sum
    (``places``) and at its mean (``expected``). ``forecasts``: the overview, when the
    caller read it already."""
    require_role(actor, Role.OPERATOR)
    z = ctx.settings.forecast.band_z
    if forecasts is None:
        forecasts = forecast_views.overview(ctx, actor)
    outlook_of = {site["id"]: _outlook(site["days"]) for site in forecasts}
    with ctx.db.read() as session:
        open_sites = list(session.scalars(
            select(Site).where(Site.status == "open", Site.kind.in_(("shop", STORAGE)))
            .order_by(Site.code)))
        shops = [s for s in open_sites if s.kind == "shop" and s.id in outlook_of]
        storages = {s.id: s for s in open_sites if s.kind == STORAGE and s.id in outlook_of}
        catchment = {shop.id: [sid for sid, storage in storages.items()
                               if within_reach(ctx, shop, storage) is not None]
                     for shop in shops}

        def reaches(shop_id: int, day: date) -> list[int]:
            return [sid for sid in catchment[shop_id]
                    if in_season(storages[sid].season_from, storages[sid].season_to, day)]

        shares = season.share_overflow(
            {shop.id: {d.day: season.shortfall(d.predicted, d.high, d.capacity, z)
                       for d in outlook_of[shop.id]} for shop in shops}, reaches)
        return {
            "storage": [
                _storage_view(storage, [s.code for s in shops if sid in catchment[s.id]],
                              outlook_of[sid], shares.to_storage.get(sid, {}), z)
                for sid, storage in storages.items()],
            "unserved": [
                {"site": shop.code, "id": shop.id, "name": shop.name,
                 **_unserved_view(shares.unserved[shop.id], z),
                 "expected": _unserved_view(shares.unserved[shop.id], 0.0)}
                for shop in shops if shop.id in shares.unserved],
        }


def _outlook(days: list[dict[str, Any]]) -> list[season.Outlook]:
    return [season.Outlook(date.fromisoformat(d["day"]), d["predicted"], d["high"],
                           d["capacity"]) for d in days]


def _storage_view(storage: Site, catchment: list[str], outlook: list[season.Outlook],
                  overflow: dict[date, season.Shortfall], z: float) -> dict[str, Any]:
    def places_at(z: float) -> dict[str, Any]:
        return places_view(season.extra_places(season.storage_needs(outlook, overflow, z)))

    return {
        "site": storage.code, "id": storage.id, "name": storage.name, "catchment": catchment,
        "overflow": [{"day": day.isoformat(), "parcels": round(short.mean, 1),
                      "spread": round(math.sqrt(short.var), 1)}
                     for day, short in sorted(overflow.items())],
        **places_at(z), "expected": places_at(0.0),
    }


def _unserved_view(missing: dict[date, season.Shortfall], z: float) -> dict[str, Any]:
    return places_view(season.extra_places(
        [season.DayNeed(day, short.places(z), 0) for day, short in sorted(missing.items())]))


def places_view(periods: list[season.ExtraPlaces]) -> dict[str, Any]:
    """The places to add (the largest of the periods') and each period."""
    return {"places": max((p.places for p in periods), default=0),
            "periods": [period_view(p) for p in periods]}


def period_view(period: season.ExtraPlaces) -> dict[str, Any]:
    return {
        "from": period.first.isoformat(), "until": period.last.isoformat(),
        "places": period.places,
        "days": [{"day": d.isoformat(), "missing": n} for d, n in period.per_day],
    }


def shortened_holding(ctx: Ctx) -> dict[int, dict[str, int]]:
    """Per site, the parcels waiting now under a shortened holding period, by rule: what
    the adaptive holding is doing (docs/forecast.md, "Adaptive holding")."""
    with ctx.db.read() as session:
        rows = session.execute(
            select(Parcel.site_id, Parcel.holding_rule, func.count())
            .where(Parcel.state == State.READY_FOR_PICKUP.value,
                   Parcel.holding_rule.in_(SHORTENED_RULES))
            .group_by(Parcel.site_id, Parcel.holding_rule)
        ).all()
    found: dict[int, dict[str, int]] = {}
    for site_id, rule, count in rows:
        found.setdefault(site_id, {})[str(rule)] = count
    return found


def declared_shelves(ctx: Ctx) -> dict[int, list[dict[str, Any]]]:
    """Per shop, its temporary shelves not over yet: what the shops decided."""
    with ctx.db.read() as session:
        rows = session.scalars(
            select(Location).where(Location.valid_until >= ctx.today())
            .order_by(Location.valid_from, Location.label))
        found: dict[int, list[dict[str, Any]]] = {}
        for loc in rows:
            if loc.valid_from is not None:
                found.setdefault(loc.site_id, []).append(shelf_view(loc))
        return found
