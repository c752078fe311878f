"""What the agent decides alone at the keypad and scanner (protocol 9): a refusal (shown, and
journaled with the keypad's count when a wrong code counted), the keypad's throttle kept
across restarts, a credential already spent, a presentation already decided, and an offline
pickup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.credentials import Grant, Refusal
from firmware_bridge.agent.doors import AgentDoors
from firmware_bridge.agent.drivers import CredentialKind


class AgentOffline(AgentDoors):
    """Decisions the locker takes alone."""

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
