"""Messages in: each dispatched (an ack, a command; an untrusted one refused), a command
checked (a duplicate answered again, its counter, its expiry), accepted in the journal, then
executed (a door opened, credentials synced, doors in or out of service) and its result
journaled before the broker's PUBACK."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.credentials import OfflineVerifier, SyncRefused, apply_sync
from firmware_bridge.agent.reading import AgentReading
from firmware_bridge.agent.state import COMMAND_COUNTER

log = logging.getLogger(__name__)


class AgentCommands(AgentReading):
    """Commands from the backend."""

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

    @property
    def locker_site(self) -> str:
        return self.settings.site_id or self.locker_id
