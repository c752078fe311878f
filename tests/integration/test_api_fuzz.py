"""API fuzzing from the OpenAPI document, for every role: no generated request makes the
server fail (5xx), every answer is one the document lists (status, media type, headers, body),
every request valid under the document is accepted (nothing but a state or a credential
refuses it: never 422) and every invalid one is refused.

Runs every check schemathesis has, in process (WSGI, no socket), on one seeded demo database
shared by the roles (anonymous, operator, shopkeeper, carrier, a resident's tracking link and a
home delivery courier's link), with ``FUZZ_CASES`` generated cases per role in all (2,000 by
default; ``RELAY_OPS_FUZZ_CASES`` changes it; ``RELAY_OPS_FUZZ_COVERAGE=1`` adds schemathesis'
coverage phase). Generation is derandomized, so CI runs the same cases every time, and failures
are not shrunk (set ``RELAY_OPS_FUZZ_SHRINK=1`` to shrink one while debugging): shrinking a
failure of a stateful operation can take minutes.

What each check judges here:

- ``response_schema_conformance``: every answer against its status's schema: the problem
  documents, and the successes of the operations, which declare their shape (``response=`` on
  ``endpoint()``, models in ``web/api/responses.py``): every operation but the three that
  answer an image (the QR codes, PNG or SVG), whose status and media type are judged.
  tests/integration/test_response_schemas.py checks real answers of each declared operation
  too, as each role sees them.
- ``ensure_resource_availability`` and ``use_after_free`` judge sequences, so the stateless
  tests give them nothing; ``test_the_operators_sequences_break_nothing`` runs schemathesis'
  state machine over the document's links (a site made, then read, changed, filled; a locker
  made, then read; a parcel scanned in, then read; a closing day declared, then withdrawn; a
  no-room policy set, then removed; a staff account made, then deactivated or signed
  out...), each sequence from the seeded demo, ``RELAY_OPS_FUZZ_SCENARIOS`` sequences (40)
  of up to 8 steps, every check on each step. ``ensure_resource_availability`` fails a 404
  on what a sequence's POST just made (a read, a change or a removal under its path).
  ``use_after_free`` fails a successful read under a path a sequence deleted; it runs on
  every step, but this API has no read under any path it deletes (closing days, keys,
  temporary shelves, a carrier's service at a shop, no-room policies, home deliveries, a
  staff account's tokens), so it has nothing to judge here until one exists.
- ``object_level_authorization``: see CHECKS below.
"""

import itertools
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from sqlalchemy import select

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import Parcel, Site
from relay_ops.demo import CARRIER_TOKEN, OPERATOR_TOKEN, SHOPKEEPER_TOKEN, seed
from relay_ops.domain.hours import DAYS, HHMM
from relay_ops.domain.season import MAX_PERIOD_DAYS
from relay_ops.services import home_delivery, sites
from relay_ops.services.principal import SYSTEM, Principal, Role
from relay_ops.services.resident import tracking_token

# Schemathesis parametrizes at collection time, so the app exists then; it opens no
# connection until the fixture below migrates and seeds its database.
_folder = Path(tempfile.mkdtemp(prefix="relayops-fuzz-"))
_database, _seeded = _folder / "fuzz.sqlite3", _folder / "seeded.sqlite3"
app = create_app({"DATABASE_URL": f"sqlite:///{_database}", "ARGON2_TIME_COST": 1,
                  "ARGON2_MEMORY_KIB": 1024, "PROPAGATE_EXCEPTIONS": False})
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

CHECKS = [  # every check schemathesis has, stateful ones included
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.ignored_auth,
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.allow_header_conformance,
    schemathesis.checks.use_after_free,
    schemathesis.checks.ensure_resource_availability,
    # Replays one identity's reads as its peers: it acts only when schemathesis' auth is
    # configured with several identities, which this test (one token per test) does not do;
    # tests/integration/test_access.py probes every operation as every role, and another
    # site's or carrier's objects, instead.
    schemathesis.checks.object_level_authorization,
    # max_response_time is left out: a time limit on a loaded 2-CPU CI machine judges the
    # machine, not the API (docs/benchmarks.md has the latencies).
]
FUZZ_CASES = int(os.environ.get("RELAY_OPS_FUZZ_CASES", "2000"))
FUZZ = settings(
    deadline=None, database=None, derandomize=True, print_blob=False,
    phases=[Phase.explicit, Phase.generate]
    + ([Phase.shrink] if os.environ.get("RELAY_OPS_FUZZ_SHRINK") else []),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large])
