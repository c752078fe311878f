"""The backend side of the locker link: MQTT events in, relay_ops service calls, commands out.

    relayops-bridge [--broker HOST:PORT] [--no-shared]     (or: relay-ops bridge ...)

The process is composed by the CLI (`relay_ops/cli.py`, command `bridge`): it builds the app
and hands the bridge the services' context; this module never builds the app. It holds no
rule: a batch of events becomes one call to :mod:`relay_ops.services.locker_events` (one
transaction), and the commands the services wrote to the outbox are published from there.

Delivery (see docs/locker-protocol.md section 6 and ../shared MQTT facts):
- paho's network thread only queues messages; one worker thread does the database work, so
  no callback blocks or raises;
- messages are PUBACKed by hand (``manual_ack=True``) after the database commit. A message whose
  handling failed is PUBACKed too (a held PUBACK would block one of the broker's 20 in-flight
  slots forever), but it is not acknowledged end to end: the locker resends it;
- effect-once: the backend's cursor per ``(locker, boot_id)`` moves in the transaction of the
  effect; a duplicate changes nothing and is acknowledged again;
- an event past a gap waits in memory; a gap still open after ``gap_wait_s`` is asked for with
  ``resend_events``. Memory may be lost with the process: the locker still holds the events.
  Another bridge of the shared subscription may have the missing events: every
  ``gap_poll_s`` the cursors of the boots with events kept aside are read, and one that
  moved past its gap has its events applied at once;
- commands: pending outbox rows are published and marked sent; a command the locker has not
  answered (``cmd_result accepted``) is published again (new ``msg_id``, same ``corr_id``)
  every ``resend_after_s`` until it expires.
Killed at any point, a restarted bridge loses nothing and doubles nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge import protocol as p
from firmware_bridge.net import disable_nagle
from firmware_bridge.tls import BrokerLogin
from relay_ops.services import locker_commands, locker_events, locker_identity, locker_link_status
from relay_ops.services.context import Ctx

log = logging.getLogger(__name__)

EVT_TOPIC = f"{p.TOPIC_ROOT}/+/evt"
MAX_BUFFERED_PER_BOOT = 10_000


@dataclass
class BridgeSettings:
    shared_subscription: bool = True
    share_group: str = p.BRIDGE_SHARE_GROUP  # bridges of one backend share one group
    client_id: str | None = None  # default: per process, so two bridges never kick each other
    client_id_prefix: str = "relayops-bridge"
    keepalive_s: int = 30
    poll_s: float = 0.1
    resend_after_s: float = 5.0
    gap_wait_s: float = 2.0
    gap_poll_s: float = 0.1  # how often a boot's cursor is read while its events wait
    batch_max: int = 200  # messages applied in one round (one transaction per locker)
    gap_give_up_after: int = 5  # resend requests without progress, then the gap is skipped
    resend_request_max: int = 200  # events asked for at once (the agent's window is as large)
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


@dataclass
class _Gap:
    since: float
    missing_from: int  # cursor + 1 when the gap was seen
    requests: int = 0  # resend_events sent without progress
    events: dict[int, p.EventEnvelope] = field(default_factory=dict)


class Bridge:
    def __init__(self, ctx: Ctx, host: str, port: int,
                 settings: BridgeSettings | None = None, login: BrokerLogin | None = None
                 ) -> None:
        self.ctx, self.host, self.port = ctx, host, port
        self.settings = settings or BridgeSettings()
        self.login = login or BrokerLogin(host, port)
        self._inbox: queue.Queue[tuple[str, bytes, int, int]] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._gaps: dict[tuple[str, str], _Gap] = {}
        self._next_outbox_poll = 0.0
        self._next_gap_poll = 0.0
        self.applied_count = 0  # events applied with their effects (for benchmarks and tests)
        self.refused_count = 0  # messages refused for their signature (for tests)
        self.failed_batches = 0  # batches not applied: their lockers resend them

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._client = self._build_client()
        self._client.connect_async(self.host, self.port, self.settings.keepalive_s)
        self._client.loop_start()
        self._worker = threading.Thread(target=self._run, name="bridge-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._worker is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._worker.join(timeout_s)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        return self._connected.wait(timeout_s)

    # --- figures, read by the metrics' scrape (relay_ops/metrics.py) from another thread ----

    def inbox_depth(self) -> int:
        return self._inbox.qsize()

    def events_behind_gaps(self) -> int:
        return sum(len(gap.events) for gap in list(self._gaps.values()))

    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def client_id(self) -> str:
        return self.settings.client_id or (
            f"{self.settings.client_id_prefix}-{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        )

    # --- MQTT callbacks: queue, never block, never raise --------------------------------------

    def _build_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=True, protocol=mqtt.MQTTv311, manual_ack=True)
        # paho's stubs say int; it takes seconds as floats
        client.reconnect_delay_set(self.settings.reconnect_min_s,  # type: ignore[arg-type]
                                   self.settings.reconnect_max_s)  # type: ignore[arg-type]
        self.login.apply(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("broker refused the bridge: %s", reason)
                return
            disable_nagle(client)
            events = (f"$share/{self.settings.share_group}/{EVT_TOPIC}"
                      if self.settings.shared_subscription else EVT_TOPIC)
            # clean session: subscribe on every connect
            client.subscribe([(events, 1), (p.BRIDGE_STATUS_SUBSCRIPTION, 1)])
            self._connected.set()
            log.info("bridge connected to %s:%s as %s", self.host, self.port, self.client_id)
        except Exception:
            log.exception("on_connect failed")

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        try:
            self._connected.clear()
            if not self._stopping.is_set():
                log.warning("bridge disconnected (%s); paho reconnects", reason)
        except Exception:
            log.exception("on_disconnect failed")

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._inbox.put((message.topic, bytes(message.payload), message.mid, message.qos))
        except Exception:
            log.exception("on_message failed")

    # --- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = [self._inbox.get(timeout=self.settings.poll_s)]
            except queue.Empty:
                batch = []
            # what arrived together is applied together: one commit per locker and batch
            while batch and len(batch) < self.settings.batch_max:
                try:
                    batch.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            try:
                if batch:
                    self._handle_batch(batch)
                self._tick()
            except Exception:
                # a database outage or a bug must not stop the bridge: it logs and goes on
                log.exception("bridge step failed")
                time.sleep(self.settings.poll_s)

    def _handle_batch(self, batch: list[tuple[str, bytes, int, int]]) -> None:
        groups: dict[tuple[str, str], list[p.EventEnvelope]] = {}
        touched: set[str] = set()
        try:
            for envelope in self._authentic(batch):
                if isinstance(envelope, p.StatusEnvelope):
                    self._on_status(envelope, touched)
                elif isinstance(envelope, p.EventEnvelope):
                    if envelope.type in p.UNSEQUENCED_EVENTS:
                        self._on_heartbeat(envelope, touched)
                    else:
                        key = (envelope.locker_id, envelope.boot_id)
                        groups.setdefault(key, []).append(envelope)
            for key, envelopes in groups.items():
                self._apply(key, envelopes)
        except Exception:
            self.failed_batches += 1
            log.exception("a batch of %d messages was not applied; lockers resend", len(batch))
        finally:
            # PUBACK after the commit (or after giving up): see the module docstring
            if self._client is not None:
                for _topic, _payload, mid, qos in batch:
                    if qos > 0:
                        self._client.ack(mid, qos)
        for locker in touched:
            self._publish_commands(locker=locker)

    def _authentic(self, batch: list[tuple[str, bytes, int, int]]) -> list[p.Envelope]:
        """The batch's messages that their locker's own key signed, in arrival order. The
        others never reach the services: they move no cursor, change no parcel, and count on
        one `forged_message` alert per locker and batch (section 12)."""
        received = [r for r in (self._parse(t, payload) for t, payload, _m, _q in batch) if r]
        keys = locker_identity.event_keys(self.ctx, {r.envelope.locker_id for r in received})
        authentic: list[p.Envelope] = []
        refused: dict[str, tuple[str, str]] = {}
        for message in received:
            locker = message.envelope.locker_id
            key = keys.get(locker)
            reason = (p.check_signature(message, {locker: key}) if key is not None
                      else "not_provisioned")
            if reason is None:
                authentic.append(message.envelope)
            else:
                self.refused_count += 1
                refused[locker] = (reason, message.envelope.type)
        for locker, (reason, message_type) in refused.items():
            log.warning("%s: refused a %s not signed by the locker (%s)", locker, message_type,
                        reason)
            locker_identity.refused_message(self.ctx, locker, reason, message_type)
        return authentic

    def _parse(self, topic_name: str, payload: bytes) -> p.Received | None:
        try:
            return p.receive(topic_name, payload)
        except p.ProtocolError as error:
            log.warning("dropped an invalid message on %s: %s", topic_name, error)
            return None

    def _on_status(self, envelope: p.StatusEnvelope, touched: set[str]) -> None:
        locker_link_status.status_changed(self.ctx, envelope.locker_id, envelope.body.state,
                                          envelope.ts)
        if envelope.body.state == "online":
            touched.add(envelope.locker_id)  # what waited in the outbox can go now

    def _on_heartbeat(self, envelope: p.EventEnvelope, touched: set[str]) -> None:
        outcome = locker_link_status.heartbeat(self.ctx, envelope.locker_id, envelope.boot_id,
                                               envelope.seq, envelope.body.model_dump(mode="json"),
                                               envelope.ts)
        if outcome.came_online:
            touched.add(envelope.locker_id)  # what waited in the outbox can go now
        if outcome.status == "gap" and outcome.gap:
            self._request_resend(envelope.locker_id, envelope.boot_id, *outcome.gap)

    def _apply(self, key: tuple[str, str], envelopes: list[p.EventEnvelope]) -> None:
        """Apply these events and the ones kept aside that now follow; after the commit,
        publish the commands they produced, then the ack."""
        locker, boot_id = key
        gap = self._gaps.pop(key, None)
        pending = {e.seq: e for e in (gap.events.values() if gap else [])}
        pending.update({e.seq: e for e in envelopes})
        result = locker_events.apply_events(self.ctx, locker, boot_id, [
            locker_events.LockerEvent(e.seq, e.type, e.body.model_dump(mode="json"), e.ts)
            for e in pending.values()
        ], claim_commands=self._connected.is_set())
        if result.status == "unknown_locker":
            log.warning("events from unregistered locker %s dropped", locker)
            return
        self._publish_signed(result.commands)  # a door a resident waits for goes first
        self.applied_count += result.applied
        if result.held_back:
            assert result.gap is not None
            kept = {e.seq: pending[e.seq] for e in result.held_back}
            progress = gap is not None and result.gap[0] > gap.missing_from
            if gap is None or progress:
                gap = _Gap(time.monotonic(), result.gap[0])
            gap.missing_from = result.gap[0]
            gap.events = dict(list(kept.items())[:MAX_BUFFERED_PER_BOOT])
            self._gaps[key] = gap
        self._send_ack(locker, boot_id, result.applied_seq)

    def _tick(self) -> None:
        now = time.monotonic()
        self._apply_gaps_filled_elsewhere(now)
        for (locker, boot_id), gap in list(self._gaps.items()):
            if gap.events and now - gap.since >= self.settings.gap_wait_s:
                # the events kept aside are not asked again: only the hole below them
                first = min(gap.events)
                if gap.requests >= self.settings.gap_give_up_after:
                    locker_events.skip_gap(self.ctx, locker, boot_id, first - 1)
                    self._apply((locker, boot_id), [])
                    continue
                # the hole's oldest part first, a window's worth at a time: the locker is
                # resending its own unacknowledged window meanwhile, and what both send twice
                # must stay well under the broker's queue (1,000 messages a client)
                end = min(first - 1, gap.missing_from + self.settings.resend_request_max - 1)
                self._request_resend(locker, boot_id, gap.missing_from, end)
                gap.requests += 1
                gap.since = now
        if now >= self._next_outbox_poll:
            self._next_outbox_poll = now + max(self.settings.poll_s, 0.2)
            self._publish_commands()

    def _apply_gaps_filled_elsewhere(self, now: float) -> None:
        """A boot's events held past a gap, applied as soon as its cursor reached the gap
        (another bridge applied the missing events), not after ``gap_wait_s``: a burst of
        events split between bridges would otherwise wait a resend round per alternation."""
        if not self._gaps or now < self._next_gap_poll:
            return
        self._next_gap_poll = now + self.settings.gap_poll_s
        waiting = [key for key, gap in self._gaps.items() if gap.events]
        applied = locker_events.applied_seqs(self.ctx, waiting)
        for key in waiting:
            gap = self._gaps.get(key)
            if gap is not None and applied.get(key, 0) >= gap.missing_from:
                self._apply(key, [])

    # --- publishing --------------------------------------------------------------------------

    def _publish(self, topic_name: str, payload: bytes) -> None:
        if self._client is not None:
            self._client.publish(topic_name, payload, qos=1)

    def _send_ack(self, locker: str, boot_id: str, seq: int) -> None:
        if seq >= 1 and self._connected.is_set():
            ack = p.make_ack(locker, boot_id, seq)
            self._publish(p.ack_topic(locker), locker_identity.sign(self.ctx, ack))

    def _request_resend(self, locker: str, boot_id: str, from_seq: int, to_seq: int) -> None:
        if to_seq < from_seq or not self._connected.is_set():
            return
        body = p.ResendEvents(boot_id=boot_id, from_seq=from_seq, to_seq=to_seq)
        ctr = locker_identity.take_counters(self.ctx, locker, 1)
        command = p.make_command(locker, body, ttl_s=60, ctr=ctr)
        log.info("%s: asking for events %s..%s of boot %s", locker, from_seq, to_seq, boot_id)
        self._publish(p.cmd_topic(locker), locker_identity.sign(self.ctx, command))

    def _publish_commands(self, locker: str | None = None) -> None:
        # Offline, leave the rows pending: marking them sent would only delay them.
        if not self._connected.is_set():
            return
        self._publish_signed(locker_commands.commands_to_send(
            self.ctx, resend_after_s=self.settings.resend_after_s, locker=locker
        ))

    def _publish_signed(self, commands: Sequence[locker_commands.CommandToSend]) -> None:
        """Each publication gets a fresh counter, in publication order: a retry of an old
        command passes the locker's counter check, and its corr_id keeps it effect-once.
        Commands claimed with an event batch carry the counters taken in its transaction;
        the others take theirs here."""
        by_locker: dict[str, list[locker_commands.CommandToSend]] = {}
        for command in commands:
            by_locker.setdefault(command.locker, []).append(command)
        for locker, group in by_locker.items():
            if all(command.ctr is not None for command in group):
                counters = [cast(int, command.ctr) for command in group]
            else:
                first = locker_identity.take_counters(self.ctx, locker, len(group))
                counters = list(range(first, first + len(group)))
            for command, ctr in zip(group, counters, strict=True):
                self._publish_command(command, ctr)

    def _publish_command(self, command: locker_commands.CommandToSend, ctr: int) -> None:
        try:
            body = cast(p.CommandBody, p.COMMAND_BODIES[command.name].model_validate_json(
                json.dumps(command.body)))
            envelope = p.make_command(command.locker, body, expires_at=command.expires_at,
                                      corr_id=uuid.UUID(command.corr_id), ctr=ctr)
        except (KeyError, ValueError) as error:  # a bad row must not block the others
            log.error("outbox command %s cannot be encoded: %s", command.id, error)
            return
        self._publish(p.cmd_topic(command.locker), locker_identity.sign(self.ctx, envelope))


# ---------------------------------------------------------------- broker login


def broker_login(config: Mapping[str, Any], host: str, port: int) -> BrokerLogin:
    """The bridge's own broker login (MQTT_USERNAME...); in production a plain-TCP broker
    off the loopback is refused unless MQTT_ALLOW_PLAINTEXT_BROKER says the network is
    trusted."""
    ca_file = config.get("MQTT_TLS_CA_FILE")
    login = BrokerLogin(
        host, port, tls=bool(config.get("MQTT_TLS")),
        ca_pem=Path(ca_file).read_text() if ca_file else None,
        username=config.get("MQTT_USERNAME"), password=config.get("MQTT_PASSWORD"),
    )
    production = config.get("ENV") == "production"
    login.refuse_plaintext(not production or bool(config.get("MQTT_ALLOW_PLAINTEXT_BROKER")))
    return login
