"""The operator's dashboard: sites and how full they are, flows per day, each site's volumes per
flow (received, sent, producers' orders, home deliveries), what expires and returns.

Extension point: other parts of RelayOps add panels without editing this module. The lockers
work registers its live locker status (online, offline, faults, compartments out of service)
with :func:`register_panel` from its own ``init_app``; until then the dashboard shows no locker
panel rather than an invented one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, render_template, request

from relay_ops.services import forecast_views, no_room_policies, site_search, stats
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp, charts
from relay_ops.web.pages.security import ctx, requires

PANELS_KEY = "pages_dashboard_panels"


@dataclass(frozen=True)
class Panel:
    """A section of the dashboard: a template rendered with what ``load`` returns."""

    name: str
    template: str
    load: Callable[[Principal], dict[str, Any]]


def register_panel(app: Flask, panel: Panel) -> None:
    app.extensions.setdefault(PANELS_KEY, []).append(panel)


def _panels(principal: Principal) -> list[tuple[Panel, dict[str, Any]]]:
    return [(p, p.load(principal)) for p in current_app.extensions.get(PANELS_KEY, [])]


@bp.get("/ops")
@requires(Role.OPERATOR)
def dashboard(principal: Principal) -> str:
    all_sites = site_search.list_sites(ctx(), principal)
    site_id = request.args.get("site", type=int)
    chosen = [site_id] if site_id else None
    series = stats.daily(ctx(), principal, chosen, days=14)
    forecasts = forecast_views.overview(ctx(), principal)
    fc = next((f for f in forecasts if f["id"] == site_id), None)
    today = ctx().today()
    return render_template(
        "pages/dashboard.html",
        sites=all_sites,
        site_id=site_id,
        series=series,
        per_day_chart=charts.parcels_per_day(series),
        occupancy_chart=charts.occupancy(series),
        watch=stats.watch_list(
            ctx(), principal, within_hours=current_app.config["EXPIRING_WITHIN_HOURS"]
        ),
        flows=stats.flow_volumes(ctx(), principal),
        panels=_panels(principal),
        forecasts=forecasts,
        fc=fc,
        forecast_chart=charts.forecast(fc["name"], fc["days"]) if fc else None,
        # Parcels no site within reach had room for, expected from today on (docs/overflow.md).
        no_room=no_room_policies.summary(ctx(), principal, today, today + timedelta(days=7)),
    )
