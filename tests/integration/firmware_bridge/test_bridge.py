"""The bridge between a real locker agent and the services, over the machine's Mosquitto.

Agent and bridge run in threads of the test process here (the end-to-end tests run them as
separate processes); everything between them is real MQTT.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from locker_harness import SHARED_BROKER, unique_locker_id, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, update

from firmware_bridge import protocol as p
from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import SimulatedBoard
from firmware_bridge.bridge import Bridge, BridgeSettings
from relay_ops.db.models import LockerAlert, LockerLink, Parcel, ParcelEvent
from relay_ops.services import (
    credentials,
    locker_compartments,
    locker_dropoff,
    locker_events,
    locker_link_status,
    locker_registry,
    locker_sync,
    locker_tokens,
    locker_views,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.integration.firmware_bridge.conftest import fast_settings
from tests.support import World, provisioned

CARRIER = Principal(Role.CARRIER, carrier_id=1)


class LiveClock:
    """The agents live on the real clock; so must the backend here (commands expire)."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.fixture
def clock() -> LiveClock:
    return LiveClock()


@pytest.fixture
def bridge_for(ctx: Ctx) -> Iterator[Callable[..., Bridge]]:
    started: list[Bridge] = []

    def start(**settings: Any) -> Bridge:
        # a group of its own: other bridges on the machine's broker never take our events
        values: dict[str, Any] = {"share_group": f"test-{uuid.uuid4().hex[:8]}",
                                  "resend_after_s": 1.0, "gap_wait_s": 0.5, "poll_s": 0.05}
        bridge = Bridge(ctx, *SHARED_BROKER, BridgeSettings(**{**values, **settings}))
        started.append(bridge)
        bridge.start()
        assert bridge.wait_connected(10)
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


class Site:
    def __init__(self, world: World, agent: LockerAgent, board: SimulatedBoard,
                 site_id: int) -> None:
        self.world, self.agent, self.board, self.site_id = world, agent, board, site_id
        self.code = agent.locker_id

    def view(self) -> dict[str, Any]:
        return locker_views.locker_view(self.world.ctx, SYSTEM, self.site_id)

    def parcel(self, number: str) -> Parcel:
        with self.world.ctx.db.read() as session:
            found = session.scalar(select(Parcel).where(Parcel.tracking_number == number))
            assert found is not None
            return found

    def state_of(self, number: str) -> str:
        return self.parcel(number).state

    def drop(self, number: str, **item: Any) -> int:
        """Announce, open a session, scan: returns the door, opened at the locker."""
        body = {"reference": f"R-{number}", "parcels": [
            {"tracking_number": number, "site": self.code, "size_class": "S",
             "recipient": {"name": "Jeanne", "phone": "+33612345678"}, **item}]}
        assert self.world.carrier.post("/manifests", json=body).status_code == 201
        session = locker_dropoff.open_session(self.world.ctx, CARRIER, self.site_id)
        door = locker_dropoff.deposit(self.world.ctx, CARRIER, session["id"], number)["compartment"]
        wait_until(lambda: self.board.door_state(door) == "open", 10, f"door {door} open")
        return int(door)

    def actions(self, number: str) -> list[str]:
        with self.world.ctx.db.read() as session:
            return list(session.scalars(
                select(ParcelEvent.action).join(Parcel)
                .where(Parcel.tracking_number == number).order_by(ParcelEvent.id)))


@pytest.fixture
def locker_site(world: World, tmp_path: Any, bridge_for: Callable[..., Bridge]
                ) -> Iterator[Callable[..., Site]]:
    agents: list[LockerAgent] = []

    def build(**settings: Any) -> Site:
        code = unique_locker_id("B")
        site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
            "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
            "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
        bridge_for()
        board = SimulatedBoard(list(range(1, 7)))
        agent = LockerAgent(code, board, *SHARED_BROKER, tmp_path / f"{code}.sqlite3",
                            settings=fast_settings(**settings),
                            identity=provisioned(world.ctx, site_id))
        agents.append(agent)
        agent.start()
        site = Site(world, agent, board, site_id)
        wait_until(lambda: site.view()["link"]["online"], 10, "locker online")
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
        return site

    yield build
    for agent in agents:
        agent.stop()


