"""The doors watched between the worker's items: a door opened or closed (a collection door
closing opens the next), a door left open, the board's own faults, and the state snapshot."""

from __future__ import annotations

import time

from firmware_bridge import protocol as p
from firmware_bridge.agent.carrier_visits import AgentCarrierVisits
from firmware_bridge.agent.drivers import FaultSource
from firmware_bridge.agent.state import Door


class AgentDoorWatch(AgentCarrierVisits):
    """Doors polled, board faults reported, the snapshot emitted."""

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
                self._doors[n] = Door("closed")
                self._save_open_doors()
            elif state == "open" and door.state != "open":
                # opened without a command: forced, or a manual key
                self._doors[n] = Door("open", now)
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

    def _report_board_faults(self) -> None:
        """Faults the board found by itself (a bus board offline, then back) go to the
        backend like the agent's own: journaled, then published."""
        if not isinstance(self.board, FaultSource):
            return
        for fault in self.board.take_faults():
            self._emit(p.Fault(code=fault.code, compartment=fault.compartment,
                               detail=fault.detail, board=fault.board))

    def _emit_snapshot(self) -> None:
        # The snapshot reads the board now; a door that closed since the last poll must be
        # journaled first, or the backend reconciles the closed door from the snapshot (a
        # deposit without its credential, an offline one counted as online) before the
        # `door_closed` that says who used it.
        self._poll_doors(time.monotonic())
        self._emit(self._snapshot())