# A request valid under the document may still be refused by the state of things (409), a
# credential (401, 403, 404 "not yours"), a lock or a missing identity check (423, 428), an
# expired link (410) or a throttle (429): none of them says the input is malformed. 400 and 422
# stay out: they are for requests the document itself rules out.
# 413 likewise: a body's size in bytes is no JSON Schema notion (a list of 1,000 numbers of
# 64 characters each is valid, and larger than the route takes). And each of these refuses
# an invalid request as well as 400 or 422 would.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "410", "413", "423", "428", "429", "5xx"]
schema.config.checks.negative_data_rejection.expected_statuses = [
    "400", "401", "403", "404", "405", "406", "409", "410", "413", "415", "422", "423", "428",
    "429", "5xx"]
# The courier's link is no role of the list (anonymous, operator, shopkeeper, carrier,
# resident): its three operations get a quarter of a role's cases.
COURIER_CASES = FUZZ_CASES // 4
CASES: Counter[str] = Counter()
KEYS = itertools.count()  # a new Idempotency-Key suffix for each valid case (see _prepare)


def _ordered_ranges(node: object) -> object:
    """Opening hours' ranges end after they start: a rule between two items of a list, which
    JSON Schema cannot state (the document says it in words; the service refuses it with
    422). So in a valid case a range of two times is put in order, and an impossible one (the
    same time twice) becomes the whole day. Nothing else is changed."""
    if isinstance(node, dict):
        return {k: _ordered_ranges(v) for k, v in node.items()}
    if isinstance(node, list):
        if (len(node) == 2 and all(isinstance(t, str) and HHMM.fullmatch(t) for t in node)):
            start, end = sorted(node)
            return [start, end] if start < end else ["00:00", "23:59"]
        return [_ordered_ranges(v) for v in node]
    return node


def _fair_period(body: dict[str, object]) -> dict[str, object]:
    """A temporary shelf's period is in order and lasts at most MAX_PERIOD_DAYS: rules
    between two fields, which JSON Schema cannot state either (the document says them in
    words; the service refuses them with 422). So a valid case's two days are put in order,
    and its end brought within the limit. A period already over stays: 409, a state."""
    first, last = body.get("valid_from"), body.get("valid_until")
    if not (isinstance(first, str) and isinstance(last, str)):
        return body
    try:
        start, end = sorted((date.fromisoformat(first), date.fromisoformat(last)))
    except ValueError:
        return body
    end = min(end, start + timedelta(days=MAX_PERIOD_DAYS - 1))
    return body | {"valid_from": start.isoformat(), "valid_until": end.isoformat()}


TRACK = "^/api/v1/track/"
COURIER = "^/api/v1/courier/"


@pytest.fixture(scope="module", autouse=True)
def demo_database() -> Iterator[None]:
    ctx = app.extensions["relay_ops"]
    migrate.upgrade(ctx.db.engine)
    seed(ctx)
    ctx.db.dispose()  # every connection closed: the file holds the whole seeded demo
    shutil.copy(_database, _seeded)
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


def _call(case: schemathesis.Case, token: str | None, role: str) -> None:
    CASES[role] += 1
    _prepare(case, role)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    case.call_and_validate(headers=headers, checks=CHECKS)