def test_a_carrier_drops_and_residents_pick_up_by_qr_and_pin(locker_site: Callable[..., Site]
                                                             ) -> None:
    site = locker_site()
    door = site.drop("BRIDGE000001")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("BRIDGE000001") == "ready_for_pickup", 10, "ready")

    token = locker_tokens.qr_token(site.world.ctx, site.parcel("BRIDGE000001").id)
    assert token is not None
    site.board.scan(token)
    wait_until(lambda: site.board.door_state(door) == "open", 10, "door open for the QR")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("BRIDGE000001") == "picked_up", 10, "picked up")

    second = site.drop("BRIDGE000002")
    site.board.close_door(second, occupied=True)
    wait_until(lambda: site.state_of("BRIDGE000002") == "ready_for_pickup", 10, "ready")
    with site.world.ctx.db.read() as session:
        live = credentials.live_credentials(session, site.parcel("BRIDGE000002").id)
        pin = credentials.code_of(site.world.ctx, live[0])
    site.board.type_pin("000000" if pin != "000000" else "111111")  # a wrong one first
    wait_until(lambda: any("refused" in m for m in site.board.display), 10, "refusal shown")
    site.board.type_pin(pin)
    wait_until(lambda: site.board.door_state(second) == "open", 10, "door open for the PIN")
    site.board.close_door(second, occupied=False)
    wait_until(lambda: site.state_of("BRIDGE000002") == "picked_up", 10, "picked up")
    assert site.actions("BRIDGE000001") == [
        "announce", "compartment_reserved", "check_in", "locker_door_requested", "pick_up"]


def test_a_jammed_door_and_a_door_left_open(locker_site: Callable[..., Site]) -> None:
    site = locker_site(door_left_open_s=0.5)
    door = site.drop("BRIDGE000003")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("BRIDGE000003") == "ready_for_pickup", 10, "ready")
    site.board.jam(door)
    site.board.scan(locker_tokens.qr_token(site.world.ctx, site.parcel("BRIDGE000003").id) or "")
    wait_until(lambda: site.view()["compartments"][door - 1]["state"] == "out_of_service", 10,
               "out of service")
    assert site.state_of("BRIDGE000003") == "ready_for_pickup"
    assert site.board.open_calls.count(door) == 2 and len(set(site.board.open_calls)) == 1
    other = site.drop("BRIDGE000004")  # left open: alarm after 0.5 s
    wait_until(lambda: "door_left_open" in [a["kind"] for a in site.view()["alerts"]], 10,
               "door left open alarm")
    assert other != door


def test_the_same_event_twice_has_one_effect(world: World, locker_site: Callable[..., Site]
                                             ) -> None:
    site = locker_site()
    captured: list[mqtt.MQTTMessage] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"spy-{uuid.uuid4().hex[:8]}")
    spy.on_message = lambda _c, _u, m: captured.append(m)
    spy.connect(*SHARED_BROKER)
    spy.subscribe(p.evt_topic(site.code), 1)
    spy.loop_start()
    try:
        wait_until(lambda: spy.is_connected(), 5)
        door = site.drop("BRIDGE000005")
        site.board.close_door(door, occupied=True)
        wait_until(lambda: site.state_of("BRIDGE000005") == "ready_for_pickup", 10, "ready")
        closed = next(m for m in captured if b'"door_closed"' in m.payload)
        for _ in range(3):
            spy.publish(closed.topic, closed.payload, qos=1).wait_for_publish(5)
        wait_until(lambda: len([m for m in captured if m.payload == closed.payload]) >= 4, 5)
    finally:
        spy.loop_stop()
        spy.disconnect()
    with world.ctx.db.read() as session:
        check_ins = session.scalar(select(func.count()).select_from(ParcelEvent).where(
            ParcelEvent.action == "check_in"))
        alerts = session.scalar(select(func.count()).select_from(LockerAlert))
    assert check_ins == 1 and alerts == 0
    assert site.actions("BRIDGE000005").count("check_in") == 1


