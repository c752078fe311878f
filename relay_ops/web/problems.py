"""Errors as ``application/problem+json`` (RFC 9457), one stable ``type`` per error."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import HTTPException

from relay_ops import logs
from relay_ops.domain.errors import DomainError

PROBLEM_BASE = "/api/v1/problems/"
MEDIA_TYPE = "application/problem+json"


# Headers a refusal must carry for the client to act on it (RFC 9110): where werkzeug's own
# exception sets them (``Allow`` on 405, ``Retry-After``...), the problem keeps them.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
# A 429 always says when to come back: the throttle's window (``retry_after_s``), else this.
DEFAULT_RETRY_AFTER_S = 60


def problem(status: int, slug: str, title: str, detail: str,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
        **{k: v for k, v in extra.items() if v is not None},
    }
    headers = dict(headers or {})
    if status == 429:
        retry_after = extra.get("retry_after_s") or DEFAULT_RETRY_AFTER_S
        headers.setdefault("Retry-After", str(int(retry_after)))
    return Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE, headers=headers)


def from_domain(err: DomainError) -> Response:
    return problem(err.status, err.slug, err.title, err.detail, **err.extra)


def _wants_a_page() -> bool:
    """A browser outside the API (it prefers HTML); API clients and ``*/*`` get JSON."""
    if request.path.startswith("/api/"):
        return False
    best = request.accept_mimetypes.best_match([MEDIA_TYPE, "application/json", "text/html"])
    return best == "text/html"


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, from_domain)

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        page = app.extensions.get("error_page")
        if page is not None and _wants_a_page():
            return page(err)  # a person's browser on a mistyped address: a page, not JSON
        status = err.code or 500
        slug = (err.name or "error").lower().replace(" ", "-")
        headers = {k: v for k, v in err.get_headers() if k in KEPT_HEADERS}
        return problem(status, slug, err.name, err.description or err.name, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        # The id the log line carries: what a person reporting the error can quote.
        return problem(500, "internal-error", "Internal error", "the error was logged",
                       request_id=logs.current_request_id())
