"""RelayOps: parcel relay shops and automatic lockers.

``create_app`` builds the Flask application; nothing is built at import time.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from relay_ops import logs, settings
from relay_ops.db.database import Database
from relay_ops.services.context import Ctx, Settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    settings.load(app, test_config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if int(app.config.get("TRUSTED_PROXIES") or 0) > 0:
        # remote_addr becomes the client's address, not the proxy's (throttles key on it).
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)  # type: ignore[method-assign]
    logs.configure(app.config.get("LOG_LEVEL", "INFO"), app.config["LOG_FORMAT"])
    db = Database(app.config["DATABASE_URL"])
    app.extensions["relay_ops"] = Ctx(db=db, settings=Settings.from_config(app.config))

    from relay_ops import metrics
    from relay_ops.web import headers, inputs, meta, pages, problems
    from relay_ops.web.api import bp as api_bp

    # Each puts its before_request first, so the request's id (logs), then the timer
    # (metrics), come before any other: an answer given early is logged and timed too.
    metrics.init_app(app)
    logs.init_app(app)
    inputs.init_app(app)  # before the blueprints: its URL converters serve their rules
    problems.init_app(app)
    headers.init_app(app)
    app.register_blueprint(api_bp)
    app.register_blueprint(meta.bp)
    pages.init_app(app)
    return app