def test_a_pickup_made_offline_is_reconciled_when_the_link_returns(
        world: World, ctx: Ctx, tmp_path: Any, private_broker: Any,
        bridge_for: Callable[..., Bridge]) -> None:
    """Issue 6: the broker goes away; the resident's PIN still opens the door (checked by the
    agent against the synced keyed hash); on reconnect the journal is replayed and the backend
    records the pickup once, at the locker's time."""
    code = unique_locker_id("O")
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
    bridge = Bridge(ctx, "127.0.0.1", private_broker.port,
                    BridgeSettings(resend_after_s=1.0, gap_wait_s=0.5, poll_s=0.05))
    bridge.start()
    board = SimulatedBoard(list(range(1, 7)))
    agent = LockerAgent(code, board, "127.0.0.1", private_broker.port,
                        tmp_path / f"{code}.sqlite3", settings=fast_settings(),
                        identity=provisioned(world.ctx, site_id))
    agent.start()
    site = Site(world, agent, board, site_id)
    try:
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
        door = site.drop("OFFLINE00001")
        board.close_door(door, occupied=True)
        wait_until(lambda: site.state_of("OFFLINE00001") == "ready_for_pickup", 10, "ready")
        # the PIN reaches the locker in an incremental sync before the link goes
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 2, 10, "pin synced")
        with world.ctx.db.read() as session:
            pin = credentials.code_of(world.ctx, credentials.live_credentials(
                session, site.parcel("OFFLINE00001").id)[0])
        private_broker.stop()
        wait_until(lambda: not agent.online, 10, "locker offline")
        board.type_pin(pin)
        wait_until(lambda: board.door_state(door) == "open", 10, "door open offline")
        board.close_door(door, occupied=False)
        assert site.state_of("OFFLINE00001") == "ready_for_pickup"  # the backend cannot know
        private_broker.start()
        wait_until(lambda: site.state_of("OFFLINE00001") == "picked_up", 30, "reconciled")
    finally:
        agent.stop()
        bridge.stop()
    assert site.actions("OFFLINE00001").count("pick_up") == 1
    with world.ctx.db.read() as session:
        pickup = session.scalar(select(ParcelEvent).join(Parcel).where(
            Parcel.tracking_number == "OFFLINE00001", ParcelEvent.action == "pick_up"))
        assert pickup is not None and pickup.data["offline"] is True
        assert pickup.at < datetime.fromisoformat(pickup.data["received_at"])


def test_a_locker_whose_online_status_was_lost_is_back_at_its_next_heartbeat(
        world: World, locker_site: Callable[..., Site], caplog: pytest.LogCaptureFixture) -> None:
    site = locker_site(heartbeat_s=0.5)
    caplog.set_level(logging.WARNING, logger="relay_ops.services.locker_link_status")
    # A fleet reconnecting at once overflows the bridge's queue at the broker: this locker's
    # retained "online" never arrived, the will of its previous connection did.
    locker_link_status.status_changed(world.ctx, site.code, "offline", datetime.now(UTC))
    # Not read back here: its next heartbeat may come first (every 0.5 s; on a loaded CI
    # machine it did). The heartbeat that found it marked offline says so, below.
    with world.ctx.db.transaction() as session:
        row = locker_compartments.locker_by_code(session, site.code)
        locker_sync.queue_sync(world.ctx, session, row, locker_compartments.link_of(session, row),
                           force_full=True)  # a command that waits for an online locker
    wait_until(lambda: any(f"{site.code}: heartbeat while marked offline" in r.getMessage()
                           for r in caplog.records), 10, "a heartbeat found it marked offline")
    wait_until(lambda: site.view()["link"]["online"], 10, "online again from a heartbeat")
    # and what waited in the outbox went out at once: the locker holds the new version
    wait_until(lambda: site.view()["link"]["credential_version_held"] == 2, 10, "synced")


