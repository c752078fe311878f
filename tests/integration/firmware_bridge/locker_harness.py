"""Test helpers for the locker link: a backend played by a paho client, a private Mosquitto,
credentials to sync. Real broker, real agent; only the backend is a stand-in."""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge import protocol as p
from firmware_bridge.identity import LockerIdentity
from relay_ops.domain.pickup_token import (
    TokenClaims,
    generate_private_key,
    issue_token,
    new_jti,
    public_key_to_text,
)

SHARED_BROKER = ("127.0.0.1", 1883)
# The stand-in backend's command key, trusted by every test locker (tests/.../conftest.py).
BACKEND_KEY = Ed25519PrivateKey.generate()
BACKEND_KID = "test-backend"
_COUNTERS: dict[str, itertools.count[int]] = {}


def identity_for(locker_id: str) -> LockerIdentity:
    """A provisioned test locker: it obeys BACKEND_KEY and signs with a key of its own."""
    return LockerIdentity(
        locker_id=locker_id,
        command_keys={BACKEND_KID: BACKEND_KEY.public_key()},
        event_key=Ed25519PrivateKey.generate(),
        pin_key_id="bundle-pin-key",
        pin_key=base64.b64encode(secrets.token_bytes(32)).decode(),
    )


def next_counter(locker_id: str) -> int:
    return next(_COUNTERS.setdefault(locker_id, itertools.count(1)))


def signed(command: p.CommandEnvelope) -> bytes:
    """Signed as the backend signs, with the next counter unless the command has one."""
    if command.ctr is None:
        command = command.model_copy(update={"ctr": next_counter(command.locker_id)})
    return p.sign(command, BACKEND_KEY, BACKEND_KID)


