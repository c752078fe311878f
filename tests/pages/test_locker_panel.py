"""The locker panel (a simulated locker's keypad, scanner, doors, a carrier's drop-off) and the
operator's live locker status on the dashboard.

Here the panel drives a real ``SimulatedBoard`` whose keypad and scanner report to a recorder
standing in for the agent; the whole chain through MQTT (agent, broker, bridge) is driven by
the browser test ``tests/browser/test_locker_panel.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from firmware_bridge.agent.drivers import SimulatedBoard
from relay_ops.services import accounts, locker_registry, locker_views
from relay_ops.services.principal import SYSTEM
from relay_ops.web.pages.locker_panel import attach_simulated_locker, detach_simulated_locker
from tests.pages.support import Pages
from tests.support import World

CODE, OTHER = "casier-bourg", "casier-voisin"


def locker(code: str) -> dict[str, Any]:
    return {"code": code, "name": f"Casier {code}", "locker_model": "mini-6",
            "address": "1 rue de la Mairie", "postcode": "44000", "city": "Bourg",
            "latitude": 47.51, "longitude": -1.29}


@dataclass
class Recorder:
    """Stands in for the agent: what the board's keypad and scanner delivered."""

    online: bool = True
    readings: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, kind: str, value: str) -> None:
        self.readings.append((kind, value))


@dataclass
class Sim:
    code: str
    board: SimulatedBoard
    agent: Recorder
    site_id: int = 0
    other_id: int = 0

    @property
    def url(self) -> str:
        return f"/lockers/{self.site_id}/panel"


@pytest.fixture
def sim(app: Flask, world: World) -> Iterator[Sim]:
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, locker(CODE))["id"]
    other_id = locker_registry.register_locker(world.ctx, SYSTEM, locker(OTHER))["id"]
    board, agent = SimulatedBoard(list(range(1, 7))), Recorder()
    board.set_input_handler(agent)
    simulated = Sim(CODE, board, agent, site_id, other_id)
    attach_simulated_locker(app, simulated)
    yield simulated
    detach_simulated_locker(app, CODE)


def carrier_id(world: World, code: str = "acme") -> int:
    return next(int(c["id"]) for c in accounts.list_carriers(world.ctx, SYSTEM)  # type: ignore[call-overload]
                if c["code"] == code)


# ---------------------------------------------------------------- who may use it


def test_only_operators_open_the_panel(sim: Sim, world: World, operator: Pages,
                                       marie: Pages) -> None:
    anonymous = Pages(world.client.application.test_client(), world)
    assert anonymous.get(sim.url).status_code == 302
    assert "/login" in anonymous.get(sim.url).location
    assert marie.get(sim.url).status_code == 403
    carrier = Pages.carrier(world, world.carrier.token or "")
    assert carrier.get(sim.url).status_code == 403
    html = operator.text(sim.url)
    assert "Façade de la consigne" in html and "Porte 6" in html
    assert "Le téléphone du destinataire" not in html  # PINs are shown in the demo only


def test_a_refused_visitor_presses_no_key(sim: Sim, world: World, marie: Pages) -> None:
    anonymous = Pages(world.client.application.test_client(), world)
    anonymous.refresh_csrf("/login")
    assert anonymous.post(f"{sim.url}/keypad", {"pin": "123456"}).status_code == 302
    assert marie.post(f"{sim.url}/keypad", {"pin": "123456"}).status_code == 403
    assert sim.agent.readings == []


def test_the_demo_opens_the_panel_without_signing_in(app: Flask, sim: Sim,
                                                      world: World) -> None:
    app.config["LOCKER_PANEL_DEMO"] = True
    anonymous = Pages(world.client.application.test_client(), world)
    html = anonymous.text(sim.url)
    assert "Le téléphone du destinataire (démo)" in html
    anonymous.refresh_csrf(sim.url)
    assert anonymous.post(f"{sim.url}/keypad", {"pin": "123456"}, json=True).get_json()["ok"]
    assert sim.agent.readings == [("pin", "123456")]


