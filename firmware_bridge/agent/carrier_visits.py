"""Carriers at the locker with reservations synced in advance: a carrier's code starts a
visit, the expired parcels' doors open one after the other (the next when the previous one
closes), and each parcel scanned meanwhile opens the door reserved for it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.credentials import Refusal
from firmware_bridge.agent.offline import AgentOffline
from firmware_bridge.agent.state import CarrierVisit


class AgentCarrierVisits(AgentOffline):
    """A carrier's visit: collections and deposits by reservation."""

    def _start_carrier_visit(
        self, presentation_id: uuid.UUID, found: list[p.Reservation] | Refusal
    ) -> None:
        usable = [] if isinstance(found, Refusal) else [r for r in found if self._usable(r)]
        if isinstance(found, Refusal) or not usable:
            reason = found.reason if isinstance(found, Refusal) else "nothing_reserved"
            self._refuse(presentation_id, "carrier", reason)
            return
        self._carrier = CarrierVisit(
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
