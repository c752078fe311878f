"""Home delivery's pages (docs/home-delivery.md): the resident asks or cancels from their
tracking page, the shop's "Remise à domicile" list and hand-over, the courier's phone page
behind their one-time link. Views only translate to ``services/home_delivery``."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import DomainError, ValidationFailed
from relay_ops.services import home_delivery, resident, sites
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.i18n import day
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import ctx, requires

STAFF = (Role.SHOPKEEPER, Role.OPERATOR)


def _refused(err: DomainError) -> str:
    if err.slug == "home-delivery-refused":  # its detail says which days, which area
        return err.detail
    return explain(err)[1]


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(_("Choose a delivery day.")) from None


# ---------------------------------------------------------------- the resident


@bp.post("/t/<token>/home-delivery")
def track_home_delivery(token: str) -> Response:
    principal = resident.principal_for(ctx(), token)
    assert principal.parcel_id is not None
    form = request.form
    try:
        answer = home_delivery.request(
            ctx(), principal, principal.parcel_id, day=_day(form.get("day", "")),
            courier_kind=form.get("courier_kind", ""), courier_name=form.get("courier_name", ""),
            consent=form.get("consent") == "yes", in_area=form.get("in_area") == "yes")
    except (DomainError, ValueError) as err:
        flash(_refused(err) if isinstance(err, DomainError) else _("Choose who brings it."),
              "error")
    else:
        flash(_("Done: %(who)s will bring your parcel on %(day)s.",
                who=answer["courier"]["name"] or _("the shop"),
                day=day(answer["day"])), "ok")
    return redirect(url_for("pages.track", token=token) + "#home-delivery", 303)


@bp.post("/t/<token>/home-delivery/cancel")
def track_home_delivery_cancel(token: str) -> Response:
    principal = resident.principal_for(ctx(), token)
    assert principal.parcel_id is not None
    try:
        home_delivery.cancel(ctx(), principal, principal.parcel_id)
    except DomainError as err:
        flash(_refused(err), "error")
    else:
        flash(_("The home delivery is cancelled: your parcel waits at the shop."), "ok")
    return redirect(url_for("pages.track", token=token) + "#home-delivery", 303)


# ---------------------------------------------------------------- the shop


@bp.get("/shop/<int:site_id>/home-delivery")
@requires(*STAFF)
def home_deliveries(principal: Principal, site_id: int) -> tuple[str, int, dict[str, str]]:
    site = sites.get_site(ctx(), principal, site_id)
    page = render_template(
        "pages/home_deliveries.html", site=site,
        offer=home_delivery.get_offer(ctx(), site_id),
        deliveries=home_delivery.site_deliveries(ctx(), principal, site_id),
        today=ctx().today().isoformat())
    # The couriers' links are on the page: no copy in a shared cache.
    return page, 200, {"Cache-Control": "no-store"}


@bp.post("/shop/<int:site_id>/home-delivery/<int:delivery_id>/taken")
@requires(*STAFF)
def home_delivery_hand_over(principal: Principal, site_id: int, delivery_id: int) -> Response:
    try:
        answer = home_delivery.take(ctx(), principal, delivery_id)
    except DomainError as err:
        flash(_refused(err), "error")
    else:
        flash(_("%(number)s handed over for home delivery.",
                number=answer["parcel"]["tracking_number"]), "ok")
    return redirect(url_for("pages.home_deliveries", site_id=site_id), 303)


@bp.post("/shop/<int:site_id>/home-delivery/<int:delivery_id>/delivered")
@requires(*STAFF)
def home_delivery_delivered(principal: Principal, site_id: int, delivery_id: int) -> Response:
    try:
        answer = home_delivery.deliver(ctx(), principal, delivery_id,
                                       request.form.get("code", ""))
    except DomainError as err:
        flash(_refused(err), "error")
    else:
        flash(_("%(number)s delivered.", number=answer["parcel"]["tracking_number"]), "ok")
    return redirect(url_for("pages.home_deliveries", site_id=site_id), 303)


# ---------------------------------------------------------------- the courier's phone


def _courier(token: str) -> Principal:
    return home_delivery.courier_principal(ctx(), token)  # 404 page when the link is dead


@bp.get("/livraison/<token>")
def courier_page(token: str) -> tuple[str, int, dict[str, str]]:
    delivery = home_delivery.courier_view(ctx(), _courier(token))
    page = render_template("pages/courier.html", token=token, delivery=delivery)
    return page, 200, {"Cache-Control": "no-store"}


@bp.post("/livraison/<token>/taken")
def courier_taken(token: str) -> Response:
    courier = _courier(token)
    assert courier.delivery_id is not None
    try:
        home_delivery.take(ctx(), courier, courier.delivery_id)
    except DomainError as err:
        flash(_refused(err), "error")
    else:
        flash(_("Taken: bring it to the resident today."), "ok")
    return redirect(url_for("pages.courier_page", token=token), 303)


@bp.post("/livraison/<token>/delivered")
def courier_delivered(token: str) -> Response | tuple[str, int, dict[str, str]]:
    courier = _courier(token)
    assert courier.delivery_id is not None
    try:
        answer = home_delivery.deliver(ctx(), courier, courier.delivery_id,
                                       request.form.get("code", ""))
    except DomainError as err:
        flash(_refused(err), "error")
        return redirect(url_for("pages.courier_page", token=token), 303)
    # The link is dead now: the page says it is done instead of sending the courier to a 404.
    return render_template("pages/courier.html", token=None, delivery=answer, done=True), \
        200, {"Cache-Control": "no-store"}
