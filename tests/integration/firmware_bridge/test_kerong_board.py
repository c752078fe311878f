"""The KR-CU16 driver against the board emulator on a pseudo-terminal (docs/lock-boards.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.agent.board_emulator import BoardEmulator, EmulatedBoard
from firmware_bridge.agent.drivers import BoardFault, FaultSource, LockBoard
from firmware_bridge.agent.kerong import (
    REQUEST_LEN,
    BoardModel,
    KerongBoard,
    KerongConfig,
    parse_request,
    state_frame,
    status_frame,
    unlock_frame,
)

FAST = {
    "reply_timeout_s": 0.1,
    "retries": 1,
    "open_confirm_s": 0.4,
    "confirm_poll_s": 0.02,
    "unlock_settle_s": 0.01,
    "status_max_age_s": 0.0,
    "offline_after": 2,
    "offline_retry_s": 0.3,
}


def board_config(port: str, boards: list[dict[str, Any]], **overrides: Any) -> KerongConfig:
    return KerongConfig.from_dict({"port": port, "boards": boards, **FAST, **overrides})


@pytest.fixture
def bus() -> Iterator[BoardEmulator]:
    """Boards 0 and 1 on one bus, the usual model."""
    with BoardEmulator([EmulatedBoard(0), EmulatedBoard(1)]) as emulator:
        yield emulator


@pytest.fixture
def driver(bus: BoardEmulator) -> Iterator[KerongBoard]:
    board = KerongBoard(board_config(bus.port, [{"address": 0}, {"address": 1}]))
    yield board
    board.close()


def frames_on_the_wire(emulator: BoardEmulator) -> list[bytes]:
    """The wire cut in 5-byte frames: it must hold nothing else."""
    wire = bytes(emulator.wire)
    assert len(wire) % REQUEST_LEN == 0, wire.hex()
    return [wire[i:i + REQUEST_LEN] for i in range(0, len(wire), REQUEST_LEN)]


def test_it_is_a_lock_board_and_a_fault_source(driver: KerongBoard) -> None:
    assert isinstance(driver, LockBoard)
    assert isinstance(driver, FaultSource)
    assert driver.compartments() == list(range(1, 33))


def test_an_open_sends_the_documented_bytes_and_is_confirmed(bus: BoardEmulator,
                                                            driver: KerongBoard) -> None:
    assert driver.door_state(1) == "closed"
    assert driver.open(1) is True
    assert driver.door_state(1) == "open"
    frames = frames_on_the_wire(bus)
    assert frames[0] == bytes.fromhex("0200300335")  # status of board 0
    assert frames[1] == bytes.fromhex("0200310336")  # unlock lock 1 of board 0
    assert set(frames[2:]) <= {bytes.fromhex("0200300335")}
    assert bus.garbage == bytearray()
    bus.close_door(0, 1, occupied=True)
    assert driver.door_state(1) == "closed"
    assert driver.occupancy(1) is True


def test_compartment_17_is_lock_1_of_board_1(bus: BoardEmulator, driver: KerongBoard) -> None:
    assert driver.open(17) is True
    assert unlock_frame(1, 1) in frames_on_the_wire(bus)
    assert bus.lock_of(1, 1).door_open and not bus.lock_of(0, 1).door_open
    assert driver.door_state(1) == "closed"


def test_a_jammed_lock_is_reported_failed_after_the_confirmation_time(
        bus: BoardEmulator, driver: KerongBoard) -> None:
    bus.lock_of(0, 3).jammed = True
    started = time.monotonic()
    assert driver.open(3) is False
    assert time.monotonic() - started >= FAST["open_confirm_s"]
    assert frames_on_the_wire(bus).count(unlock_frame(0, 3)) == 1  # never pulsed twice
    assert driver.take_faults() == []  # the board answered: not a board fault


def test_a_stuck_door_sensor_means_the_open_is_not_confirmed(bus: BoardEmulator,
                                                             driver: KerongBoard) -> None:
    bus.lock_of(0, 4).sensor_stuck = "closed"
    assert driver.open(4) is False
    assert bus.lock_of(0, 4).door_open  # the door did open; nobody can know it
    bus.lock_of(0, 5).sensor_stuck = "open"
    assert driver.door_state(5) == "open"


@pytest.mark.parametrize("model", [
    BoardModel(lock_bit_set="open"),
    BoardModel(unlock_answers=False),
    BoardModel(lock_bit_set="open", unlock_answers=False, has_ir=False),
])
def test_polarity_and_unlock_answer_variants(model: BoardModel) -> None:
    with BoardEmulator([EmulatedBoard(0, model)]) as emulator:
        config = board_config(emulator.port, [{
            "address": 0, "lock_bit_set": model.lock_bit_set,
            "unlock_answers": model.unlock_answers, "has_ir": model.has_ir,
        }])
        driver = KerongBoard(config)
        try:
            assert driver.door_state(2) == "closed"
            assert driver.occupancy(2) is (False if model.has_ir else None)
            assert driver.open(2) is True
            assert driver.door_state(2) == "open"
            assert driver.door_state(3) == "closed"
            emulator.close_door(0, 2, occupied=True)
            assert driver.door_state(2) == "closed"
            assert driver.occupancy(2) is (True if model.has_ir else None)
            assert len(emulator.replies) == len(emulator.requests) - (
                0 if model.unlock_answers else 1)
        finally:
            driver.close()


def test_a_driver_with_the_wrong_polarity_sees_every_door_open() -> None:
    """What a misconfigured board looks like: the install guide's first check."""
    with BoardEmulator([EmulatedBoard(0, BoardModel(lock_bit_set="open"))]) as emulator:
        driver = KerongBoard(board_config(emulator.port, [{"address": 0}]))
        try:
            assert {driver.door_state(n) for n in range(1, 17)} == {"open"}
        finally:
            driver.close()


