"""The references for the HTTP benchmarks, served by the same gunicorn settings as RelayOps:

- ``create_app()``: a bare Flask app that reads a small JSON body and answers a small JSON;
- ``create_insert_app()``: the same, plus one psycopg ``INSERT … RETURNING`` per request into
  ``bench_bare_insert`` (one autocommit connection per thread, the database named by
  ``RELAY_OPS_DATABASE_URL``): what storing one row costs with no framework around it.

    gunicorn 'bench.bare_app:create_app()'
    gunicorn 'bench.bare_app:create_insert_app()'
"""

from __future__ import annotations

import os
import threading

from flask import Flask, request

INSERT_TABLE_DDL = ("CREATE TABLE IF NOT EXISTS bench_bare_insert (id bigserial PRIMARY KEY, "
                    "site_id integer NOT NULL, tracking_number varchar(35) NOT NULL)")


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/sites/<int:site_id>/check-ins")
    def check_in(site_id: int) -> tuple[dict[str, object], int]:
        body = request.get_json()
        return {"status": "checked_in", "site": site_id,
                "tracking_number": body["tracking_number"]}, 201

    return app


def create_insert_app() -> Flask:
    import psycopg  # only this reference needs it

    url = os.environ["RELAY_OPS_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    local = threading.local()
    app = Flask(__name__)

    def connection() -> psycopg.Connection:  # type: ignore[type-arg]
        if getattr(local, "conn", None) is None:
            local.conn = psycopg.connect(url, autocommit=True)
        return local.conn  # type: ignore[no-any-return]

    @app.post("/api/v1/sites/<int:site_id>/check-ins")
    def check_in(site_id: int) -> tuple[dict[str, object], int]:
        body = request.get_json()
        row = connection().execute(
            "INSERT INTO bench_bare_insert (site_id, tracking_number) VALUES (%s, %s) "
            "RETURNING id", (site_id, body["tracking_number"])).fetchone()
        assert row is not None
        return {"status": "checked_in", "site": site_id, "id": row[0],
                "tracking_number": body["tracking_number"]}, 201

    return app
