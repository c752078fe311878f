"""A carrier's pickup list at a site, per round (docs/outbound.md, "The carrier's round").

A carrier passes at a site at the times of day it declared (its rounds,
``CarrierSite.round_times``): each sent parcel waits for the first round after its deposit
(``domain/outbound.round_after``, the deposit time being the round's cut-off), and a round's
list holds every parcel waiting for that round or an earlier one it missed. A carrier with no
rounds declared has one list: whatever waits for it when it comes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import CarrierSite, OutboundParcel, Parcel
from relay_ops.domain import outbound
from relay_ops.services.carrier_sites import TO_COLLECT, carrier_or_404, site_or_404
from relay_ops.services.context import Ctx
from relay_ops.services.outbound import STAFF, outbound_view, with_views
from relay_ops.services.principal import Principal, Role, require_role, require_site


def pickup_list(
    ctx: Ctx, actor: Principal, site_id: int, carrier_code: str | None = None,
    round_time: str | None = None,
) -> dict[str, Any]:
    """What a carrier takes from a site: its own parcels only (a carrier's list shows no
    other carrier's); the site's staff see every carrier's, or one's. Each parcel names the
    round it waits for; with ``round_time`` ("HH:MM" today), only the parcels whose round is
    due by then: one of the carrier's rounds gives that round's list, and any time of day
    the parcels to have ready by it (whatever the carriers declared: no refusal)."""
    require_role(actor, Role.CARRIER, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    tz, now = ctx.settings.timezone, ctx.now()
    with ctx.db.read() as session:
        site = site_or_404(session, site_id)
        query = (
            select(Parcel).join(OutboundParcel, OutboundParcel.parcel_id == Parcel.id)
            .where(Parcel.site_id == site.id, Parcel.direction == outbound.DIRECTION,
                   Parcel.state.in_(TO_COLLECT))
            .order_by(OutboundParcel.collect_by, Parcel.id)
        )
        carrier_id = actor.carrier_id if actor.role is Role.CARRIER else (
            carrier_or_404(session, carrier_code).id if carrier_code else None)
        if carrier_id is not None:
            query = query.where(Parcel.carrier_id == carrier_id)
        rounds = _rounds_here(session, site.id)
        items = []
        for parcel in session.scalars(with_views(query)):
            view = outbound_view(session, parcel, now)
            due = outbound.round_after(parcel.checked_in_at or now,
                                       rounds.get(parcel.carrier_id or 0, []), tz)
            view["round"] = due.isoformat() if due else None
            items.append((due, view))
        answer: dict[str, Any] = {"site": site.code, "site_name": site.name}
        day = ctx.local_day(now)
        if carrier_id is not None:
            mine = rounds.get(carrier_id, [])
            today = [(t, outbound.cut_off(day, t, tz)) for t in outbound.rounds_on(day, mine)]
            answer["rounds"] = [
                {"time": t, "at": at.isoformat(),
                 "parcels": sum(1 for due, _ in items if due is not None and due <= at)}
                for t, at in today]
        if round_time is not None:
            cut = outbound.cut_off(day, round_time, tz)
            answer["round"] = cut.isoformat()
            items = [(due, view) for due, view in items if due is not None and due <= cut]
        return {**answer, "items": [view for _, view in items]}


def _rounds_here(session: Session, site_id: int) -> dict[int, list[str]]:
    """Each carrier's rounds at the site (carriers that stopped serving it: none)."""
    return {carrier_id: list(times or []) for carrier_id, times in session.execute(
        select(CarrierSite.carrier_id, CarrierSite.round_times)
        .where(CarrierSite.site_id == site_id))}

