"""The shop counter: scan station, pickup, parcels on hand, labels, declarations, closing days."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops import qr
from relay_ops.domain.errors import DomainError, ValidationFailed
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import (
    accounts,
    checkin,
    expiry,
    forecast_views,
    parcel_views,
    pickup_claims,
    pickup_preview,
    season,
    site_calendar,
    site_locations,
    site_search,
    sites,
    stats,
    unannounced,
)
from relay_ops.services import pickup as pickups
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp, charts
from relay_ops.web.pages.i18n import holding_rule_label, parse_day, when
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

STAFF = (Role.SHOPKEEPER, Role.OPERATOR)
PER_PAGE = 50
MAX_PAGE = 1_000_000  # beyond this the offset overflows SQLite integers


def _site(principal: Principal, site_id: int) -> dict[str, Any]:
    """The site, or a 404 page when it is not one of the shopkeeper's."""
    site = sites.get_site(ctx(), principal, site_id)
    if not has_shelves(site["kind"]):  # a shop, or an overflow storage site run like one
        abort(404)
    return site


def _parcel_at(principal: Principal, site: dict[str, Any], parcel_id: int) -> dict[str, Any]:
    parcel = parcel_views.get_parcel(ctx(), principal, parcel_id)
    if parcel["site"] != site["code"]:
        abort(404)
    return parcel


@bp.get("/shop")
@requires(*STAFF)
def my_sites(principal: Principal) -> str:
    counters = [site for site in site_search.list_sites(ctx(), principal)
                if has_shelves(site["kind"])]
    return render_template("pages/my_sites.html", sites=counters)


# ---------------------------------------------------------------- scan station


@bp.get("/shop/<int:site_id>/scan")
@requires(*STAFF)
def scan_station(principal: Principal, site_id: int) -> str:
    return _scan_page(principal, _site(principal, site_id), None)


def _scan_page(principal: Principal, site: dict[str, Any], result: dict[str, Any] | None) -> str:
    # The "not announced" list comes from the server, so a reload, the pickup screen or
    # another counter PC shows the same parcels waiting for a decision.
    waiting = unannounced.unannounced_waiting(ctx(), principal, site["id"])
    return render_template("pages/scan.html", site=site, result=result, waiting=waiting)


@bp.post("/shop/<int:site_id>/scan")
@requires(*STAFF)
def scan(principal: Principal, site_id: int) -> Response | str:
    """One scan. The page's script sends it with fetch and shows the JSON answer; without
    script the form posts here and the page comes back with the answer."""
    site = _site(principal, site_id)
    number = request.form.get("tracking_number", "").strip()
    accept = request.form.get("accept_unannounced") == "1"
    # the carrier chosen when two carriers' parcels here carry the number (decision 0007)
    carrier = request.form.get("carrier", "").strip() or None
    try:
        answer = checkin.check_in(ctx(), principal, site_id, number, accept_unannounced=accept,
                                  carrier_code=carrier)
        result = _checked_in(site_id, answer)
    except DomainError as err:
        result = _refused(number, err)
        if err.slug == "unannounced-parcel":
            unannounced.hold_unannounced(ctx(), principal, site_id, result["tracking_number"])
    if request.accept_mimetypes.best == "application/json":
        return jsonify(result)
    return _scan_page(principal, site, result)


@bp.post("/shop/<int:site_id>/scan/set-aside")
@requires(*STAFF)
def set_aside(principal: Principal, site_id: int) -> Response | tuple[dict[str, Any], int]:
    """The shopkeeper does not take a parcel nobody announced: it leaves the list."""
    _site(principal, site_id)
    number = request.form.get("tracking_number", "")
    unannounced.set_aside_unannounced(ctx(), principal, site_id, number)
    if request.accept_mimetypes.best == "application/json":
        return {"tracking_number": number}, 200
    flash(_("%(number)s set aside: give it back to the driver.", number=number), "ok")
    return redirect(url_for("pages.scan_station", site_id=site_id), 303)


