"""The installed agent: its configuration file, systemd's notify protocol and watchdog, the
shipped unit, and the program run as systemd runs it (a notify socket of the test's own, the
board emulator as its RS-485 bus, a pty as its serial QR scanner)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from locker_harness import (
    SHARED_BROKER,
    FakeBackend,
    agent_env,
    unique_locker_id,
    wait_until,
    write_test_bundle,
)

from firmware_bridge.agent.board_emulator import BoardEmulator, EmulatedBoard
from firmware_bridge.agent.config import AgentConfig, build_readers
from firmware_bridge.agent.sdnotify import Watchdog, notify

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "config" / "systemd" / "relayops-locker-agent.service"
EXAMPLE = ROOT / "config" / "relayops-agent.example.toml"


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    return sock


def test_notify_sends_one_datagram_to_the_socket_systemd_gives(tmp_path: Path) -> None:
    with notify_socket(tmp_path / "notify") as sock:
        assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "notify")}) is True
        assert sock.recv(64) == b"READY=1"
    assert notify("READY=1", {}) is False  # not run by systemd
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"relayops-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"WATCHDOG=1"


def test_the_watchdog_pings_twice_per_period_and_only_when_asked(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "400000"}
    with notify_socket(tmp_path / "notify") as sock:
        watchdog = Watchdog(env)
        assert watchdog.interval_s == 0.2
        started = time.monotonic()
        while time.monotonic() - started < 0.5:
            watchdog.ping()
            time.sleep(0.01)
        sock.settimeout(0.1)
        pings = []
        try:
            while True:
                pings.append(sock.recv(64))
        except TimeoutError:
            pass
        assert pings == [b"WATCHDOG=1"] * len(pings) and 2 <= len(pings) <= 4
    assert Watchdog({"NOTIFY_SOCKET": "x"}).interval_s is None
    assert Watchdog({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": "1"}).interval_s is None


def test_the_example_configuration_is_valid() -> None:
    config = AgentConfig.load(EXAMPLE)
    assert config.board["driver"] == "kerong"
    assert config.readers.keys() == {"qr_serial", "keypad"}
    assert config.settings == {"door_left_open_s": 120.0}


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "blue"}, "unknown settings: colour"),
    ({"readers": {"nfc": "/dev/x"}}, "unknown readers: nfc"),
    ({"agent": {"poll": 1}}, "unknown agent settings: poll"),
    ({"board": {"driver": "acme"}}, "board.driver"),
    ({"board": {"driver": "kerong", "port": "x", "boards": [{"address": 0}],
                "compartments": {"1": [2, 1]}}}, "board 2"),
])
def test_a_wrong_configuration_is_refused_at_start(change: dict[str, object], message: str
                                                   ) -> None:
    data: dict[str, object] = {"locker_id": "L1", "bundle": "b.json", "journal": "j.sqlite3",
                               "board": {"driver": "simulated"}}
    data.update(change)
    with pytest.raises(ValueError, match=message):
        AgentConfig.from_dict(data)
    with pytest.raises(ValueError, match="bundle is required"):
        AgentConfig.from_dict({"locker_id": "L1", "journal": "j", "board": {}})


def test_no_reader_configured_is_no_reader() -> None:
    assert build_readers({}) is None
    panel = build_readers({"qr_wedge": "/dev/input/event9", "keypad": "/dev/input/event8"})
    assert panel is not None and len(panel.readers) == 2


def test_the_unit_restarts_and_watches_the_agent() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=always",
                 "SupplementaryGroups=dialout input", "StateDirectory=relayops",
                 "ExecStart=/opt/relayops/bin/relayops-locker-agent --config "
                 "/etc/relayops/agent.toml"):
        assert line in text.splitlines(), line
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        checked = subprocess.run([analyze, "verify", str(UNIT)], capture_output=True, text=True,
                                 timeout=60)
        # the only complaint allowed: the program is not installed on this machine
        complaints = [line for line in checked.stderr.splitlines()
                      if "is not executable" not in line and line.strip()]
        assert complaints == []


def test_the_installed_program(tmp_path: Path) -> None:
    """Started as systemd starts it: READY=1, watchdog pings, a QR reading from the serial
    scanner reaches the backend, the board's doors are read through the bus, STOPPING=1."""
    locker_id = unique_locker_id("K")
    bundle = write_test_bundle(tmp_path / "bundles", locker_id) / f"{locker_id}.json"
    scanner_master, scanner_slave = os.openpty()
    log_file = tmp_path / "log" / "agent.log"
    with BoardEmulator([EmulatedBoard(0)]) as emulator, \
            notify_socket(tmp_path / "notify") as sock:
        config = tmp_path / "agent.toml"
        config.write_text(f"""
locker_id = "{locker_id}"
bundle = "{bundle}"
journal = "{tmp_path / 'state' / 'journal.sqlite3'}"
broker = "127.0.0.1:{SHARED_BROKER[1]}"
log_file = "{log_file}"
[board]
driver = "kerong"
port = "{emulator.port}"
boards = [{{ address = 0 }}]
compartments = {{ "1" = [0, 1], "2" = [0, 2] }}
[readers]
qr_serial = "{os.ttyname(scanner_slave)}"
[agent]
reconnect_min_s = 0.1
reconnect_max_s = 0.5
""")
        backend = FakeBackend([locker_id], *SHARED_BROKER)
        env = dict(agent_env(), NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="300000")
        process = subprocess.Popen([sys.executable, "-m", "firmware_bridge.agent", "--config",
                                    str(config)], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            # READY=1 follows the start; the worker may ping the watchdog just before it
            first = [sock.recv(64) for _ in range(3)]
            assert b"READY=1" in first and set(first) <= {b"READY=1", b"WATCHDOG=1"}
            snapshot = backend.wait_event("state_snapshot", timeout=10).body
            assert [(c.number, c.door, c.occupied) for c in snapshot.compartments] == [
                (1, "closed", False), (2, "closed", False)]
            deadline = time.monotonic() + 10
            while not backend.events("credential_presented") and time.monotonic() < deadline:
                os.write(scanner_master, b"RO1:NOT-A-REAL-TOKEN\r\n")
                time.sleep(0.3)
            presented = backend.wait_event("credential_presented").body
            assert (presented.kind, presented.token) == ("qr", "RO1:NOT-A-REAL-TOKEN")
            pings = 0
            while pings < 3:
                pings += sock.recv(64) == b"WATCHDOG=1"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(15)
            backend.close()
            os.close(scanner_master)
            os.close(scanner_slave)
        assert process.returncode == 0
        rest = []
        sock.settimeout(1)
        try:
            while True:
                rest.append(sock.recv(64))
        except TimeoutError:
            pass
        assert b"STOPPING=1" in rest
    wait_until(log_file.exists, 2, "log file")
    assert f"locker {locker_id} started" in log_file.read_text()
