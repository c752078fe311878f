"""The factory, configuration layers, operational endpoints and the API's own document."""

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from relay_ops import create_app
from relay_ops.web.api import PREFIX, bp, openapi
from tests.conftest import TEST_CONFIG, Clock, SharedApp
from tests.pages.support import csrf_of
from tests.support import is_problem


def test_configuration_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "relay_ops.toml"
    config_file.write_text('TIMEZONE = "Europe/London"\nPICKUP_CODE_DIGITS = 7\n')
    monkeypatch.setenv("RELAY_OPS_CONFIG_FILE", str(config_file))
    monkeypatch.setenv("RELAY_OPS_PICKUP_CODE_DIGITS", "8")
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert app.config["TIMEZONE"] == "Europe/London"  # file over defaults
    assert app.config["PICKUP_CODE_DIGITS"] == 8  # environment over file
    app = create_app({"DATABASE_URL": "sqlite://", "PICKUP_CODE_DIGITS": 9})
    assert app.config["PICKUP_CODE_DIGITS"] == 9  # test mapping over everything


def test_production_refuses_development_secrets(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"ENV": "production", "DATABASE_URL": "sqlite://"})


def test_health_and_readiness(client: FlaskClient) -> None:
    assert client.get("/health").json == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["checks"]["database"] == "ok"


def test_readiness_reports_a_dead_database(tmp_path: Path) -> None:
    app = create_app({"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    response = app.test_client().get("/ready")
    assert response.status_code == 503 and response.json["status"] == "not-ready"


def test_the_openapi_document_is_valid_and_covers_every_route(app: Flask,
                                                              client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    validate(document)
    documented = {(path, method.upper()) for path, ops in document["paths"].items()
                  for method in ops}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(bp.name + "."):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed
    manifest = document["paths"]["/api/v1/manifests"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in manifest["parameters"])
    assert "409" in manifest["responses"]


def test_each_app_serves_the_document_of_its_own_configuration(tmp_path: Path) -> None:
    """The document is worked out once per process and served as written once per app: two
    apps of one process each list their own vocabularies, and a caller that changes the tree
    it was given changes neither the next one nor what is served."""
    def served(name: str, sizes: dict[str, list[int]]) -> dict:
        app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / name}.sqlite3",
                          "SIZE_CLASSES": sizes, "LOCKER_MODELS": {"petit": {"compartments": [
                              {"size_class": "P", "count": 2}]}}})
        return app.test_client().get("/api/v1/openapi.json").json  # type: ignore[no-any-return]

    def sizes_of(document: dict) -> list[str]:
        return document["components"]["schemas"]["LocationIn"]["properties"]["size_class"][
            "enum"]

    small = served("small", {"P": [100, 100, 100]})
    large = served("large", {"P": [100, 100, 100], "G": [500, 500, 500]})
    assert sizes_of(small) == ["P"] and sizes_of(large) == ["P", "G"]
    given = openapi.build(PREFIX, "RelayOps", "1.0.0", {"size_class": ["X"],
                                                        "locker_model": []})
    assert sizes_of(given) == ["X"]
    given["paths"].clear()
    given["components"]["schemas"]["Problem"]["properties"].clear()
    again = openapi.build(PREFIX, "RelayOps", "1.0.0")
    assert again["paths"] and again["components"]["schemas"]["Problem"]["properties"]
    again["paths"].clear()
    assert openapi.build(PREFIX, "RelayOps", "1.0.0")["paths"]
    assert served("small-again", {"P": [100, 100, 100]}) == small


def test_docs_page_is_served_without_a_cdn(client: FlaskClient) -> None:
    page = client.get("/api/docs").get_data(as_text=True)
    assert "http" not in page.split("<body>")[1].replace("url: \"/api/v1/openapi.json\"", "")
    with client.get("/api/docs/assets/swagger-ui-bundle.js") as asset:
        assert asset.status_code == 200 and asset.mimetype == "text/javascript"


def test_unknown_paths_and_methods_are_problems(client: FlaskClient) -> None:
    assert is_problem(client.get("/api/v1/nothing"), 404, "not-found")
    assert is_problem(client.put("/api/v1/manifests"), 405, "method-not-allowed")


# An app of its own (the marker): a route is added, which an app that served a request refuses.
@pytest.mark.app_config(PROPAGATE_EXCEPTIONS=False)
def test_unexpected_errors_are_logged_problems_without_details(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise ZeroDivisionError("secret detail")

    response = app.test_client().get("/boom")
    assert is_problem(response, 500, "internal-error")
    assert "secret" not in json.dumps(response.json)


def test_the_tests_shared_app_comes_back_as_built_for_each_test(
        tmp_path: Path, sqlite_template: Path) -> None:
    """tests/conftest.py hands one app per test process to every test: what a test changes
    (the configuration, the extensions, the sign-in limiter's counts, its context) is gone
    when the next test gets it, and the next test has its own database and clock."""
    shared = SharedApp(TEST_CONFIG | {"DATABASE_URL": f"sqlite:///{tmp_path / 'unused'}",
                                      "NOTIFY_FILE_PATH": str(tmp_path / "unused.jsonl")})

    def next_test(name: str, clock: Clock) -> Flask:
        shutil.copy(sqlite_template, tmp_path / f"{name}.sqlite3")
        return shared.for_test({"DATABASE_URL": f"sqlite:///{tmp_path / name}.sqlite3",
                                "NOTIFY_FILE_PATH": str(tmp_path / f"{name}.jsonl")}, clock)

    def sign_in(client: FlaskClient) -> int:
        token = csrf_of(client.get("/login"))
        return client.post("/login", data={"username": "nobody", "password": "wrong",
                                           "csrf_token": token}).status_code

    first = next_test("first", Clock(datetime(2026, 12, 1, 9, tzinfo=UTC)))
    budget = int(first.config["SIGN_IN_RATE_LIMIT"].split()[0])  # "10 per minute; ..."
    client = first.test_client()
    codes = [sign_in(client) for _ in range(budget + 1)]
    assert codes[0] == 401 and codes[-1] == 429  # the limiter counted its attempts
    first.config["A_TESTS_OWN"] = first.config["SIGN_IN_RATE_LIMIT"] = "1 per minute"
    first.extensions["a test's own"] = object()
    first.extensions["relay_ops"].db.dispose()

    later = Clock(datetime(2027, 3, 2, 9, tzinfo=UTC))
    second = next_test("second", later)
    assert second.config["SIGN_IN_RATE_LIMIT"] == shared.config["SIGN_IN_RATE_LIMIT"] != (
        "1 per minute")
    assert second.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'second'}.sqlite3"
    assert second.config["NOTIFY_FILE_PATH"] == str(tmp_path / "second.jsonl")
    assert "A_TESTS_OWN" not in second.config and "a test's own" not in second.extensions
    ctx = second.extensions["relay_ops"]
    assert ctx.clock is later and ctx.db.engine.url.database == str(tmp_path / "second.sqlite3")
    assert sign_in(second.test_client()) == 401  # no attempt counted from the first test
    ctx.db.dispose()