def _checked_in(site_id: int, answer: dict[str, Any]) -> dict[str, Any]:
    parcel = answer["parcel"]
    again = answer["status"] == "already_checked_in"
    deadline = when(parcel["holding_deadline"], "short")
    return {
        "tone": "info" if again else "ok",
        "title": _("Already here") if again else _("Checked in"),
        "location": parcel["location"],
        "message": (
            _("Already checked in: it is on shelf %(loc)s.", loc=parcel["location"]) if again
            else _("Put it on shelf %(loc)s. Held until %(deadline)s.",
                   loc=parcel["location"], deadline=deadline)
        ) + _grouped_note(parcel) + _holding_note(parcel, again),
        "tracking_number": parcel["tracking_number"],
        "label_url": url_for("pages.shelf_label", site_id=site_id, parcel_id=parcel["id"]),
    }


def _holding_note(parcel: dict[str, Any], again: bool) -> str:
    """Why the deadline is nearer than usual (the resident's message says so too)."""
    rule = parcel.get("holding_rule")
    if again or rule in (None, "standard", "perishable"):
        return ""
    return f" ({holding_rule_label(rule)})"


def _grouped_note(parcel: dict[str, Any]) -> str:
    """The shopkeeper shelves it with the recipient's other parcels (one code for all)."""
    group = parcel.get("group")
    if not group:
        return ""
    others = ", ".join(
        f"{p['tracking_number']} ({p['location']})" for p in group["parcels"]
        if p["id"] != parcel["id"]
    )
    return " " + _("%(n)s parcels for this recipient, same code: also %(others)s.",
                   n=group["size"], others=others)


def _refused(number: str, err: DomainError) -> dict[str, Any]:
    title, message = explain(err)
    return {
        "tone": "confirm" if err.slug == "unannounced-parcel" else "error",
        "title": title,
        "location": None,
        "message": message,
        "tracking_number": err.extra.get("tracking_number", number),
        "reason": err.slug,
        # ambiguous-tracking-number: the carriers to choose from (this shop's parcels only)
        "choices": list(err.extra.get("carriers") or []),
    }


@bp.get("/shop/<int:site_id>/parcels/<int:parcel_id>/label")
@requires(*STAFF)
def shelf_label(principal: Principal, site_id: int, parcel_id: int) -> str:
    site = _site(principal, site_id)
    parcel = _parcel_at(principal, site, parcel_id)
    code = qr.svg(parcel["tracking_number"]).decode()
    return render_template("pages/label.html", site=site, parcel=parcel, qr_svg=code)


# ---------------------------------------------------------------- pickup


@bp.get("/shop/<int:site_id>/pickup")
@requires(*STAFF)
def pickup(principal: Principal, site_id: int) -> str:
    return _pickup_page(principal, _site(principal, site_id))


def _claim_from_form() -> pickup_claims.PickupClaim:
    """The code, and what names the parcel when the shopkeeper asked for it: the page sends
    what the API takes, so the same rules apply (docs/decisions/0004)."""
    return pickup_claims.PickupClaim(
        code=request.form.get("code", ""),
        tracking_number=request.form.get("tracking_number", "").strip() or None,
        recipient_name=request.form.get("recipient_name", "").strip() or None,
    )


@bp.post("/shop/<int:site_id>/pickup")
@requires(*STAFF)
def pickup_find(principal: Principal, site_id: int) -> tuple[str, int] | str:
    """The code was typed or scanned: show where the parcel is and what the hand-over needs."""
    site = _site(principal, site_id)
    claim = _claim_from_form()
    try:
        preview = pickup_preview.pickup_preview(
            ctx(), principal, site_id, claim.code, tracking_number=claim.tracking_number,
            recipient_name=claim.recipient_name,
        )
    except DomainError as err:
        return _pickup_refused(principal, site, err, claim)
    return _pickup_page(principal, site, preview=preview, claim=claim)


@bp.post("/shop/<int:site_id>/pickup/confirm")
@requires(*STAFF)
def pickup_confirm(principal: Principal, site_id: int) -> tuple[str, int] | str:
    site = _site(principal, site_id)
    claim = _claim_from_form()
    try:
        identity = _identity_from_form()
        done = pickups.pick_up(
            ctx(), principal, site_id, code=claim.code, tracking_number=claim.tracking_number,
            recipient_name=claim.recipient_name, identity=identity,
            override_lock=identity is not None and request.form.get("override_lock") == "1",
        )
    except DomainError as err:
        return _pickup_refused(principal, site, err, claim)
    return _pickup_page(principal, site, done=done)


