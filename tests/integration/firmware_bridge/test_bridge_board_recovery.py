"""A lock board that stops answering, then answers again, through the whole link: the real
agent drives emulated KR-CU16 boards over a pseudo-terminal, the real bridge applies its events
to the services, on SQLite and PostgreSQL. The resident's pickup fails while the board is
silent and works with the same PIN once it is back, with no one touching the door."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from locker_harness import SHARED_BROKER, unique_locker_id, wait_until
from sqlalchemy import select

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.emulated import EmulatedKerongLocker
from firmware_bridge.bridge import Bridge
from relay_ops.db.models import LockerAlert
from relay_ops.services import credentials, locker_registry
from relay_ops.services.principal import SYSTEM
from tests.integration.firmware_bridge.conftest import fast_settings
from tests.integration.firmware_bridge.test_bridge import (  # noqa: F401 - fixtures
    Site,
    bridge_for,
    clock,
)
from tests.support import World, provisioned

TIMINGS = {"reply_timeout_s": 0.1, "open_confirm_s": 0.5, "confirm_poll_s": 0.02,
           "offline_after": 2, "offline_retry_s": 0.3, "status_max_age_s": 0.05}


@pytest.fixture
def kerong_site(world: World, tmp_path: Path, bridge_for: Callable[..., Bridge]  # noqa: F811
                ) -> Iterator[Site]:
    code = unique_locker_id("KB")
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
    bridge_for()
    emulated = EmulatedKerongLocker(list(range(1, 7)), **TIMINGS)
    agent = LockerAgent(code, emulated.board, *SHARED_BROKER, tmp_path / f"{code}.sqlite3",
                        reader=emulated, settings=fast_settings(),
                        identity=provisioned(world.ctx, site_id))
    agent.start()
    try:
        site = Site(world, agent, emulated, site_id)  # type: ignore[arg-type]
        wait_until(lambda: site.view()["link"]["online"], 10, "locker online")
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
        yield site
    finally:
        agent.stop()
        emulated.close()


def test_a_board_back_gives_the_resident_s_door_back_and_the_same_pin_opens_it(
        kerong_site: Site) -> None:
    site = kerong_site
    board: Any = site.board  # the emulated KR-CU16 locker: doors, keypad, and `board` verbs
    door = site.drop("KERONGBR0001")
    board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("KERONGBR0001") == "ready_for_pickup", 10, "ready")
    with site.world.ctx.db.read() as session:
        live = credentials.live_credentials(session, site.parcel("KERONGBR0001").id)
        pin = credentials.code_of(site.world.ctx, live[0])

    def compartment() -> dict[str, Any]:
        return next(c for c in site.view()["compartments"] if c["number"] == door)

    def open_kinds() -> list[str]:
        return [a["kind"] for a in site.view()["alerts"]]

    assert board.console("board", ["silent", "0", "on"]) == "ok"
    wait_until(lambda: "fault_board_offline" in open_kinds(), 10, "board offline alert")
    board.type_pin(pin)
    wait_until(lambda: compartment()["state"] == "out_of_service", 10, "door out of service")
    assert compartment()["fault_reason"] == "door_failed_to_open: board_offline (board 0)"
    assert site.state_of("KERONGBR0001") == "ready_for_pickup"
    wait_until(lambda: door in site.agent._oos.compartments, 10, "the locker told")

    assert board.console("board", ["silent", "0", "off"]) == "ok"
    wait_until(lambda: "fault_board_offline" not in open_kinds(), 10, "board alert resolved")
    wait_until(lambda: compartment()["state"] == "occupied", 10, "door back in service")
    wait_until(lambda: door not in site.agent._oos.compartments, 10, "the locker told again")
    assert compartment()["fault_reason"] is None
    assert "fault_board_recovered" not in open_kinds()
    with site.world.ctx.db.read() as session:
        resolved = session.scalar(select(LockerAlert).where(
            LockerAlert.kind == "fault_board_offline", LockerAlert.site_id == site.site_id))
        assert resolved is not None and resolved.resolved_at is not None
        assert resolved.detail is not None and resolved.detail.startswith("board 0: ")
        assert resolved.detail.endswith("resolved: board 0 answers again")

    board.type_pin(pin)
    wait_until(lambda: board.door_state(door) == "open", 10, "door open for the same PIN")
    board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("KERONGBR0001") == "picked_up", 10, "picked up")
    assert "door_back_in_service" in site.actions("KERONGBR0001")
