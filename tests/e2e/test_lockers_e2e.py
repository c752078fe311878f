"""Lockers end to end: web, bridge and a simulated locker as separate processes over the
machine's Mosquitto. The resident's QR code is decoded from the PNG the web app drew."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from firmware_bridge import protocol as p
from firmware_bridge.tls import BrokerLogin
from relay_ops.db.models import LockerEventCursor
from tests.e2e.locker_stack import BRIDGE_USER, Stack, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path, LOCKER_OPEN_TTL_S=4)
    try:
        yield running.start()
    finally:
        running.stop()


def drop(stack: Stack, session_id: int, number: str) -> int:
    """Scan at the locker, wait for the door, put the parcel in, close."""
    status, answer = stack.deposit(session_id, number)
    assert status == 200, answer
    door = int(answer["compartment"])
    wait_until(lambda: stack.locker.door_open(door), 15, f"door {door} open")
    assert stack.locker.do(f"close {door} occupied") == "ok"
    return door


def decode_qr(png: bytes, tmp: Path) -> str:
    image = tmp / f"qr-{uuid.uuid4().hex[:6]}.png"
    image.write_bytes(png)
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True,
                             text=True, timeout=20, check=True)
    return decoded.stdout.strip()


def test_a_batch_then_pickups_by_qr_png_and_pin(stack: Stack, tmp_path: Path) -> None:
    numbers = ["E2EBATCH0001", "E2EBATCH0002", "E2EBATCH0003"]
    stack.announce(*numbers)
    session_id = stack.open_session()
    doors = [drop(stack, session_id, n) for n in numbers]
    assert len(set(doors)) == 3
    for number in numbers:
        wait_until(lambda n=number: stack.state_of(n) == "ready_for_pickup", 15, f"{number}")
    assert stack.carrier("POST", f"/locker-sessions/{session_id}/close")[0] == 200

    status, png = stack.http("GET", stack.tracking_path(numbers[0]) + "/qr.png")
    assert status == 200
    token = decode_qr(png, tmp_path)
    assert token.startswith("RO1:") and token.endswith("/")
    assert stack.locker.do(f"scan {token}") == "ok"
    wait_until(lambda: stack.locker.door_open(doors[0]), 15, "door open for the QR code")
    assert stack.locker.do(f"close {doors[0]} empty") == "ok"
    wait_until(lambda: stack.state_of(numbers[0]) == "picked_up", 15, "picked up by QR")

    status, view = stack.http("GET", stack.tracking_path(numbers[1]))
    assert status == 200 and view["pickup_code"]
    assert stack.locker.do(f"pin {view['pickup_code']}") == "ok"
    wait_until(lambda: stack.locker.door_open(doors[1]), 15, "door open for the PIN")
    assert stack.locker.do(f"close {doors[1]} empty") == "ok"
    wait_until(lambda: stack.state_of(numbers[1]) == "picked_up", 15, "picked up by PIN")
    # no other door ever opened for the residents
    assert not stack.locker.door_open(doors[2])
    assert stack.actions(numbers[0]).count("pick_up") == 1
    # The bridge's metrics count what the database says it applied: every sequenced event
    # of every boot, once; none refused, no batch failed. Both read at each try: the locker
    # may still be sending (a door's last event, a heartbeat's).
    def applied() -> int:
        with stack.ctx.db.read() as session:
            return int(session.scalar(select(func.sum(LockerEventCursor.applied_seq)).where(
                LockerEventCursor.site_id == stack.site_id)) or 0)

    seen: list[tuple[int, float, int]] = []  # database, metrics, database again

    def counted_as_applied() -> bool:
        seen.append((applied(), stack.bridge_metrics()["relayops_bridge_events_applied_total"],
                     applied()))
        before, counted, after = seen[-1]
        return before >= 6 and counted in (before, after)  # three drops, two pickups

    try:
        wait_until(counted_as_applied, 10, "the bridge's metrics to count the events applied")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}: last reads {seen[-3:]}") from None
    figures = stack.bridge_metrics()
    assert figures["relayops_bridge_messages_refused_total"] == 0
    assert figures["relayops_bridge_batches_failed_total"] == 0
    assert figures["relayops_bridge_connected"] == 1


def test_faults_each_leave_a_visible_status(stack: Stack) -> None:
    stack.announce("E2EFAULT0001", "E2EFAULT0002", "E2EFAULT0003")
    session_id = stack.open_session()
    jammed = drop(stack, session_id, "E2EFAULT0001")
    wait_until(lambda: stack.state_of("E2EFAULT0001") == "ready_for_pickup", 15, "ready")

    # the door fails to open: the parcel stays ready, the door goes out of service
    stack.locker.do(f"jam {jammed}")
    status, view = stack.http("GET", stack.tracking_path("E2EFAULT0001"))
    stack.locker.do(f"pin {view['pickup_code']}")
    wait_until(lambda: stack.view()["compartments"][jammed - 1]["state"] == "out_of_service",
               15, "out of service")
    assert stack.state_of("E2EFAULT0001") == "ready_for_pickup"
    assert not any(stack.locker.door_open(n) for n in range(1, 7))

    # a deposit door closed on nothing: the parcel stays with the carrier
    status, answer = stack.deposit(session_id, "E2EFAULT0002")
    empty = int(answer["compartment"])
    assert empty != jammed
    wait_until(lambda: stack.locker.door_open(empty), 15, "door open")
    stack.locker.do(f"close {empty} empty")
    wait_until(lambda: "deposit_not_made" in stack.actions("E2EFAULT0002"), 15, "not deposited")
    assert stack.state_of("E2EFAULT0002") == "announced"

    # a door left open: an alarm after the locker's delay (1 s here)
    status, answer = stack.deposit(session_id, "E2EFAULT0003")
    left = int(answer["compartment"])
    wait_until(lambda: "door_left_open" in [a["kind"] for a in stack.view()["alerts"]], 15,
               "door left open alarm")
    stack.locker.do(f"close {left} occupied")
    wait_until(lambda: stack.state_of("E2EFAULT0003") == "ready_for_pickup", 15, "ready")


def test_offline_locker_reboot_and_expired_commands(stack: Stack) -> None:
    stack.announce("E2EOFFL00001", "E2EOFFL00002")
    session_id = stack.open_session()
    # reboot mid-session: the door is open when the locker dies; its new boot's snapshot says
    # the door is closed and the compartment empty, so the deposit did not happen
    status, answer = stack.deposit(session_id, "E2EOFFL00001")
    door = int(answer["compartment"])
    wait_until(lambda: stack.locker.door_open(door), 15, "door open")
    stack.locker.kill()
    wait_until(lambda: not stack.view()["link"]["online"], 20, "offline by the last will")
    # a door asked for while the locker is away expires (4 s) and is never opened later
    status, answer = stack.deposit(session_id, "E2EOFFL00002")
    late = int(answer["compartment"])
    # held in the outbox while the locker is offline, then closed as expired, never sent
    wait_until(lambda: _expired(stack), 15, "the opening expired")
    stack.locker.start()
    wait_until(lambda: stack.view()["link"]["online"], 20, "back online")
    wait_until(lambda: "deposit_not_made" in stack.actions("E2EOFFL00001"), 20, "reconciled")
    assert stack.view()["compartments"][door - 1]["state"] in ("free", "reserved")
    assert not stack.locker.door_open(late)
    assert stack.state_of("E2EOFFL00002") == "announced"


def _client(login: BrokerLogin) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"spy-{uuid.uuid4().hex[:8]}")
    login.apply(client)
    client.connect(login.host, login.port)
    client.loop_start()
    wait_until(client.is_connected, 5, "spy connected")
    return client


def _expired(stack: Stack) -> bool:
    with stack.ctx.db.read() as session:
        from sqlalchemy import select

        from relay_ops.db.models import OutboxMessage

        rows = session.scalars(select(OutboxMessage.status).where(
            OutboxMessage.name == "open_compartment", OutboxMessage.target == stack.code))
        return "expired" in set(rows)


def test_bridge_killed_mid_session_and_a_duplicate_event(stack: Stack) -> None:
    stack.announce("E2EKILL00001")
    session_id = stack.open_session()
    status, answer = stack.deposit(session_id, "E2EKILL00001")
    door = int(answer["compartment"])
    wait_until(lambda: stack.locker.door_open(door), 15, "door open")
    stack.bridge.kill()
    captured: list[mqtt.MQTTMessage] = []
    assert stack.mosquitto is not None
    # the ACL lets the bridge's login read events and only the locker's write them
    spy = _client(stack.mosquitto.login(BRIDGE_USER, stack.bridge_password))
    spy.on_message = lambda _c, _u, m: captured.append(m)
    spy.subscribe(p.evt_topic(stack.code), 1)
    echo = _client(stack.mosquitto.login(stack.code, stack.bundle["broker"]["password"]))
    try:
        stack.locker.do(f"close {door} occupied")  # journaled; nobody applies it yet
        wait_until(lambda: any(b'"door_closed"' in m.payload for m in captured), 10, "event")
        assert stack.state_of("E2EKILL00001") == "announced"
        stack.bridge.start()
        wait_until(lambda: stack.state_of("E2EKILL00001") == "ready_for_pickup", 20, "applied")
        closed = next(m for m in captured if b'"door_closed"' in m.payload)
        for _ in range(2):  # the same event again, as a broker redelivery would
            echo.publish(closed.topic, closed.payload, qos=1).wait_for_publish(5)
        stack.locker.do("state")
        wait_until(lambda: stack.view()["link"]["entries_waiting"] == 0, 20, "journal drained")
    finally:
        for client in (spy, echo):
            client.loop_stop()
            client.disconnect()
    assert stack.actions("E2EKILL00001").count("check_in") == 1
