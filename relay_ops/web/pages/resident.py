"""The resident's page behind the signed link in their message: no account, no password."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import DomainError
from relay_ops.services import credentials, expiry, home_delivery, resident
from relay_ops.web.pages import bp
from relay_ops.web.pages.i18n import DAYS, when
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx

OSM = "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"


def _view(token: str) -> dict[str, Any]:
    principal = resident.principal_for(ctx(), token)  # 404 forged, 410 expired: error pages
    view = resident.resident_view(ctx(), principal)
    site = view["site"]
    view["map_url"] = OSM.format(lat=site["latitude"], lon=site["longitude"])
    view["hours"] = _hours(site["opening_hours"])
    view["home_delivery"] = home_delivery.for_resident(ctx(), principal)
    return view


def _hours(hours: Any) -> list[tuple[str, str]] | None:
    """[(day key, "08:30–12:30, 15:00–19:00" or "")] in week order; None means always open."""
    if hours == "24/7":
        return None
    return [(d, ", ".join(f"{a}–{b}" for a, b in hours.get(d, []))) for d in DAYS]


@bp.get("/t/<token>")
def track(token: str) -> tuple[str, int, dict[str, str]]:
    page = render_template("pages/track.html", token=token, parcel=_view(token))
    # The pickup code is on the page: no copy in a shared cache or on the phone's disk.
    return page, 200, {"Cache-Control": "no-store"}


@bp.post("/t/<token>/extension")
def track_extend(token: str) -> Response:
    principal = resident.principal_for(ctx(), token)
    assert principal.parcel_id is not None
    try:
        parcel = expiry.extend(ctx(), principal, principal.parcel_id)
    except DomainError as err:
        flash(explain(err)[1], "error")
    else:
        flash(_("Done: your parcel is kept until %(deadline)s.",
                deadline=when(parcel["holding_deadline"], "full")), "ok")
    return redirect(url_for("pages.track", token=token), 303)


@bp.post("/t/<token>/refusal")
def track_refuse(token: str) -> Response:
    principal = resident.principal_for(ctx(), token)
    assert principal.parcel_id is not None
    try:
        expiry.refuse_delivery(ctx(), principal, principal.parcel_id,
                               request.form.get("reason", ""))
    except DomainError as err:
        flash(explain(err)[1], "error")
        return redirect(url_for("pages.track", token=token), 303)
    flash(_("Done: the parcel goes back to its sender."), "ok")
    return redirect(url_for("pages.track", token=token), 303)


@bp.post("/t/<token>/proxy")
def track_proxy(token: str) -> Response:
    principal = resident.principal_for(ctx(), token)
    assert principal.parcel_id is not None
    try:
        credentials.name_proxy(ctx(), principal, principal.parcel_id, request.form.get("name", ""))
    except DomainError as err:
        flash(explain(err)[1], "error")
        return redirect(url_for("pages.track", token=token), 303)
    # Post/redirect/get: reloading the answer reads the code again instead of sending the
    # form again (which would have replaced the code the neighbour was already given).
    return redirect(url_for("pages.track_proxy_named", token=token), 303)


@bp.get("/t/<token>/proxy")
def track_proxy_named(token: str) -> Response | tuple[str, int, dict[str, str]]:
    """The answer to naming a proxy: their live code, read again on every reload. The code
    is never put in a cookie or the address; the tracking page itself only names the proxy."""
    principal = resident.principal_for(ctx(), token)
    named = resident.named_proxy(ctx(), principal)
    if named is None:
        return redirect(url_for("pages.track", token=token), 303)
    page = render_template("pages/track.html", token=token, parcel=_view(token), named=named)
    # A code on the page: no copy in a shared cache or the browser's disk cache.
    return page, 200, {"Cache-Control": "no-store"}
