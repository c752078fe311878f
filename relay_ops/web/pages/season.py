"""Season capacity on the pages (docs/forecast.md, "Season capacity"): the shop declares and
withdraws temporary shelves on its page; the operator's dashboard shows, per shop, the extra
places the forecast asks for and the parcels held under a shortened period, per overflow
storage site the places the shops within its reach would need there, and whether the season
ahead is declared to the forecasts."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Flask, flash, redirect, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import ValidationFailed
from relay_ops.services import demand_index, forecast_views, season, sites
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.dashboard import Panel, register_panel
from relay_ops.web.pages.i18n import parse_day
from relay_ops.web.pages.security import ctx, requires

STAFF = (Role.SHOPKEEPER, Role.OPERATOR)
TEMPLATE = "pages/_season.html"


def init_app(app: Flask) -> None:
    register_panel(app, Panel("season", TEMPLATE, load=load))


def load(principal: Principal) -> dict[str, Any]:
    forecasts = forecast_views.overview(ctx(), principal)  # read once for both tables
    return {"recommendations": season.recommendations(ctx(), principal, forecasts=forecasts),
            "storage": season.storage_recommendations(ctx(), principal, forecasts),
            "demand": demand_index.ahead(ctx(), principal)}


@bp.post("/shop/<int:site_id>/temporary-shelves")
@requires(*STAFF)
def declare_temporary_shelf(principal: Principal, site_id: int) -> Response:
    sites.get_site(ctx(), principal, site_id)  # a 404 for another shop, before reading
    shelf = season.TemporaryShelf(
        label=request.form.get("label", "").strip()[:20] or _missing("label"),
        size_class=request.form.get("size_class", "M"),
        capacity=_form_places(),
        valid_from=_form_day("valid_from"),
        valid_until=_form_day("valid_until"),
    )
    season.declare_temporary_shelf(ctx(), principal, site_id, shelf)
    flash(_("Temporary shelf %(label)s recorded.", label=shelf.label), "ok")
    return redirect(url_for("pages.site_overview", site_id=site_id) + "#season", 303)


@bp.post("/shop/<int:site_id>/temporary-shelves/<int:shelf_id>/delete")
@requires(*STAFF)
def withdraw_temporary_shelf(principal: Principal, site_id: int, shelf_id: int) -> Response:
    season.withdraw_temporary_shelf(ctx(), principal, site_id, shelf_id)
    flash(_("Temporary shelf withdrawn."), "ok")
    return redirect(url_for("pages.site_overview", site_id=site_id) + "#season", 303)


def _missing(field: str) -> str:
    raise ValidationFailed(_("Fill in the shelf's label."), field=field)


def _form_places() -> int:
    text = request.form.get("capacity", "").strip()
    if not text.isdigit() or len(text) > 6:
        raise ValidationFailed(_("Give the number of places as a whole number."))
    return int(text)


def _form_day(field: str) -> date:
    try:
        return parse_day(request.form.get(field, ""))
    except ValueError:
        raise ValidationFailed(
            _("Give a date as day/month/year, for example 24/12/2026.")) from None
