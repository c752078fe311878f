"""The season's shape, declared network-wide by the operator (``domain/demand_index.py``):
declared by hand (API, CLI: a carrier's peak forecast, a file), or derived from the network's
own first attempts a year before; read by the forecast's learning
(``forecast_learning.demand_index``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from relay_ops.db.local_date import local_date
from relay_ops.db.models import DemandDay, Parcel
from relay_ops.domain.demand_index import MAX_FACTOR, MIN_FACTOR, check_factor
from relay_ops.domain.errors import ValidationFailed
from relay_ops.services.context import Ctx
from relay_ops.services.forecast_learning import is_order
from relay_ops.services.principal import Principal, Role, require_role

log = logging.getLogger(__name__)

MAX_DAYS = 400  # declared at once: a season, or a year and its margins
YEAR = timedelta(days=364)  # 52 weeks: the same weekday a year before
# A past year's day is the mean of the three centred on it: a day's count alone is noise, a
# week's mean blurs a six-day Black Friday (docs/forecast.md, "The season's shape").
SMOOTHING_DAYS = 3
REFERENCE_DAYS = 56  # the ordinary level: the eight weeks before the period, a year before


def declared(ctx: Ctx, actor: Principal, first: date, last: date) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    _check_period(first, last)
    with ctx.db.read() as session:
        rows = session.scalars(
            select(DemandDay).where(DemandDay.day.between(first, last)).order_by(DemandDay.day)
        )
        return [_view(row) for row in rows]


def ahead(ctx: Ctx, actor: Principal) -> dict[str, Any]:
    """The factors declared from today to the forecast's horizon: whether the forecasts know
    the season ahead (the operator's dashboard says so, and what to do when they do not)."""
    today = ctx.today()
    last = today + timedelta(days=ctx.settings.forecast.horizon_days)
    days = declared(ctx, actor, today, last)
    return {"from": today.isoformat(), "to": last.isoformat(), "days": days,
            "highest": max((day["factor"] for day in days), default=None)}


def declare(
    ctx: Ctx, actor: Principal, days: Sequence[tuple[date, float]], source: str | None = None
) -> list[dict[str, Any]]:
    """Declare (or declare again) each day's factor, all or none. The forecasts follow at
    their next run (``forecast_all``)."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    factors = _checked(days)
    now = ctx.now()
    with ctx.db.transaction() as session:
        session.execute(delete(DemandDay).where(DemandDay.day.in_(list(factors))))
        session.add_all(DemandDay(day=day, factor=factor, source=source, declared_at=now)
                        for day, factor in sorted(factors.items()))
    log.info("demand index: %d day(s) declared by %s, %s to %s", len(factors), actor.key,
             min(factors), max(factors))
    return declared(ctx, actor, min(factors), max(factors))


def withdraw(ctx: Ctx, actor: Principal, first: date, last: date) -> int:
    """Forget the factors from ``first`` to ``last``: those days are ordinary again."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    _check_period(first, last)
    with ctx.db.transaction() as session:
        result = session.execute(delete(DemandDay).where(DemandDay.day.between(first, last)))
        gone = int(result.rowcount or 0)  # type: ignore[attr-defined]
    log.info("demand index: %d day(s) withdrawn by %s, %s to %s", gone, actor.key, first, last)
    return gone


def from_last_year(ctx: Ctx, actor: Principal, first: date, last: date) -> list[dict[str, Any]]:
    """Declare ``first`` to ``last`` from the network's first attempts 52 weeks before: each
    day's factor is the mean of the three days centred on it, over the mean of the eight
    weeks before the period, a year before (an ordinary autumn for a December)."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    _check_period(first, last)
    before = first - YEAR - timedelta(days=REFERENCE_DAYS)
    half = SMOOTHING_DAYS // 2
    with ctx.db.read() as session:
        counts = _network_attempts(ctx, session, before, last - YEAR + timedelta(days=half))
    reference = [counts.get(before + timedelta(days=i), 0) for i in range(REFERENCE_DAYS)]
    ordinary = sum(reference) / REFERENCE_DAYS
    if ordinary <= 0:
        raise ValidationFailed(
            f"no parcel came in the eight weeks before {first - YEAR}: no ordinary level to "
            "measure last year's season against",
            slug="no-history",
        )
    days = []
    for i in range((last - first).days + 1):
        then = first + timedelta(days=i) - YEAR
        around = [counts.get(then + timedelta(days=k), 0) for k in range(-half, half + 1)]
        factor = min(max(sum(around) / len(around) / ordinary, MIN_FACTOR), MAX_FACTOR)
        days.append((first + timedelta(days=i), round(factor, 3)))
    return declare(ctx, actor, days, source=f"network first attempts {first.year - 1}")


def _network_attempts(ctx: Ctx, session: Session, first: date, last: date) -> dict[date, int]:
    """The network's first attempts (carriers' parcels, not producers' orders) per local day."""
    day = local_date(Parcel.first_attempt_at, ctx.settings.timezone)
    since, until = ctx.day_start(first), ctx.day_start(last + timedelta(days=1))
    rows = session.execute(
        select(day, func.count())
        .where(Parcel.first_attempt_at >= since, Parcel.first_attempt_at < until, ~is_order())
        .group_by(day)
    )
    return {when: count for when, count in rows}


def _checked(days: Sequence[tuple[date, float]]) -> dict[date, float]:
    if not days:
        raise ValidationFailed("declare at least one day", field="days")
    if len(days) > MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days at once", field="days")
    factors: dict[date, float] = {}
    for day, factor in days:
        if day in factors:
            raise ValidationFailed(f"{day} is declared twice", field="days")
        factors[day] = check_factor(factor)
    return factors


def _check_period(first: date, last: date) -> None:
    if last < first:
        raise ValidationFailed("the period ends before it starts", field="to")
    if (last - first).days >= MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days at once", field="to")


def _view(row: DemandDay) -> dict[str, Any]:
    return {"day": row.day.isoformat(), "factor": row.factor, "source": row.source,
            "declared_at": row.declared_at.isoformat()}