def test_a_dead_board_raises_its_fault_once_while_the_other_keeps_opening(
        bus: BoardEmulator, driver: KerongBoard) -> None:
    bus.boards[1].silent = True
    assert driver.door_state(17) == "unknown"
    assert driver.door_state(17) == "unknown"
    assert driver.offline_boards() == [1]
    assert driver.take_faults() == [
        BoardFault("board_offline", "board 1 did not answer 2 status reads", board=1)]
    started = time.monotonic()
    assert driver.door_state(18) == "unknown"  # not asked again before offline_retry_s
    assert time.monotonic() - started < FAST["reply_timeout_s"]
    assert driver.open(17) is False
    for n in (1, 2, 3):
        assert driver.open(n) is True
    assert driver.take_faults() == []  # once per outage
    bus.boards[1].silent = False
    time.sleep(FAST["offline_retry_s"])
    assert driver.door_state(17) == "closed"
    assert driver.take_faults() == [
        BoardFault("board_recovered", "board 1 answers again", board=1)]
    assert driver.open(17) is True


def test_bad_checksums_are_refused_and_retried(bus: BoardEmulator,
                                               driver: KerongBoard) -> None:
    bus.boards[0].bad_checksum = True
    assert driver.door_state(1) == "unknown"
    assert frames_on_the_wire(bus) == [status_frame(0)] * 2  # one retry
    bus.boards[0].bad_checksum = False
    assert driver.door_state(1) == "closed"


def test_garbage_and_a_late_answer_are_skipped(bus: BoardEmulator, driver: KerongBoard) -> None:
    bus.noise = b"\x00\x02\x10\x35\xff"  # junk with a false start
    assert driver.door_state(1) == "closed"
    assert driver.bus.garbage_bytes >= 5
    # Answers after the driver gave up on both attempts (0.1 s each; an answer late by less
    # than a retry's wait is a valid answer of the same board, and is taken).
    bus.boards[0].slow_s = 0.25
    assert driver.door_state(1) == "unknown"
    bus.boards[0].slow_s = 0.0
    time.sleep(0.6)  # both late answers are on the line now
    assert driver.open(2) is True
    assert driver.door_state(2) == "open"


@given(
    plans=st.lists(
        st.lists(st.tuples(st.sampled_from(["poll", "open"]), st.integers(1, 32)),
                 min_size=1, max_size=6),
        min_size=2, max_size=4,
    )
)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_threads_never_mix_two_transactions_on_the_bus(plans: list[list[tuple[str, int]]]
                                                       ) -> None:
    """Polls and opens from several threads: the bus carries whole frames one after the
    other, each answered before the next is sent, and every reply goes to its asker."""
    with BoardEmulator([EmulatedBoard(0), EmulatedBoard(1)]) as emulator:
        driver = KerongBoard(board_config(emulator.port, [{"address": 0}, {"address": 1}],
                                          open_confirm_s=0.2))
        errors: list[BaseException] = []

        def run(plan: list[tuple[str, int]]) -> None:
            try:
                for action, n in plan:
                    if action == "poll":
                        assert driver.door_state(n) in {"open", "closed"}
                    else:
                        assert driver.open(n) is True
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        driver.close()
        assert errors == []
        frames = frames_on_the_wire(emulator)
        assert all(parse_request(frame) is not None for frame in frames)
        assert emulator.garbage == bytearray()
        # every request was answered (this model answers unlocks) before the next was read
        assert len(emulator.replies) == len(emulator.requests) == len(frames)
        assert driver.bus.garbage_bytes == 0
        opened = {n for plan in plans for action, n in plan if action == "open"}
        for n in opened:
            board, lock = divmod(n - 1, 16)
            assert emulator.lock_of(board, lock + 1).door_open


def test_the_emulator_answers_on_its_own_port(bus: BoardEmulator) -> None:
    """The emulator, seen from a plain serial port (what the install guide's check does)."""
    import serial

    with serial.Serial(bus.port, 19200, timeout=1) as port:
        port.write(status_frame(1))
        assert port.read(9) == state_frame(1, 0xFFFF, 0)


def test_an_adapter_missing_at_start_then_plugged_then_unplugged(tmp_path: Path) -> None:
    """The agent starts without its USB-RS485 adapter (the boards are offline, and say so),
    finds it when it appears, and survives it being pulled out."""
    link = tmp_path / "ttyUSB-rs485"
    driver = KerongBoard(board_config(str(link), [{"address": 0}]))
    try:
        assert [driver.door_state(1), driver.door_state(1)] == ["unknown", "unknown"]
        assert [f.code for f in driver.take_faults()] == ["board_offline"]
        with BoardEmulator([EmulatedBoard(0)]) as emulator:
            link.symlink_to(emulator.port)
            time.sleep(FAST["offline_retry_s"])
            assert driver.door_state(1) == "closed"
            assert driver.open(1) is True
            assert [f.code for f in driver.take_faults()] == ["board_recovered"]
        # the emulator is gone: its pty reads and writes fail as an unplugged adapter's do
        wait_for = time.monotonic() + 5
        while driver.offline_boards() != [0] and time.monotonic() < wait_for:
            assert driver.door_state(1) in {"open", "unknown"}
            time.sleep(0.05)
        assert [f.code for f in driver.take_faults()] == ["board_offline"]
    finally:
        driver.close()
