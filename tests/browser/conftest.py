"""A live RelayOps on 127.0.0.1 and Debian's Chromium driven by Playwright.

The server is the real application (werkzeug, threaded) on a temporary SQLite file with the
system clock; each test gets a fresh browser context (no cookies) and checks that the page
loaded nothing from another host and logged no script error.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from relay_ops import create_app
from relay_ops.services.context import Ctx
from tests.support import PASSWORD, World, make_world

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ASSETS = ("script", "stylesheet", "image", "font", "media")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Live:
    app: Flask
    url: str
    world: World

    @property
    def ctx(self) -> Ctx:
        return self.world.ctx


def answered_whole(app: WSGIApplication) -> WSGIApplication:
    """The app with each answer read whole and its iterable closed before werkzeug writes it.
    Werkzeug's development server closes the iterable only after draining the request socket,
    and a browser that drops the connection first (a page left while a script loads) leaves
    the static file open: its ResourceWarning then failed a later test's setup. The pages
    stream nothing, so nothing is lost by reading each answer whole."""
    def wsgi(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        answer = app(environ, start_response)
        try:
            return [b"".join(answer)]
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()
    return wsgi


@contextmanager
def serve(folder: Path, sqlite_template: Path, **config: object) -> Iterator[Live]:
    """The real application on 127.0.0.1 with a fresh SQLite copy in ``folder``."""
    shutil.copy(sqlite_template, folder / "live.sqlite3")
    app = create_app({
        "DATABASE_URL": f"sqlite:///{folder / 'live.sqlite3'}",
        "NOTIFY_FILE_PATH": str(folder / "notifications.jsonl"),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        # Every test signs in from 127.0.0.1; the limit itself is tested in tests/pages.
        "SIGN_IN_RATE_LIMIT": "1000 per minute",
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_KIB": 1024,
        **config,
    })
    server = make_server("127.0.0.1", 0, answered_whole(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    world = make_world(app.extensions["relay_ops"], app.test_client())
    try:
        yield Live(app=app, url=f"http://127.0.0.1:{server.server_port}", world=world)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        app.extensions["relay_ops"].db.dispose()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Live]:
    with serve(tmp_path_factory.mktemp("live"), sqlite_template) as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watch:
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> Watch:
    return Watch()


def _open(browser: Browser, live: Live, watch: Watch, **options: object) -> Iterator[Page]:
    options.setdefault("locale", "fr-FR")
    context = browser.new_context(**options)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(5000)
    page.on("request", lambda r: watch.foreign.append(r.url)
            if urlparse(r.url).hostname not in (None, "127.0.0.1") else None)
    # A refused form answers with a 4xx page on purpose; a 4xx for an asset is a bug.
    page.on("console", lambda m: watch.errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    page.on("response", lambda r: watch.errors.append(f"{r.status} {r.url}")
            if r.status >= 400 and r.request.resource_type in ASSETS else None)
    page.on("pageerror", lambda e: watch.errors.append(str(e)))
    yield page
    context.close()
    assert watch.foreign == [], "the pages load nothing from another host (no CDN)"
    assert watch.errors == [], "no script error and no missing asset on the pages"


@pytest.fixture
def page(browser: Browser, live: Live, watch: Watch) -> Iterator[Page]:
    yield from _open(browser, live, watch, viewport={"width": 1280, "height": 860})


@pytest.fixture
def phone(browser: Browser, live: Live, watch: Watch) -> Iterator[Page]:
    yield from _open(browser, live, watch, viewport={"width": 390, "height": 844},
                     is_mobile=True, has_touch=True)


def sign_in(page: Page, live: Live, username: str) -> None:
    page.goto(live.url + "/login")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_load_state()


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
