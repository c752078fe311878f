"""The locker agent: MQTT link, command handling, door watching, offline pickups.

Threads:
- paho's network thread runs the callbacks; they only put work on the inbox queue (never block,
  never raise: MQTT-FACTS);
- one worker thread owns everything else: it takes work from the inbox and, between items, polls
  the board, fires timers (door left open, heartbeat, resend, forwarded credentials that got no
  answer). One thread means the agent's state needs no locks.

Delivery: every event is journaled first, then published (QoS 1) if connected, and kept until
the backend's `ack` covers it; unacked events are resent on reconnect, a window of
`resend_batch` at a time: the next ones as soon as an ack frees room in the window, the same
window again after a backoff with jitter while nothing is acknowledged. Incoming commands are
acknowledged to the broker (manual PUBACK) only after the worker has journaled their effect.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.credentials import (
    Grant,
    KeypadThrottle,
    OfflineVerifier,
    Refusal,
    SyncRefused,
    apply_sync,
)
from firmware_bridge.agent.drivers import (
    CredentialKind,
    CredentialReader,
    FaultSource,
    LockBoard,
)
from firmware_bridge.clock import wall_time
from firmware_bridge.identity import LockerIdentity
from firmware_bridge.net import disable_nagle

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"


# Journal meta keys: the counter of the last command applied; the doors open and why.
COMMAND_COUNTER = "command_counter"
OPEN_DOORS = "open_doors"
# A flood of refused messages is reported once per reason in this many seconds.
REFUSAL_REPORT_EVERY_S = 60.0


@dataclass
class AgentSettings:
    site_id: str | None = None  # defaults to the locker id (or the site id in the sync)
    keepalive_s: int = 30
    poll_s: float = 0.05
    forward_timeout_s: float = 5.0  # online: wait this long for the backend, then decide locally
    door_left_open_s: float = 120.0
    heartbeat_s: float = 60.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    resend_min_s: float = 5.0
    resend_max_s: float = 300.0
    resend_batch: int = 200
    token_leeway_s: int = 300
    clock_tolerance_s: float = p.CLOCK_TOLERANCE_S
    pin_max_failures: int = 5
    pin_lockout_s: float = 60.0
    carrier_visit_s: float = 300.0  # a carrier's code stays active this long after each use
    client_id: str | None = None  # defaults to "relayops-locker-<locker_id>"
    # A login crossing a network in clear is refused unless this says the network is trusted.
    allow_plaintext_broker: bool = False


class Backoff:
    """Exponential backoff with 'equal jitter': half the delay fixed, half random, so a fleet
    that lost the broker at the same instant does not come back at the same instant."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.attempt = low, high, 0

    def next_delay(self) -> float:
        ceiling = min(self.high, self.low * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class _Door:
    state: str = "closed"
    opened_at: float = 0.0
    purpose: p.Purpose | None = None
    corr_id: uuid.UUID | None = None
    credential_id: str | None = None
    alarmed: bool = False


@dataclass
class _Forwarded:
    kind: CredentialKind
    value: str
    deadline: float


@dataclass
class _CarrierVisit:
    """A carrier who typed a valid code: the expired parcels' doors open one after the other
    (the next when the previous one closes), and each parcel scanned meanwhile opens the door
    reserved for it."""

    collections: list[p.Reservation]
    deposits: dict[str, p.Reservation]  # by parcel_ref (the barcode the carrier scans)
    until: float  # monotonic; each use extends it
    collecting: str | None = None  # the reservation whose door is open now


@dataclass
class _OutOfService:
    locker: str | None = None
    compartments: dict[int, str] = field(default_factory=dict)


class LockerAgent:
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
        self._verifier: OfflineVerifier
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
        self._doors: dict[int, _Door] = {}
        self._forwarded: dict[uuid.UUID, _Forwarded] = {}
        # presentations already decided, so a late backend answer opens nothing (bounded)
        self._handled_presentations: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._carrier: _CarrierVisit | None = None
        self._started_monotonic = time.monotonic()
        self.journal: j.Journal
        self.boot_id = ""
        self.started_at = datetime.fromtimestamp(clock(), UTC)

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.journal = j.Journal(self.journal_path, self.clock, encode=self._encode)
        self.boot_id = self.journal.start_boot()
        self._load_local_state()
        self._recover_interrupted_work()
        self._restore_doors()
        if self._reader is not None:
            self._reader.set_input_handler(self._on_input)
        self._client = self._build_client()
        self._client.connect_async(self.host, self.port, self.settings.keepalive_s)
        self._client.loop_start()
        self._worker = threading.Thread(
            target=self._run, name=f"agent-{self.locker_id}", daemon=True
        )
        self._worker.start()
        log.info("locker %s started, boot %s", self.locker_id, self.boot_id)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Graceful stop: the will does not fire on disconnect(), so say "offline" ourselves.
        Does nothing if the agent was never started or is already stopped."""
        if self._worker is None or self._stopping.is_set():
            return
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
        if self._reader is not None:
            self._reader.set_input_handler(None)
        client = self._client
        if client is not None:
            if self._connected.is_set():
                info = client.publish(
                    p.status_topic(self.locker_id),
                    self._encode(p.make_status(self.locker_id, self.boot_id, "offline")),
                    qos=1,
                    retain=True,
                )
                try:
                    info.wait_for_publish(timeout=2.0)
                except (RuntimeError, ValueError):
                    log.warning("offline status not confirmed before disconnect")
            client.disconnect()
            # Let the network thread write DISCONNECT before it is stopped: a socket closed
            # without it makes the broker publish the will.
            deadline = time.monotonic() + timeout_s
            while self._connected.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            client.loop_stop()
        self.journal.close()

    @property
    def online(self) -> bool:
        return self._connected.is_set()

    def present(self, kind: CredentialKind, value: str) -> None:
        """A reading from the scanner or keypad (thread-safe; handled by the worker)."""
        self._inbox.put(("input", kind, value))

    # --- MQTT callbacks: never block, never raise --------------------------------------------

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

    # --- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                item = self._inbox.get(timeout=self.settings.poll_s)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._handle(item)
                self._tick()
            except Exception:
                # One bad message or sensor read must not stop the locker.
                log.exception("%s: worker step failed on %r", self.locker_id, item and item[0])
            if self._watchdog is not None:
                self._watchdog()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "connected":
            self._after_connect()
        elif kind == "message":
            _, topic_name, payload, mid, qos, retained = item
            try:
                self._on_mqtt_message(topic_name, payload, retained=retained)
            finally:
                # PUBACK once handled, even when handling failed: a poison message must not
                # hold one of the broker's 20 in-flight slots forever. The backend resends any
                # command until it sees a final cmd_result (end-to-end delivery).
                if qos > 0 and self._client is not None:
                    self._client.ack(mid, qos)
        elif kind == "input":
            self._on_credential(item[1], item[2])

    def _after_connect(self) -> None:
        self._publish_raw(
            p.status_topic(self.locker_id),
            self._encode(p.make_status(self.locker_id, self.boot_id, "online")),
            retain=True,
        )
        self._replaying_earlier_boot = self.journal.holds_other_boots(self.boot_id)
        self._resend_unacked()
        self._emit_snapshot()
        self._publish_state()
        self._next_heartbeat_at = time.monotonic() + self.settings.heartbeat_s

    def _tick(self) -> None:
        now = time.monotonic()
        self._report_board_faults()
        self._poll_doors(now)
        self._expire_forwarded(now)
        self._end_idle_carrier_visit(now)
        if self.online and self._next_resend_at is not None and now >= self._next_resend_at:
            self._resend_unacked()
        if self.online and now >= self._next_heartbeat_at:
            self._next_heartbeat_at = now + self.settings.heartbeat_s
            self._send_heartbeat()

    # --- events out --------------------------------------------------------------------------

    def _journal(self, body: p.EventBody) -> p.EventEnvelope:
        return self.journal.append_event(
            self.boot_id, lambda seq: p.make_event(self.locker_id, self.boot_id, seq, body)
        )

    def _emit(self, body: p.EventBody) -> p.EventEnvelope:
        envelope = self._journal(body)
        self._publish_events([envelope])
        return envelope

    def _publish_events(self, envelopes: list[p.EventEnvelope]) -> None:
        for envelope in envelopes:
            self._publish_raw(p.evt_topic(self.locker_id), self._encode(envelope))
            self._extend_window(envelope)
        if self._next_resend_at is None:
            self._next_resend_at = time.monotonic() + self._resend.next_delay()

    def _publish_raw(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        # Offline, the journal is the queue: publishing would only fill paho's memory.
        if self._client is not None and self.online:
            self._client.publish(topic_name, payload, qos=1, retain=retain)

    def _resend_unacked(self) -> None:
        """A window of `resend_batch` unacknowledged entries from the oldest: at connect, and
        when the backoff ran out with no ack (what was sent may be lost: sent again)."""
        self._window_end = None
        stored = self.journal.unacked_events(limit=self.settings.resend_batch)
        self._resend_stored(stored)
        self._next_resend_at = time.monotonic() + self._resend.next_delay() if stored else None

    def _resend_stored(self, stored: list[j.StoredEvent]) -> None:
        for event in stored:
            self._publish_raw(p.evt_topic(self.locker_id), event.payload)
        if stored:
            self._window_end = (stored[-1].boot_id, stored[-1].seq)

    def _extend_window(self, envelope: p.EventEnvelope) -> None:
        """A new event published right after the window is in flight like the window's own
        entries: the window's next step must not send it again."""
        if self._window_end is None or not self.online:
            return
        following = self.journal.unacked_after(*self._window_end, limit=1)
        if following and (following[0].boot_id, following[0].seq) == (envelope.boot_id,
                                                                        envelope.seq):
            self._window_end = (envelope.boot_id, envelope.seq)

    def _slide_window(self) -> None:
        """Ack-paced replay: an ack (sent by the backend after its commit) frees room in the
        window, and the entries after it go at once instead of after the resend backoff (a
        day offline went 200 entries per 2.5-5 s). At most `resend_batch` stay unacknowledged
        in flight, so a fleet replaying together does not flood the broker's queue for the
        bridges; the backoff still covers a window nobody answers."""
        if self._window_end is None or not self.online:
            return
        room = self.settings.resend_batch - self.journal.unacked_through(*self._window_end)
        if room > 0:
            self._resend_stored(self.journal.unacked_after(*self._window_end, limit=room))

    def _send_heartbeat(self) -> None:
        body = p.Heartbeat(
            uptime_s=int(time.monotonic() - self._started_monotonic),
            unacked_events=self.journal.unacked_count(),
            credential_version=self._verifier.version,
        )
        # Not journaled: its seq repeats the last one given, so the backend sees a tail gap.
        heartbeat = p.make_event(
            self.locker_id, self.boot_id, self.journal.last_seq(self.boot_id), body
        )
        self._publish_raw(p.evt_topic(self.locker_id), self._encode(heartbeat))

    def _emit_snapshot(self) -> None:
        # The snapshot reads the board now; a door that closed since the last poll must be
        # journaled first, or the backend reconciles the closed door from the snapshot (a
        # deposit without its credential, an offline one counted as online) before the
        # `door_closed` that says who used it.
        self._poll_doors(time.monotonic())
        self._emit(self._snapshot())

    def _snapshot(self) -> p.StateSnapshot:
        compartments = [
            p.CompartmentState(
                number=n,
                door=self.board.door_state(n),
                occupied=self.board.occupancy(n),
                in_service=n not in self._oos.compartments,
                fault=self._oos.compartments.get(n),
            )
            for n in self.board.compartments()
        ]
        return p.StateSnapshot(
            compartments=compartments,
            in_service=self._oos.locker is None,
            credential_version=self._verifier.version,
            acked_seq=self.journal.acked_seq(self.boot_id),
            unacked_events=self.journal.unacked_count(),
            started_at=self.started_at,
            agent_version=AGENT_VERSION,
        )

    def _publish_state(self) -> None:
        state = p.make_state(self.locker_id, self.boot_id, self._snapshot())
        self._publish_raw(p.state_topic(self.locker_id), self._encode(state), retain=True)

    # --- messages in -------------------------------------------------------------------------

    def _encode(self, envelope: p.Envelope) -> bytes:
        """Every message the locker sends is signed with its own key (section 12)."""
        return self.identity.sign(envelope) if self.identity else p.encode(envelope)

    def _on_mqtt_message(self, topic_name: str, payload: bytes, *, retained: bool = False) -> None:
        try:
            received = p.receive(topic_name, payload)
        except p.ProtocolError as error:
            log.warning("%s: dropped invalid message on %s: %s", self.locker_id, topic_name, error)
            return
        message = received.envelope
        if message.locker_id != self.locker_id:
            log.warning("%s: dropped a message for %s", self.locker_id, message.locker_id)
            return
        refusal = self._untrusted(received, retained=retained)
        if refusal is not None:
            self._refuse_message(message, refusal)
        elif isinstance(message, p.AckEnvelope):
            self._on_ack(message.body)
        elif isinstance(message, p.CommandEnvelope):
            self._on_command(message)

    def _untrusted(self, received: p.Received, *, retained: bool) -> str | None:
        """Why a message from the backend's side must not be obeyed, or None. Only the
        backend's signature counts: the broker, its operator or another client may have
        written anything on our topics."""
        if self.identity is None:
            return "not_provisioned"
        bad = p.check_signature(received, self._command_keys)
        if bad is not None:
            return bad
        # Commands are never retained (section 5): a retained one is a stored copy that a
        # broker would hand to every later connection.
        return "retained" if retained else None

    def _refuse_message(self, message: p.Envelope, reason: str) -> None:
        """Logged always; reported to the backend as a `command_refused` fault at most once a
        minute per reason, so a flood of forgeries cannot fill the journal."""
        log.warning("%s: refused a %s message (%s)", self.locker_id, message.type, reason)
        now = time.monotonic()
        if now - self._refusals_reported.get(reason, -REFUSAL_REPORT_EVERY_S) < (
            REFUSAL_REPORT_EVERY_S
        ):
            return
        self._refusals_reported[reason] = now
        self._emit(p.Fault(code="command_refused", detail=f"{reason}: {message.type}"[:200]))

    def _on_ack(self, ack: p.AckBody) -> None:
        if self.journal.ack(ack.boot_id, ack.seq):
            self._resend.reset()
            remaining = self.journal.unacked_count()
            self._next_resend_at = (
                time.monotonic() + self._resend.next_delay() if remaining else None
            )
            if remaining:
                self._slide_window()
                return
            self._window_end = None  # all caught up: new events are sent as they come
            if self._replaying_earlier_boot:
                self._replay_done()

    def _replay_done(self) -> None:
        """The journal is empty after replaying an earlier boot: say so now with a heartbeat
        (its `unacked_events` is 0) rather than within a minute. The backend holds back this
        boot's snapshot while earlier entries are unapplied, and asks for a new one when it
        learns they are all in (protocol section 6, "A new boot")."""
        self._replaying_earlier_boot = False
        self._send_heartbeat()

    def _on_command(self, command: p.CommandEnvelope) -> None:
        msg_id, corr_id = str(command.msg_id), str(command.corr_id)
        prior = self.journal.command_record(msg_id, corr_id)
        if prior is not None:
            # A duplicate (redelivery or retry): no second effect, the same answer again.
            self._emit(self._result(command, prior.status, prior.reason))
            return
        if not self._counter_is_new(command):
            # Not journaled as handled: the backend republishes it under a fresh counter.
            self._emit(self._result(command, "failed", p.STALE_COUNTER))
            return
        if p.is_expired(
            command, datetime.fromtimestamp(self.clock(), UTC), self.settings.clock_tolerance_s
        ):
            self._finish(command, "failed", "expired")
            return
        with self.journal.atomic():
            self.journal.set_meta(COMMAND_COUNTER, command.ctr)
            self.journal.record_command(msg_id, corr_id, command.type, "accepted", None)
            accepted = self._journal(self._result(command, "accepted", None))
        self._publish_events([accepted])
        try:
            status, reason = self._execute(command)
        except Exception:
            log.exception("%s: command %s failed", self.locker_id, command.type)
            status, reason = "failed", "internal_error"
        self._finish(command, status, reason)

    def _counter_is_new(self, command: p.CommandEnvelope) -> bool:
        """A signed command is obeyed once, in counter order: a captured copy replayed later
        carries a counter the locker has already passed (kept in the journal across
        restarts)."""
        last = int(self.journal.get_meta(COMMAND_COUNTER, 0))
        return command.ctr is not None and command.ctr > last

    def _finish(self, command: p.CommandEnvelope, status: str, reason: str | None) -> None:
        with self.journal.atomic():
            self.journal.record_command(
                str(command.msg_id), str(command.corr_id), command.type, status, reason
            )
            result = self._journal(self._result(command, status, reason))
        self._publish_events([result])

    @staticmethod
    def _result(command: p.CommandEnvelope, status: str, reason: str | None) -> p.CmdResult:
        return p.CmdResult(
            corr_id=command.corr_id,
            command_msg_id=command.msg_id,
            command_type=command.type,
            status=status,  # type: ignore[arg-type]
            reason=reason,
        )

    def _execute(self, command: p.CommandEnvelope) -> tuple[str, str | None]:
        body = command.body
        if isinstance(body, p.OpenCompartment):
            return self._cmd_open(body, command.corr_id)
        if isinstance(body, p.SyncCredentials):
            return self._cmd_sync(body)
        if isinstance(body, p.SetOutOfService | p.SetInService):
            return self._cmd_service(body)
        if isinstance(body, p.RequestSnapshot):
            self._emit_snapshot()
            self._publish_state()
            return "done", None
        if isinstance(body, p.ResendEvents):
            for event in self.journal.events_in_range(body.boot_id, body.from_seq, body.to_seq):
                self._publish_raw(p.evt_topic(self.locker_id), event.payload)
            return "done", None
        if isinstance(body, p.RejectCredential):
            if self._forwarded.pop(body.presentation_id, None) is None:
                return "failed", "unknown_presentation"
            self._show(f"refused: {body.reason}")
            return "done", None
        return "failed", "unsupported_command"

    def _cmd_open(self, body: p.OpenCompartment, corr_id: uuid.UUID) -> tuple[str, str | None]:
        n = body.compartment
        if n not in self._doors:
            return "failed", "unknown_compartment"
        if body.purpose != "maintenance" and (self._oos.locker or n in self._oos.compartments):
            return "failed", "out_of_service"
        if body.presentation_id is not None:
            if body.presentation_id in self._handled_presentations:
                return "failed", "already_handled"
            self._forwarded.pop(body.presentation_id, None)
            self._mark_handled(body.presentation_id)
        if body.credential_id is not None:
            use = self.journal.use_of(body.credential_id)
            if use is not None and use.outcome == j.OPENED:
                return "failed", "already_used"
            self.journal.record_use(body.credential_id, "online", body.parcel_ref, n)
        opened = self._open_door(n, body.purpose, corr_id, body.credential_id)
        if body.credential_id is not None:
            self.journal.set_use_outcome(body.credential_id, j.OPENED if opened else j.FAILED)
        # The person at the locker reads the screen: say which door, whoever decided.
        self._show(f"compartment {n} opens" if opened else f"compartment {n} failed to open")
        return ("done", None) if opened else ("failed", "door_failed_to_open")

    def _cmd_sync(self, sync: p.SyncCredentials) -> tuple[str, str | None]:
        try:
            merged = self._with_local_pin_key(apply_sync(self._verifier.credentials, sync))
            verifier = OfflineVerifier(merged, self.locker_site)
        except SyncRefused as refused:
            self._emit(p.SyncAck(version=self._verifier.version, applied=False))
            return "failed", refused.reason
        except ValueError as error:  # e.g. a public key that is not 32 bytes
            self._emit(p.SyncAck(version=self._verifier.version, applied=False))
            return "failed", f"invalid_credentials: {error}"[:200]
        with self.journal.atomic():
            self.journal.store_credentials(merged.version, merged.model_dump_json())
            ack = self._journal(p.SyncAck(version=merged.version, applied=True))
        self._verifier = verifier
        self._trust_command_keys(merged)
        self._publish_events([ack])
        return "done", None

    def _trust_command_keys(self, credentials: p.SyncCredentials | None) -> None:
        """The bundle's command keys, until a sync (itself signed by a trusted key) names the
        keys to trust instead: how the backend rotates its key without re-provisioning."""
        if credentials is not None and credentials.command_keys:
            self._command_keys = {k.kid: p.load_raw_public_key(k.key)
                                  for k in credentials.command_keys}
        elif self.identity is not None:
            self._command_keys = dict(self.identity.command_keys)

    def _with_local_pin_key(self, credentials: p.SyncCredentials) -> p.SyncCredentials:
        """Syncs name the PIN key; the key itself comes from the bundle, never the wire."""
        named = credentials.pin_key
        if named is None or self.identity is None or named.key_id != self.identity.pin_key_id:
            return credentials
        local = p.PinKey(key_id=named.key_id, key=self.identity.pin_key)
        return credentials.model_copy(update={"pin_key": local})

    def _cmd_service(self, body: p.SetOutOfService | p.SetInService) -> tuple[str, str | None]:
        if body.compartment is not None and body.compartment not in self._doors:
            return "failed", "unknown_compartment"
        if isinstance(body, p.SetOutOfService):
            if body.compartment is None:
                self._oos.locker = body.reason
            else:
                self._oos.compartments[body.compartment] = body.reason
        elif body.compartment is None:
            self._oos.locker = None
        else:
            self._oos.compartments.pop(body.compartment, None)
        self.journal.set_meta(
            "out_of_service",
            {
                "locker": self._oos.locker,
                "compartments": {str(k): v for k, v in self._oos.compartments.items()},
            },
        )
        self._publish_state()
        return "done", None

    # --- doors -------------------------------------------------------------------------------

    def _open_door(
        self,
        n: int,
        purpose: p.Purpose,
        corr_id: uuid.UUID | None,
        credential_id: str | None,
    ) -> bool:
        opened = self.board.open(n)
        if opened:
            self._doors[n] = _Door("open", time.monotonic(), purpose, corr_id, credential_id)
            self._save_open_doors()
            self._emit(
                p.DoorOpened(
                    compartment=n, corr_id=corr_id, purpose=purpose, credential_id=credential_id
                )
            )
            return True
        # A board that is not answering is not a jammed door: its own fault said so once.
        source = self.board if isinstance(self.board, FaultSource) else None
        cause = source.open_failure(n) if source is not None else None
        with self.journal.atomic():
            events = [self._journal(
                p.DoorFailedToOpen(
                    compartment=n,
                    reason=cause or "lock_did_not_release",
                    corr_id=corr_id,
                    credential_id=credential_id,
                    board=source.board_of(n) if source is not None and cause else None,
                )
            )]
            if cause is None:
                events.append(self._journal(
                    p.Fault(
                        code="door_jammed",
                        compartment=n,
                        detail="lock pulsed, door sensor still closed",
                    )
                ))
        self._publish_events(events)
        return False

    def _report_board_faults(self) -> None:
        """Faults the board found by itself (a bus board offline, then back) go to the
        backend like the agent's own: journaled, then published."""
        if not isinstance(self.board, FaultSource):
            return
        for fault in self.board.take_faults():
            self._emit(p.Fault(code=fault.code, compartment=fault.compartment,
                               detail=fault.detail, board=fault.board))

    def _poll_doors(self, now: float) -> None:
        closed: list[str | None] = []
        for n, door in self._doors.items():
            state = self.board.door_state(n)
            if state == "closed" and door.state == "open":
                closed.append(door.credential_id)
                self._emit(
                    p.DoorClosed(
                        compartment=n,
                        occupied=self.board.occupancy(n),
                        opened_for=door.purpose,
                        corr_id=door.corr_id,
                        credential_id=door.credential_id,
                        open_seconds=int(now - door.opened_at),
                    )
                )
                self._doors[n] = _Door("closed")
                self._save_open_doors()
            elif state == "open" and door.state != "open":
                # opened without a command: forced, or a manual key
                self._doors[n] = _Door("open", now)
                self._save_open_doors()
                self._emit(p.DoorOpened(compartment=n))
            elif (
                state == "open"
                and not door.alarmed
                and now - door.opened_at >= self.settings.door_left_open_s
            ):
                door.alarmed = True
                self._emit(
                    p.DoorLeftOpen(
                        compartment=n,
                        open_seconds=int(now - door.opened_at),
                        opened_for=door.purpose,
                    )
                )
        visit = self._carrier
        if visit is not None and visit.collecting is not None and visit.collecting in closed:
            self._open_next_collection()  # a carrier has two hands: one door at a time

    # --- credentials at the keypad and scanner -----------------------------------------------

    @property
    def locker_site(self) -> str:
        return self.settings.site_id or self.locker_id

    def _on_input(self, kind: CredentialKind, value: str) -> None:
        self.present(kind, value)

    def _on_credential(self, kind: CredentialKind, value: str) -> None:
        presentation_id = uuid.uuid4()
        if self._oos.locker is not None:
            self._show("out of service")
            return
        drop_off = p.parse_drop_off_qr(value) if kind == "qr" else None
        if drop_off is not None:
            self._drop_off_scan(presentation_id, *drop_off)
            return
        if kind == "qr" and self._carrier is not None and not value.startswith("RO1:"):
            self._carrier_scan(presentation_id, value.strip())  # a parcel's barcode
            return
        if kind != "qr" and self._throttle.locked(self.clock()):
            self._refuse(presentation_id, kind, "locked_out")
            return
        # Carrier codes are decided here even online: the backend decided in advance, when it
        # reserved the doors and synced them; the uses reach it as journaled events.
        if not self.online or kind == "carrier":
            self._decide_locally(presentation_id, kind, value)
            return
        token, code_hash, key_id = None, None, None
        if kind == "qr":
            token = value[:400]
        else:
            hashed = self._verifier.code_hash(value)
            if hashed is None:
                self._refuse(presentation_id, kind, "no_credentials")
                return
            key_id, code_hash = hashed
        self._forwarded[presentation_id] = _Forwarded(
            kind, value, time.monotonic() + self.settings.forward_timeout_s
        )
        self._emit(
            p.CredentialPresented(
                presentation_id=presentation_id,
                kind=kind,
                result="forwarded",
                token=token,
                code_hash=code_hash,
                key_id=key_id,
            )
        )

    def _expire_forwarded(self, now: float) -> None:
        for presentation_id, forwarded in list(self._forwarded.items()):
            if now >= forwarded.deadline or not self.online:
                del self._forwarded[presentation_id]
                log.info("%s: no answer for %s, deciding locally", self.locker_id, presentation_id)
                self._decide_locally(presentation_id, forwarded.kind, forwarded.value)

    def _decide_locally(self, presentation_id: uuid.UUID, kind: CredentialKind, value: str) -> None:
        self._mark_handled(presentation_id)
        now = self.clock()
        tolerance = self.settings.clock_tolerance_s
        if kind == "qr":
            decision, _claims = self._verifier.check_qr(value, now, self.settings.token_leeway_s)
        elif self._throttle.locked(now):
            decision = Refusal("locked_out")
        elif kind == "pin":
            decision = self._verifier.check_pin(value, now, tolerance)
            self._count_keypad_attempt(decision)
        else:
            found = self._verifier.carrier_reservations(value, now, tolerance)
            self._count_keypad_attempt(found)
            self._start_carrier_visit(presentation_id, found)
            return
        if isinstance(decision, Grant):
            decision = self._refuse_if_spent(decision)
        if isinstance(decision, Refusal):
            self._refuse(presentation_id, kind, decision.reason)
        else:
            self._offline_pickup(presentation_id, kind, value, decision)

    def _mark_handled(self, presentation_id: uuid.UUID) -> None:
        self._handled_presentations[presentation_id] = None
        while len(self._handled_presentations) > 1000:
            self._handled_presentations.popitem(last=False)

    def _count_keypad_attempt(self, decision: Grant | Refusal | list[p.Reservation]) -> None:
        # In memory here: the answer's own transaction journals it (_journal_keypad_throttle),
        # so a PIN pickup waits for one fsync before its door, not two.
        if isinstance(decision, Refusal) and decision.reason == "unknown_code":
            self._throttle.failure(self.clock())
        elif not isinstance(decision, Refusal):
            self._throttle.success()

    def _keypad_throttle_unsaved(self) -> bool:
        return bool(self.journal.get_meta("keypad_throttle", {}) != self._throttle.to_state())

    def _journal_keypad_throttle(self) -> None:
        """Inside the transaction of an answer (a refusal, a pickup): the throttle state is
        durable before anyone sees the answer, so a kill -9 cannot forget a wrong code. An
        unchanged state (most right PINs, every QR code) writes nothing."""
        if self._keypad_throttle_unsaved():
            self.journal.set_meta("keypad_throttle", self._throttle.to_state())

    def _refuse_if_spent(self, grant: Grant) -> Grant | Refusal:
        if grant.compartment not in self._doors:
            return Refusal("unknown_compartment")
        if grant.compartment in self._oos.compartments:
            return Refusal("out_of_service")
        use = self.journal.use_of(grant.credential_id)
        if use is not None and use.outcome == j.OPENED:
            return Refusal("already_used")
        return grant

    def _refuse(self, presentation_id: uuid.UUID, kind: CredentialKind, reason: str) -> None:
        event = p.CredentialPresented(
            presentation_id=presentation_id, kind=kind, result="refused", reason=reason
        )
        if not self._keypad_throttle_unsaved():
            self._show(f"refused: {reason}")  # nothing to make durable first
            self._emit(event)
            return
        # a wrong code counts before anyone sees the answer: the count and the event, one commit
        with self.journal.atomic():
            self._journal_keypad_throttle()
            refusal = self._journal(event)
        self._show(f"refused: {reason}")
        self._publish_events([refusal])

    def _offline_pickup(
        self, presentation_id: uuid.UUID, kind: CredentialKind, value: str, grant: Grant
    ) -> None:
        # Journal the use BEFORE the door opens: a crash after this line cannot give a second
        # opening for nothing, and the backend learns of the pickup on reconnect.
        with self.journal.atomic():
            self._journal_keypad_throttle()
            self.journal.record_use(grant.credential_id, kind, grant.parcel_ref, grant.compartment)
            pickup = self._journal(
                p.OfflinePickup(
                    presentation_id=presentation_id,
                    credential_kind="qr" if kind == "qr" else "pin",
                    credential_id=grant.credential_id,
                    parcel_ref=grant.parcel_ref or "",
                    compartment=grant.compartment,
                    verified_at=datetime.fromtimestamp(self.clock(), UTC),
                    token=value if kind == "qr" else None,
                )
            )
        self._publish_events([pickup])
        self._show(f"compartment {grant.compartment} opens")
        opened = self._open_door(grant.compartment, "pickup", None, grant.credential_id)
        self.journal.set_use_outcome(grant.credential_id, j.OPENED if opened else j.FAILED)

    # --- carriers: reservations synced in advance ---------------------------------------------

    def _start_carrier_visit(
        self, presentation_id: uuid.UUID, found: list[p.Reservation] | Refusal
    ) -> None:
        usable = [] if isinstance(found, Refusal) else [r for r in found if self._usable(r)]
        if isinstance(found, Refusal) or not usable:
            reason = found.reason if isinstance(found, Refusal) else "nothing_reserved"
            self._refuse(presentation_id, "carrier", reason)
            return
        self._carrier = _CarrierVisit(
            collections=[r for r in usable if r.purpose == "collection"],
            deposits={r.parcel_ref: r for r in usable if r.purpose == "deposit" and r.parcel_ref},
            until=time.monotonic() + self.settings.carrier_visit_s,
        )
        visit = self._carrier
        with self.journal.atomic():  # a right code resets the keypad count before the answer
            self._journal_keypad_throttle()
        self._show(
            f"carrier: {len(visit.collections)} to collect, {len(visit.deposits)} to deposit"
            + (" (scan each parcel)" if visit.deposits else "")
        )
        self._open_next_collection()

    def _drop_off_scan(self, presentation_id: uuid.UUID, code: str, parcel_ref: str) -> None:
        """A sender's (or producer's) drop-off QR code: its code, as if typed with the carrier
        key, then its parcel, as if scanned (protocol section 7): one scan opens the door."""
        if self._throttle.locked(self.clock()):
            self._refuse(presentation_id, "carrier", "locked_out")
            return
        self._decide_locally(presentation_id, "carrier", code)
        visit = self._carrier
        if visit is None:
            return  # refused, and reported, by the code's own check
        if parcel_ref in visit.deposits:
            self._carrier_scan(uuid.uuid4(), parcel_ref)
        elif not visit.collections and visit.collecting is None:
            self._refuse(uuid.uuid4(), "carrier", "no_reservation")

    def _usable(self, reservation: p.Reservation) -> bool:
        """Not spent, and its door exists and is in service."""
        n = reservation.compartment
        if n not in self._doors or n in self._oos.compartments:
            return False
        use = self.journal.use_of(reservation.reservation_id)
        return use is None or use.outcome != j.OPENED

    def _open_next_collection(self) -> None:
        visit = self._carrier
        if visit is None:
            return
        visit.collecting = None
        while visit.collections:
            reservation = visit.collections.pop(0)
            if self._usable(reservation) and self._carrier_use(reservation):
                visit.collecting = reservation.reservation_id
                return
        if not visit.deposits:
            self._end_carrier_visit("carrier: done")

    def _carrier_scan(self, presentation_id: uuid.UUID, parcel_ref: str) -> None:
        visit = self._carrier
        assert visit is not None
        visit.until = time.monotonic() + self.settings.carrier_visit_s
        reservation = visit.deposits.get(parcel_ref)
        if reservation is None:
            self._refuse(presentation_id, "carrier", "no_reservation")
            return
        if not self._usable(reservation):
            del visit.deposits[parcel_ref]
            self._refuse(presentation_id, "carrier", "already_used")
            return
        if self._carrier_use(reservation):
            del visit.deposits[parcel_ref]

    def _end_idle_carrier_visit(self, now: float) -> None:
        visit = self._carrier
        if visit is not None and now >= visit.until and visit.collecting is None:
            self._end_carrier_visit("carrier: time is up, type the code again")

    def _end_carrier_visit(self, message: str) -> None:
        self._carrier = None
        self._show(message)

    def _carrier_use(self, reservation: p.Reservation) -> bool:
        """Journal the use BEFORE the door opens (as a pickup): single use per reservation,
        and the backend learns of it on reconnect. True when the door opened."""
        body_type = p.OfflineDeposit if reservation.purpose == "deposit" else p.OfflineCollection
        with self.journal.atomic():
            self._journal_keypad_throttle()
            self.journal.record_use(
                reservation.reservation_id,
                "carrier",
                reservation.parcel_ref,
                reservation.compartment,
            )
            event = self._journal(
                body_type(
                    reservation_id=reservation.reservation_id,
                    compartment=reservation.compartment,
                    parcel_ref=reservation.parcel_ref,
                    verified_at=datetime.fromtimestamp(self.clock(), UTC),
                )
            )
        self._publish_events([event])
        n = reservation.compartment
        opened = self._open_door(n, reservation.purpose, None, reservation.reservation_id)
        self.journal.set_use_outcome(reservation.reservation_id, j.OPENED if opened else j.FAILED)
        what = "take" if reservation.purpose == "collection" else "put in"
        self._show(
            f"compartment {n} opens: {what} {reservation.parcel_ref or 'the parcel'}"
            if opened
            else f"compartment {n} failed to open"
        )
        return opened

    def _show(self, message: str) -> None:
        # the screen is on the board (simulated) or on the reader's panel
        show = getattr(self.board, "show", None) or getattr(self._reader, "show", None)
        if callable(show):
            show(message)
        else:
            log.info("%s screen: %s", self.locker_id, message)

    # --- start-up ----------------------------------------------------------------------------

    def _load_local_state(self) -> None:
        stored = self.journal.credentials()
        credentials = p.SyncCredentials.model_validate_json(stored[1]) if stored else None
        self._verifier = OfflineVerifier(credentials, self.locker_site)
        self._trust_command_keys(credentials)
        self._throttle = KeypadThrottle(self.settings.pin_max_failures, self.settings.pin_lockout_s)
        self._throttle.load_state(self.journal.get_meta("keypad_throttle", {}))
        oos: dict[str, Any] = self.journal.get_meta("out_of_service", {})
        self._oos = _OutOfService(
            oos.get("locker"), {int(k): v for k, v in oos.get("compartments", {}).items()}
        )

    def _save_open_doors(self) -> None:
        """Why and since when each open door is open, on the locker's clock: an agent
        restarted with a door open goes on from there (no false `door_left_open`, and the
        pickup or deposit closing it keeps its credential)."""
        now_mono, now_wall = time.monotonic(), self.clock()
        self.journal.set_meta(OPEN_DOORS, {
            str(n): {"opened_at": now_wall - (now_mono - door.opened_at), "purpose": door.purpose,
                     "corr_id": str(door.corr_id) if door.corr_id else None,
                     "credential_id": door.credential_id}
            for n, door in self._doors.items() if door.state == "open"
        })

    def _restore_doors(self) -> None:
        saved: dict[str, Any] = self.journal.get_meta(OPEN_DOORS, {})
        now_mono, now_wall = time.monotonic(), self.clock()
        for n in self.board.compartments():
            state = self.board.door_state(n)
            known = saved.get(str(n)) if state == "open" else None
            if known is None:
                # open with nothing journaled: opened while the agent was down; counted from now
                self._doors[n] = _Door(state=state, opened_at=now_mono)
                continue
            corr_id = known.get("corr_id")
            self._doors[n] = _Door(
                "open", now_mono - max(0.0, now_wall - float(known["opened_at"])),
                known.get("purpose"), uuid.UUID(corr_id) if corr_id else None,
                known.get("credential_id"),
            )

    def _recover_interrupted_work(self) -> None:
        """After a crash: uses and commands that never got their outcome are reported."""
        for use in self.journal.uses_with_outcome(j.PENDING):
            with self.journal.atomic():
                self.journal.set_use_outcome(use.credential_id, j.INTERRUPTED)
                self._journal(
                    p.Fault(
                        code="use_interrupted",
                        compartment=use.compartment,
                        credential_id=use.credential_id,
                        detail="agent restarted before the door outcome was known",
                    )
                )
        for record in self.journal.commands_with_status("accepted"):
            with self.journal.atomic():
                self.journal.record_command(
                    record.msg_id, record.corr_id, record.type, "failed", "interrupted"
                )
                self._journal(
                    p.CmdResult(
                        corr_id=uuid.UUID(record.corr_id),
                        command_msg_id=uuid.UUID(record.msg_id),
                        command_type=record.type,
                        status="failed",
                        reason="interrupted",
                    )
                )


def _as_reader(board: object) -> CredentialReader | None:
    return board if isinstance(board, CredentialReader) else None
