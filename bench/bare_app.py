"""The reference for the check-in benchmark: a bare Flask app that reads a small JSON body
and answers a small JSON, served by the same gunicorn settings as RelayOps.

    gunicorn 'bench.bare_app:create_app()'
"""

from __future__ import annotations

from flask import Flask, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/sites/<int:site_id>/check-ins")
    def check_in(site_id: int) -> tuple[dict[str, object], int]:
        body = request.get_json()
        return {"status": "checked_in", "site": site_id,
                "tracking_number": body["tracking_number"]}, 201

    return app
