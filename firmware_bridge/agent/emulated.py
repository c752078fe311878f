"""A KR-CU16 locker without hardware: the board emulator on a pseudo-terminal, the real driver
reading it over that pty, and a console panel standing in for the scanner and the keypad.

It answers the simulator's console verbs (`scan`, `pin`, `close 3 occupied`, `jam 3`, ...) and
the emulator's behind `board` (`board silent 1 on`), so
the agent's program, the end-to-end tests and a bench run it like the simulated board, while
every door goes through real frames on a real tty (`relayops-locker-agent --board
kerong-emulated`).
"""

from __future__ import annotations

import logging
import threading

from firmware_bridge.agent.board_emulator import (
    BoardEmulator,
    EmulatedBoard,
    EmulatedLock,
    execute,
)
from firmware_bridge.agent.drivers import CredentialKind, DoorState, InputHandler
from firmware_bridge.agent.kerong import LOCKS_PER_BOARD, KerongBoard, KerongConfig

log = logging.getLogger(__name__)


class EmulatedKerongLocker:
    """Compartments 1..n on boards 0, 1, ... (16 locks each), one bus."""

    def __init__(self, compartments: list[int], **timings: float | int) -> None:
        places = {n: divmod(i, LOCKS_PER_BOARD) for i, n in enumerate(sorted(compartments))}
        addresses = sorted({board for board, _ in places.values()})
        self.emulator = BoardEmulator([EmulatedBoard(a) for a in addresses]).start()
        self.board = KerongBoard(KerongConfig.from_dict({
            "port": self.emulator.port,
            "boards": [{"address": a} for a in addresses],
            "compartments": {str(n): [b, lock + 1] for n, (b, lock) in places.items()},
            **timings,
        }))
        self._places = {n: (b, lock + 1) for n, (b, lock) in places.items()}
        self._handler: InputHandler | None = None
        self._stuck_open: set[int] = set()
        self._lock = threading.Lock()
        self.display: list[str] = []

    def close(self) -> None:
        self.board.close()
        self.emulator.stop()

    def _lock_of(self, n: int) -> EmulatedLock:
        return self.emulator.lock_of(*self._places[n])

    # --- what the console reads (through the driver, as the agent does) ------------------------

    def compartments(self) -> list[int]:
        return self.board.compartments()

    def door_state(self, n: int) -> DoorState:
        return self.board.door_state(n)

    def occupancy(self, n: int) -> bool | None:
        return self.board.occupancy(n)

    # --- the scanner and keypad (CredentialReader) ----------------------------------------------

    def set_input_handler(self, handler: InputHandler | None) -> None:
        self._handler = handler

    def scan(self, text: str) -> None:
        self._deliver("qr", text)

    def type_pin(self, digits: str) -> None:
        self._deliver("pin", digits)

    def type_carrier_code(self, code: str) -> None:
        self._deliver("carrier", code)

    def show(self, message: str) -> None:
        with self._lock:
            self.display.append(message)

    def _deliver(self, kind: CredentialKind, value: str) -> None:
        handler = self._handler
        if handler is None:
            raise RuntimeError("no agent is listening to this board")
        handler(kind, value)

    # --- the doors, pushed by hand --------------------------------------------------------------

    def close_door(self, n: int, *, occupied: bool | None = None) -> bool:
        if n in self._stuck_open:
            return False
        self.emulator.close_door(*self._places[n], occupied=occupied)
        return True

    def jam(self, n: int, jammed: bool = True) -> None:
        with self.emulator.lock:
            self._lock_of(n).jammed = jammed

    def console(self, verb: str, args: list[str]) -> str:
        """`board ...`: the emulator's own console verbs (`board silent 1 on`, `board badsum 0
        on`, `board state`...; firmware_bridge/agent/board_emulator.py)."""
        if verb != "board" or not args:
            raise ValueError(f"unknown command {verb!r}")
        return execute(self.emulator, " ".join(args))

    def stick_open(self, n: int, stuck: bool = True) -> None:
        """A parcel in the way: the door cannot be pushed shut."""
        (self._stuck_open.add if stuck else self._stuck_open.discard)(n)
