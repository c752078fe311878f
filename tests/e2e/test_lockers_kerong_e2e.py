"""A locker on emulated Kerong KR-CU16 boards, end to end: the agent's own program
(`relayops-locker-agent --board kerong-emulated`) drives its doors with real frames over a
pseudo-terminal, the real bridge and web app over the production broker configuration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.locker_stack import Stack, wait_until
from tests.e2e.test_lockers_e2e import decode_qr, drop
from tests.e2e.test_lockers_e2e import test_faults_each_leave_a_visible_status as faults_scenario

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, LOCKER_OPEN_TTL_S=4, board="kerong-emulated")
    try:
        yield running.start()
    finally:
        running.stop()


def test_drop_off_then_pickups_online_and_offline(stack: Stack, tmp_path: Path) -> None:
    numbers = ["E2EKERONG001", "E2EKERONG002", "E2EKERONG003"]
    stack.announce(*numbers)
    session_id = stack.open_session()
    doors = [drop(stack, session_id, n) for n in numbers]
    for number in numbers:
        wait_until(lambda n=number: stack.state_of(n) == "ready_for_pickup", 15, number)
    assert stack.carrier("POST", f"/locker-sessions/{session_id}/close")[0] == 200
    assert "KR-CU16 boards on /dev/pts/" in stack.locker.log_text()

    # a pickup by QR code, online
    status, png = stack.http("GET", stack.tracking_path(numbers[0]) + "/qr.png")
    assert status == 200
    assert stack.locker.do(f"scan {decode_qr(png, tmp_path)}") == "ok"
    wait_until(lambda: stack.locker.door_open(doors[0]), 15, "door open for the QR code")
    assert stack.locker.do(f"close {doors[0]} empty") == "ok"
    wait_until(lambda: stack.state_of(numbers[0]) == "picked_up", 15, "picked up by QR")

    # a pickup by PIN while the broker is down: the locker decides alone, journals, replays
    status, view = stack.http("GET", stack.tracking_path(numbers[1]))
    assert status == 200 and view["pickup_code"]
    assert stack.mosquitto is not None
    stack.mosquitto.stop()
    wait_until(lambda: not stack.view()["link"]["online"], 20, "locker seen offline")
    assert stack.locker.do(f"pin {view['pickup_code']}") == "ok"
    wait_until(lambda: stack.locker.door_open(doors[1]), 15, "door open offline")
    assert stack.locker.do(f"close {doors[1]} empty") == "ok"
    stack.mosquitto.start()
    wait_until(lambda: stack.state_of(numbers[1]) == "picked_up", 30, "offline pickup replayed")
    assert "offline_pickup_verified" in stack.actions(numbers[1])

    # no other door opened for the residents; the third parcel waits behind a latched door
    assert not stack.locker.door_open(doors[2])
    assert stack.state_of(numbers[2]) == "ready_for_pickup"


def test_a_jammed_lock_an_empty_deposit_and_a_door_left_open(stack: Stack) -> None:
    """The simulated board's fault scenario, unchanged, on the emulated boards: the jammed
    lock is seen through the driver's status reads (no confirmation), not told by the board."""
    faults_scenario(stack)


def test_a_silent_board_fails_a_pickup_and_its_return_gives_the_door_back(
        stack: Stack) -> None:
    """The board of a resident's door stops answering: the PIN opens nothing, the door goes out
    of service and the board's alert is raised. The board answers again: the alert is resolved,
    the door is back in service at the locker too, and the same PIN opens it."""
    def alerts() -> list[str]:
        return [alert["kind"] for alert in stack.view()["alerts"]]

    def door_state(n: int) -> str:
        return str(next(c["state"] for c in stack.view()["compartments"] if c["number"] == n))

    number = "E2EKERONG010"
    stack.announce(number)
    session_id = stack.open_session()
    door = drop(stack, session_id, number)
    wait_until(lambda: stack.state_of(number) == "ready_for_pickup", 15, "ready")
    assert stack.carrier("POST", f"/locker-sessions/{session_id}/close")[0] == 200
    status, tracking = stack.http("GET", stack.tracking_path(number))
    assert status == 200 and tracking["pickup_code"]

    assert stack.locker.do("board silent 0 on") == "ok"
    wait_until(lambda: "fault_board_offline" in alerts(), 15, "board offline alert")
    assert stack.locker.doors()[door][0] == "unknown"
    assert stack.locker.do(f"pin {tracking['pickup_code']}") == "ok"
    wait_until(lambda: door_state(door) == "out_of_service", 15, "door out of service")
    assert stack.state_of(number) == "ready_for_pickup"

    assert stack.locker.do("board silent 0 off") == "ok"
    wait_until(lambda: "fault_board_offline" not in alerts(), 15, "board alert resolved")
    wait_until(lambda: door_state(door) == "occupied" and stack.view()["commands_waiting"] == 0,
               15, "door back in service, the locker told")
    assert "fault_board_recovered" not in alerts()
    assert "door_failed_to_open" not in alerts()
    assert stack.locker.doors()[door][0] == "closed"

    assert stack.locker.do(f"pin {tracking['pickup_code']}") == "ok"
    wait_until(lambda: stack.locker.door_open(door), 15, "door open for the same PIN")
    assert stack.locker.do(f"close {door} empty") == "ok"
    wait_until(lambda: stack.state_of(number) == "picked_up", 15, "picked up")