def _intruder() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"intruder-{uuid.uuid4().hex[:8]}")
    client.connect(*SHARED_BROKER)
    client.loop_start()
    wait_until(client.is_connected, 5, "intruder connected")
    return client


def _forged_alert(site: Site) -> dict[str, Any] | None:
    return next((a for a in site.view()["alerts"] if a["kind"] == "forged_message"), None)


def test_forged_events_change_nothing_and_the_locker_s_own_go_on(
        world: World, locker_site: Callable[..., Site]) -> None:
    """Issue 14: someone on the broker publishes, on the locker's event topic, with its boot
    and its next sequence numbers, that a ready parcel's door was opened and closed empty."""
    site = locker_site()
    door = site.drop("FORGED000001")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("FORGED000001") == "ready_for_pickup", 10, "ready")
    agent = site.agent
    wait_until(lambda: site.view()["link"]["applied"]["seq"]
               == agent.journal.last_seq(agent.boot_id), 10, "all applied")
    applied = site.view()["link"]["applied"]
    seq = agent.journal.last_seq(agent.boot_id)
    other_key = Ed25519PrivateKey.generate()
    opened = p.make_event(site.code, agent.boot_id, seq + 1,
                          p.DoorOpened(compartment=door, purpose="maintenance"))
    emptied = p.make_event(site.code, agent.boot_id, seq + 2,
                           p.DoorClosed(compartment=door, occupied=False))
    intruder = _intruder()
    try:
        for forged in (p.encode(opened), p.encode(emptied),  # unsigned
                       p.sign(opened, other_key, site.code), p.sign(emptied, other_key, site.code)):
            intruder.publish(p.evt_topic(site.code), forged, qos=1).wait_for_publish(5)
        alert = wait_until(lambda: _forged_alert(site), 10, "forged_message alert")
    finally:
        intruder.loop_stop()
        intruder.disconnect()
    assert site.state_of("FORGED000001") == "ready_for_pickup"
    # The cursor moves only with what the locker itself journaled (it keeps sending its own
    # events meanwhile, which a loaded machine may deliver late); the forgeries are not in it.
    wait_until(lambda: site.view()["link"]["applied"]["seq"]
               == agent.journal.last_seq(agent.boot_id), 10, "the locker's own applied")
    assert site.view()["link"]["applied"]["boot_id"] == applied["boot_id"]
    assert [a["kind"] for a in site.view()["alerts"]] == ["forged_message"]
    assert alert["occurrences"] >= 1
    # the locker's own next events (same seq numbers the forgeries claimed) are applied
    token = locker_tokens.qr_token(world.ctx, site.parcel("FORGED000001").id)
    site.board.scan(token or "")
    wait_until(lambda: site.board.door_state(door) == "open", 10, "door open for the QR")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("FORGED000001") == "picked_up", 10, "real pickup applied")


def test_a_revoked_locker_is_not_believed(world: World, locker_site: Callable[..., Site]) -> None:
    from relay_ops.services import locker_identity

    site = locker_site()
    door = site.drop("REVOKED00001")
    locker_identity.revoke(world.ctx, SYSTEM, site.site_id)
    site.board.close_door(door, occupied=True)  # a stolen locker's word: not applied
    wait_until(lambda: _forged_alert(site), 10, "refusal alert")
    assert site.state_of("REVOKED00001") == "announced"


def _base64_values(node: Any) -> list[bytes]:
    """Every string in a JSON document that decodes as base64 to 32 bytes: a key's shape."""
    import base64
    import binascii

    if isinstance(node, dict):
        return [v for child in node.values() for v in _base64_values(child)]
    if isinstance(node, list):
        return [v for child in node for v in _base64_values(child)]
    if isinstance(node, str):
        try:
            raw = base64.b64decode(node, validate=True)
        except (binascii.Error, ValueError):
            return []
        return [raw] if len(raw) == 32 else []
    return []


