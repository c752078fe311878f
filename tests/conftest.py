"""Shared fixtures: an app for each test (one per process, put back as built: ``SharedApp``) on
SQLite and on the machine's real PostgreSQL.

Migrations run once per test session per backend. SQLite tests copy a migrated template file;
PostgreSQL tests share one database created for the session and emptied after each test
(emptying, not rolling back, keeps real commits possible, which the race tests need).
"""

from __future__ import annotations

import copy
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import settings
from psycopg import sql
from sqlalchemy import create_engine, make_url, text

from relay_ops import cli, create_app
from relay_ops.db import migrate
from relay_ops.db.database import Database
from relay_ops.db.models import Base
from relay_ops.services.context import Ctx

# Property tests judge correctness, not speed: a loaded 2-core CI machine must not fail them.
settings.register_profile("relay_ops", deadline=None)
settings.load_profile("relay_ops")

PG_ADMIN_URL = os.environ.get(
    "RELAY_OPS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class Clock:
    """A clock tests can move; services read time only through it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    engine = create_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"relayops_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    engine = create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


# Children before their parents, so no foreign key is ever left pointing at a deleted row.
_EMPTY_ORDER = [table.name for table in reversed(Base.metadata.sorted_tables)]


def empty_database(url: str) -> None:
    """Every table emptied and every sequence used since restarted, in one transaction.

    DELETE, not TRUNCATE: the test tables hold a few rows, and TRUNCATE makes new files for
    each table and index (35 tables: ~250 ms a test against ~15 ms, most of the PostgreSQL
    tests' cost). One round trip: the statements go together in one simple query, which
    psycopg sends as is when it has no parameters."""
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        used = connection.execute(
            "SELECT schemaname, sequencename FROM pg_sequences WHERE last_value IS NOT NULL"
        ).fetchall()
        statements = [
            sql.SQL("BEGIN"),
            *(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)) for table in _EMPTY_ORDER),
            *(sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(schema, sequence))
              for schema, sequence in used),
            sql.SQL("COMMIT"),
        ]
        connection.execute(sql.SQL("; ").join(statements))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "relay_ops.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_url")
        yield url
        empty_database(url)


@pytest.fixture
def bench_database() -> Iterator[str]:
    """The name of a PostgreSQL database a benchmark run in a subprocess makes for itself,
    dropped afterwards whatever the run did."""
    name = f"relayops_bench_test_{uuid.uuid4().hex[:8]}"
    yield name
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def clock() -> Clock:
    # A Tuesday morning in Paris, inside the demo shops' opening hours.
    return Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


TEST_CONFIG: dict[str, Any] = {
    "TESTING": True,
    "PUBLIC_BASE_URL": "http://relayops.test",
    # Cheap password hashing: tests sign in often; production keeps the strong default.
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_KIB": 1024,
}


class SharedApp:
    """One application per test process, handed to each test as if new.

    Building an app costs ~60 ms of CPU (werkzeug compiles each of its ~180 URL rules into
    Python functions), ~2,800 times a CI run. What a test can change is put back before the
    next one: the configuration and the extensions as they were built (a test's changes,
    its jobs runner, its Redis client go), the sign-in limiter's counts, and a new context on
    the test's own database and clock. A test that needs another configuration
    (``app_config`` marker) gets an app of its own."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.app = create_app(config)
        self.config = dict(self.app.config)
        self.extensions = dict(self.app.extensions)
        self.settings = self.app.extensions["relay_ops"].settings
        self.app.extensions["relay_ops"].db.dispose()

    def for_test(self, per_test: dict[str, Any], clock: Clock) -> Flask:
        app = self.app
        app.config.clear()
        app.config.update(self.config | per_test)
        app.extensions.clear()
        # A container an extension keeps (the dashboard's panels, say) is copied: what a test
        # adds to it stays with that test.
        app.extensions.update({key: copy.copy(value) if isinstance(value, dict | list | set)
                               else value for key, value in self.extensions.items()})
        app.extensions["pages_limiter"].reset()
        app.extensions["relay_ops"] = Ctx(db=Database(per_test["DATABASE_URL"]),
                                          settings=self.settings, clock=clock)
        return app


@pytest.fixture(scope="session")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> SharedApp:
    folder = tmp_path_factory.mktemp("shared-app")
    return SharedApp(TEST_CONFIG | {"DATABASE_URL": f"sqlite:///{folder / 'unused.sqlite3'}",
                                    "NOTIFY_FILE_PATH": str(folder / "notifications.jsonl")})


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: Clock, request: pytest.FixtureRequest
        ) -> Iterator[Flask]:
    per_test = {"DATABASE_URL": database_url,
                "NOTIFY_FILE_PATH": str(tmp_path / "notifications.jsonl")}
    if marker := request.node.get_closest_marker("app_config"):
        application = create_app(TEST_CONFIG | per_test | marker.kwargs)
        built: Ctx = application.extensions["relay_ops"]
        application.extensions["relay_ops"] = Ctx(db=built.db, settings=built.settings,
                                                  clock=clock)
    else:
        application = request.getfixturevalue("shared_app").for_test(per_test, clock)
    ctx: Ctx = application.extensions["relay_ops"]
    yield application
    ctx.db.dispose()


@pytest.fixture
def cli_runner(app: Flask) -> FlaskCliRunner:
    """`relay-ops` on the test's app: the operator commands attached as the CLI does."""
    cli.init_app(app)
    return app.test_cli_runner()


@pytest.fixture
def ctx(app: Flask) -> Ctx:
    return app.extensions["relay_ops"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
