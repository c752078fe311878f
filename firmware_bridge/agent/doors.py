"""A locker's doors as the agent drives them: a door opened by the board (its opening emitted;
a failure journaled with its cause, a silent board or a jammed door), the doors open and why
kept in the journal's meta and restored at start-up, and a message shown on the display."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from firmware_bridge import protocol as p
from firmware_bridge.agent.delivery import AgentDelivery
from firmware_bridge.agent.drivers import FaultSource
from firmware_bridge.agent.state import OPEN_DOORS, Door

log = logging.getLogger(__name__)


class AgentDoors(AgentDelivery):
    """Doors opened, their local state kept, the display."""

    def _open_door(
        self,
        n: int,
        purpose: p.Purpose,
        corr_id: uuid.UUID | None,
        credential_id: str | None,
    ) -> bool:
        opened = self.board.open(n)
        if opened:
            self._doors[n] = Door("open", time.monotonic(), purpose, corr_id, credential_id)
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
                self._doors[n] = Door(state=state, opened_at=now_mono)
                continue
            corr_id = known.get("corr_id")
            self._doors[n] = Door(
                "open", now_mono - max(0.0, now_wall - float(known["opened_at"])),
                known.get("purpose"), uuid.UUID(corr_id) if corr_id else None,
                known.get("credential_id"),
            )

    def _show(self, message: str) -> None:
        # the screen is on the board (simulated) or on the reader's panel
        show = getattr(self.board, "show", None) or getattr(self._reader, "show", None)
        if callable(show):
            show(message)
        else:
            log.info("%s screen: %s", self.locker_id, message)
