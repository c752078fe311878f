"""Operational endpoints: health, readiness, the OpenAPI document and its browsable page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    json,
    render_template_string,
    request,
    send_from_directory,
)
from prometheus_client.metrics_core import Metric
from redis.exceptions import RedisError
from sqlalchemy import text

from relay_ops import jobs, metrics, outbox
from relay_ops.services import locker_views
from relay_ops.web.api import PREFIX
from relay_ops.web.api.openapi import build
from relay_ops.worker.config import redis_of

bp = Blueprint("meta", __name__)
OPENAPI_KEY = "relay_ops.openapi"  # the served document, in app.extensions

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RelayOps API</title>
<link rel="stylesheet" href="{{ url_for('meta.swagger_asset', filename='swagger-ui.css') }}">
</head><body><div id="ui" data-spec="{{ url_for('meta.openapi') }}"></div>
<script src="{{ url_for('meta.swagger_asset', filename='swagger-ui-bundle.js') }}"></script>
<script src="{{ url_for('pages.static', filename='js/api-docs.js') }}"></script>
</body></html>"""


@bp.get("/health")
def health() -> Any:
    return {"status": "ok"}


@bp.get("/metrics")
def metrics_exposition() -> Response:
    """Prometheus' scrape (relay_ops/metrics.py): the requests' durations by endpoint, the
    jobs', and the outbox's backlog and the lockers' links and alerts read now."""
    return metrics.scrape(current_app._get_current_object(),  # type: ignore[attr-defined]
                          request.headers.get("Authorization"),
                          metrics.ReadAtScrape("the outbox", _outbox_backlog),
                          metrics.ReadAtScrape("the lockers", _locker_fleet))


def _outbox_backlog() -> Iterator[Metric]:
    ctx = current_app.extensions["relay_ops"]
    undone, oldest = outbox.waiting(ctx.db)
    return metrics.outbox_backlog(
        undone, None if oldest is None else (ctx.now() - oldest).total_seconds())


def _locker_fleet() -> Iterator[Metric]:
    return metrics.locker_fleet(*locker_views.fleet(current_app.extensions["relay_ops"]))


@bp.get("/ready")
def ready() -> Response:
    """The database is required (503 without it). The job runner is not: without Redis, or
    in the embedded default without a runner (``runner: none``) while due jobs wait, check-ins
    and pickups still commit and their messages wait in the outbox, so the answer stays 200
    with ``status: degraded`` and the backlog, and load balancers keep sending traffic here."""
    checks: dict[str, Any] = {}
    try:
        with current_app.extensions["relay_ops"].db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    checks.update(_redis_check())
    if checks["database"] != "ok":
        status, code = "not-ready", 503
    elif checks["redis"] not in ("ok", "not used") or _jobs_stuck(checks):
        status, code = "degraded", 200
        checks["outbox_waiting"] = _outbox_waiting()
    else:
        status, code = "ready", 200
    body = {"status": status, "checks": checks}
    return Response(json.dumps(body), status=code, mimetype="application/json")


def _redis_check() -> dict[str, str]:
    redis = redis_of(current_app._get_current_object())  # type: ignore[attr-defined]
    if redis is None:
        return {"redis": "not used", "jobs": "in process"}
    try:
        redis.ping()
        return {"redis": "ok", "jobs": "rq"}
    except RedisError as exc:
        return {"redis": f"degraded: {type(exc).__name__}", "jobs": "rq"}


def _jobs_stuck(checks: dict[str, Any]) -> bool:
    """Embedded default: no runner anywhere, and jobs are due (an idle shop is ready)."""
    if checks.get("jobs") != "in process":
        return False
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    ctx = app.extensions["relay_ops"]
    try:
        checks["runner"] = jobs.runner_state(app)
        return checks["runner"] == "none" and bool(outbox.due_for_dispatch(ctx.db, ctx.now(), 1))
    except Exception as exc:  # readiness reports, it does not raise
        checks["runner"] = f"unknown: {type(exc).__name__}"
        return False  # no backlog seen (e.g. a database not migrated yet)


def _outbox_waiting() -> int | None:
    try:
        undone, _oldest = outbox.waiting(current_app.extensions["relay_ops"].db)
    except Exception:  # readiness reports, it does not raise
        return None
    return undone[outbox.PENDING] + undone[outbox.DISPATCHED]


@bp.get(PREFIX + "/openapi.json")
def openapi() -> Response:
    # Anyone may fetch it, and it changes only with the code and the configuration: written
    # once per app (~10 ms of CPU), then served as it is.
    body = current_app.extensions.get(OPENAPI_KEY)
    if body is None:
        settings = current_app.extensions["relay_ops"].settings
        document = build(PREFIX, "RelayOps", current_app.config.get("API_VERSION", "1.0.0"), {
            "size_class": list(settings.size_classes),
            "locker_model": sorted(settings.locker.models),
        })
        body = current_app.extensions[OPENAPI_KEY] = json.dumps(document)
    return Response(body, mimetype="application/json")


@bp.get("/api/docs")
def docs() -> str:
    return render_template_string(DOCS_PAGE)


@bp.get("/api/docs/assets/<path:filename>")
def swagger_asset(filename: str) -> Response:
    import swagger_ui_bundle

    return send_from_directory(Path(swagger_ui_bundle.swagger_ui_path), filename)
