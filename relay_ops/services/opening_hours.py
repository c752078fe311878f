"""A site's opening hours set by an operator: effective at once (``open_now``, the deadlines
of later check-ins); a shop that had none owes its waiting parcels their ready message, with
deadlines re-dated by the check-in's rules (`checkin.resend_ready_after_hours_set`).

Above both `sites` and `checkin`, which it joins: `sites` never reaches back to the check-in.
"""

from __future__ import annotations

from typing import Any

from relay_ops.domain.hours import opens_some_day, validate_site_hours
from relay_ops.services import checkin
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.sites import site_row, site_view


def set_opening_hours(ctx: Ctx, actor: Principal, site_id: int, hours: object) -> dict[str, Any]:
    """New opening hours, effective at once (``open_now``, deadlines of later check-ins).

    Parcels waiting here whose ready message failed for want of hours (a shop created before
    hours were required) are owed that message again, with a deadline recomputed under the
    new hours: nobody was told the old one, which ran to the closed-run cap.
    """
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    checked = validate_site_hours(hours)
    with ctx.db.transaction() as session:
        site = site_row(session, site_id, lock=True)
        had_hours = opens_some_day(site.opening_hours)
        site.opening_hours = checked
        session.flush()
        if not had_hours:
            checkin.resend_ready_after_hours_set(ctx, session, site, actor)
        session.refresh(site)
        return site_view(site)
