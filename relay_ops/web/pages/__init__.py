"""Pages for people: the scan station, carriers' batches, residents' tracking, the dashboard,
the locker panel.

Views only translate: a form or a scan becomes a call to the same service functions the JSON
API calls, and a domain error becomes a page (or, for the scan station's fetches, a JSON
answer the page shows). Nothing here writes SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask

WEB_DIR = Path(__file__).resolve().parent.parent

bp = Blueprint(
    "pages",
    __name__,
    template_folder=str(WEB_DIR / "templates"),
    static_folder=str(WEB_DIR / "static"),
    static_url_path="/assets",
)

PAGE_DEFAULTS: dict[str, Any] = {
    "LANGUAGES": ["fr", "en"],
    # Shared storage for sign-in attempts ("redis://..." when several workers run).
    "RATELIMIT_STORAGE_URI": "memory://",
    "SIGN_IN_RATE_LIMIT": "10 per minute; 50 per hour",
    "EXPIRING_WITHIN_HOURS": 48,
    # `relay-ops demo` sets it: the locker panel opens without signing in (never in production)
    "LOCKER_PANEL_DEMO": False,
}


def init_app(app: Flask) -> None:
    for key, value in PAGE_DEFAULTS.items():
        app.config.setdefault(key, value)
    # Flask defines these keys already (SameSite unset, Secure off), so they are set, not
    # defaulted: the session cookie never rides on cross-site requests or, in production, http.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if app.config["ENV"] == "production":
        app.config["SESSION_COOKIE_SECURE"] = True

    from relay_ops.web.pages import i18n, security

    i18n.init_app(app)
    security.init_app(app)
    # Views register themselves on ``bp`` when imported.
    from relay_ops.web.pages import (  # noqa: F401
        carrier,
        dashboard,
        errors,
        home_delivery,
        locker_panel,
        locker_status,
        no_room,
        outbound,
        producers,
        resident,
        season,
        shop,
        signin,
    )

    locker_status.init_app(app)
    season.init_app(app)
    no_room.init_app(app)
    # Outside the blueprint (a mistyped address), a browser gets the same error page.
    app.extensions["error_page"] = errors.http_error
    app.register_blueprint(bp)
