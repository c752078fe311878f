"""API fuzzing from the OpenAPI document, for every role: no generated request makes the
server fail (5xx), and every answer is one the document lists, with its media type and headers.

Runs on a seeded demo database as each role (anonymous, operator, shopkeeper, carrier, a
resident's tracking link and a home delivery courier's link), with a small budget per
operation so the whole file stays within a couple of minutes; refusals (4xx) are expected and
fine when documented.
"""

import shutil
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from sqlalchemy import select

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import Parcel, Site
from relay_ops.demo import CARRIER_TOKEN, OPERATOR_TOKEN, SHOPKEEPER_TOKEN, seed
from relay_ops.domain.hours import DAYS
from relay_ops.services import home_delivery, sites
from relay_ops.services.principal import SYSTEM, Principal, Role
from relay_ops.services.resident import tracking_token

# Schemathesis parametrizes at collection time, so the app exists then; it opens no
# connection until the fixture below migrates and seeds its database.
_folder = Path(tempfile.mkdtemp(prefix="relayops-fuzz-"))
app = create_app({"DATABASE_URL": f"sqlite:///{_folder / 'fuzz.sqlite3'}", "ARGON2_TIME_COST": 1,
                  "ARGON2_MEMORY_KIB": 1024, "PROPAGATE_EXCEPTIONS": False})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.ignored_auth,
]
FUZZ = settings(deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TRACK = "^/api/v1/track/"
COURIER = "^/api/v1/courier/"


@pytest.fixture(scope="module", autouse=True)
def demo_database() -> Iterator[None]:
    ctx = app.extensions["relay_ops"]
    migrate.upgrade(ctx.db.engine)
    seed(ctx)
    yield
    ctx.db.dispose()
    shutil.rmtree(_folder, ignore_errors=True)


@pytest.fixture(scope="module")
def resident_link(demo_database: None) -> str:
    ctx = app.extensions["relay_ops"]
    with ctx.db.read() as session:
        parcel_id = session.scalar(select(Parcel.id).where(Parcel.state == "ready_for_pickup"))
    assert parcel_id is not None
    return tracking_token(ctx, parcel_id)


def _call(case: schemathesis.Case, token: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    case.call_and_validate(headers=headers, checks=CHECKS)


def _as(token: str | None, budget: int, operations: schemathesis.BaseSchema) -> object:
    """A test of every operation in ``operations`` as the holder of ``token``, ``budget``
    cases each. The operator may call the most operations and gets the largest budget; the
    other roles are mostly refused early, so a few cases each find what their paths reach."""

    @operations.parametrize()
    @settings(FUZZ, max_examples=budget)
    def test(case: schemathesis.Case) -> None:
        _call(case, token)

    return test


staff_and_carriers = schema.exclude(path_regex=TRACK).exclude(path_regex=COURIER)
test_the_operator_breaks_nothing = _as(OPERATOR_TOKEN, 6, staff_and_carriers)
test_a_shopkeeper_breaks_nothing = _as(SHOPKEEPER_TOKEN, 2, staff_and_carriers)
test_a_carrier_breaks_nothing = _as(CARRIER_TOKEN, 2, staff_and_carriers)
# Anonymous callers also try the resident and courier operations, with made-up links.
test_anyone_breaks_nothing = _as(None, 2, schema)


@schema.include(path_regex=TRACK).parametrize()
@settings(FUZZ, max_examples=10)
def test_a_resident_link_breaks_nothing(case: schemathesis.Case, resident_link: str) -> None:
    case.path_parameters["token"] = resident_link  # a real link: the operations run past it
    _call(case, None)


@pytest.fixture(scope="module")
def courier_link(demo_database: None) -> str:
    """A home delivery's courier link for a ready parcel at a demo shop that delivers every
    day (whatever day the test runs, the first day the shop opens is one)."""
    ctx = app.extensions["relay_ops"]
    with ctx.db.read() as session:
        parcel_id, site_id = session.execute(
            select(Parcel.id, Parcel.site_id).join(Site, Site.id == Parcel.site_id)
            .where(Parcel.state == "ready_for_pickup", Site.kind == "shop")
            .order_by(Parcel.id.desc())).first()
    sites.set_services(ctx, SYSTEM, site_id, ["receive", "home_delivery"])
    operator = Principal(Role.OPERATOR, user_id=0)
    home_delivery.set_offer(ctx, operator, site_id, {"days": list(DAYS), "area": "le bourg"})
    days = home_delivery.for_resident(ctx, Principal(Role.RESIDENT, parcel_id=parcel_id))["days"]
    answer = home_delivery.request(
        ctx, operator, parcel_id, day=date.fromisoformat(days[0]), courier_kind="neighbour",
        courier_name="Marcel Petit", consent=True, in_area=True)
    return str(answer["courier_url"]).rsplit("/", 1)[1]


@schema.include(path_regex=COURIER).parametrize()
@settings(FUZZ, max_examples=10)
def test_a_courier_link_breaks_nothing(case: schemathesis.Case, courier_link: str) -> None:
    case.path_parameters["courier_token"] = courier_link  # a real link: past the lookup
    _call(case, None)