def _brute_force(key: bytes, pin_hash: str) -> str | None:
    import hashlib
    import hmac

    for n in range(1_000_000):  # every PIN of 6 digits (the test's setting)
        pin = f"{n:06d}"
        if hmac.new(key, p.CODE_HASH_CONTEXT + pin.encode(), hashlib.sha256).hexdigest() == (
                pin_hash):
            return pin
    return None


# Six digits, not the default seven: the brute force below tries every PIN under every
# captured value, which takes seconds at 10**6 and minutes at 10**7; the length changes
# nothing in what the wire carries.
@pytest.mark.app_config(PICKUP_CODE_DIGITS=6, PICKUP_CODE_ONLY_MISSES=1)
def test_a_captured_sync_does_not_reveal_a_pin(world: World, locker_site: Callable[..., Site]
                                               ) -> None:
    """Issue 14: an observer of the broker captures the credential syncs and tries every
    PIN under every key-shaped value they carry; nothing matches. The same brute force with
    the locker's own PIN key (from its bundle, never on the wire) finds it."""
    import json

    captured: list[bytes] = []
    site = locker_site()
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"spy-{uuid.uuid4().hex[:8]}")
    spy.on_message = lambda _c, _u, m: captured.append(bytes(m.payload))
    spy.connect(*SHARED_BROKER)
    spy.subscribe(p.cmd_topic(site.code), 1)
    spy.loop_start()
    try:
        door = site.drop("CAPTURE00001")
        site.board.close_door(door, occupied=True)
        wait_until(lambda: site.state_of("CAPTURE00001") == "ready_for_pickup", 10, "ready")
        syncs = wait_until(lambda: [json.loads(m) for m in captured
                                    if b'"sync_credentials"' in m and b'"pin_hash"' in m],
                           10, "the PIN's sync captured")
    finally:
        spy.loop_stop()
        spy.disconnect()
    with world.ctx.db.read() as session:
        pin = credentials.code_of(world.ctx, credentials.live_credentials(
            session, site.parcel("CAPTURE00001").id)[0])
    pin_hash = syncs[0]["body"]["pins"][0]["pin_hash"]
    candidates = [v for sync in syncs for v in _base64_values(sync)]
    assert all(_brute_force(key, pin_hash) is None for key in candidates)
    every_sync = [json.loads(m) for m in captured if b'"sync_credentials"' in m]
    assert all((sync["body"].get("pin_key") or {}).get("key") is None for sync in every_sync)
    assert site.agent.identity is not None
    import base64
    assert _brute_force(base64.b64decode(site.agent.identity.pin_key), pin_hash) == pin


def test_a_door_opened_without_a_command_is_an_alarm_naming_what_was_inside(
        locker_site: Callable[..., Site]) -> None:
    site = locker_site()
    door = site.drop("FORCED000001")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("FORCED000001") == "ready_for_pickup", 10, "ready")
    site.board.force_open(door)
    alert = wait_until(lambda: next((a for a in site.view()["alerts"]
                                     if a["kind"] == "unexpected_door_opening"), None),
                       5, "unexpected opening alarm")
    assert alert["compartment"] == door and "FORCED000001" in alert["detail"]


def test_a_long_gap_is_asked_for_a_window_at_a_time(world: World, ctx: Ctx) -> None:
    """Issue 14: the bridge asked for a 5,000-event gap at once while the agent resent its
    own window: 12,730 extra copies, past the broker's queue for the bridge."""
    code = unique_locker_id("G")
    locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})
    bridge = Bridge(ctx, *SHARED_BROKER, BridgeSettings(gap_wait_s=0.0))
    published: list[bytes] = []
    bridge._publish = lambda _topic, payload: published.append(payload)  # type: ignore[method-assign]
    bridge._connected.set()
    heard = p.make_event(code, "boot-1", 5_001, p.DoorOpened(compartment=1, purpose="pickup"))
    bridge._gaps[(code, "boot-1")] = _gap_with(heard)
    bridge._tick()
    (request,) = [p.receive(p.cmd_topic(code), m).envelope for m in published]
    assert isinstance(request.body, p.ResendEvents)
    assert (request.body.from_seq, request.body.to_seq) == (1, 200)


