"""A shop's shelves: which location takes a parcel (the check-in's rule, also asked before a
parcel is sent there), and the refusal that names the nearest site with room."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Location,
    Parcel,
    Site,
)
from relay_ops.domain import grouping, sizing
from relay_ops.domain.errors import (
    NoColdPlace,
    SiteAtCapacity,
)
from relay_ops.services.context import Ctx
from relay_ops.services.site_locations import location_in_service
from relay_ops.services.site_search import nearest_with_room
from relay_ops.services.sites import occupancy_of


def allocate_shelf(
    ctx: Ctx, session: Session, site: Site, parcel: Parcel,
    group_shelves: list[int | None] | None = None, keep_cold: bool = False,
) -> Location:
    """The location the parcel goes to: beside the parcels of the group it joins
    (``group_shelves``, their locations) when there is room, else by the shelf policy; or
    :class:`SiteAtCapacity`, naming the nearest site with room (:class:`NoColdPlace` for a
    ``keep_cold`` item when the shop has room, but not in a refrigerated place)."""
    classes = ctx.settings.size_classes
    day = ctx.today()
    locations = {loc.id: loc for loc in site.locations if location_in_service(loc, day)}
    slots = _shelf_slots(site, day)
    parcel_class = class_of(ctx, parcel)
    chosen = None
    if group_shelves is not None:
        chosen = grouping.shelf_in_group(classes, slots, group_shelves, parcel_class,
                                         keep_cold)
    chosen = chosen or sizing.choose_shelf(classes, slots, parcel_class, keep_cold)
    if chosen is None and keep_cold and sizing.choose_shelf(classes, slots, parcel_class):
        raise NoColdPlace(
            f"{site.name} has no free refrigerated {parcel_class} place for this "
            "keep-cold item; free one, or keep the item back", site=site.code,
        )
    if chosen is None:
        raise no_room(ctx, session, site, parcel_class)
    return locations[chosen.id]


def _shelf_slots(site: Site, day: date) -> list[sizing.ShelfSlot]:
    # Each location's counter (history.apply keeps it), not a count of the held parcels;
    # a temporary shelf only within its dates.
    return [sizing.ShelfSlot(loc.id, loc.label, loc.size_class, loc.capacity, loc.held,
                             loc.refrigerated)
            for loc in site.locations if location_in_service(loc, day)]


def class_of(ctx: Ctx, parcel: Parcel) -> str:
    return parcel.size_class or sizing.smallest_class(ctx.settings.size_classes)


def shelf_takes(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> bool:
    """A shelf of the shop has a free place for the parcel's size class now (the check-in's
    own rule, asked before a parcel is sent there)."""
    slots = _shelf_slots(site, ctx.today())
    return sizing.choose_shelf(ctx.settings.size_classes, slots, class_of(ctx, parcel)) is not None


def no_room(
    ctx: Ctx, session: Session, site: Site, parcel_class: str, *, kept_for_reroutes: int = 0
) -> SiteAtCapacity:
    """The refusal for lack of room; ``kept_for_reroutes``: the shop's last free places are
    held for that many rerouted parcels expected today (services/reservations.py)."""
    nearest = nearest_with_room(ctx, session, site.latitude, site.longitude, exclude=site.id,
                                limit=1)
    occ = occupancy_of(session, site, ctx.today())
    if nearest:
        other, km, _ = nearest[0]
        where = f"; the nearest site with room is {other.name} ({other.code}), {km:.1f} km away"
        suggestion: dict[str, Any] | None = {
            "code": other.code, "name": other.name, "address": other.address,
            "city": other.city, "distance_km": round(km, 2),
        }
    else:
        where, suggestion = "; no other site has room", None
    if kept_for_reroutes:
        why = (f"{site.name} keeps its last free places for {kept_for_reroutes} rerouted "
               f"parcel(s) expected today ({occ.held}/{occ.capacity} held){where}")
    else:
        why = (f"{site.name} has no free {parcel_class} place "
               f"({occ.held}/{occ.capacity} held){where}")
    extra: dict[str, Any] = {"kept_for_reroutes": kept_for_reroutes} if kept_for_reroutes else {}
    return SiteAtCapacity(
        why,
        nearest_site=suggestion, **extra,
    )