def _pickup_page(principal: Principal, site: dict[str, Any], **context: Any) -> str:
    # Parcels nobody announced still wait for a decision at the scan station: say so here,
    # so that serving a resident does not make the shopkeeper forget them.
    waiting = unannounced.unannounced_waiting(ctx(), principal, site["id"])
    return render_template("pages/pickup.html", site=site, waiting=waiting, **context)


def _identity_from_form() -> pickups.IdentityCheck | None:
    fields = {f: request.form.get(f, "").strip() for f in pickups.IDENTITY_FIELDS}
    if not any(fields.values()):
        return None
    return pickups.IdentityCheck.from_mapping(fields)


def _pickup_refused(
    principal: Principal, site: dict[str, Any], err: DomainError, claim: pickup_claims.PickupClaim
) -> tuple[str, int]:
    title, message = explain(err)
    # A locked code or a proxy's code can still be handed over, with an identity check.
    needs_identity = err.slug in ("pickup-code-locked", "identity-check-required")
    # Past the wrong codes alone a code may meet: the same code again, with the name or the
    # tracking number.
    needs_more = err.slug == "code-needs-tracking-or-name"
    # The name or tracking number stays for the next try (5 wrong codes with them lock the
    # parcel); the code stays only where the same code goes on.
    page = _pickup_page(
        principal, site, refusal={"title": title, "message": message},
        claim=claim if needs_identity or needs_more else pickup_claims.PickupClaim(
            tracking_number=claim.tracking_number, recipient_name=claim.recipient_name),
        needs_identity=needs_identity, needs_more=needs_more,
        locked=err.slug == "pickup-code-locked",
        holder_name=err.extra.get("holder_name"),
    )
    return page, err.status


# ---------------------------------------------------------------- parcels on hand

FILTERS = ("on_hand", "expiring", "expired", "unannounced", "damaged")


def _inventory_filter(view: str, carrier: str | None) -> parcel_views.InventoryFilter:
    hours = request.args.get("hours", 48, type=int) or 48
    match view:
        case "expiring":
            return parcel_views.InventoryFilter(expiring_within_hours=hours, carrier_code=carrier)
        case "expired":
            return parcel_views.InventoryFilter(states=("expired",), carrier_code=carrier)
        case "damaged":
            return parcel_views.InventoryFilter(states=("damaged",), carrier_code=carrier)
        case "unannounced":
            return parcel_views.InventoryFilter(unannounced=True, carrier_code=carrier)
        case _:
            return parcel_views.InventoryFilter(carrier_code=carrier)


@bp.get("/shop/<int:site_id>/parcels")
@requires(*STAFF)
def inventory(principal: Principal, site_id: int) -> str:
    site = _site(principal, site_id)
    view = request.args.get("view", "on_hand")
    if view not in FILTERS:
        view = "on_hand"
    carrier = request.args.get("carrier") or None
    page = min(max(1, request.args.get("page", 1, type=int) or 1), MAX_PAGE)
    listing = parcel_views.inventory(
        ctx(), principal, site_id, _inventory_filter(view, carrier), page, PER_PAGE
    )
    carriers = accounts.list_carriers(ctx(), principal)
    return render_template(
        "pages/inventory.html", site=site, listing=listing, view=view, carrier=carrier,
        carriers=carriers, carrier_names=_carrier_names(carriers), filters=FILTERS,
        occupancy=site_locations.occupancy(ctx(), principal, site_id),
    )


def _carrier_names(carriers: list[dict[str, Any]]) -> dict[str, str]:
    """Carrier code → name: the counter reads "Acme Parcels", not "acme"."""
    return {str(c["code"]): str(c["name"]) for c in carriers}


@bp.get("/shop/<int:site_id>/parcels/<int:parcel_id>")
@requires(*STAFF)
def parcel_detail(principal: Principal, site_id: int, parcel_id: int) -> str:
    site = _site(principal, site_id)
    parcel = _parcel_at(principal, site, parcel_id)
    events = parcel_views.parcel_history(ctx(), principal, parcel_id)
    return render_template(
        "pages/parcel.html", site=site, parcel=parcel, events=events,
        carrier_names=_carrier_names(accounts.list_carriers(ctx(), principal)),
    )


