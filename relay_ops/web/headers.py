"""Security headers on every answer: pages, API documents and assets alike.

The pages carry no inline script (every script is a file under /assets, data for a script is
a ``<script type="application/json">`` block, which browsers never execute), so the policy can
forbid inline code outright: an injected ``<script>`` or ``onclick`` does nothing. Nothing is
loaded from another host (no CDN, no web font, no map tiles), so ``'self'`` is enough.
"""

from __future__ import annotations

from flask import Flask, Response

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    # data: for the empty favicon (no request for /favicon.ico) and Swagger UI's icons.
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    # No page is meant to be framed: clickjacking the counter's "Hand over" is refused.
    "frame-ancestors 'none'",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The same for browsers that predate frame-ancestors.
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # A resident's link carries its token in the path (/t/<token>): never send it onwards,
    # not even its origin, to OpenStreetMap or any other site a page links to.
    "Referrer-Policy": "no-referrer",
}


# Production serves https only (its session cookie is Secure): browsers keep to https for a
# year. Not in development, where the demo runs on plain http://127.0.0.1.
HSTS = "max-age=31536000"


def init_app(app: Flask) -> None:
    production = app.config["ENV"] == "production"

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if production:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
