"""Which carriers collect at which sites, and which labels each carrier takes (its label
networks): what the counter's and the locker's deposits of sent parcels check, and what the
carriers' pickup lists are built from (docs/outbound.md, "Carriers and sites").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relay_ops.db.models import Carrier, CarrierSite, Parcel, Site
from relay_ops.domain import outbound
from relay_ops.domain.errors import (
    NotFound,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
# On a carrier's pickup list: waiting for it, or damaged (it still takes those, see domain).
TO_COLLECT = (State.AWAITING_COLLECTION.value, State.DAMAGED.value)


def set_label_networks(
    ctx: Ctx, actor: Principal, carrier_code: str, specs: list[str]
) -> dict[str, Any]:
    """The label networks a carrier collects (operators declare them)."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    checked = sorted({outbound.parse_network(spec).spec for spec in specs})
    with ctx.db.transaction() as session:
        carrier = carrier_or_404(session, carrier_code)
        carrier.label_networks = checked
        return {"carrier": carrier.code, "label_networks": checked}


def serve_site(
    ctx: Ctx, actor: Principal, site_id: int, carrier_code: str, collection_delay_hours: int,
    rounds: list[str] | None = None,
) -> dict[str, Any]:
    """A carrier collects sent parcels at a site, within this many hours of each deposit,
    passing at its ``rounds`` ("HH:MM" each day; None keeps those declared before)."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    if not 1 <= collection_delay_hours <= 24 * 14:
        raise ValidationFailed("collection_delay_hours is between 1 and 336 (two weeks)")
    times = outbound.parse_rounds(rounds) if rounds is not None else None
    with ctx.db.transaction() as session:
        site = site_or_404(session, site_id)  # a shop, or a locker (services/locker_sending.py)
        carrier = carrier_or_404(session, carrier_code)
        link = session.get(CarrierSite, (site.id, carrier.id))
        if link is None:
            link = CarrierSite(site_id=site.id, carrier_id=carrier.id,
                               collection_delay_hours=collection_delay_hours)
            session.add(link)
        link.collection_delay_hours = collection_delay_hours
        if times is not None:
            link.round_times = times
        session.flush()
        return _service_view(carrier, link)


def stop_serving(ctx: Ctx, actor: Principal, site_id: int, carrier_code: str) -> None:
    """The carrier no longer collects here; parcels already listed stay on its list."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        carrier = carrier_or_404(session, carrier_code)
        link = session.get(CarrierSite, (site_id, carrier.id))
        if link is None:
            raise NotFound(f"{carrier_code} does not collect at site {site_id}")
        session.delete(link)


def site_carriers(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """Who collects sent parcels at a site, what labels and within what delay."""
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    with ctx.db.read() as session:
        site_or_404(session, site_id)
        return [_service_view(carrier, link)
                for carrier, link in serving_carriers(session, site_id)]


def collection_sites(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    """Where a carrier collects, how many sent parcels wait there for it and its next round
    (operators: every carrier at every site)."""
    require_role(actor, Role.CARRIER, Role.OPERATOR)
    now, tz = ctx.now(), ctx.settings.timezone
    with ctx.db.read() as session:
        query = (
            select(Site, Carrier, CarrierSite)
            .join(CarrierSite, CarrierSite.site_id == Site.id)
            .join(Carrier, Carrier.id == CarrierSite.carrier_id)
            .order_by(Site.name, Carrier.code)
        )
        if actor.role is Role.CARRIER:
            query = query.where(Carrier.id == actor.carrier_id)
        waiting = {
            (site_id, carrier_id): n for site_id, carrier_id, n in session.execute(
                select(Parcel.site_id, Parcel.carrier_id, func.count())
                .where(Parcel.direction == outbound.DIRECTION, Parcel.state.in_(TO_COLLECT))
                .group_by(Parcel.site_id, Parcel.carrier_id)
            )
        }
        return [
            {"site_id": site.id, "site": site.code, "site_name": site.name, "city": site.city,
             "carrier": carrier.code, "collection_delay_hours": link.collection_delay_hours,
             "waiting": waiting.get((site.id, carrier.id), 0),
             "rounds": list(link.round_times or []),
             "next_round": _iso(outbound.round_after(now, link.round_times or [], tz))}
            for site, carrier, link in session.execute(query)
        ]


def serving_carriers(session: Session, site_id: int) -> list[tuple[Carrier, CarrierSite]]:
    rows = session.execute(
        select(Carrier, CarrierSite).join(CarrierSite, CarrierSite.carrier_id == Carrier.id)
        .where(CarrierSite.site_id == site_id).order_by(Carrier.code)
    )
    return [(carrier, link) for carrier, link in rows]


def _service_view(carrier: Carrier, link: CarrierSite) -> dict[str, Any]:
    return {"carrier": carrier.code, "name": carrier.name,
            "label_networks": list(carrier.label_networks or []),
            "collection_delay_hours": link.collection_delay_hours,
            "rounds": list(link.round_times or [])}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


# ---------------------------------------------------------------- lookups


def site_or_404(session: Session, site_id: int, *, lock: bool = False) -> Site:
    site = session.get(Site, site_id, with_for_update=lock)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def carrier_or_404(session: Session, code: str) -> Carrier:
    carrier = session.scalar(select(Carrier).where(Carrier.code == code))
    if carrier is None:
        raise NotFound(f"no carrier {code!r}")
    return carrier
