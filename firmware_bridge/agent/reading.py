"""Credentials at the keypad and scanner: a reading forwarded to the backend while online
(decided locally when no answer comes in time), decided locally while offline, a carrier's
parcel scanned during a visit."""

from __future__ import annotations

import logging
import time
import uuid

from firmware_bridge import protocol as p
from firmware_bridge.agent.credentials import Grant, Refusal
from firmware_bridge.agent.door_watch import AgentDoorWatch
from firmware_bridge.agent.drivers import CredentialKind
from firmware_bridge.agent.state import Forwarded

log = logging.getLogger(__name__)


class AgentReading(AgentDoorWatch):
    """Readings from the scanner and keypad."""

    def present(self, kind: CredentialKind, value: str) -> None:
        """A reading from the scanner or keypad (thread-safe; handled by the worker)."""
        self._inbox.put(("input", kind, value))

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
        self._forwarded[presentation_id] = Forwarded(
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
