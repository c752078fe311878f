"""Real processes for the locker end-to-end tests: the web app (gunicorn), the bridge, and a
simulated locker (the simulator's console driven through its standard input), all talking
through the machine's Mosquitto and one SQLite database file."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from firmware_bridge.identity import write_bundle
from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.db.models import Parcel, ParcelEvent
from relay_ops.services import accounts, locker_identity, locker_registry, locker_views, resident
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM
from tests.integration.firmware_bridge.locker_harness import ProductionMosquitto

ROOT = Path(__file__).resolve().parents[2]
BRIDGE_USER = "relayops-bridge"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition"
               ) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path,
                 *, stdin: bool = False) -> None:
        self.name, self.argv, self.env, self.log_dir = name, argv, env, log_dir
        self.stdin = stdin
        self.popen: subprocess.Popen[str] | None = None
        self.runs = 0

    def start(self) -> Process:
        self.runs += 1
        log = (self.log_dir / f"{self.name}-{self.runs}.log").open("w")
        self.popen = subprocess.Popen(
            self.argv, env=self.env, cwd=ROOT, text=True, stderr=log,
            stdout=subprocess.PIPE if self.stdin else log,
            stdin=subprocess.PIPE if self.stdin else subprocess.DEVNULL,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye, no offline status, no cleanup."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
        self._close_pipes()

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.popen is not None:
            for pipe in (self.popen.stdin, self.popen.stdout):
                if pipe is not None:
                    pipe.close()

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))


class Simulator(Process):
    """A process with a console: lines in on stdin, lines out on stdout (read by a thread, so
    several lines written at once are never stuck in a buffer)."""

    def start(self) -> Simulator:
        self.launch()
        assert self.read_line(20) == "ready", self.log_text()
        return self

    def launch(self) -> None:
        super().start()
        assert self.popen is not None and self.popen.stdout is not None
        self.lines: queue.Queue[str] = queue.Queue()
        stdout = self.popen.stdout
        self.reader = threading.Thread(target=self._read, args=(stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: Any) -> None:
        try:
            for line in stdout:
                self.lines.put(line.strip())
        except ValueError:  # closed by kill/stop
            return

    def read_line(self, timeout: float = 10.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"silent for {timeout}s:\n{self.log_text()}") from None

    def _close_pipes(self) -> None:
        if self.popen is not None and self.popen.stdin is not None:
            self.popen.stdin.close()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.join(10)
        super()._close_pipes()

    def do(self, line: str) -> str:
        assert self.popen is not None and self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()
        answer = self.read_line()
        while not answer:  # blank lines of a banner printed before
            answer = self.read_line()
        return answer

    def doors(self) -> dict[int, list[Any]]:
        return {int(k): v for k, v in json.loads(self.do("state"))["doors"].items()}

    def door_open(self, n: int) -> bool:
        return bool(self.doors()[n][0] == "open")


class Stack:
    """One backend (web + bridge) and one simulated locker, registered, provisioned and synced.

    Without ``broker``, a private Mosquitto with the shipped production configuration (TLS,
    a login each for the bridge and the locker, the ACL): the locker link as deployed."""

    def __init__(self, tmp: Path, *, broker: str | None = None, board: str = "simulated",
                 **settings: Any) -> None:
        self.tmp = tmp
        self.mosquitto = ProductionMosquitto(tmp / "broker") if broker is None else None
        if self.mosquitto is not None:
            broker = f"127.0.0.1:{self.mosquitto.port}"
            self.bridge_password = f"pw-{uuid.uuid4().hex}"  # not read as JSON from the env
            settings.update(MQTT_TLS="true", MQTT_TLS_CA_FILE=tmp / "broker" / "ca.crt",
                            MQTT_USERNAME=BRIDGE_USER, MQTT_PASSWORD=self.bridge_password)
        assert broker is not None
        self.broker = broker
        self.prefix = f"E{uuid.uuid4().hex[:8]}"
        self.code = f"{self.prefix}-0001"
        self.port = free_port()
        self.env = dict(os.environ, PYTHONPATH=str(ROOT),
                        RELAY_OPS_DATABASE_URL=f"sqlite:///{tmp / 'relayops.sqlite3'}",
                        RELAY_OPS_NOTIFY_FILE_PATH=str(tmp / "notifications.jsonl"),
                        RELAY_OPS_PUBLIC_BASE_URL=f"http://127.0.0.1:{self.port}",
                        RELAY_OPS_MQTT_SHARE_GROUP=f"e2e-{self.prefix}")
        self.env.update({f"RELAY_OPS_{k}": str(v) for k, v in settings.items()})
        self.app: Flask = create_app({"DATABASE_URL": self.env["RELAY_OPS_DATABASE_URL"],
                                      "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024,
                                      "PUBLIC_BASE_URL": self.env["RELAY_OPS_PUBLIC_BASE_URL"]})
        self.ctx: Ctx = self.app.extensions["relay_ops"]
        migrate.upgrade(self.ctx.db.engine)
        accounts.create_carrier(self.ctx, SYSTEM, code="acme", name="Acme")
        self.carrier_key = accounts.issue_carrier_key(self.ctx, SYSTEM, "acme").token
        self.site_id = locker_registry.register_locker(self.ctx, SYSTEM, {
            "code": self.code, "name": "Casier de la mairie", "locker_model": "mini-6",
            "address": "Place", "postcode": "44440", "city": "Riaillé",
            "latitude": 47.5, "longitude": -1.3})["id"]
        bundles = tmp / "bundles"
        self.bundle = locker_identity.provision(self.ctx, SYSTEM, self.site_id)
        if self.mosquitto is not None:
            self.bundle["broker"].update(url=self.mosquitto.url, ca_cert=self.mosquitto.ca_pem)
        write_bundle(bundles / f"{self.code}.json", self.bundle)
        py = sys.executable
        self.web = Process("web", [py, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}",
                                   "--workers", "1", "--threads", "4",
                                   "relay_ops:create_app()"], self.env, tmp)
        self.bridge_metrics_port = free_port()
        self.bridge = Process("bridge", [py, "-m", "relay_ops.cli", "bridge", "--broker", broker,
                                         "--resend-after", "1",
                                         "--metrics-port", str(self.bridge_metrics_port)],
                              self.env, tmp)
        # `board`: "simulated" runs the simulator; "kerong-emulated" runs the agent's own
        # program on emulated KR-CU16 boards behind a pty (same console verbs)
        program = (["firmware_bridge.simulator", "--lockers", "1", "--prefix", self.prefix,
                    "--journal-dir", str(tmp / "journal")]
                   if board == "simulated" else
                   ["firmware_bridge.agent", "--locker-id", self.code, "--board", board,
                    "--journal", str(tmp / "journal" / f"{self.code}.sqlite3")])
        self.locker = Simulator("locker", [
            py, "-m", *program, "--broker", broker, "--compartments", "6",
            "--bundles", str(bundles),
            "--keepalive", "2", "--resend-min", "0.5", "--resend-max", "2",
            "--reconnect-min", "0.2", "--reconnect-max", "1", "--door-left-open", "1",
            "--forward-timeout", "5", "--log-level", "INFO"], self.env, tmp, stdin=True)

    def start(self) -> Stack:
        if self.mosquitto is not None:
            self.mosquitto.write_passwords(locker_identity.password_file(
                self.ctx, [(BRIDGE_USER, self.bridge_password)]))
            self.mosquitto.start()
        self.web.start()
        self.bridge.start()
        self.locker.start()
        wait_until(self._web_up, 30, "web up")
        wait_until(lambda: self.view()["link"]["online"], 20, "locker online")
        wait_until(lambda: self.view()["link"]["credential_version_held"] == 1, 20, "synced")
        return self

    def stop(self) -> None:
        for process in (self.locker, self.bridge, self.web):
            process.stop()
        if self.mosquitto is not None:
            self.mosquitto.stop()
        self.ctx.db.dispose()

    def _web_up(self) -> bool:
        assert self.web.alive(), self.web.log_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):  # noqa: S310
                return True
        except OSError:
            return False

    def bridge_metrics(self) -> dict[str, float]:
        """The bridge's Prometheus figures (relay_ops/metrics.py), by sample name."""
        url = f"http://127.0.0.1:{self.bridge_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
            text = answer.read().decode()
        return {sample.name: sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples}

    # --- HTTP, as the carrier's app and the resident's phone -------------------------------

    def http(self, method: str, path: str, body: Any = None, token: str | None = None
             ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - loopback only
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json",
                     **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                raw = response.read()
                kind = response.headers.get_content_type()
                return response.status, raw if kind.startswith("image/") else json.loads(raw)
        except urllib.error.HTTPError as error:
            with error:  # it holds the connection: closed here, not whenever it is collected
                return error.code, json.loads(error.read() or b"null")

    def carrier(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.http(method, "/api/v1" + path, body, self.carrier_key)

    def announce(self, *numbers: str, **item: Any) -> None:
        # one recipient per parcel: a recipient's parcels would share a door (tested apart,
        # tests/integration/test_locker_grouping.py), and these scenarios count doors
        body = {"reference": f"R-{uuid.uuid4().hex[:8]}", "parcels": [
            {"tracking_number": n, "site": self.code, "size_class": "S",
             "recipient": {"name": "Jeanne", "phone": _phone(n)}, **item}
            for n in numbers]}
        status, answer = self.carrier("POST", "/manifests", body)
        assert status == 201 and answer["accepted"] == len(numbers), answer

    def open_session(self) -> int:
        status, answer = self.carrier("POST", f"/lockers/{self.site_id}/sessions")
        assert status == 201, answer
        return int(answer["id"])

    def deposit(self, session_id: int, number: str) -> tuple[int, Any]:
        return self.carrier("POST", f"/locker-sessions/{session_id}/deposits",
                            {"tracking_number": number})

    # --- reading the backend ------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        return locker_views.locker_view(self.ctx, SYSTEM, self.site_id)

    def parcel(self, number: str) -> Parcel:
        with self.ctx.db.read() as session:
            found = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
            assert found is not None
            return found

    def state_of(self, number: str) -> str:
        return self.parcel(number).state

    def actions(self, number: str) -> list[str]:
        with self.ctx.db.read() as session:
            return list(session.scalars(select(ParcelEvent.action).join(Parcel).where(
                Parcel.tracking_number == number).order_by(ParcelEvent.id)))

    def tracking_path(self, number: str) -> str:
        return f"/api/v1/track/{resident.tracking_token(self.ctx, self.parcel(number).id)}"


def _phone(number: str) -> str:
    """A mobile number of its own for each tracking number."""
    return "+336" + str(int(hashlib.sha256(number.encode()).hexdigest(), 16) % 10**8).zfill(8)
