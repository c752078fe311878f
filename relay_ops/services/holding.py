"""The holding period a parcel gets at check-in (a shop's counter or a locker's door): the
standard, season, load or forecast rule (docs/forecast.md, "Adaptive holding"), and what the
parcel and its check-in event keep of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, Site
from relay_ops.domain.holding import HoldingDecision, holding_days
from relay_ops.services.context import Ctx
from relay_ops.services.forecast import Stored, load_ratio, risk_day


def holding_period(
    ctx: Ctx, session: Session, site: Site, now: datetime, stored: Stored | None = None
) -> HoldingDecision:
    """The season's, the load's and the forecast's rule (docs/forecast.md, "Adaptive
    holding"), decided once, before the ready message states the deadline; later changes
    never shorten it. ``stored``: today's stored forecast ratio and first day at risk, when
    the caller read them already."""
    today = ctx.local_day(now)
    standard = ctx.settings.holding[site.kind].days
    risk = (stored.risk_day if stored is not None
            else risk_day(ctx, session, site, today, standard))
    return holding_days(
        site.kind, standard, today, load_ratio(ctx, session, site, today, stored=stored),
        ctx.settings.adaptive_holding, risk_day=risk,
    )


def holding_facts(holding: HoldingDecision) -> dict[str, Any]:
    """What the check-in event records of the holding rule that applied."""
    facts: dict[str, Any] = {"holding_days": holding.days, "holding_rule": holding.rule}
    if holding.reminder_before_hours is not None:
        facts["reminder_before_hours"] = holding.reminder_before_hours
    if holding.risk_day is not None:
        facts["risk_day"] = holding.risk_day.isoformat()
    return facts


def keep_holding(parcel: Parcel, holding: HoldingDecision) -> None:
    """The rule and its reminder stay on the parcel: the reminder job and the views read
    them."""
    parcel.holding_rule = holding.rule
    parcel.reminder_before_hours = holding.reminder_before_hours
