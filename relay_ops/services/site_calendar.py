"""When a site opens: its closing days declared and removed, and the days and times it is
closed (its hours and closing days), which deadlines, forecasts and messages ask about."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import ClosingDay, Site
from relay_ops.domain.errors import Conflict, NotFound
from relay_ops.domain.hours import is_open, opens_on
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.sites import site_row, site_view


def closing_days_of(session: Session, site_id: int) -> set[date]:
    return closing_days_of_sites(session, [site_id]).get(site_id, set())


def closing_days_of_sites(session: Session, site_ids: Collection[int]) -> dict[int, set[date]]:
    """Each site's closing days (those without any left out), in one statement."""
    days: dict[int, set[date]] = {}
    if site_ids:
        for site_id, day in session.execute(select(ClosingDay.site_id, ClosingDay.day)
                                            .where(ClosingDay.site_id.in_(site_ids))):
            days.setdefault(site_id, set()).add(day)
    return days


def closed_on(session: Session, site: Site) -> Callable[[date], bool]:
    """The days the site does not open: closing days and days its hours skip."""
    return closed_given(site, closing_days_of(session, site.id))


def closed_given(site: Site, closing: set[date]) -> Callable[[date], bool]:
    """:func:`closed_on` with the closing days already read (with the site, on the check-in's
    path); days before the first one asked about need not be among them.

    Answers are remembered per day: the forecast asks about the same few days once per
    parcel on hand (hundreds of thousands of calls for a big manifest, issue 15)."""
    hours = site.opening_hours
    answers: dict[date, bool] = {}

    def closed(day: date) -> bool:
        if day not in answers:
            answers[day] = not opens_on(hours, closing, day)
        return answers[day]

    return closed


def declare_closing_day(
    ctx: Ctx, actor: Principal, site_id: int, day: date, reason: str | None
) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    if day < ctx.today():
        # Today's date is state the document cannot state: a conflict, not an invalid body.
        raise Conflict("closing days are declared for today or later")
    with ctx.db.transaction() as session:
        site = site_row(session, site_id)
        existing = session.scalar(
            select(ClosingDay).where(ClosingDay.site_id == site.id, ClosingDay.day == day)
        )
        if existing is None:
            session.add(ClosingDay(site_id=site.id, day=day, reason=reason))
        else:
            existing.reason = reason
        session.flush()
        session.refresh(site)
        return site_view(site)


def remove_closing_day(ctx: Ctx, actor: Principal, site_id: int, day: date) -> None:
    require_role(actor, Role.OPERATOR, Role.SHOPKEEPER)
    require_site(actor, site_id)
    with ctx.db.transaction() as session:
        row = session.scalar(
            select(ClosingDay).where(ClosingDay.site_id == site_id, ClosingDay.day == day)
        )
        if row is None:
            raise NotFound(f"site {site_id} is not closed on {day.isoformat()}")
        session.delete(row)


def site_is_open(ctx: Ctx, session: Session, site: Site, when: datetime) -> bool:
    return sites_open(ctx, session, [site], when)[site.id]


def sites_open(ctx: Ctx, session: Session, sites: Sequence[Site], when: datetime,
               closing: Mapping[int, Collection[date]] | None = None) -> dict[int, bool]:
    """Whether each site is open at ``when`` (its status, hours and closing days), the closing
    days of that day read in one statement for all of them (a directory lists hundreds), or
    taken from ``closing`` (each site's closing days, read already)."""
    tz = ctx.settings.timezone
    day = ctx.local_day(when)
    asked = [site.id for site in sites if site.status != "closed"]
    if closing is not None:
        closed_today = {site_id for site_id in asked if day in closing.get(site_id, ())}
    elif asked:
        closed_today = set(session.scalars(select(ClosingDay.site_id).where(
            ClosingDay.site_id.in_(asked), ClosingDay.day == day)))
    else:
        closed_today = set()
    return {site.id: site.status != "closed" and is_open(
        site.opening_hours, {day} if site.id in closed_today else set(), when, tz)
        for site in sites}
