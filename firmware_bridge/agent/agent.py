"""The locker agent: MQTT link, command handling, door watching, offline pickups (each in its
module: see :class:`LockerAgent`).

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
import threading
import time
import uuid
from typing import Any

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.commands import AgentCommands
from firmware_bridge.agent.credentials import KeypadThrottle, OfflineVerifier
from firmware_bridge.agent.state import OutOfService

log = logging.getLogger(__name__)


class LockerAgent(AgentCommands):
    """A locker's agent: started and stopped, its worker's loop, what it does between items,
    and the state it reloads at start-up. Each concern is a class of its own, one module each,
    every one built on the one below (their methods run on the worker, which owns the state):
    ``link`` (the state, the MQTT client) < ``delivery`` (events journaled, published, resent
    until acknowledged) < ``doors`` (a door opened, the doors' local state, the display) <
    ``offline`` (what the locker decides alone) < ``carrier_visits`` (a carrier's reservations)
    < ``door_watch`` (the doors polled, board faults, the snapshot) < ``reading`` (the scanner
    and keypad) < ``commands`` (messages from the backend) < this class."""

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

    # --- start-up ----------------------------------------------------------------------------

    def _load_local_state(self) -> None:
        stored = self.journal.credentials()
        credentials = p.SyncCredentials.model_validate_json(stored[1]) if stored else None
        self._verifier = OfflineVerifier(credentials, self.locker_site)
        self._trust_command_keys(credentials)
        self._throttle = KeypadThrottle(self.settings.pin_max_failures, self.settings.pin_lockout_s)
        self._throttle.load_state(self.journal.get_meta("keypad_throttle", {}))
        oos: dict[str, Any] = self.journal.get_meta("out_of_service", {})
        self._oos = OutOfService(
            oos.get("locker"), {int(k): v for k, v in oos.get("compartments", {}).items()}
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
