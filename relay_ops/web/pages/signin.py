"""Sign-in and sign-out: staff with a password, carriers' staff and producers with their API
key."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from relay_ops.domain.errors import TooManyAttempts, Unauthenticated
from relay_ops.services import api_tokens, staff_sign_in
from relay_ops.services.principal import Role
from relay_ops.web.pages import bp
from relay_ops.web.pages.refusals import explain
from relay_ops.web.pages.security import (
    ctx,
    current_principal,
    end_session,
    sign_in_limit,
    start_session,
)


def _safe_next(default: str) -> str:
    target = request.values.get("next") or ""
    if target.startswith("/") and not target.startswith("//"):
        return target
    return default


@bp.get("/")
def home() -> Response:
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.sign_in"))
    if principal.role is Role.CARRIER:
        return redirect(url_for("pages.carrier_home"))
    if principal.role is Role.PRODUCER:
        return redirect(url_for("pages.producer_home"))
    if principal.role is Role.OPERATOR:
        return redirect(url_for("pages.dashboard"))
    if len(principal.site_ids) == 1:
        return redirect(url_for("pages.scan_station", site_id=next(iter(principal.site_ids))))
    return redirect(url_for("pages.my_sites"))


@bp.route("/login", methods=["GET", "POST"])
def sign_in() -> Response | tuple[str, int] | str:
    if request.method == "GET":
        return render_template("pages/login.html", next=_safe_next(""))
    with sign_in_limit():
        try:
            issued = staff_sign_in.log_in(
                ctx(), request.form.get("username", "").strip(), request.form.get("password", ""),
                client=request.remote_addr or "unknown",
            )
        except Unauthenticated:
            error = _("Wrong username or password.")
            return render_template("pages/login.html", error=error, next=_safe_next("")), 401
        except TooManyAttempts as err:  # this username is being guessed at
            error = explain(err)[1]
            return render_template("pages/login.html", error=error, next=_safe_next("")), 429
    start_session(issued.token)
    return redirect(_safe_next(url_for("pages.home")), code=303)


@bp.route("/carrier/login", methods=["GET", "POST"])
def carrier_sign_in() -> Response | tuple[str, int] | str:
    if request.method == "GET":
        return render_template("pages/carrier_login.html", next=_safe_next(""))
    with sign_in_limit():
        try:
            issued = api_tokens.open_carrier_session(ctx(), request.form.get("api_key", ""))
        except Unauthenticated:
            error = _("This API key is not valid.")
            return render_template(
                "pages/carrier_login.html", error=error, next=_safe_next("")
            ), 401
    start_session(issued.token)
    return redirect(_safe_next(url_for("pages.carrier_home")), code=303)


@bp.route("/producer/login", methods=["GET", "POST"])
def producer_sign_in() -> Response | tuple[str, int] | str:
    """A producer signs in with its API key, as a carrier does: the browser keeps a
    short-lived session token, never the key."""
    if request.method == "GET":
        return render_template("pages/producer_login.html", next=_safe_next(""))
    with sign_in_limit():
        try:
            issued = api_tokens.open_producer_session(ctx(), request.form.get("api_key", ""))
        except Unauthenticated:
            error = _("This API key is not valid.")
            return render_template(
                "pages/producer_login.html", error=error, next=_safe_next("")
            ), 401
    start_session(issued.token)
    return redirect(_safe_next(url_for("pages.producer_home")), code=303)


@bp.post("/logout")
def sign_out() -> Response:
    end_session()
    flash(_("You are signed out."), "info")
    return redirect(url_for("pages.sign_in"), code=303)
