"""Security headers on every answer, and pages that need no inline script to work."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from relay_ops.services import accounts, resident
from relay_ops.services.principal import SYSTEM
from relay_ops.settings import SECRET_KEYS as SECRETS
from relay_ops.web.headers import HEADERS
from tests.pages.support import Pages
from tests.support import World


class _InlineCode(HTMLParser):
    """Everything a Content-Security-Policy without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"<{tag} {name}=…>")
        if tag == "style":
            self.found.append("<style>")
        # A JSON data block is never executed; any other script must come from a file.
        self._script = tag == "script" and "src" not in named and named.get(
            "type") != "application/json"

    def handle_data(self, data: str) -> None:
        if self._script and data.strip():
            self.found.append(f"<script>{data.strip()[:40]}")

    def handle_endtag(self, tag: str) -> None:
        self._script = False


def _inline_code(html: str) -> list[str]:
    parser = _InlineCode()
    parser.feed(html)
    return parser.found


def test_every_answer_carries_the_security_headers(world: World) -> None:
    client = world.client.application.test_client()
    for path in ("/login", "/api/v1/sites", "/assets/js/scan.js", "/api/docs", "/health"):
        with client.get(path) as response:  # a file answer is closed, not left open
            for name, value in HEADERS.items():
                assert response.headers.get(name) == value, (path, name)
    policy = HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert HEADERS["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_no_page_needs_inline_script_or_style(
        marie: Pages, operator: Pages, world: World, language: str) -> None:
    parcel = world.ready("RR123456785FR")
    site = world.shop_id
    acme = Pages.carrier(world, accounts.issue_carrier_key(world.ctx, SYSTEM, "acme").token)
    pages = {
        marie: [f"/shop/{site}/scan", f"/shop/{site}/pickup", f"/shop/{site}/parcels",
                f"/shop/{site}/send", f"/shop/{site}/producers", f"/shop/{site}/home-delivery",
                f"/shop/{site}", f"/shop/{site}/parcels/{parcel['id']}",
                f"/shop/{site}/parcels/{parcel['id']}/label", "/shop"],
        operator: ["/ops"],
        acme: ["/carrier", "/carrier/manifests/new"],
    }
    headers = {"Accept-Language": language}
    for who, paths in pages.items():
        for path in paths:
            response = who.client.get(path, headers=headers)
            assert response.status_code == 200, path
            assert _inline_code(response.get_data(as_text=True)) == [], path
    anonymous = world.client.application.test_client()
    token = resident.tracking_token(world.ctx, parcel["id"])
    for path in ("/login", "/carrier/login", "/producer/login", f"/t/{token}", "/api/docs",
                 "/nowhere"):
        html = anonymous.get(path, headers=headers).get_data(as_text=True)
        assert _inline_code(html) == [], path


def test_a_mistyped_address_answers_a_page_to_a_browser_and_json_to_a_client(
        world: World) -> None:
    client = world.client.application.test_client()
    page = client.get("/nowhere", headers={"Accept": "text/html,*/*;q=0.8",
                                           "Accept-Language": "fr"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert '<h1 id="error-title">✖ Introuvable</h1>' in page.get_data(as_text=True)
    for path, accept in (("/nowhere", "*/*"), ("/api/v1/nothing", "text/html")):
        answer = client.get(path, headers={"Accept": accept})
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json"


def test_production_keeps_browsers_on_https(world: World) -> None:
    from relay_ops import create_app

    client = world.client.application.test_client()
    assert "Strict-Transport-Security" not in client.get("/login").headers  # the demo: http
    production = create_app({
        "ENV": "production", "DATABASE_URL": world.ctx.db.engine.url.render_as_string(False),
        **{key: "a-real-secret-" + key for key in SECRETS},
        "LOCKER_TOKEN_SIGNING_KEY": base64.b64encode(b"k" * 32).decode(),
        "LOCKER_COMMAND_SIGNING_KEY": base64.b64encode(b"c" * 32).decode(),
    })
    answer = production.test_client().get("/health")
    assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_the_residents_page_with_its_code_is_not_stored(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    token = resident.tracking_token(world.ctx, parcel["id"])
    answer = world.client.application.test_client().get(f"/t/{token}")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
