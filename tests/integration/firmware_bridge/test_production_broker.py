"""Issue 14: the shipped production broker configuration, on a private Mosquitto
(locker_harness.ProductionMosquitto: config/mosquitto/ as shipped but for the port, the
files' folder and the user). The password file is made by the code behind `relay-ops broker
passwd`."""

from __future__ import annotations

import gc
import ssl
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from locker_harness import ProductionMosquitto, unique_locker_id, wait_until
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge import protocol as p
from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import SimulatedBoard
from firmware_bridge.bridge import Bridge, BridgeSettings
from firmware_bridge.identity import LockerIdentity
from firmware_bridge.tls import BrokerLogin
from relay_ops.services import locker_identity, locker_registry
from relay_ops.services.principal import SYSTEM
from tests.integration.firmware_bridge.conftest import fast_settings
from tests.integration.firmware_bridge.test_bridge import LiveClock, Site
from tests.support import World

ROOT = Path(__file__).resolve().parents[3]
BRIDGE_USER = "relayops-bridge"
# How long a reloaded broker may take to answer a login as it now should. Generous: a readiness
# wait, not a timing claim; on a loaded CI machine one TLS handshake took longer than 5 s.
RELOADED_S = 30


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def production_broker(world: World, tmp_path: Path) -> Iterator[ProductionBroker]:
    broker = ProductionBroker(tmp_path / "broker")
    broker.bridge_password = uuid.uuid4().hex
    broker.write_passwords(
        locker_identity.password_file(world.ctx, [(BRIDGE_USER, broker.bridge_password)]))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class ProductionBroker(ProductionMosquitto):
    bridge_password = ""

    def reload(self, password_file: str) -> None:
        self.write_passwords(password_file)


class Client:
    """A paho client that records what it receives."""

    def __init__(self, login: BrokerLogin, client_id: str | None = None) -> None:
        self.received: list[mqtt.MQTTMessage] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"t-{uuid.uuid4().hex[:8]}")
        login.apply(self.client)
        self.client.on_message = lambda _c, _u, m: self.received.append(m)
        self.client.connect(login.host, login.port)
        self.client.loop_start()
        wait_until(self.client.is_connected, 5, "client connected")

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, 1)
        assert done.wait(5)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _connects(login: BrokerLogin) -> str:
    """"ok", or why the broker (or the TLS handshake) refused."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}")
    outcome: list[str] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(
        "ok" if not reason.is_failure else str(reason))
    client.on_disconnect = lambda *_a: outcome.append("disconnected")
    refused = _connect_or_why(client, login)
    if refused is not None:
        return refused
    client.loop_start()
    try:
        wait_until(lambda: outcome, 5, "CONNACK")
    except AssertionError:
        return "no answer"
    finally:
        client.loop_stop()
        client.disconnect()
    return outcome[0]


def _connect_or_why(client: mqtt.Client, login: BrokerLogin) -> str | None:
    """None once the client is connected, else why not. paho does not close a socket whose TLS
    handshake failed: it is collected here, its ResourceWarning silenced, so a refusal the test
    expects does not surface later as an unraisable warning in an unrelated test's teardown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            login.apply(client)
            client.connect(login.host, login.port, keepalive=5)
            return None
        except (OSError, ssl.SSLError) as error:
            why = f"refused: {type(error).__name__}"
        gc.collect()
    return why


@pytest.fixture
def provisioned_locker(world: World) -> Callable[[], tuple[int, str, dict[str, Any]]]:
    def make() -> tuple[int, str, dict[str, Any]]:
        code = unique_locker_id("P")
        site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
            "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
            "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
        return site_id, code, locker_identity.provision(world.ctx, SYSTEM, site_id)

    return make


def _password_file(world: World, broker: ProductionBroker) -> str:
    return locker_identity.password_file(world.ctx, [(BRIDGE_USER, broker.bridge_password)])


def test_anonymous_and_wrong_logins_are_refused(
        world: World, production_broker: ProductionBroker,
        provisioned_locker: Callable[[], tuple[int, str, dict[str, Any]]]) -> None:
    _site, code, bundle = provisioned_locker()
    production_broker.reload(_password_file(world, production_broker))
    password = bundle["broker"]["password"]
    wait_until(lambda: _connects(production_broker.login(code, password)) == "ok", RELOADED_S,
               "the provisioned locker logs in")
    assert _connects(production_broker.login(None, None)) != "ok"
    assert _connects(production_broker.login(code, "guess")) != "ok"
    assert _connects(production_broker.login(code, password, tls=False)) != "ok"


def test_a_revoked_locker_can_no_longer_log_in(
        world: World, production_broker: ProductionBroker,
        provisioned_locker: Callable[[], tuple[int, str, dict[str, Any]]]) -> None:
    site_id, code, bundle = provisioned_locker()
    production_broker.reload(_password_file(world, production_broker))
    login = production_broker.login(code, bundle["broker"]["password"])
    wait_until(lambda: _connects(login) == "ok", RELOADED_S, "logged in before revocation")
    locker_identity.revoke(world.ctx, SYSTEM, site_id)
    production_broker.reload(_password_file(world, production_broker))
    wait_until(lambda: _connects(login) != "ok", RELOADED_S, "refused after revocation")


