"""The two programs a locker integrator runs: `relayops-board-emulator` (boards on a pty,
driven from its console) and `relayops-locker-agent --board kerong --board-config FILE` on
it, as on a real bus."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from locker_harness import SHARED_BROKER, FakeBackend, agent_env, unique_locker_id, wait_until
from test_locker_agent_crash import console, start_agent, stop

from firmware_bridge import protocol as p
from firmware_bridge.agent.kerong import state_frame, status_frame, unlock_frame


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    link = tmp_path / "kerong"
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_bridge.agent.board_emulator", "--boards", "0,1",
         "--link", str(link)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=agent_env(),
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == f"port {link}"
    yield process, link
    stop(process)
    assert not link.exists()  # removed on the way out


def test_the_emulator_program_answers_on_its_link(emulator: tuple[subprocess.Popen[str], Path]
                                                  ) -> None:
    process, link = emulator
    all_latched = 0xFFFF
    with serial.Serial(str(link), 19200, timeout=0.5) as port:
        port.write(status_frame(1))
        assert port.read(9) == state_frame(1, all_latched, 0)
        assert console(process, "jam 0 1") == "ok"
        port.write(unlock_frame(0, 1))
        assert port.read(9) == state_frame(0, all_latched, 0)  # the jammed lock held
        port.write(unlock_frame(0, 2))
        assert port.read(9) == state_frame(0, all_latched & ~0b10, 0, lock=2)
        assert console(process, "occupy 1 16") == "ok"
        port.write(status_frame(1))
        assert port.read(9) == state_frame(1, all_latched, 0x8000)
        assert console(process, "silent 1 on") == "ok"
        port.write(status_frame(1))
        assert port.read(9) == b""
    state = json.loads(console(process, "state"))
    assert state["0"]["open"] == [2] and state["1"]["silent"] is True
    assert console(process, "dance 0 1").startswith("error:")


def test_the_agent_drives_boards_from_its_configuration_file(
        emulator: tuple[subprocess.Popen[str], Path], tmp_path: Path) -> None:
    board_process, link = emulator
    config = tmp_path / "board.json"
    config.write_text(json.dumps({
        "driver": "kerong", "port": str(link),
        "boards": [{"address": 0}, {"address": 1}],
        "compartments": {"1": [0, 1], "2": [0, 2], "3": [1, 16], "4": [1, 15]},
    }))
    locker_id = unique_locker_id("K")
    backend = FakeBackend([locker_id], *SHARED_BROKER)
    agent = start_agent(locker_id, tmp_path / "j.sqlite3", SHARED_BROKER[1],
                        "--board", "kerong", "--board-config", str(config))
    try:
        snapshot = backend.wait_event("state_snapshot").body
        assert [(c.number, c.door) for c in snapshot.compartments] == [
            (n, "closed") for n in (1, 2, 3, 4)]
        command = backend.command(
            locker_id, p.OpenCompartment(purpose="pickup", compartment=3, parcel_ref="P-1"))
        backend.wait_result(command.corr_id, "done")
        wait_until(lambda: json.loads(console(board_process, "state"))["1"]["open"] == [16],
                   5, "lock 16 of board 1 released")
        assert console(board_process, "close 1 16 empty") == "ok"
        closed = backend.wait_event("door_closed").body
        assert (closed.compartment, closed.occupied) == (3, False)
        assert console(board_process, "silent 0 on") == "ok"
        fault = backend.wait_event("fault", lambda b: b.code == "board_offline", timeout=10)
        assert fault.body.detail == "board 0 did not answer 3 status reads"
    finally:
        stop(agent)
        backend.close()