def test_production_ignores_the_demo_setting(app: Flask, sim: Sim, world: World) -> None:
    app.config.update(LOCKER_PANEL_DEMO=True, ENV="production")
    anonymous = Pages(world.client.application.test_client(), world)
    assert anonymous.get(sim.url).status_code == 302


def test_other_sites_have_no_panel(sim: Sim, world: World, operator: Pages) -> None:
    for site_id in (sim.other_id, world.shop_id, 999_999):  # not simulated, a shop, nothing
        assert operator.get(f"/lockers/{site_id}/panel").status_code == 404
        assert operator.get(f"/lockers/{site_id}/panel/state").status_code == 404
        assert operator.post(f"/lockers/{site_id}/panel/keypad", {"pin": "1"}).status_code == 404
    assert operator.post(f"{sim.url}/doors/99/close", {"occupied": "0"}).status_code == 404
    assert sim.agent.readings == []


def test_a_form_without_its_csrf_token_presses_nothing(sim: Sim, operator: Pages) -> None:
    response = operator.post(f"{sim.url}/keypad", {"pin": "123456"}, csrf=False)
    assert response.status_code == 400
    assert sim.agent.readings == []


# ---------------------------------------------------------------- what it does


def test_keypad_and_scanner_reach_the_board(sim: Sim, operator: Pages) -> None:
    answer = operator.post(f"{sim.url}/keypad", {"pin": "12 34 56"}, json=True).get_json()
    assert answer["ok"] and "clavier" in answer["message"]
    assert operator.post(f"{sim.url}/scanner", {"token": "RO1:ABC DEF"}, json=True).get_json()["ok"]
    refused = operator.post(f"{sim.url}/keypad", {"pin": "abc"}, json=True).get_json()
    assert not refused["ok"]
    assert sim.agent.readings == [("pin", "123456"), ("qr", "RO1:ABC DEF")]


def test_without_script_the_panel_answers_with_a_page(sim: Sim, operator: Pages) -> None:
    response = operator.post(f"{sim.url}/keypad", {"pin": "123456"})
    assert response.status_code == 303 and response.location.endswith(sim.url)
    assert "Code tapé au clavier" in operator.text(sim.url)


def test_a_door_closes_from_the_panel(sim: Sim, operator: Pages) -> None:
    sim.board.open(2)
    state = operator.get(f"{sim.url}/state").get_json()
    assert {"number": 2, "open": True, "occupied": False} in state["doors"]
    assert "Fermer la porte 2, colis dedans" in state["html"]
    answer = operator.post(f"{sim.url}/doors/2/close", {"occupied": "1"}, json=True).get_json()
    assert answer == {"ok": True, "message": "Porte 2 fermée avec un colis dedans."}
    assert sim.board.door_state(2) == "closed" and sim.board.occupancy(2) is True
    sim.board.open(3)
    sim.board.stick_open(3)
    stuck = operator.post(f"{sim.url}/doors/3/close", {"occupied": "0"}, json=True).get_json()
    assert not stuck["ok"] and sim.board.door_state(3) == "open"


def test_the_screen_shows_what_the_locker_says(sim: Sim, operator: Pages) -> None:
    for message in ("one", "two", "refused: unknown_code", "compartment 4 opens", "five"):
        sim.board.show(message)
    state = operator.get(f"{sim.url}/state").get_json()
    # In the page's language: the firmware's own words are English.
    assert state["screen"] == ["two", "Refusé : code inconnu", "La porte 4 s'ouvre", "five"]
    assert state["online"] is True


def test_the_screen_is_said_in_the_pages_language(sim: Sim, operator: Pages) -> None:
    for message in ("compartment 2 opens: put in LOCKERPANEL01", "compartment 3 failed to open",
                    "refused: expired", "carrier: 1 to collect, 2 to deposit (scan each parcel)"):
        sim.board.show(message)
    french = operator.get(f"{sim.url}/state").get_json()["screen"]
    assert french == ["La porte 2 s'ouvre : déposez LOCKERPANEL01",
                      "La porte 3 ne s'est pas ouverte", "Refusé : ce code a expiré",
                      "Transporteur : 1 à reprendre, 2 à déposer (scannez chaque colis)"]
    english = operator.get(f"{sim.url}/state", headers={"Accept-Language": "en"}).get_json()
    assert english["screen"][0] == "Door 2 opens: put LOCKERPANEL01 in"
    assert "Refusé : ce code a expiré" in operator.text(sim.url)  # the page as served


