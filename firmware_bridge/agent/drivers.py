"""Lock board drivers: the interface the agent drives, and a simulated board.

A real lock board is polled (door sensors and occupancy sensors are read over a bus), so the
interface is four calls and the agent detects door changes by polling. A board that finds
trouble by itself (a bus board that stops answering) also is a `FaultSource`. Credential
readers (QR scanner, keypad) push what they read to a handler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)

DoorState = Literal["open", "closed", "unknown"]
CredentialKind = Literal["qr", "pin", "carrier"]
InputHandler = Callable[[CredentialKind, str], None]


@runtime_checkable
class LockBoard(Protocol):
    def compartments(self) -> list[int]:
        """Compartment numbers wired to this board."""
        ...

    def open(self, n: int) -> bool:
        """Pulse the lock of compartment `n`; True when the door sensor saw it open."""
        ...

    def door_state(self, n: int) -> DoorState: ...

    def occupancy(self, n: int) -> bool | None:
        """True/False where the compartment has an occupancy sensor, else None."""
        ...


@dataclass(frozen=True)
class BoardFault:
    """Trouble a board found by itself (a board on the bus stopped answering, and came back):
    the agent reports each one to the backend as a `fault` event."""

    code: str
    detail: str
    compartment: int | None = None
    board: int | None = None  # the board's bus address, when the fault is a board's


@runtime_checkable
class FaultSource(Protocol):
    def take_faults(self) -> list[BoardFault]:
        """The faults found since the last call, oldest first (each is given once)."""
        ...

    def open_failure(self, n: int) -> str | None:
        """Why `open(n)` just failed when the lock is not to blame (e.g. "board_offline");
        None when the lock was pulsed and the door stayed shut."""
        ...

    def board_of(self, n: int) -> int | None:
        """The bus address of the board that drives compartment `n` (the backend puts the
        doors a silent board made fail back in service when that board answers again)."""
        ...


@runtime_checkable
class CredentialReader(Protocol):
    def set_input_handler(self, handler: InputHandler | None) -> None:
        """Called with ("qr", text), ("pin", digits) or ("carrier", code) for each reading."""
        ...


@dataclass
class _SimCompartment:
    door: DoorState = "closed"
    occupied: bool | None = False
    jammed: bool = False
    stuck_open: bool = False


class SimulatedBoard:
    """A board in memory, driven from code: doors, occupancy sensors, scanner and keypad.

    Fault injection: `jam(n)` (the lock never releases), `stick_open(n)` (the door never closes,
    e.g. a parcel in the way). `open_delay_s` models a slow lock motor.
    """

    def __init__(
        self,
        numbers: list[int],
        *,
        occupancy_sensors: bool = True,
        open_delay_s: float = 0.0,
    ) -> None:
        self._lock = threading.Lock()
        self._sensors = occupancy_sensors
        self._doors = {
            n: _SimCompartment(occupied=False if occupancy_sensors else None) for n in numbers
        }
        self._handler: InputHandler | None = None
        self.open_delay_s = open_delay_s
        self.open_calls: list[int] = []
        self.display: list[str] = []

    # --- LockBoard ---------------------------------------------------------------------------

    def compartments(self) -> list[int]:
        return sorted(self._doors)

    def open(self, n: int) -> bool:
        if self.open_delay_s:
            time.sleep(self.open_delay_s)
        with self._lock:
            self.open_calls.append(n)
            compartment = self._doors[n]
            if compartment.jammed:
                return False
            compartment.door = "open"
            return True

    def door_state(self, n: int) -> DoorState:
        with self._lock:
            return self._doors[n].door

    def occupancy(self, n: int) -> bool | None:
        with self._lock:
            return self._doors[n].occupied

    # --- CredentialReader ---------------------------------------------------------------------

    def set_input_handler(self, handler: InputHandler | None) -> None:
        self._handler = handler

    # --- driving it from code -----------------------------------------------------------------

    def close_door(self, n: int, *, occupied: bool | None = None) -> bool:
        """Close door `n`; `occupied` sets the sensor (kept as is when None). False if stuck."""
        with self._lock:
            compartment = self._doors[n]
            if compartment.stuck_open:
                return False
            compartment.door = "closed"
            if occupied is not None and self._sensors:
                compartment.occupied = occupied
            return True

    def force_open(self, n: int) -> None:
        """The door opens without the board being told to: a crowbar, a lost manual key."""
        with self._lock:
            self._doors[n].door = "open"

    def set_occupied(self, n: int, occupied: bool) -> None:
        with self._lock:
            if self._sensors:
                self._doors[n].occupied = occupied

    def jam(self, n: int, jammed: bool = True) -> None:
        with self._lock:
            self._doors[n].jammed = jammed

    def stick_open(self, n: int, stuck: bool = True) -> None:
        with self._lock:
            self._doors[n].stuck_open = stuck

    def scan(self, text: str) -> None:
        """The QR scanner read `text`."""
        self._deliver("qr", text)

    def type_pin(self, digits: str) -> None:
        """A resident typed `digits` then OK on the keypad."""
        self._deliver("pin", digits)

    def type_carrier_code(self, code: str) -> None:
        self._deliver("carrier", code)

    def show(self, message: str) -> None:
        """What the locker's screen says (kept for tests and the simulator's console)."""
        log.info("screen: %s", message)
        with self._lock:
            self.display.append(message)

    def _deliver(self, kind: CredentialKind, value: str) -> None:
        handler = self._handler
        if handler is None:
            raise RuntimeError("no agent is listening to this board")
        handler(kind, value)
