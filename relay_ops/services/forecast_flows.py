"""What a site's forecast learns of its other parcels: those sent from it and producers'
orders deposited at it (issue 17; the model is ``domain/forecast_flows.py``, docs/forecast.md
"Sent parcels and producer orders").

Each flow is read in one statement that counts its parcels alike in SQL, as
``forecast_learning`` does for the site's own parcels: by local day of the deposit, local day
it left the shelf (``Parcel.closed_at``: collected, handed back, picked up, taken back by its
producer, lost; none while it is on the shelf) and moment of its announcement (a producer's
order, the evening before; a parcel to send at a locker, with its drop-off code). A sent
parcel's deposit is its ``checked_in_at`` (set by the drop-off), an order's its first check-in.
Each order has its own announcement moment, so orders come one row each: a shop's few
hundred over the dwell window. Both statements read a partial index (``parcels`` sent, or
of no carrier), so a shop's 100,000 received parcels are never scanned for them. The
counts are those of the parcels taken one by one (``tests/integration/test_forecast_flows.py``
compares the two).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relay_ops.db.local_date import local_date
from relay_ops.db.models import Parcel, ProducerOrder, Site
from relay_ops.domain import forecast as model
from relay_ops.domain import forecast_flows as flows
from relay_ops.domain import outbound
from relay_ops.services.context import Ctx
from relay_ops.services.forecast_learning import (
    rate_and_leads,
    window_start,
)

# (local day of the deposit, local day it left the shelf or None, announced at or None, count)
Deposits = list[tuple[date, date | None, datetime | None, int]]


def sent_deposits(ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime
                  ) -> dict[int, Deposits]:
    """The parcels sent from each site over the learning windows, counted alike."""
    zone = ctx.settings.timezone
    day, left = local_date(Parcel.checked_in_at, zone), local_date(Parcel.closed_at, zone)
    return _by_site(sites, session.execute(
        select(Parcel.site_id, day, left, Parcel.announced_at, func.count())
        .where(Parcel.site_id.in_([site.id for site in sites]),
               Parcel.direction == outbound.DIRECTION,
               Parcel.checked_in_at >= window_start(ctx, now))
        .group_by(Parcel.site_id, day, left, Parcel.announced_at)
    ))


def order_deposits(ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime
                   ) -> dict[int, Deposits]:
    """The producers' orders deposited at each site over the learning windows, counted alike
    (their announcement is the order's: ``ProducerOrder.announced_at``)."""
    zone = ctx.settings.timezone
    day, left = local_date(Parcel.first_check_in_at, zone), local_date(Parcel.closed_at, zone)
    return _by_site(sites, session.execute(
        select(Parcel.site_id, day, left, ProducerOrder.announced_at, func.count())
        .join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        .where(Parcel.site_id.in_([site.id for site in sites]), Parcel.carrier_id.is_(None),
               Parcel.first_check_in_at >= window_start(ctx, now))
        .group_by(Parcel.site_id, day, left, ProducerOrder.announced_at)
    ))


def _by_site(sites: Sequence[Site], rows: Iterable[Any]) -> dict[int, Deposits]:
    deposits: dict[int, Deposits] = {site.id: [] for site in sites}
    for site_id, day, left, at, count in rows:
        deposits[site_id].append((day, left, at, count))
    return deposits


def learned(
    ctx: Ctx, kind: str, deposits: Deposits, now: datetime, closed: model.ClosedOn
) -> flows.Flow:
    """A flow's rate, lead shares and dwell from its deposits (nothing on hand yet)."""
    settings = ctx.settings.forecast
    rate, lead_share = rate_and_leads(
        ctx, now, closed, [(day, at, count) for day, _, at, count in deposits])
    today = ctx.local_day(now)
    since = today - timedelta(days=settings.dwell_window_days)
    stays: Counter[model.Stay] = Counter()
    for day, left, _, count in deposits:
        if day >= since:
            # Leaving the shelf, whatever the way out, is the flow's departure.
            stays[model.Stay(check_in=day, ended=left, picked_up=left is not None)] += count
    hazards = model.learn_hazards(stays, flows.PRIOR_FLOW_HAZARDS[kind], today, closed,
                                  settings.prior_weight)
    return flows.Flow(kind=kind, rate=rate, lead_share=lead_share, hazards=hazards,
                      after_peak=kind == flows.SENT)


def site_flows(
    ctx: Ctx, session: Session, sites: Sequence[Site], now: datetime,
    closed: Mapping[int, model.ClosedOn], held: Mapping[int, dict[str, Counter[int]]],
    announced: Mapping[int, dict[str, list[flows.FlowArrival]]],
) -> dict[int, list[flows.Flow]]:
    """Each site's flows as the forecast takes them: learned, with their parcels on hand (by
    age in open days) and announced, which ``services/forecast.py`` reads with its own."""
    read = {flows.SENT: sent_deposits(ctx, session, sites, now),
            flows.ORDERS: order_deposits(ctx, session, sites, now)}
    result: dict[int, list[flows.Flow]] = {}
    for site in sites:
        result[site.id] = []
        for kind in flows.KINDS:
            flow = learned(ctx, kind, read[kind][site.id], now, closed[site.id])
            result[site.id].append(replace(
                flow, held=dict(held.get(site.id, {}).get(kind, {})),
                announced=announced.get(site.id, {}).get(kind, [])))
    return result
