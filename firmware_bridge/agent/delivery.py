"""Events out (delivery): every event is journaled first, then published (QoS 1) if connected,
and kept until the backend's `ack` covers it; unacked events are resent on reconnect, a window
of `resend_batch` at a time: the next ones as soon as an ack frees room in the window, the
same window again after a backoff with jitter while nothing is acknowledged. Also the
heartbeat, the state published, and the messages refused as untrusted (reported once per
reason in a while)."""

from __future__ import annotations

import logging
import time

from firmware_bridge import protocol as p
from firmware_bridge.agent import journal as j
from firmware_bridge.agent.link import AgentLink
from firmware_bridge.agent.state import AGENT_VERSION, REFUSAL_REPORT_EVERY_S

log = logging.getLogger(__name__)


class AgentDelivery(AgentLink):
    """Events journaled, published, resent until acknowledged."""

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
