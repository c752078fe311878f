"""The real agent on emulated KR-CU16 boards, with a test client playing the backend: door
events, failed opens and board faults travel as they do from the simulated board."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock, fast_settings
from locker_harness import SHARED_BROKER, FakeBackend, identity_for, unique_locker_id, wait_until

from firmware_bridge import protocol as p
from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.board_emulator import BoardEmulator, EmulatedBoard
from firmware_bridge.agent.kerong import KerongBoard, KerongConfig


@pytest.fixture
def kerong_locker(tmp_path: Path) -> Iterator[Callable[..., tuple[LockerAgent, BoardEmulator,
                                                                 FakeBackend]]]:
    cleanup: list[Callable[[], None]] = []

    def build() -> tuple[LockerAgent, BoardEmulator, FakeBackend]:
        emulator = BoardEmulator([EmulatedBoard(0), EmulatedBoard(1)]).start()
        cleanup.append(emulator.stop)
        config = KerongConfig.from_dict({
            "port": emulator.port,
            "boards": [{"address": 0}, {"address": 1}],
            "compartments": {"1": [0, 1], "2": [0, 2], "3": [1, 1], "4": [1, 2]},
            "reply_timeout_s": 0.1, "open_confirm_s": 0.5, "confirm_poll_s": 0.02,
            "offline_after": 2, "offline_retry_s": 0.3, "status_max_age_s": 0.05,
        })
        board = KerongBoard(config)
        cleanup.append(board.close)
        locker_id = unique_locker_id("K")
        backend = FakeBackend([locker_id], *SHARED_BROKER)
        cleanup.append(backend.close)
        agent = LockerAgent(locker_id, board, *SHARED_BROKER, tmp_path / "j.sqlite3",
                            settings=fast_settings(), clock=FakeClock(),
                            identity=identity_for(locker_id))
        agent.start()
        cleanup.append(agent.stop)  # stopped first: its offline status before the backend goes
        backend.wait_event("state_snapshot")
        wait_until(lambda: agent.online, 5, "agent online")
        return agent, emulator, backend

    yield build
    for step in reversed(cleanup):
        step()


def open_cmd(compartment: int) -> p.OpenCompartment:
    return p.OpenCompartment(purpose="pickup", compartment=compartment, parcel_ref="P-1")


def test_an_open_on_board_1_is_confirmed_and_its_closing_reported(kerong_locker: Any) -> None:
    agent, emulator, backend = kerong_locker()
    snapshot = backend.events("state_snapshot")[0].body
    assert [(c.number, c.door, c.occupied) for c in snapshot.compartments] == [
        (n, "closed", False) for n in (1, 2, 3, 4)]
    command = backend.command(agent.locker_id, open_cmd(3))
    backend.wait_result(command.corr_id, "done")
    assert emulator.lock_of(1, 1).door_open
    assert backend.wait_event("door_opened").body.compartment == 3
    emulator.close_door(1, 1, occupied=True)
    closed = backend.wait_event("door_closed").body
    assert (closed.compartment, closed.occupied, closed.corr_id) == (3, True, command.corr_id)


def test_a_jammed_lock_is_reported_as_today(kerong_locker: Any) -> None:
    agent, emulator, backend = kerong_locker()
    emulator.lock_of(0, 2).jammed = True
    command = backend.command(agent.locker_id, open_cmd(2))
    result = backend.wait_result(command.corr_id, "failed")
    assert result.reason == "door_failed_to_open"
    assert backend.wait_event("door_failed_to_open").body.compartment == 2
    assert backend.wait_event("fault", lambda b: b.code == "door_jammed").body.compartment == 2


def test_a_dead_board_is_one_fault_and_the_other_board_keeps_opening(kerong_locker: Any) -> None:
    agent, emulator, backend = kerong_locker()
    emulator.boards[1].silent = True
    # an open on the dead board makes the driver read it: no answer, the board goes offline
    dead = backend.command(agent.locker_id, open_cmd(4))
    backend.wait_result(dead.corr_id, "failed")
    fault = backend.wait_event("fault", lambda b: b.code == "board_offline").body
    assert (fault.board, fault.detail) == (1, "board 1 did not answer 2 status reads")
    failed = backend.wait_event("door_failed_to_open").body
    assert (failed.compartment, failed.reason, failed.board) == (4, "board_offline", 1)
    assert [e for e in backend.events("fault") if e.body.code == "door_jammed"] == []
    live = backend.command(agent.locker_id, open_cmd(1))
    backend.wait_result(live.corr_id, "done")
    assert emulator.lock_of(0, 1).door_open
    emulator.boards[1].silent = False
    backend.command(agent.locker_id, open_cmd(3))
    assert backend.wait_event("fault", lambda b: b.code == "board_recovered",
                              timeout=5).body.board == 1
    assert len([e for e in backend.unique_events("fault") if e.body.code == "board_offline"]) == 1
