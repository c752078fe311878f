"""Operational endpoints: health, readiness, the OpenAPI document and its browsable page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    json,
    render_template_string,
    send_from_directory,
)
from sqlalchemy import text

from relay_ops.web.api import PREFIX
from relay_ops.web.api.openapi import build

bp = Blueprint("meta", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>RelayOps API</title>
<link rel="stylesheet" href="{{ url_for('meta.swagger_asset', filename='swagger-ui.css') }}">
</head><body><div id="ui"></div>
<script src="{{ url_for('meta.swagger_asset', filename='swagger-ui-bundle.js') }}"></script>
<script>SwaggerUIBundle({url: "{{ url_for('meta.openapi') }}", dom_id: "#ui"});</script>
</body></html>"""


@bp.get("/health")
def health() -> Any:
    return {"status": "ok"}


@bp.get("/ready")
def ready() -> Response:
    checks: dict[str, str] = {}
    try:
        with current_app.extensions["relay_ops"].db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # readiness reports, it does not raise
        checks["database"] = f"error: {type(exc).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ok else "not-ready", "checks": checks}
    return Response(json.dumps(body), status=200 if ok else 503, mimetype="application/json")


@bp.get(PREFIX + "/openapi.json")
def openapi() -> Any:
    return build(PREFIX, "RelayOps", current_app.config.get("API_VERSION", "1.0.0"))


@bp.get("/api/docs")
def docs() -> str:
    return render_template_string(DOCS_PAGE)


@bp.get("/api/docs/assets/<path:filename>")
def swagger_asset(filename: str) -> Response:
    import swagger_ui_bundle

    return send_from_directory(Path(swagger_ui_bundle.swagger_ui_path), filename)