@bp.post("/shop/<int:site_id>/parcels/<int:parcel_id>/declare")
@requires(*STAFF)
def declare(principal: Principal, site_id: int, parcel_id: int) -> Response:
    site = _site(principal, site_id)
    _parcel_at(principal, site, parcel_id)
    kind = request.form.get("kind", "")
    expiry.declare(ctx(), principal, parcel_id, kind, request.form.get("note", ""))
    flash(_("Declaration recorded."), "ok")
    return redirect(url_for("pages.parcel_detail", site_id=site_id, parcel_id=parcel_id), 303)


@bp.post("/shop/<int:site_id>/parcels/<int:parcel_id>/extend")
@requires(*STAFF)
def extend(principal: Principal, site_id: int, parcel_id: int) -> Response:
    site = _site(principal, site_id)
    _parcel_at(principal, site, parcel_id)
    parcel = expiry.extend(ctx(), principal, parcel_id)
    flash(_("Held until %(deadline)s.", deadline=when(parcel["holding_deadline"])), "ok")
    return redirect(url_for("pages.parcel_detail", site_id=site_id, parcel_id=parcel_id), 303)


# ---------------------------------------------------------------- the shop: occupancy, days


@bp.get("/shop/<int:site_id>")
@requires(*STAFF)
def site_overview(principal: Principal, site_id: int) -> str:
    site = _site(principal, site_id)
    series = stats.daily(ctx(), principal, [site_id])
    fc = forecast_views.site_forecast(ctx(), principal, site_id)
    fc["name"] = site["name"]
    return render_template(
        "pages/site.html", site=site, fc=fc,
        forecast_chart=charts.forecast(site["name"], fc["days"]),
        occupancy=site_locations.occupancy(ctx(), principal, site_id),
        collection=expiry.collection_list(ctx(), principal, site_id), series=series,
        temporary_shelves=season.temporary_shelves(ctx(), principal, site_id),
        per_day_chart=charts.parcels_per_day(series), occupancy_chart=charts.occupancy(series),
    )


@bp.post("/shop/<int:site_id>/collections")
@requires(*STAFF)
def collect(principal: Principal, site_id: int) -> Response:
    """The carrier's driver takes the ticked parcels back: each becomes ``returned``."""
    _site(principal, site_id)
    numbers = request.form.getlist("tracking_number")
    if not numbers:
        flash(_("Tick the parcels the driver takes."), "error")
    else:
        results = expiry.collect(ctx(), principal, site_id, numbers)
        done = sum(r["status"] == "returned" for r in results)
        flash(_("%(n)s parcel(s) given back to the carrier.", n=done), "ok")
        for refused in (r for r in results if r["status"] != "returned"):
            flash(f"{refused['tracking_number']}: {refused['detail']}", "error")
    return redirect(url_for("pages.site_overview", site_id=site_id) + "#collect-title", 303)


@bp.post("/shop/<int:site_id>/closing-days")
@requires(*STAFF)
def add_closing_day(principal: Principal, site_id: int) -> Response:
    _site(principal, site_id)
    site_calendar.declare_closing_day(
        ctx(), principal, site_id, _form_date("day"), request.form.get("reason") or None
    )
    flash(_("Closing day recorded."), "ok")
    return redirect(url_for("pages.site_overview", site_id=site_id) + "#closing-days", 303)


@bp.post("/shop/<int:site_id>/closing-days/<day>/delete")
@requires(*STAFF)
def remove_closing_day(principal: Principal, site_id: int, day: str) -> Response:
    _site(principal, site_id)
    try:
        parsed = date.fromisoformat(day)
    except ValueError:
        abort(404)
    site_calendar.remove_closing_day(ctx(), principal, site_id, parsed)
    flash(_("Closing day withdrawn."), "ok")
    return redirect(url_for("pages.site_overview", site_id=site_id) + "#closing-days", 303)


def _form_date(field: str) -> date:
    try:
        return parse_day(request.form.get(field, ""))
    except ValueError:
        raise ValidationFailed(
            _("Give a date as day/month/year, for example 24/12/2026.")) from None
