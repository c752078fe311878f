"""The first run: `relay-ops demo` embeds a broker, the bridge and a simulated locker, and a new
user opens a locker door by typing the PIN it prints."""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.locker_stack import ROOT, Simulator, free_port, wait_until


def test_the_demo_locker_opens_with_the_printed_pin(tmp_path: Path) -> None:
    demo, port = start_demo(tmp_path)
    try:
        demo.launch()  # not start(): the demo prints its welcome, not "ready"
        lines: list[str] = []
        wait_until(lambda: _next_match(demo, lines, r"^The locker as an operator sees it"), 60,
                   "the printed welcome")
        welcome = "\n".join(lines)
        # it says its broker is anonymous and on this machine only
        assert re.search(r"^demo MQTT broker: 127\.0\.0\.1:\d+, anonymous and on this machine "
                         r"only", welcome, re.M), welcome
        pin_line = re.search(r"^pin (\d{7})\s", welcome, re.M).group(1)  # type: ignore[union-attr]
        door = int(re.search(r"compartment (\d+)", welcome).group(1))  # type: ignore[union-attr]
        assert demo.do(f"pin {pin_line}") == "ok"
        wait_until(lambda: json.loads(demo.do("state"))["doors"][str(door)][0] == "open", 15,
                   "the door opens")
        assert demo.do(f"close {door} empty") == "ok"
        wait_until(lambda: parcel_state(port) == "picked_up", 15, "picked up")
        # The metrics the welcome points at: with its token, the API's requests and the
        # embedded bridge's figures (its events applied: the door opened, then closed).
        url, token = re.search(r"^metrics +(\S+) +\(Prometheus; Authorization: Bearer (\S+)\)",
                               welcome, re.M).groups()  # type: ignore[union-attr]
        figures = scrape(url, token)
        assert figures["relayops_bridge_connected"] == 1
        assert figures["relayops_bridge_events_applied_total"] >= 2
        assert any(name == "relayops_http_request_duration_seconds_count" and value >= 1
                   for name, value in figures.items())
    finally:
        demo.stop()


def scrape(url: str, token: str) -> dict[str, float]:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback only
        text = answer.read().decode()
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_the_demo_locker_on_emulated_kerong_boards_opens_with_the_printed_pin(
        tmp_path: Path) -> None:
    """`--board kerong-emulated`: the PIN's door is opened by the KR-CU16 driver sending an
    unlock frame over a pseudo-terminal to the emulated board, and confirmed by its status
    reads; the emulator's own state shows the lock released."""
    demo, port = start_demo(tmp_path, "--board", "kerong-emulated")
    try:
        demo.launch()
        lines: list[str] = []
        wait_until(lambda: _next_match(demo, lines, r"^The locker as an operator sees it"), 60,
                   "the printed welcome")
        welcome = "\n".join(lines)
        assert re.search(r"^demo locker doors: emulated KR-CU16 boards on /dev/pts/\d+",
                         welcome, re.M), welcome
        pin = re.search(r"^pin (\d{7})\s", welcome, re.M).group(1)  # type: ignore[union-attr]
        door = int(re.search(r"compartment (\d+)", welcome).group(1))  # type: ignore[union-attr]

        def emulated_open() -> list[int]:
            return list(json.loads(demo.do("board state"))["0"]["open"])

        assert door not in emulated_open()
        assert demo.do(f"pin {pin}") == "ok"
        wait_until(lambda: door in emulated_open(), 15, "the emulated lock released")
        wait_until(lambda: json.loads(demo.do("state"))["doors"][str(door)][0] == "open", 15,
                   "the driver reads the door open")
        assert demo.do(f"close {door} empty") == "ok"
        wait_until(lambda: parcel_state(port) == "picked_up", 15, "picked up")
    finally:
        demo.stop()


def start_demo(tmp_path: Path, *options: str) -> tuple[Simulator, int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT),
               RELAY_OPS_DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
               RELAY_OPS_NOTIFY_FILE_PATH=str(tmp_path / "notifications.jsonl"))
    return Simulator("demo", [sys.executable, "-m", "relay_ops.cli", "demo", "--port",
                              str(port), *options], env, tmp_path, stdin=True), port


def parcel_state(port: int) -> str:
    url = f"http://127.0.0.1:{port}/api/v1/parcels?tracking_number=RELAYDEMO0101"
    request = urllib.request.Request(url, headers={  # noqa: S310 - loopback only
        "Authorization": "Bearer st_demo_operator.demo-operator-secret"})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        return str(json.loads(response.read())["state"])


def _next_match(demo: Simulator, lines: list[str], pattern: str) -> str | None:
    line = demo.read_line(30)
    lines.append(line)
    return line if re.match(pattern, line) else None