def test_a_locker_s_login_reaches_only_its_own_topics(
        world: World, production_broker: ProductionBroker,
        provisioned_locker: Callable[[], tuple[int, str, dict[str, Any]]]) -> None:
    _a, code_a, bundle_a = provisioned_locker()
    _b, code_b, bundle_b = provisioned_locker()
    production_broker.reload(_password_file(world, production_broker))
    login_a = production_broker.login(code_a, bundle_a["broker"]["password"])
    wait_until(lambda: _connects(login_a) == "ok", RELOADED_S, "locker A logs in")
    bridge = Client(production_broker.login(BRIDGE_USER, production_broker.bridge_password))
    locker_b = Client(production_broker.login(code_b, bundle_b["broker"]["password"]))
    locker_a = Client(login_a)
    try:
        bridge.subscribe(f"{p.TOPIC_ROOT}/+/evt")
        locker_b.subscribe(p.cmd_topic(code_b))
        locker_a.subscribe(p.cmd_topic(code_b))  # A listens for B's commands and syncs
        locker_a.publish(p.evt_topic(code_b), b'{"forged": "as B"}')
        locker_a.publish(p.cmd_topic(code_b), b'{"open": "B"}')  # only the bridge commands
        locker_a.publish(p.evt_topic(code_a), b'{"own": "event"}')
        bridge.publish(p.cmd_topic(code_b), b'{"for": "B"}')
        wait_until(lambda: [m.payload for m in bridge.received] == [b'{"own": "event"}'], 5,
                   "A's own event reaches the bridge")
        wait_until(lambda: [m.payload for m in locker_b.received] == [b'{"for": "B"}'], 5,
                   "B's command reaches B")
        assert locker_a.received == []
        assert [m.payload for m in locker_b.received] == [b'{"for": "B"}']
        assert [m.payload for m in bridge.received] == [b'{"own": "event"}']
    finally:
        for client in (bridge, locker_a, locker_b):
            client.close()


def test_a_message_over_the_protocol_s_cap_is_dropped_by_the_broker(
        world: World, production_broker: ProductionBroker,
        provisioned_locker: Callable[[], tuple[int, str, dict[str, Any]]]) -> None:
    _site, code, bundle = provisioned_locker()
    production_broker.reload(_password_file(world, production_broker))
    login = production_broker.login(code, bundle["broker"]["password"])
    wait_until(lambda: _connects(login) == "ok", RELOADED_S, "locker logs in")
    bridge = Client(production_broker.login(BRIDGE_USER, production_broker.bridge_password))
    locker = Client(login)
    try:
        bridge.subscribe(p.evt_topic(code))
        locker.client.publish(p.evt_topic(code), b"x" * (p.MAX_PAYLOAD_BYTES + 1), qos=1)
        locker.publish(p.evt_topic(code), b"small")
        wait_until(lambda: [m.payload for m in bridge.received] == [b"small"], 5, "small one")
    finally:
        bridge.close()
        locker.close()


def test_a_drop_off_over_tls_with_identities(
        world: World, production_broker: ProductionBroker, tmp_path: Path,
        provisioned_locker: Callable[[], tuple[int, str, dict[str, Any]]]) -> None:
    site_id, code, bundle = provisioned_locker()
    production_broker.reload(_password_file(world, production_broker))
    bundle["broker"]["url"] = f"mqtts://127.0.0.1:{production_broker.port}"
    bundle["broker"]["ca_cert"] = production_broker.ca_pem
    identity = LockerIdentity.from_bundle(bundle)
    wait_until(lambda: _connects(identity.login(*identity.broker_address())) == "ok", RELOADED_S,
               "the locker's login works")
    bridge = Bridge(world.ctx, "127.0.0.1", production_broker.port,
                    BridgeSettings(share_group=f"t-{uuid.uuid4().hex[:8]}", resend_after_s=1.0,
                                   poll_s=0.05),
                    production_broker.login(BRIDGE_USER, production_broker.bridge_password))
    board = SimulatedBoard(list(range(1, 7)))
    agent = LockerAgent(code, board, *identity.broker_address(), tmp_path / "journal.sqlite3",
                        settings=fast_settings(), identity=identity)
    bridge.start()
    agent.start()
    site = Site(world, agent, board, site_id)
    try:
        wait_until(lambda: site.view()["link"]["online"], 10, "locker online over TLS")
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
        door = site.drop("TLSDROP00001")
        board.close_door(door, occupied=True)
        wait_until(lambda: site.state_of("TLSDROP00001") == "ready_for_pickup", 10, "ready")
        assert bridge.refused_count == 0
    finally:
        agent.stop()
        bridge.stop()
