"""Sending from the village: the scan station's "Envoi" page, the carrier's collection page
and the sender's receipt (docs/outbound.md). Views only translate to ``services/outbound``."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import DomainError
from relay_ops.services import (
    carrier_sites,
    locker_sending,
    outbound,
    outbound_exceptions,
    parcel_views,
    pickup_lists,
    sites,
)
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.i18n import when
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

STAFF = (Role.SHOPKEEPER, Role.OPERATOR)
CARRIER_ROLES = (Role.CARRIER, Role.OPERATOR)
REFUSED = "refused"  # refused by the carrier, on the shelf until its sender takes it back


def _shop(principal: Principal, site_id: int) -> dict[str, Any]:
    site = sites.get_site(ctx(), principal, site_id)
    if site["kind"] != "shop":
        abort(404)
    return site


# ---------------------------------------------------------------- the counter: "Envoi"


@bp.get("/shop/<int:site_id>/send")
@requires(*STAFF)
def send_station(principal: Principal, site_id: int) -> str:
    return _send_page(principal, _shop(principal, site_id), None)


@bp.post("/shop/<int:site_id>/send")
@requires(*STAFF)
def send_scan(principal: Principal, site_id: int) -> str:
    """One sender's parcel scanned in; the page comes back with the shelf in big letters."""
    site = _shop(principal, site_id)
    form = request.form
    number = form.get("tracking_number", "").strip()
    sender = outbound.Sender(phone=form.get("phone", "").strip() or None,
                             email=form.get("email", "").strip() or None,
                             locale="en" if form.get("locale") == "en" else "fr")
    is_return = form.get("reason") == "return"
    try:
        status, answer = outbound.drop_off(
            ctx(), principal, site_id, number, carrier_code=form.get("carrier") or None,
            sender=sender, reason="return" if is_return else "send",
            return_of=(form.get("return_of", "").strip() or None) if is_return else None,
        )
        result = _dropped_off(answer)
    except DomainError as err:
        title, message = _explain_deposit(err)
        result = {"tone": "error", "title": title, "message": message,
                  "tracking_number": number, "carriers": err.extra.get("carriers") or []}
    return _send_page(principal, site, result)


def _explain_deposit(err: DomainError) -> tuple[str, str]:
    if err.slug == "conflict":  # the label is another parcel's (refusals.py is generic)
        return _("Already registered"), _(
            "This label belongs to a parcel already registered: a parcel sent needs a label of "
            "its own (for a return, the return label).")
    return explain(err)


def _dropped_off(answer: dict[str, Any]) -> dict[str, Any]:
    parcel = answer["parcel"]
    again = answer["status"] == "already_dropped_off"
    return {
        "tone": "info" if again else "ok",
        "title": _("Already here") if again else _("Dropped off for sending"),
        "location": parcel["location"],
        "message": (
            _("Already dropped off: it is on shelf %(loc)s.", loc=parcel["location"]) if again
            else _("Put it on shelf %(loc)s. %(carrier)s collects it by %(by)s.",
                   loc=parcel["location"], carrier=parcel["carrier"],
                   by=when(parcel["collect_by"], "short"))
        ),
        "tracking_number": parcel["tracking_number"],
        "receipt_url": answer["receipt_url"],
    }


def _send_page(principal: Principal, site: dict[str, Any], result: dict[str, Any] | None
               ) -> str:
    refused = parcel_views.inventory(ctx(), principal, site["id"],
                                     parcel_views.InventoryFilter(states=(REFUSED,)), 1, 200)
    return render_template(
        "pages/send.html", site=site, result=result,
        carriers=carrier_sites.site_carriers(ctx(), principal, site["id"]),
        waiting=pickup_lists.pickup_list(ctx(), principal, site["id"])["items"],
        refused=refused["items"],
    )


# ---------------------------------------------------------------- refusal and hand-back


