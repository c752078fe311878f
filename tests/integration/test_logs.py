"""Logs (relay_ops/logs.py): each request has an id, sent back, named in a 500's problem and
carried by every log line written while it is served; JSON lines for a log pipeline."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from relay_ops.logs import JsonFormatter, RequestIdFilter, TextFormatter
from tests.support import is_problem

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    """A handler as ``logs.configure`` builds it (the formatter is set by each test), on the
    app's logger: pytest holds the root logger, so configure leaves it alone here."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("relay_ops")
    logger.addHandler(handler)
    try:
        yield stream, handler
    finally:
        logger.removeHandler(handler)


def test_every_answer_names_its_request(client: FlaskClient) -> None:
    ids = {client.get("/health").headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # A problem too (the API's own 404), and an id a proxy sent is kept as it is.
    answer = client.get("/api/v1/nothing", headers={"X-Request-Id": "edge-7f3a9c2e.42"})
    assert answer.status_code == 404 and answer.headers["X-Request-Id"] == "edge-7f3a9c2e.42"


@pytest.mark.parametrize("sent", ["short", "x" * 65, "two words here", "line\nbreak-injected",
                                  "\x00" * 16, "é" * 10, ""])
def test_an_id_that_is_not_a_short_token_is_replaced(client: FlaskClient, sent: str) -> None:
    try:
        answer = client.get("/health", headers={"X-Request-Id": sent})
    except ValueError:  # werkzeug's client refuses to send a header with a line break
        answer = client.get("/health", environ_base={"HTTP_X_REQUEST_ID": sent})
    given = answer.headers["X-Request-Id"]
    assert given != sent and re.fullmatch(r"[0-9a-f]{32}", given)


# An app of its own (the marker): a route is added, which an app that served a request refuses.
@pytest.mark.app_config(PROPAGATE_EXCEPTIONS=False)
def test_an_unexpected_error_names_the_request_its_log_line_carries(
        app: Flask, captured: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = captured
    handler.setFormatter(JsonFormatter())

    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("secret detail")

    answer = app.test_client().get("/boom", headers={"X-Request-Id": "lb-0123456789abcdef"})
    assert is_problem(answer, 500, "internal-error")
    assert answer.json["request_id"] == "lb-0123456789abcdef"
    assert "secret" not in json.dumps(answer.json)
    [line] = stream.getvalue().splitlines()  # one line, its traceback inside
    entry = json.loads(line)
    assert entry["request_id"] == "lb-0123456789abcdef"
    assert entry["level"] == "ERROR" and entry["message"] == "unhandled error on GET /boom"
    assert "ZeroDivisionError: secret detail" in entry["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


def test_a_line_outside_a_request_has_no_id(
        captured: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = captured
    handler.setFormatter(TextFormatter("%(levelname)s:%(name)s:%(message)s"))
    logging.getLogger("relay_ops.jobs").warning("sweep %s: %d", "expiry", 3)
    assert stream.getvalue() == "WARNING:relay_ops.jobs:sweep expiry: 3\n"


def test_a_text_line_in_a_request_ends_with_its_id(
        app: Flask, captured: tuple[io.StringIO, logging.Handler]) -> None:
    stream, handler = captured
    handler.setFormatter(TextFormatter("%(levelname)s:%(name)s:%(message)s"))
    with app.test_request_context("/", headers={"X-Request-Id": "proxy-id-0001"}):
        app.preprocess_request()
        logging.getLogger("relay_ops.web").warning("refused")
    assert stream.getvalue() == "WARNING:relay_ops.web:refused [request proxy-id-0001]\n"


PROBE = """
import logging, sys
from relay_ops import create_app
app = create_app({"DATABASE_URL": "sqlite://", "LOG_FORMAT": sys.argv[1]})
logging.getLogger("relay_ops.probe").info("ready at %s", "the counter")
app.test_client().get("/boom-missing")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("relay_ops.probe").exception("failed")
"""


def test_a_process_configured_for_json_writes_json_lines_on_stderr() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, "json"], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=60)
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    ready = [e for e in entries if e["logger"] == "relay_ops.probe"]
    assert [e["message"] for e in ready] == ["ready at the counter", "failed"]
    assert ready[0]["level"] == "INFO" and "request_id" not in ready[0]
    assert "ZeroDivisionError" in ready[1]["exception"]


def test_an_unknown_log_format_stops_the_start() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, "yaml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "LOG_FORMAT is 'yaml': choose from text, json" in done.stderr
