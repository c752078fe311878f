"""API fuzzing from the OpenAPI document: no generated request makes the server fail (5xx).

Runs as the demo operator (the role that may call the most operations) on a seeded demo
database, with a small budget per operation; refusals (4xx) are expected and fine.
"""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.demo import OPERATOR_TOKEN, seed

# Schemathesis parametrizes at collection time, so the app exists then; it opens no
# connection until the fixture below migrates and seeds its database.
_folder = Path(tempfile.mkdtemp(prefix="relayops-fuzz-"))
app = create_app({"DATABASE_URL": f"sqlite:///{_folder / 'fuzz.sqlite3'}", "ARGON2_TIME_COST": 1,
                  "ARGON2_MEMORY_KIB": 1024, "PROPAGATE_EXCEPTIONS": False})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def demo_database() -> Iterator[None]:
    ctx = app.extensions["relay_ops"]
    migrate.upgrade(ctx.db.engine)
    seed(ctx)
    yield
    ctx.db.dispose()
    shutil.rmtree(_folder, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=10, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_request_breaks_the_server(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
                           checks=[schemathesis.checks.not_a_server_error])