@bp.post("/shop/<int:site_id>/send/<int:parcel_id>/refusal")
@requires(*STAFF)
def send_refuse(principal: Principal, site_id: int, parcel_id: int) -> Response:
    """The driver will not take a parcel (badly packed, too heavy): the shopkeeper records
    it; the parcel stays on its shelf and its sender is told to take it back."""
    _sent_here(principal, _shop(principal, site_id), parcel_id)
    reason = request.form.get("reason", "").strip()
    if not reason:  # the form requires it; said in the page's words when a browser did not
        flash(_("Say why the driver refuses it."), "error")
        return redirect(url_for("pages.send_station", site_id=site_id), 303)
    try:
        view = outbound_exceptions.refuse(ctx(), principal, parcel_id, reason)
    except DomainError as err:
        flash(explain(err)[1], "error")
    else:
        flash(_("%(number)s refused by the carrier: its sender is told to take it back.",
                number=view["tracking_number"]), "ok")
    return redirect(url_for("pages.send_station", site_id=site_id), 303)


@bp.post("/shop/<int:site_id>/send/<int:parcel_id>/hand-back")
@requires(*STAFF)
def send_hand_back(principal: Principal, site_id: int, parcel_id: int) -> Response:
    """The sender takes their parcel back (refused, damaged, or changed their mind)."""
    _sent_here(principal, _shop(principal, site_id), parcel_id)
    try:
        view = outbound_exceptions.hand_back(ctx(), principal, parcel_id)
    except DomainError as err:
        flash(explain(err)[1], "error")
    else:
        flash(_("%(number)s handed back to its sender.", number=view["tracking_number"]), "ok")
    return redirect(url_for("pages.send_station", site_id=site_id), 303)


def _sent_here(principal: Principal, site: dict[str, Any], parcel_id: int) -> None:
    """Another shop's parcel, or a received one, is not this page's: a 404, as elsewhere."""
    parcel = parcel_views.get_parcel(ctx(), principal, parcel_id)
    if parcel["site"] != site["code"] or parcel.get("direction") != "outbound":
        abort(404)


# ---------------------------------------------------------------- the carrier's collection


@bp.get("/carrier/collections")
@requires(*CARRIER_ROLES)
def collection_sites(principal: Principal) -> str:
    return render_template("pages/collection_sites.html",
                           rows=carrier_sites.collection_sites(ctx(), principal))


@bp.get("/carrier/collections/<int:site_id>")
@requires(Role.CARRIER)
def collection(principal: Principal, site_id: int) -> str:
    listing = pickup_lists.pickup_list(ctx(), principal, site_id)
    return render_template("pages/collection.html", site_id=site_id, listing=listing,
                           by_round=_by_round(listing))


def _by_round(listing: dict[str, Any]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """The carrier's list cut by round: each round with the parcels first due at it (one
    group, no round, when the carrier declared none here)."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for item in sorted(listing["items"], key=lambda p: p["round"] or ""):
        groups.setdefault(item["round"], []).append(item)
    return list(groups.items())


@bp.post("/carrier/collections/<int:site_id>")
@requires(Role.CARRIER)
def collection_scan(principal: Principal, site_id: int) -> Response:
    """The carrier scans a parcel it takes, or marks one of its list as not found."""
    number = request.form.get("tracking_number", "").strip()
    found = request.form.get("found", "1") != "0"
    try:
        item = outbound.collect(ctx(), principal, site_id, [number] if found else [],
                                [] if found else [number])[0]
    except DomainError as err:
        flash(explain(err)[1], "error")
    else:
        if item["status"] == "collected":
            flash(_("%(number)s taken.", number=item["tracking_number"]), "ok")
        elif item["status"] == "lost":
            flash(_("%(number)s recorded as not found: the operator is told.",
                    number=item["tracking_number"]), "ok")
        else:
            flash(_("%(number)s is not on your list here.", number=number), "error")
    return redirect(url_for("pages.collection", site_id=site_id), 303)


# ---------------------------------------------------------------- the sender's receipt


@bp.get("/envoi/<token>")
def send_receipt(token: str) -> str:
    return render_template("pages/receipt.html", receipt=outbound.receipt(ctx(), token),
                           locker_code=locker_sending.sender_code(ctx(), token))
