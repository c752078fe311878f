"""The counter's "Producteurs" page: the day's producer orders at the shop, the scan of an
order a producer brings, and an uncollected order handed back to its producer; and the
producer's own page: its orders and their states, and what it has to take back
(docs/producers.md). Views only translate to ``services/producers``."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from flask_babel import gettext as _

from relay_ops.domain.errors import DomainError
from relay_ops.services import producer_counter, producers, sites
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.i18n import when
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

STAFF = (Role.SHOPKEEPER, Role.OPERATOR)
# The states an order goes through, in order, for the producer's filter.
ORDER_STATES = ("announced", "ready_for_pickup", "out_for_delivery", "picked_up", "delivered",
                "expired", "damaged", "returned", "missing", "cancelled")


def _shop(principal: Principal, site_id: int) -> dict[str, Any]:
    site = sites.get_site(ctx(), principal, site_id)
    if site["kind"] != "shop":
        abort(404)
    return site


@bp.get("/shop/<int:site_id>/producers")
@requires(*STAFF)
def producer_station(principal: Principal, site_id: int) -> str:
    return _page(principal, _shop(principal, site_id), None)


@bp.post("/shop/<int:site_id>/producers")
@requires(*STAFF)
def producer_scan(principal: Principal, site_id: int) -> str:
    """An order scanned in (its reference or label), or handed back to its producer."""
    site = _shop(principal, site_id)
    form = request.form
    reference = form.get("reference", "").strip()
    producer = form.get("producer") or None
    try:
        if form.get("action") == "take_back":
            item = producer_counter.take_back(ctx(), principal, site_id, [reference], producer)[0]
            result = _taken_back(item)
        else:
            _status, answer = producer_counter.deposit(ctx(), principal, site_id, reference,
                                                       producer)
            result = _deposited(answer)
    except DomainError as err:
        title, message = _explain(err)
        result = {"tone": "error", "title": title, "message": message, "reference": reference,
                  "producers": err.extra.get("producers") or []}
    return _page(principal, site, result)


def _explain(err: DomainError) -> tuple[str, str]:
    match err.slug:
        case "no-cold-place":
            return _("No cold place free"), _(
                "This order must be kept cold and no refrigerated place is free: free one, "
                "or let the producer keep it.")
        case "producer-choice-needed":
            return _("Which producer?"), _(
                "Several producers have an order with this reference here: choose the one "
                "on the bag.")
        case "validation-failed":
            return _("Not accepted"), err.detail
    return explain(err)


def _deposited(answer: dict[str, Any]) -> dict[str, Any]:
    order = answer["order"]
    again = answer["status"] == "already_checked_in"
    return {
        "tone": "info" if again else "ok",
        "title": _("Already here") if again else _("Order received"),
        "location": order["location"],
        "message": (
            _("Already checked in: it is on shelf %(loc)s.", loc=order["location"]) if again
            else _("Put it on shelf %(loc)s. The customer is told; it is kept until %(by)s.",
                   loc=order["location"], by=when(order["holding_deadline"], "short"))
        ),
        "reference": order["reference"],
        "cold": order["keep_cold"],
    }


def _taken_back(item: dict[str, Any]) -> dict[str, Any]:
    if item["status"] == "returned":
        return {"tone": "ok", "title": _("Handed back"), "reference": item["reference"],
                "message": _("The producer took this order back.")}
    return {"tone": "error", "title": _("Not handed back"), "reference": item["reference"],
            "message": item["detail"]}


def _page(principal: Principal, site: dict[str, Any], result: dict[str, Any] | None) -> str:
    return render_template(
        "pages/producers.html", site=site, result=result,
        orders=producers.site_day(ctx(), principal, site["id"]),
        producer_list=producers.list_producers(ctx(), principal),
    )


# ---------------------------------------------------------------- the producer's own page


@bp.get("/producer")
@requires(Role.PRODUCER)
def producer_home(principal: Principal) -> str:
    state = request.args.get("state") or None
    if state is not None and state not in ORDER_STATES:
        state = None  # an unknown filter shows every order rather than an error page
    return render_template(
        "pages/producer_home.html", state=state, states=ORDER_STATES,
        orders=producers.my_orders(ctx(), principal, state),
        take_back=producers.take_back_list(ctx(), principal),
    )