def test_events_split_between_two_bridges_wait_for_each_other_not_for_a_resend(
        world: World, ctx: Ctx) -> None:
    """A shared subscription gives one locker's burst to two bridges, each holding what comes
    past its gap: each applies its events once the other's filled the gap (it reads the
    cursor every ``gap_poll_s``), without asking the locker for them (``gap_wait_s``)."""
    code = unique_locker_id("S")
    locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})
    published: list[tuple[str, bytes]] = []
    first, second = (Bridge(ctx, *SHARED_BROKER, BridgeSettings(gap_wait_s=60.0, gap_poll_s=0.0))
                     for _ in range(2))
    for bridge in (first, second):
        bridge._publish = lambda topic, payload: published.append((topic, payload))  # type: ignore[method-assign]
        bridge._connected.set()
    key = (code, "boot-1")
    events = {seq: p.make_event(code, "boot-1", seq, p.DoorOpened(compartment=1) if seq % 2
                                else p.DoorClosed(compartment=1, occupied=False))
              for seq in range(1, 5)}

    def applied() -> int:
        return locker_events.applied_seqs(ctx, [key]).get(key, 0)

    first._apply(key, [events[2], events[4]])  # the first bridge's batch came first
    second._apply(key, [events[1], events[3]])
    assert applied() == 1  # 1 applied; 2 and 4 kept by the first bridge, 3 by the second
    first._tick()
    assert applied() == 2
    second._tick()
    assert applied() == 3
    first._tick()
    assert applied() == 4 and not first._gaps and not second._gaps
    commands = [p.receive(topic, payload).envelope for topic, payload in published
                if topic == p.cmd_topic(code)]
    assert commands == []  # nothing asked of the locker: its events were all here
    assert first.applied_count + second.applied_count == 4


def _gap_with(event: p.EventEnvelope) -> Any:
    from firmware_bridge.bridge import _Gap

    return _Gap(since=0.0, missing_from=1, events={event.seq: event})


def test_counters_the_database_forgot_are_passed_by_publishing_again(
    locker_site: Callable[..., Site],
) -> None:
    """Command counters are taken without waiting for the disk (`take_counters`): a database
    crash may forget the last ones. The locker refuses their reuse (`stale_counter`), the
    commands go out again under new counters, and the resident's door still opens."""
    site = locker_site()
    door = site.drop("BRIDGE000010")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("BRIDGE000010") == "ready_for_pickup", 10, "ready")

    def taken() -> int:
        with site.world.ctx.db.read() as session:
            return int(session.scalar(select(LockerLink.command_counter)
                                      .where(LockerLink.site_id == site.site_id)) or 0)

    def applied() -> int:
        return int(site.agent.journal.get_meta("command_counter", 0))

    def settled() -> bool:
        """Every command so far (the door, the credential sync) has reached the locker, and
        no other is on its way."""
        if applied() != taken():
            return False
        time.sleep(0.5)
        return applied() == taken()

    wait_until(settled, 10, "commands settled")
    held = applied()
    with site.world.ctx.db.transaction() as session:  # what a crash would have forgotten
        session.execute(update(LockerLink).where(LockerLink.site_id == site.site_id)
                        .values(command_counter=held - 2))

    token = locker_tokens.qr_token(site.world.ctx, site.parcel("BRIDGE000010").id)
    assert token is not None
    site.board.scan(token)
    wait_until(lambda: site.board.door_state(door) == "open", 15, "door open for the QR")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("BRIDGE000010") == "picked_up", 10, "picked up")
    assert int(site.agent.journal.get_meta("command_counter", 0)) > held