def test_a_carrier_drops_a_parcel_off(sim: Sim, world: World, operator: Pages) -> None:
    assert world.announce("LOCKERPANEL01", site=CODE, size_class="S").status_code == 201
    answer = operator.post(f"{sim.url}/carrier/deposit", {
        "carrier": str(carrier_id(world)), "tracking_number": "LOCKERPANEL01"},
        json=True).get_json()
    assert answer["ok"], answer
    view = locker_views.locker_view(world.ctx, SYSTEM, sim.site_id)
    box = next(b for b in view["compartments"] if b["parcel"] == "LOCKERPANEL01")
    assert box["state"] == "reserved" and f"porte {box['number']} s'ouvre" in answer["message"]
    assert view["commands_waiting"] >= 1  # the open command, on its way to the locker
    # the same carrier's next scan reuses the session; another carrier's parcel is refused
    assert world.announce("LOCKERPANEL02", site=CODE, size_class="S").status_code == 201
    other = operator.post(f"{sim.url}/carrier/deposit", {
        "carrier": str(carrier_id(world, "other")), "tracking_number": "LOCKERPANEL02"},
        json=True).get_json()
    assert not other["ok"] and "Introuvable" in other["message"]
    finish = operator.post(f"{sim.url}/carrier/finish", {}, json=True).get_json()
    assert finish["ok"]
    view = locker_views.locker_view(world.ctx, SYSTEM, sim.site_id)
    assert all(b["state"] == "free" for b in view["compartments"])  # the door never opened


def test_a_carrier_must_be_chosen(sim: Sim, operator: Pages) -> None:
    answer = operator.post(f"{sim.url}/carrier/deposit", {
        "carrier": "4242", "tracking_number": "LOCKERPANEL01"}, json=True).get_json()
    assert answer == {"ok": False, "message": "Choisissez le transporteur."}


# ---------------------------------------------------------------- the dashboard's lockers


def test_the_dashboard_lists_lockers_with_their_status(sim: Sim, world: World,
                                                       operator: Pages) -> None:
    locker_registry.set_compartment_service(world.ctx, SYSTEM, sim.other_id, 5, in_service=False,
                                    reason="hinge broken")
    html = operator.text("/ops")
    assert "Consignes : état en direct" in html
    mine, other = html.split(f'id="locker-{CODE}"')[1], html.split(f'id="locker-{OTHER}"')[1]
    assert "hors ligne" in mine and "jamais connectée" in mine
    assert f'href="/lockers/{sim.site_id}/panel"' in mine.split("</tr>")[0]
    assert "porte 5: hinge broken" in other.split("</tr>")[0]
    assert "Ouvrir sa façade" not in other.split("</tr>")[0]
    row = other.split("</tr>")[0]
    assert "0 casier occupé sur 5" in row  # the broken door counts for nothing
    assert "sur 6" in mine.split("</tr>")[0]


def test_a_full_locker_tells_the_carrier_where_the_parcel_goes(
        sim: Sim, world: World, operator: Pages) -> None:
    for number in range(1, 7):
        locker_registry.set_compartment_service(world.ctx, SYSTEM, sim.site_id, number,
                                        in_service=False, reason="travaux")
    assert world.announce("LOCKERPANEL09", site=CODE, size_class="S").status_code == 201
    answer = operator.post(f"{sim.url}/carrier/deposit", {
        "carrier": str(carrier_id(world)), "tracking_number": "LOCKERPANEL09"},
        json=True).get_json()
    assert not answer["ok"]  # nothing goes in this locker
    assert "Cette consigne est pleine : LOCKERPANEL09 part pour" in answer["message"]
    assert "le destinataire a été prévenu" in answer["message"]
