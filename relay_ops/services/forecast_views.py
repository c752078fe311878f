"""The forecast as the operator, the shopkeeper and the API read it: a site's coming days
(with the places kept for rerouted parcels and the parcels in the vans per carrier), and
every site's at once for the dashboard. Computing and storing it is ``forecast.py``.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relay_ops.db.models import Carrier, Parcel, ParcelEvent, Site, SiteForecast
from relay_ops.domain import forecast as model
from relay_ops.domain.errors import NotFound
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.forecast import compute, refresh
from relay_ops.services.locker_compartments import free_doors_left
from relay_ops.services.principal import Principal, Role, require_role, require_site


def day_view(day: model.DayForecast) -> dict[str, Any]:
    return {
        "day": day.day.isoformat(),
        "predicted": day.predicted,
        "low": day.low,
        "high": day.high,
        "capacity": day.capacity,
        "arrivals": day.arrivals,
        "closed": day.closed,
        "at_risk": day.at_risk,
    }


def flows_view(day: model.DayForecast) -> dict[str, dict[str, float]]:
    """Per flow (``sent``, ``orders``): its expected deposits that day and its parcels
    expected at the day's peak, a share of ``predicted``."""
    return {f.kind: {"deposits": f.deposits, "on_shelves": f.present} for f in day.flows}


def site_forecast(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """A fresh forecast for an operator, or for the shopkeeper of that site."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        days = refresh(ctx, session, site)
        reserved = reservations.reserved_per_day(ctx, session, site.id)
        answer = {
            "site": site.code,
            "computed_at": ctx.now().isoformat(),
            # reserved: places held for rerouted parcels that day (counted in predicted);
            # flows: the parcels sent from the site and producers' orders apart (in predicted);
            # demand_factor: the season's factor of the day (1.0: an ordinary day)
            "days": [{**day_view(d), "reserved": reserved.get(d.day, 0), "flows": flows_view(d),
                      "demand_factor": d.demand_factor} for d in days],
            "days_at_risk": [d.day.isoformat() for d in days if d.at_risk],
            "in_vans": in_vans(session, site),
        }
        if site.kind == "locker":
            answer["free_doors"] = free_doors(ctx, session, site)
        return answer


def free_doors(ctx: Ctx, session: Session, site: Site) -> dict[str, int]:
    """A locker's room for reroutes now, per size class: its free doors less those the
    places held there without a door yet will take (the planner's count, ``has_door``)."""
    promised = reservations.awaiting_a_door(ctx, session, site.id)
    return free_doors_left(ctx, session, site, promised)


def in_vans(session: Session, site: Site) -> dict[str, int]:
    """Per carrier, the parcels the site refused for lack of room that are still announced
    for it: they wait in the carrier's van and come back on its next round."""
    refused = select(ParcelEvent.id).where(
        ParcelEvent.parcel_id == Parcel.id, ParcelEvent.site_id == site.id,
        ParcelEvent.action == history.CHECK_IN_REFUSED,
    ).exists()
    rows = session.execute(
        select(Carrier.code, func.count(Parcel.id)).join(Carrier, Carrier.id == Parcel.carrier_id)
        .where(Parcel.site_id == site.id, Parcel.state == State.ANNOUNCED.value, refused)
        .group_by(Carrier.code).order_by(Carrier.code)
    )
    return {code: count for code, count in rows}


def _stored_days(session: Session, site_id: int, today: date, horizon: int
                 ) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(SiteForecast)
        .where(SiteForecast.site_id == site_id, SiteForecast.day >= today,
               SiteForecast.day <= today + timedelta(days=horizon))
        .order_by(SiteForecast.day)
    )
    return [
        {"day": r.day.isoformat(), "predicted": r.predicted, "low": r.low, "high": r.high,
         "capacity": r.capacity, "arrivals": r.arrivals, "closed": r.closed,
         "at_risk": r.at_risk}
        for r in rows
    ]


def overview(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    """Every site's forecast (a shopkeeper's: her own sites) for the dashboard, as stored by
    the last computation; a site with no stored forecast for the whole horizon (never computed
    yet, or not since yesterday) is computed here without being stored. Read only."""
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    today = ctx.today()
    horizon = ctx.settings.forecast.horizon_days
    with ctx.db.read() as session:
        query = select(Site).order_by(Site.code)
        if actor.role is Role.SHOPKEEPER:
            query = query.where(Site.id.in_(actor.site_ids))
        result = []
        for site in session.scalars(query):
            days = _stored_days(session, site.id, today, horizon)
            if len(days) < horizon + 1:
                days = [day_view(d) for d in compute(ctx, session, site)]
            result.append({
                "id": site.id, "code": site.code, "name": site.name, "kind": site.kind,
                "days": days, "days_at_risk": [d["day"] for d in days if d["at_risk"]],
            })
        return result
