"""The forecast sweep: every site's forecast recomputed and stored, the plain function the
scheduler calls (nightly and hourly) and ``relay-ops forecast``.

A hundred sites per transaction, their inputs read together (``forecast.inputs_of_sites``:
each part one statement for all of them) and their days stored in one statement. A failing
site holds no other back: a batch that fails is done again one site per transaction, and the
sites that fail alone are logged and counted (a national network's sweep must not stop at
its first broken site, nor skip the hundred sites batched with it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import select

from relay_ops.db.models import Site
from relay_ops.domain import forecast as model
from relay_ops.services import forecast
from relay_ops.services.context import Ctx

log = logging.getLogger(__name__)

SITES_PER_TRANSACTION = 100


def forecast_all(ctx: Ctx) -> dict[str, int]:
    """Every site's forecast: ``sites`` counted, ``days_at_risk`` among their days, and the
    sites whose forecast ``failed`` (logged)."""
    with ctx.db.read() as session:
        ids = list(session.scalars(select(Site.id).order_by(Site.id)))
    at_risk = failed = 0
    for start in range(0, len(ids), SITES_PER_TRANSACTION):
        batch = ids[start:start + SITES_PER_TRANSACTION]
        try:
            at_risk += _forecast_sites(ctx, batch)
            continue
        except Exception:  # one site's failure must not hold its batch back
            log.exception("forecast sweep: sites %s to %s failed together; one by one",
                          batch[0], batch[-1])
        for site_id in batch:
            try:
                at_risk += _forecast_sites(ctx, [site_id])
            except Exception:  # nor the sites after it
                log.exception("forecast sweep: site %s failed", site_id)
                failed += 1
    return {"sites": len(ids), "days_at_risk": at_risk, "failed": failed}


def _forecast_sites(ctx: Ctx, ids: Sequence[int]) -> int:
    """The sites' forecasts computed and stored in one transaction: their days at risk."""
    with ctx.db.transaction() as session:
        sites = list(session.scalars(select(Site).where(Site.id.in_(ids)).order_by(Site.id)))
        days: dict[int, list[model.DayForecast]] = {
            site_id: model.forecast(inputs)
            for site_id, inputs in forecast.inputs_of_sites(ctx, session, sites).items()}
        forecast.store_sites(ctx, session, days)
    return sum(day.at_risk for site_days in days.values() for day in site_days)