def unique_locker_id(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class PrivateBroker:
    """A Mosquitto of our own on a free port, that a test may stop and restart. No
    persistence: after a restart it has forgotten every session, like a crashed broker."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._accepts, 5.0, f"mosquitto on {self.port}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None


class FakeBackend:
    """Plays the backend: subscribes to the lockers' topics, sends commands and acks, and
    records every valid message it receives (invalid ones are kept apart)."""

    def __init__(self, locker_ids: list[str], host: str, port: int) -> None:
        self.locker_ids = locker_ids
        self.messages: list[p.Envelope] = []
        self.invalid: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._closed = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-backend-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        wait_until(self._subscribed.is_set, 5.0, "backend subscription")

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe([(f"{p.TOPIC_ROOT}/{locker}/+", 1) for locker in self.locker_ids])

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return  # a cleared retained message
        try:
            envelope = p.parse_message(message.topic, bytes(message.payload))
        except p.ProtocolError:
            with self._cond:
                self.invalid.append((message.topic, bytes(message.payload)))
            return
        with self._cond:
            self.messages.append(envelope)
            self._cond.notify_all()

    def close(self) -> None:
        """Clear the retained messages our lockers left on the broker, then leave."""
        if self._closed:
            return
        self._closed = True
        if self.client.is_connected():
            for locker in self.locker_ids:
                for kind in ("status", "state"):
                    info = self.client.publish(p.topic(locker, kind), b"", qos=1, retain=True)
                    info.wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()

    # --- sending ----------------------------------------------------------------------------

    def send(self, command: p.CommandEnvelope) -> p.CommandEnvelope:
        self.client.publish(p.cmd_topic(command.locker_id), signed(command), qos=1)
        return command

    def send_raw(self, locker_id: str, payload: bytes, *, retain: bool = False) -> None:
        """As an intruder on the broker would: any bytes on the locker's command topic.

        Returns once the broker has it (its PUBACK): a retained copy must be stored before a
        locker that connects next subscribes, or the locker gets it live instead (seen under
        a loaded parallel run)."""
        info = self.client.publish(p.cmd_topic(locker_id), payload, qos=1, retain=retain)
        info.wait_for_publish(5)
        assert info.is_published(), "the broker did not take the command"

    def command(self, locker_id: str, body: p.CommandBody, **kwargs: Any) -> p.CommandEnvelope:
        return self.send(p.make_command(locker_id, body, **kwargs))

    def ack(self, locker_id: str, boot_id: str, seq: int) -> None:
        ack = p.make_ack(locker_id, boot_id, seq)
        self.client.publish(p.ack_topic(locker_id), p.sign(ack, BACKEND_KEY, BACKEND_KID), qos=1)

    # --- reading ----------------------------------------------------------------------------

    def events(
        self, type_: str | None = None, locker_id: str | None = None
    ) -> list[p.EventEnvelope]:
        with self._cond:
            return [
                m
                for m in self.messages
                if isinstance(m, p.EventEnvelope)
                and (type_ is None or m.type == type_)
                and (locker_id is None or m.locker_id == locker_id)
            ]

    def unique_events(self, type_: str | None = None) -> list[p.EventEnvelope]:
        """At-least-once delivery: the same event may arrive twice; keep one per msg_id."""
        seen: dict[uuid.UUID, p.EventEnvelope] = {}
        for event in self.events(type_):
            seen.setdefault(event.msg_id, event)
        return sorted(seen.values(), key=lambda e: (e.boot_id, e.seq))

    def wait_event(
        self,
        type_: str,
        where: Callable[[Any], bool] = lambda _body: True,
        timeout: float = 5.0,
    ) -> p.EventEnvelope:
        def found() -> p.EventEnvelope | None:
            return next((e for e in self.events(type_) if where(e.body)), None)

        return wait_until(found, timeout, f"event {type_}")  # type: ignore[no-any-return]

    def results(self, corr_id: uuid.UUID) -> list[str]:
        """Statuses answered for one transaction, in seq order, each event counted once."""
        return [
            e.body.status
            for e in self.unique_events("cmd_result")
            if e.body.corr_id == corr_id  # type: ignore[union-attr]
        ]

    def wait_result(self, corr_id: uuid.UUID, status: str, timeout: float = 5.0) -> p.CmdResult:
        event = self.wait_event(
            "cmd_result", lambda b: b.corr_id == corr_id and b.status == status, timeout
        )
        assert isinstance(event.body, p.CmdResult)
        return event.body

    def retained_status(self, locker_id: str) -> str | None:
        with self._cond:
            statuses = [
                m.body.state
                for m in self.messages
                if isinstance(m, p.StatusEnvelope) and m.locker_id == locker_id
            ]
        return statuses[-1] if statuses else None


class Credentials:
    """What the backend would sync to a locker: a signing key, a PIN key, PINs."""

    def __init__(self, site: str, version: int = 1) -> None:
        self.site = site
        self.version = version
        self.private_key = generate_private_key()
        self.kid = "k1"
        self.pin_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.pins: list[p.PinCredential] = []

    def token(
        self,
        parcel_id: int | str = 1001,
        compartment: int | None = 1,
        *,
        site: str | None = None,
        expires_in: int = 3600,
        now: float | None = None,
        key: Any = None,
    ) -> tuple[str, TokenClaims]:
        issued = int(now if now is not None else time.time())
        claims = TokenClaims(
            jti=new_jti(),
            parcel_id=parcel_id,
            site=site or self.site,
            compartment=compartment,
            not_before=issued - 60,
            expires_at=issued + expires_in,
        )
        return issue_token(key or self.private_key, self.kid, claims), claims

    def add_pin(self, pin: str, parcel_ref: str, compartment: int, valid_for_s: int = 3600) -> str:
        credential_id = f"pin-{uuid.uuid4().hex[:8]}"
        now = datetime.now(UTC)
        self.pins.append(
            p.PinCredential(
                credential_id=credential_id,
                parcel_ref=parcel_ref,
                compartment=compartment,
                pin_hash=p.keyed_code_hash(self.pin_key, pin),
                not_before=now - timedelta(minutes=1),
                expires_at=now + timedelta(seconds=valid_for_s),
            )
        )
        return credential_id

    def sync(self) -> p.SyncCredentials:
        return p.SyncCredentials(
            version=self.version,
            full=True,
            site_id=self.site,
            public_keys=[
                p.PublicKey(kid=self.kid, key=public_key_to_text(self.private_key.public_key()))
            ],
            pin_key=p.PinKey(key_id="pk1", key=self.pin_key),
            pins=list(self.pins),
        )


def seed_journal(path: Path, credentials: Credentials) -> None:
    """Give a locker its credentials before it starts (as if synced in an earlier life)."""
    from firmware_bridge.agent.journal import Journal

    sync = credentials.sync()
    journal = Journal(path)
    journal.store_credentials(sync.version, sync.model_dump_json())
    journal.close()


def write_test_bundle(directory: Path, locker_id: str) -> Path:
    """A bundle trusting the stand-in backend's key, where the agent's `--bundles` looks."""
    from firmware_bridge.identity import write_bundle

    path = directory / f"{locker_id}.json"
    write_bundle(path, identity_for(locker_id).to_bundle())
    return directory


def agent_env() -> dict[str, str]:
    root = Path(__file__).resolve().parents[3]
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{root}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


class ProductionMosquitto(PrivateBroker):
    """A private Mosquitto with the shipped production files (config/mosquitto/): TLS, logins,
    the ACL, the size cap. Only what a test must change is changed: the listener's port on the
    loopback, the files' folder, and `user root` (tests run as root). The CA and the broker's
    certificate are made by the code behind `relay-ops broker certs`."""

    SHIPPED = Path(__file__).resolve().parents[3] / "config" / "mosquitto"

    def __init__(self, directory: Path) -> None:
        from firmware_bridge.tls import write_deployment_certs

        self.directory = directory
        self.port = free_port()
        write_deployment_certs(directory, ["127.0.0.1", "localhost"], datetime.now(UTC))
        (directory / "data").mkdir(exist_ok=True)
        (directory / "acl").write_text((self.SHIPPED / "acl").read_text())
        (directory / "passwd").write_text("")
        self.config = directory / "mosquitto.conf"
        self.config.write_text(self._production_config())
        self.ca_pem = (directory / "ca.crt").read_text()
        self.process = None

    def _production_config(self) -> str:
        text = (self.SHIPPED / "production.conf").read_text()
        assert "listener 8883\n" in text and "user mosquitto\n" in text
        text = text.replace("listener 8883\n", f"listener {self.port} 127.0.0.1\n")
        text = text.replace("user mosquitto\n", "user root\n")
        text = text.replace("/mosquitto/config/", f"{self.directory}/")
        return text.replace("/mosquitto/data/", f"{self.directory}/data/")

    @property
    def url(self) -> str:
        return f"mqtts://127.0.0.1:{self.port}"

    def write_passwords(self, password_file: str) -> None:
        """The broker's password file; a running broker reloads it (SIGHUP)."""
        (self.directory / "passwd").write_text(password_file)
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)

    def login(self, username: str | None, password: str | None, *, tls: bool = True) -> Any:
        from firmware_bridge.tls import BrokerLogin

        return BrokerLogin("127.0.0.1", self.port, tls=tls, ca_pem=self.ca_pem,
                           username=username, password=password)