def _prepare(case: schemathesis.Case, role: str) -> None:
    """What the document cannot say, done to a valid case as a client would (see below)."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and isinstance(case.body, dict):
        case.body = _fair_period(_ordered_ranges(case.body))  # type: ignore[arg-type]
    key = case.headers.get("Idempotency-Key") if case.headers else None
    if key is not None and positive:
        # A client draws a new key for each new request; the same key with another body is
        # refused with 422, as the IETF Idempotency-Key draft asks: a rule about the key's
        # history, which no schema can state. Generated keys repeat ("0"), so each gets a
        # suffix of its own (still within the document's 200 characters).
        case.headers["Idempotency-Key"] = f"{key[:188]}~{next(KEYS):x}{role[0]}"


# Schemathesis' coverage phase (boundary values, missing and wrong-typed fields, other methods,
# 20 to 50 cases per operation, enumerated when pytest collects) doubles the cost: CI runs the
# generated cases alone, and RELAY_OPS_FUZZ_COVERAGE=1 adds the coverage phase (docs/
# benchmarks.md, "API fuzz": both measured, both green).
COVERAGE = os.environ.get("RELAY_OPS_FUZZ_COVERAGE") == "1"
schema.config.phases.coverage.enabled = COVERAGE
COVERAGE_CASES_PER_OPERATION = 20 if COVERAGE else 0
MIN_FUZZ_CASES_PER_OPERATION = 8


def _budget(operations: schemathesis.BaseSchema, cases: int = FUZZ_CASES) -> int:
    """Generated cases per operation so that a role's operations together make
    ``cases`` (with the coverage phase's when it runs); an operation whose inputs have few
    values (a GET without parameters) stops early, hence the margin. The count is checked at
    the end by ``test_each_role_made_its_cases``."""
    count = sum(1 for _ in operations.get_all_operations())
    wanted = cases * 1.05 - COVERAGE_CASES_PER_OPERATION * count
    return max(MIN_FUZZ_CASES_PER_OPERATION, math.ceil(wanted / count))


def _as(role: str, token: str | None, operations: schemathesis.BaseSchema) -> object:
    """A test of every operation in ``operations`` as the holder of ``token``."""

    @operations.parametrize()
    @settings(FUZZ, max_examples=_budget(operations))
    def test(case: schemathesis.Case) -> None:
        _call(case, token, role)

    return test


staff_and_carriers = schema.exclude(path_regex=TRACK).exclude(path_regex=COURIER)
resident_operations = schema.include(path_regex=TRACK)
courier_operations = schema.include(path_regex=COURIER)
test_the_operator_breaks_nothing = _as("operator", OPERATOR_TOKEN, staff_and_carriers)
test_a_shopkeeper_breaks_nothing = _as("shopkeeper", SHOPKEEPER_TOKEN, staff_and_carriers)
test_a_carrier_breaks_nothing = _as("carrier", CARRIER_TOKEN, staff_and_carriers)
# Anonymous callers also try the resident and courier operations, with made-up links.
test_anyone_breaks_nothing = _as("anonymous", None, schema)


@resident_operations.parametrize()
@settings(FUZZ, max_examples=_budget(resident_operations))
def test_a_resident_link_breaks_nothing(case: schemathesis.Case, resident_link: str) -> None:
    case.path_parameters["token"] = resident_link  # a real link: the operations run past it
    _call(case, None, "resident")


@pytest.fixture(scope="module")
def courier_link(demo_database: None) -> str:
    """A home delivery's courier link for a ready parcel at a demo shop that delivers every
    day (whatever day the test runs, the first day the shop opens is one)."""
    ctx = app.extensions["relay_ops"]
    operator = Principal(Role.OPERATOR, user_id=0)
    with ctx.db.read() as session:
        ready = session.execute(
            select(Parcel.id, Parcel.site_id).join(Site, Site.id == Parcel.site_id)
            .where(Parcel.state == "ready_for_pickup", Site.kind == "shop")
            .order_by(Parcel.id.desc())).all()
    # The other roles' fuzzing has run on this database (closing days declared, services
    # changed...): the first ready parcel whose shop still offers a delivery day.
    for parcel_id, site_id in ready:
        sites.set_services(ctx, SYSTEM, site_id, ["receive", "home_delivery"])
        home_delivery.set_offer(ctx, operator, site_id, {"days": list(DAYS), "area": "le bourg"})
        days = home_delivery.for_resident(
            ctx, Principal(Role.RESIDENT, parcel_id=parcel_id))["days"]
        if days:
            break
    else:
        raise AssertionError("no ready parcel at a shop that can deliver any day")
    answer = home_delivery.request(
        ctx, operator, parcel_id, day=date.fromisoformat(days[0]), courier_kind="neighbour",
        courier_name="Marcel Petit", consent=True, in_area=True)
    return str(answer["courier_url"]).rsplit("/", 1)[1]


@courier_operations.parametrize()
@settings(FUZZ, max_examples=_budget(courier_operations, COURIER_CASES))
def test_a_courier_link_breaks_nothing(case: schemathesis.Case, courier_link: str) -> None:
    case.path_parameters["courier_token"] = courier_link  # a real link: past the lookup
    _call(case, None, "courier")


def test_each_role_made_its_cases() -> None:
    """Every role that ran (here, after the fuzz tests) made ``FUZZ_CASES`` cases or more."""
    print("cases per role:", dict(CASES))
    assert CASES, "run with the fuzz tests above"
    wanted = {role: COURIER_CASES if role == "courier" else FUZZ_CASES for role in CASES}
    assert all(CASES[role] >= wanted[role] for role in CASES), dict(CASES)


# ------------------------------------------------------------------ sequences (links)

STATEFUL_SCENARIOS = int(os.environ.get("RELAY_OPS_FUZZ_SCENARIOS", "40"))
STATEFUL_STEPS = 8
LINKED: Counter[str] = Counter()
STEPS: Counter[str] = Counter()


# The document's links alone: schemathesis' inference would also link operations by field
# names (a locker's answer to GET /parcels/{parcel_id} through a compartment's `parcel_id`, the
# staff list to signing the operator itself out...), sequences no client makes.
schema.config.phases.stateful.inference.algorithms = []


class OperatorSequences(staff_and_carriers.as_state_machine()):  # type: ignore[misc]
    """The operator follows the document's links: creates a site, then reads, changes and
    fills it; declares a closing day, then withdraws it; scans a parcel in, then reads its
    history... Every check runs on every step, and ``use_after_free`` and
    ``ensure_resource_availability`` judge each step against the one it came from."""

    def setup(self) -> None:
        """Each sequence starts from the seeded demo: Hypothesis replays the start of earlier
        sequences and needs their steps to answer as before (a carrier code taken by an
        earlier sequence would answer 409 where it answered 201, and Hypothesis would stop
        on "inconsistent data generation"); and no sequence inherits another's signed-out
        operator or closed sites."""
        app.extensions["relay_ops"].db.dispose()
        for leftover in _folder.glob("fuzz.sqlite3-*"):  # a journal of the previous sequence
            leftover.unlink()
        shutil.copy(_seeded, _database)

    def before_call(self, case: schemathesis.Case) -> None:
        STEPS["operator"] += 1
        _prepare(case, "sequences")

    def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, dict[str, str]]:
        return {"headers": {"Authorization": f"Bearer {OPERATOR_TOKEN}"}}

    def validate_response(self, response: object, case: schemathesis.Case,
                          additional_checks: object = None, **kwargs: object) -> None:
        parent = self.recorder.find_parent(case_id=case.id)
        if parent is not None:  # a step made from an earlier one's answer
            LINKED[f"{parent.operation.label} -> {case.operation.label} "
                   f"{getattr(response, 'status_code', '?')}"] += 1
        # The headers are named, as call_and_validate names them: ignored_auth then knows the
        # token is the test's own (and probes without it), not a generated one.
        headers = self.get_call_kwargs(case)["headers"]
        case.validate_response(response, checks=CHECKS, headers=headers,
                               transport_kwargs=kwargs or None, recorder=self.recorder)


def test_the_operators_sequences_break_nothing(demo_database: None) -> None:
    OperatorSequences.run(settings=settings(
        FUZZ, max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS))
    print("steps:", dict(STEPS), "linked steps:", sum(LINKED.values()), dict(LINKED))
    # The links were followed: a site made in a sequence was then read or changed under its
    # own id, which ensure_resource_availability judges (a 404 there fails it).
    assert any(step.startswith("POST /api/v1/sites -> ") and step.endswith(" 200")
               for step in LINKED), dict(LINKED)
