"""The locker panel in a browser, against the real chain: the page drives a simulated locker
(``LockerAgent`` + ``SimulatedBoard``) that talks MQTT through an embedded amqtt broker to the
bridge, which applies its events with the services; the doors the page shows are the board's.

This runs on its own server and database (a locker on the shared one would change the other
pages' screenshots), in demo mode: no sign-in, the resident's phone shows the PIN.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from firmware_bridge.embedded import EmbeddedLockers
from relay_ops.services import locker_registry, locker_views, parcel_views
from relay_ops.services.principal import SYSTEM
from relay_ops.web.pages.locker_panel import attach_simulated_locker
from tests.browser.conftest import Live, serve, shot
from tests.browser.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

CODE = "casier-test"
NUMBER = "LOCKERBROWSER1"


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def locker_live(tmp_path_factory: pytest.TempPathFactory,
                sqlite_template: Path) -> Iterator[tuple[Live, int]]:
    folder = tmp_path_factory.mktemp("locker-live")
    with serve(folder, sqlite_template, LOCKER_PANEL_DEMO=True) as running:
        site_id = locker_registry.register_locker(running.ctx, SYSTEM, {
            "code": CODE, "name": "Casier de test", "locker_model": "mini-6",
            "address": "1 rue de la Mairie", "postcode": "44440", "city": "Riaillé",
            "latitude": 47.5172, "longitude": -1.2931})["id"]
        stack = EmbeddedLockers(running.ctx, CODE, 6, folder / "journal")
        stack.start()
        try:
            attach_simulated_locker(running.app, stack)
            _wait(lambda: locker_views.locker_view(running.ctx, SYSTEM, site_id)["link"][
                "credential_version_held"] is not None, 20, "the locker's first credential sync")
            yield running, site_id
        finally:
            stack.stop()


def test_locker_panel_opens_a_door_with_a_pin(page: Page, locker_live: tuple[Live, int]) -> None:
    live, site_id = locker_live
    assert live.world.announce(NUMBER, site=CODE, size_class="S").status_code == 201
    page.goto(f"{live.url}/lockers/{site_id}/panel")
    expect(page.locator("#locker-link")).to_contain_text("en ligne")

    # the carrier scans the parcel: a door opens for it, the parcel goes in, the door closes
    page.get_by_label("Scannez le numéro de suivi du colis").fill(NUMBER)
    page.get_by_role("button", name="Scanner : ouvrir une porte pour lui").click()
    opened = page.locator("#doors li[data-open=yes]")
    expect(opened).to_have_count(1, timeout=10_000)
    door = int(opened.get_attribute("data-door") or 0)
    page.get_by_role("button", name=f"Fermer la porte {door}, colis dedans").click()
    expect(opened).to_have_count(0, timeout=10_000)

    # the resident's message arrives (the demo shows it): a wrong PIN first, then the right one
    pin_shown = page.locator(f"#resident-phone li[data-parcel={NUMBER}] [data-pin]")
    expect(pin_shown).to_have_text(re.compile(r"^\d{7}$"), timeout=10_000)
    pin = pin_shown.inner_text()
    wrong = "000000" if pin != "000000" else "111111"
    keypad = page.get_by_label("Code de retrait")
    keypad.press_sequentially(wrong)
    keypad.press("Enter")
    expect(page.locator("#locker-screen")).to_contain_text("Refusé : code inconnu",
                                                           timeout=10_000)
    expect(page.locator("#doors li[data-open=yes]")).to_have_count(0)
    for digit in pin:  # the on-screen keys this time, then OK
        page.locator("#keypad-form").get_by_role("button", name=digit, exact=True).click()
    expect(keypad).to_have_value(pin)
    page.get_by_role("button", name="OK", exact=True).click()
    expect(page.locator(f"#door-{door}")).to_have_attribute("data-open", "yes", timeout=10_000)
    expect(page.locator(f"#door-{door}")).to_contain_text("porte ouverte")
    expect(page.locator("#locker-screen")).to_contain_text(f"La porte {door} s'ouvre")
    shot(page, "locker-panel")
    # The screen's lines are a list inside a log, not a log that hides its list.
    assert axe_violations(page) == []

    # the resident takes the parcel and closes the door: the bridge records the pickup
    page.get_by_role("button", name=f"Fermer la porte {door}, vide").click()
    _wait(lambda: parcel_views.find_parcel(live.ctx, SYSTEM, NUMBER)["state"] == "picked_up", 10,
          "the pickup recorded from the locker's events")
    expect(page.locator(f"#door-{door}")).to_have_attribute("data-open", "no")
