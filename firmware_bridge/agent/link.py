"""The locker agent's MQTT link: the agent's state (one worker thread owns it), the client and
its callbacks (paho's network thread: they never block, never raise, only put work on the
inbox), and a message published when connected."""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.credentials import KeypadThrottle, OfflineVerifier
from firmware_bridge.agent.drivers import CredentialReader, LockBoard
from firmware_bridge.agent.state import (
    AgentSettings,
    Backoff,
    CarrierVisit,
    Door,
    Forwarded,
    OutOfService,
)
from firmware_bridge.clock import wall_time
from firmware_bridge.identity import LockerIdentity
from firmware_bridge.net import disable_nagle

log = logging.getLogger(__name__)


class AgentLink:
    """The agent's state and its MQTT link."""

    def __init__(
        self,
        locker_id: str,
        board: LockBoard,
        host: str,
        port: int,
        journal_path: str | Path,
        *,
        reader: CredentialReader | None = None,
        settings: AgentSettings | None = None,
        clock: Callable[[], float] = wall_time,
        identity: LockerIdentity | None = None,
        watchdog: Callable[[], None] | None = None,
    ) -> None:
        self.locker_id = p.check_locker_id(locker_id)
        self.board = board
        self.host, self.port = host, port
        self.journal_path = Path(journal_path)
        self.settings = settings or AgentSettings()
        self.clock = clock
        # No identity: the agent obeys no command and its events are refused by the backend
        # (section 12). Only the protocol's unit tests build such an agent.
        self.identity = identity
        # called by the worker after every step: a worker stuck (on a bus, a lock) stops
        # calling it, and the supervisor (systemd's WatchdogSec) restarts the agent
        self._watchdog = watchdog
        self._refusals_reported: dict[str, float] = {}
        self._command_keys: dict[str, Ed25519PublicKey] = {}
        # read from the journal at start-up (LockerAgent._load_local_state)
        self._verifier: OfflineVerifier
        self._throttle: KeypadThrottle
        self._oos: OutOfService
        self._reader = reader if reader is not None else _as_reader(board)
        self._inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._reconnect = Backoff(self.settings.reconnect_min_s, self.settings.reconnect_max_s)
        self._resend = Backoff(self.settings.resend_min_s, self.settings.resend_max_s)
        self._next_resend_at: float | None = None
        # the last journal entry (boot_id, seq) the current resend round has published
        self._window_end: tuple[str, int] | None = None
        # the journal held entries of an earlier boot at the last connect (a replay)
        self._replaying_earlier_boot = False
        self._next_heartbeat_at = 0.0
        self._doors: dict[int, Door] = {}
        self._forwarded: dict[uuid.UUID, Forwarded] = {}
        # presentations already decided, so a late backend answer opens nothing (bounded)
        self._handled_presentations: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._carrier: CarrierVisit | None = None
        self._started_monotonic = time.monotonic()
        self.journal: j.Journal
        self.boot_id = ""
        self.started_at = datetime.fromtimestamp(clock(), UTC)

    @property
    def online(self) -> bool:
        return self._connected.is_set()

    def _build_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id or f"relayops-locker-{self.locker_id}",
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        will = self._encode(p.make_status(self.locker_id, self.boot_id, "offline"))
        client.will_set(p.status_topic(self.locker_id), will, qos=1, retain=True)
        if self.identity is not None:
            login = self.identity.login(self.host, self.port)
            login.refuse_plaintext(self.settings.allow_plaintext_broker)
            login.apply(client)
        client.max_queued_messages_set(1000)
        # paho's stubs say int; it takes seconds as floats
        client.reconnect_delay_set(self.settings.reconnect_min_s,  # type: ignore[arg-type]
                                   self.settings.reconnect_min_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("%s: broker refused the connection: %s", self.locker_id, reason)
                self._schedule_reconnect(client)
                return
            disable_nagle(client)
            if not flags.session_present:
                client.subscribe(
                    [(p.cmd_topic(self.locker_id), 1), (p.ack_topic(self.locker_id), 1)]
                )
            self._reconnect.reset()
            self._connected.set()
            self._inbox.put(("connected",))
        except Exception:
            log.exception("%s: on_connect failed", self.locker_id)

    def _on_disconnect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        try:
            self._connected.clear()
            if not self._stopping.is_set():
                log.warning("%s: disconnected (%s)", self.locker_id, reason)
                self._schedule_reconnect(client)
        except Exception:
            log.exception("%s: on_disconnect failed", self.locker_id)

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        try:
            self._schedule_reconnect(client)
        except Exception:
            log.exception("%s: on_connect_fail failed", self.locker_id)

    def _schedule_reconnect(self, client: mqtt.Client) -> None:
        # paho waits min_delay before its next attempt; a fresh jittered delay each time.
        delay = self._reconnect.next_delay()
        client.reconnect_delay_set(delay, delay)  # type: ignore[arg-type]

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._inbox.put((
                "message", message.topic, bytes(message.payload), message.mid, message.qos,
                bool(message.retain),
            ))
        except Exception:
            log.exception("%s: on_message failed", self.locker_id)

    def _encode(self, envelope: p.Envelope) -> bytes:
        """Every message the locker sends is signed with its own key (section 12)."""
        return self.identity.sign(envelope) if self.identity else p.encode(envelope)

    def _publish_raw(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        # Offline, the journal is the queue: publishing would only fill paho's memory.
        if self._client is not None and self.online:
            self._client.publish(topic_name, payload, qos=1, retain=retain)


def _as_reader(board: object) -> CredentialReader | None:
    return board if isinstance(board, CredentialReader) else None
