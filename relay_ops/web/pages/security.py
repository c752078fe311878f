"""Who is signed in, CSRF protection on every form, and the sign-in rate limit.

The session cookie (signed by Flask) carries only a short-lived token that the service layer
issued and stores hashed; every request turns it back into a principal through
``api_tokens.authenticate``, so signing out, an expired token or a disabled account takes effect
at once. That makes these server-side sessions, revocable, with nothing secret in the cookie
beyond the token itself.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from relay_ops.domain.errors import Unauthenticated
from relay_ops.services import api_tokens
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from relay_ops.web.pages import bp

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def ctx() -> Ctx:
    return current_app.extensions["relay_ops"]


def init_app(app: Flask) -> None:
    # One limiter per application: its storage (memory or Redis) belongs to this app.
    limiter = Limiter(
        get_remote_address, app=app, storage_uri=app.config["RATELIMIT_STORAGE_URI"],
        default_limits=[],
    )
    # Only the pages' sign-in forms are limited (:func:`sign_in_limit`). The limiter's hook
    # runs before every request of the app, the API's too, and resolved its (empty) limits
    # each time: 4 % of a check-in's CPU. Requests outside the pages are exempt at once.
    limiter.request_filter(_outside_the_pages)
    app.extensions["pages_limiter"] = limiter
    app.jinja_env.globals["csrf_token"] = csrf_token


def _outside_the_pages() -> bool:
    return request.blueprint != bp.name


def sign_in_limit() -> Any:
    """A context manager that counts one sign-in attempt for this address (429 past the limit)."""
    limiter: Limiter = current_app.extensions["pages_limiter"]
    return limiter.limit(current_app.config["SIGN_IN_RATE_LIMIT"], scope="sign-in")


# ---------------------------------------------------------------- CSRF


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


@bp.before_request
def _check_csrf() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get("csrf")
    sent = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), sent):
        abort(400, description="csrf")


# ---------------------------------------------------------------- sessions


def start_session(token: str) -> None:
    """Sign in: a fresh session (no fixation), keeping only the chosen language."""
    lang = session.get("lang")
    session.clear()
    session["token"] = token
    if lang:
        session["lang"] = lang
    session.permanent = False


def end_session() -> None:
    token = session.get("token")
    if token:
        api_tokens.end_session(ctx(), token)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang


def current_principal() -> Principal | None:
    if "principal" in g:
        return g.principal
    principal = None
    token = session.get("token")
    if token:
        try:
            principal = api_tokens.authenticate(ctx(), token)
        except Unauthenticated:
            session.pop("token", None)
    g.principal = principal
    return principal


def requires(*roles: Role) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The view needs a signed-in principal with one of ``roles`` (others get a 403 page)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None and request.accept_mimetypes.best == "application/json":
                # The scan station's script keeps its queue and asks to sign in again.
                return {"error": "signed-out"}, 401
            if principal is None:
                target = ("pages.carrier_sign_in" if Role.CARRIER in roles
                          else "pages.producer_sign_in" if Role.PRODUCER in roles
                          else "pages.sign_in")
                return redirect(url_for(target, next=request.full_path.rstrip("?")))
            if principal.role not in roles:
                abort(403)
            return view(principal, *args, **kwargs)

        return wrapper

    return decorate


@bp.context_processor
def _inject() -> dict[str, Any]:
    return {"principal": current_principal(), "Role": Role}
