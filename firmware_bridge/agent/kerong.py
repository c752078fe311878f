"""The Kerong KR-CU16 lock board over RS-485 (docs/lock-boards.md has the facts and sources).

Frames are built and parsed by pure functions (`unlock_frame`, `status_frame`, `state_frame`,
`parse_state`, `next_reply`); `KerongBus` owns the serial port and runs one transaction at a
time; `KerongBoard` is the agent's `LockBoard` for every board on one bus.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from firmware_bridge.agent.drivers import BoardFault, DoorState

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
CMD_STATUS = 0x30
CMD_UNLOCK = 0x31
CMD_STATE_REPLY = 0x35
REQUEST_LEN = 5
REPLY_LEN = 9
LOCKS_PER_BOARD = 16
MAX_BOARD = 15  # the high nibble of the address byte
BAUDRATE = 19200


# --- frames (pure) ------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """The sum of the bytes modulo 256 (`02 00 31 03` -> `0x36`)."""
    return sum(data) & 0xFF


def address(board: int, lock: int) -> int:
    """The address byte: board in the high nibble, lock index (lock number - 1) in the low."""
    if not 0 <= board <= MAX_BOARD:
        raise ValueError(f"board address {board} is not 0-{MAX_BOARD}")
    if not 1 <= lock <= LOCKS_PER_BOARD:
        raise ValueError(f"lock {lock} is not 1-{LOCKS_PER_BOARD}")
    return (board << 4) | (lock - 1)


def _frame(addr: int, cmd: int, data: bytes = b"") -> bytes:
    body = bytes([STX, addr, cmd]) + data + bytes([ETX])
    return body + bytes([checksum(body)])


def unlock_frame(board: int, lock: int) -> bytes:
    return _frame(address(board, lock), CMD_UNLOCK)


def status_frame(board: int) -> bytes:
    return _frame(address(board, 1), CMD_STATUS)


@dataclass(frozen=True)
class StateReply:
    """A board's answer as raw bits: bit i of `hooks` is lock i+1, likewise `infrared`."""

    board: int
    hooks: int
    infrared: int

    def hook_bit(self, lock: int) -> bool:
        return bool(self.hooks >> (lock - 1) & 1)

    def ir_bit(self, lock: int) -> bool:
        return bool(self.infrared >> (lock - 1) & 1)


def state_frame(board: int, hooks: int, infrared: int, *, lock: int = 1) -> bytes:
    """The 9-byte reply `02 ADDR 35 L1-8 L9-16 IR1-8 IR9-16 03 SUM` (the emulator sends it)."""
    data = bytes([hooks & 0xFF, hooks >> 8 & 0xFF, infrared & 0xFF, infrared >> 8 & 0xFF])
    return _frame(address(board, lock), CMD_STATE_REPLY, data)


def parse_state(frame: bytes) -> StateReply | None:
    """A valid 9-byte state reply, else None (wrong length, markers, command or checksum)."""
    if (
        len(frame) != REPLY_LEN
        or frame[0] != STX
        or frame[2] != CMD_STATE_REPLY
        or frame[7] != ETX
        or frame[8] != checksum(frame[:8])
    ):
        return None
    return StateReply(
        board=frame[1] >> 4,
        hooks=frame[3] | frame[4] << 8,
        infrared=frame[5] | frame[6] << 8,
    )


def next_reply(buffer: bytearray) -> StateReply | None:
    """Take the first valid state reply out of `buffer`, dropping what comes before it.

    Resynchronises on garbage and on bytes that only look like a start: a candidate that fails
    its checks loses its first byte and the scan goes on from the next STX. An incomplete
    candidate stays in the buffer for the next read."""
    while True:
        start = buffer.find(STX)
        if start < 0:
            buffer.clear()
            return None
        del buffer[:start]
        if len(buffer) < REPLY_LEN:
            return None
        reply = parse_state(bytes(buffer[:REPLY_LEN]))
        if reply is not None:
            del buffer[:REPLY_LEN]
            return reply
        del buffer[:1]


def parse_request(frame: bytes) -> tuple[int, int, int] | None:
    """(board, lock number, command) of a valid 5-byte request, else None (the emulator's
    side of the wire)."""
    if (
        len(frame) != REQUEST_LEN
        or frame[0] != STX
        or frame[3] != ETX
        or frame[4] != checksum(frame[:4])
    ):
        return None
    return frame[1] >> 4, (frame[1] & 0x0F) + 1, frame[2]


# --- board models and configuration -----------------------------------------------------------


@dataclass(frozen=True)
class BoardModel:
    """What public drivers disagree on (docs/lock-boards.md), set per board model."""

    name: str = "kr-cu16"
    lock_bit_set: Literal["closed", "open"] = "closed"
    unlock_answers: bool = True
    has_ir: bool = True
    ir_bit_set: Literal["occupied", "empty"] = "occupied"

    def door(self, reply: StateReply, lock: int) -> DoorState:
        latched = reply.hook_bit(lock) == (self.lock_bit_set == "closed")
        return "closed" if latched else "open"

    def occupied(self, reply: StateReply, lock: int) -> bool | None:
        if not self.has_ir:
            return None
        return reply.ir_bit(lock) == (self.ir_bit_set == "occupied")


MODELS: dict[str, BoardModel] = {
    "kr-cu16": BoardModel(),
    "kr-cu16-silent": BoardModel(name="kr-cu16-silent", unlock_answers=False),
}
_MODEL_FIELDS = ("lock_bit_set", "unlock_answers", "has_ir", "ir_bit_set")


@dataclass(frozen=True)
class BoardSpec:
    address: int
    model: BoardModel = field(default_factory=BoardModel)


@dataclass(frozen=True)
class KerongConfig:
    port: str
    boards: tuple[BoardSpec, ...]
    compartments: Mapping[int, tuple[int, int]]  # number -> (board address, lock 1-16)
    baudrate: int = BAUDRATE
    reply_timeout_s: float = 0.2
    retries: int = 1
    open_confirm_s: float = 1.5
    confirm_poll_s: float = 0.1
    unlock_settle_s: float = 0.05  # after an unanswered unlock, before the next frame
    status_max_age_s: float = 0.2
    offline_after: int = 3
    offline_retry_s: float = 2.0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KerongConfig:
        """The agent configuration's board section (docs/lock-boards.md, "Configuration").
        An unknown key is refused: a misspelt timeout must not fall back to the default."""
        unknown = set(data) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown board settings: {', '.join(sorted(unknown))}")
        boards = tuple(_board_spec(item) for item in data["boards"])
        addresses = [board.address for board in boards]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"two boards share an address: {addresses}")
        raw = data.get("compartments")
        compartments = (
            {int(n): (int(where[0]), int(where[1])) for n, where in raw.items()}
            if raw is not None
            else _sequential(addresses)
        )
        for n, (board, lock) in compartments.items():
            if board not in addresses:
                raise ValueError(f"compartment {n} is on board {board}, which is not configured")
            address(board, lock)  # raises on a lock outside 1-16
        if len(set(compartments.values())) != len(compartments):
            raise ValueError("two compartments share one lock")
        timings = {key: float(data[key]) for key in _TIMINGS if key in data}
        counts = {key: int(data[key]) for key in ("retries", "offline_after") if key in data}
        return cls(
            port=str(data["port"]),
            boards=boards,
            compartments=compartments,
            baudrate=int(data.get("baudrate", BAUDRATE)),
            **timings,  # type: ignore[arg-type]
            **counts,
        )


_TIMINGS = ("reply_timeout_s", "open_confirm_s", "confirm_poll_s", "unlock_settle_s",
            "status_max_age_s", "offline_retry_s")
_CONFIG_KEYS = {"driver", "port", "baudrate", "boards", "compartments", "retries",
                "offline_after", *_TIMINGS}


def _board_spec(item: Mapping[str, Any]) -> BoardSpec:
    unknown = set(item) - {"address", "model", *_MODEL_FIELDS}
    if unknown:
        raise ValueError(f"unknown board settings: {', '.join(sorted(unknown))}")
    name = str(item.get("model", "kr-cu16"))
    if name not in MODELS:
        raise ValueError(f"unknown board model {name!r} (known: {', '.join(sorted(MODELS))})")
    overrides = {key: item[key] for key in _MODEL_FIELDS if key in item}
    if overrides.get("lock_bit_set", "closed") not in ("closed", "open"):
        raise ValueError("lock_bit_set is 'closed' or 'open'")
    if overrides.get("ir_bit_set", "occupied") not in ("occupied", "empty"):
        raise ValueError("ir_bit_set is 'occupied' or 'empty'")
    board = int(item["address"])
    address(board, 1)
    return BoardSpec(board, replace(MODELS[name], **overrides))


def _sequential(addresses: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Board after board in the order configured, 16 locks each: compartments 1, 2, ..."""
    numbers = (
        (board, lock) for board in addresses for lock in range(1, LOCKS_PER_BOARD + 1)
    )
    return {n: where for n, where in enumerate(numbers, start=1)}


# --- the bus ----------------------------------------------------------------------------------


class SerialPort(Protocol):
    """What the bus needs of a pyserial port (a test may pass its own)."""

    def write(self, data: bytes, /) -> int | None: ...
    def read(self, size: int = 1, /) -> bytes: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...


def open_serial(port: str, baudrate: int = BAUDRATE, timeout_s: float = 0.02) -> SerialPort:
    """19200 8N1 by default; any URL pyserial knows (a device path, `rfc2217://`...)."""
    import serial  # imported here: only a real board needs it, the simulator does not

    return serial.serial_for_url(
        port, baudrate=baudrate, bytesize=8, parity="N", stopbits=1, timeout=timeout_s
    )


class KerongBus:
    """One serial line shared by several boards: one transaction (request, then its reply) at
    a time, so a poll's answer can never be read by an unlock, nor two requests interleave.

    The port is opened when first needed and again after it fails (a USB adapter unplugged or
    not there yet at boot), at most every `reopen_s`: meanwhile every transaction fails, so
    the boards go offline and say so, instead of the agent failing to start."""

    def __init__(self, opener: Callable[[], SerialPort], *, reply_timeout_s: float,
                 retries: int, reopen_s: float = 2.0) -> None:
        self._opener = opener
        self._port: SerialPort | None = None
        self._next_open_at = float("-inf")
        self._lock = threading.Lock()
        self.reply_timeout_s = reply_timeout_s
        self.retries = retries
        self.reopen_s = reopen_s
        self.garbage_bytes = 0  # skipped while looking for replies: a noisy bus shows here

    def status(self, board: int) -> StateReply | None:
        """The board's state, retried `retries` times; None if it never answered well."""
        for _attempt in range(1 + self.retries):
            with self._lock:
                port = self._ready()
                if port is None:
                    return None
                try:
                    reply = self._exchange(port, status_frame(board), board)
                except OSError as error:
                    self._lost(error)
                    return None
            if reply is not None:
                return reply
        return None

    def unlock(self, board: int, lock: int, *, answered: bool, settle_s: float
               ) -> StateReply | None:
        """Pulse one lock, once (never repeated: the status read says whether it opened)."""
        with self._lock:
            port = self._ready()
            if port is None:
                return None
            try:
                if answered:
                    return self._exchange(port, unlock_frame(board, lock), board)
                self._send(port, unlock_frame(board, lock))
            except OSError as error:
                self._lost(error)
                return None
            # A board that does not answer still needs a moment before the next frame.
            time.sleep(settle_s)
            return None

    def close(self) -> None:
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None

    def _ready(self) -> SerialPort | None:
        if self._port is None and time.monotonic() >= self._next_open_at:
            try:
                self._port = self._opener()
                log.info("serial line open")
            except OSError as error:  # pyserial's SerialException is an OSError
                log.error("serial line cannot be opened: %s", error)
                self._next_open_at = time.monotonic() + self.reopen_s
        return self._port

    def _lost(self, error: OSError) -> None:
        log.error("serial line lost: %s", error)
        port, self._port = self._port, None
        self._next_open_at = time.monotonic() + self.reopen_s
        if port is not None:
            try:
                port.close()
            except OSError:
                pass

    def _send(self, port: SerialPort, frame: bytes) -> None:
        # Bytes already waiting are a late answer to an earlier request: never this one's.
        waiting = port.in_waiting
        if waiting:
            self.garbage_bytes += len(port.read(waiting))
        port.reset_input_buffer()
        port.write(frame)

    def _exchange(self, port: SerialPort, frame: bytes, board: int) -> StateReply | None:
        self._send(port, frame)
        buffer = bytearray()
        received = 0
        deadline = time.monotonic() + self.reply_timeout_s
        while time.monotonic() < deadline:
            chunk = port.read(max(1, min(port.in_waiting, 64)))
            if not chunk:
                continue
            buffer += chunk
            received += len(chunk)
            reply = next_reply(buffer)
            if reply is None:
                continue
            if reply.board == board:
                # everything but the reply was noise, a late answer, or a stray frame
                self.garbage_bytes += received - REPLY_LEN
                return reply
            log.warning("reply from board %d while asking board %d: dropped", reply.board, board)
        self.garbage_bytes += received
        return None


# --- the LockBoard ------------------------------------------------------------------------------


@dataclass
class _BoardHealth:
    failures: int = 0
    offline: bool = False
    last: StateReply | None = None
    read_at: float = float("-inf")  # monotonic time of the last read attempt


class KerongBoard:
    """Every KR-CU16 on one bus as one `LockBoard`; faults are handed to the agent by
    `take_faults()` (one `board_offline` per outage, one `board_recovered` after it)."""

    def __init__(self, config: KerongConfig,
                 opener: Callable[[], SerialPort] | None = None) -> None:
        self.config = config
        self._models = {spec.address: spec.model for spec in config.boards}
        self._where = dict(config.compartments)
        self.bus = KerongBus(
            opener or (lambda: open_serial(config.port, config.baudrate)),
            reply_timeout_s=config.reply_timeout_s,
            retries=config.retries,
            reopen_s=config.offline_retry_s,
        )
        self._health = {spec.address: _BoardHealth() for spec in config.boards}
        self._state_lock = threading.Lock()
        self._faults: list[BoardFault] = []

    def close(self) -> None:
        self.bus.close()

    # --- LockBoard ---------------------------------------------------------------------------

    def compartments(self) -> list[int]:
        return sorted(self._where)

    def open(self, n: int) -> bool:
        """Pulse the lock, then read the board's status until the lock reports released, at
        most `open_confirm_s`: an unlock alone proves nothing (a jammed latch, a cut wire)."""
        board, lock = self._where[n]
        model = self._models[board]
        if self._is_offline(board) and self._read(board, fresh=True) is None:
            return False
        # The unlock's own answer is read (it must not be taken for the next request's) but
        # not trusted: what a board says to an unlock is where the sources disagree, and an
        # acknowledgement read as hook bits would confirm a door that never opened.
        self.bus.unlock(board, lock, answered=model.unlock_answers,
                        settle_s=self.config.unlock_settle_s)
        deadline = time.monotonic() + self.config.open_confirm_s
        while True:
            state = self._read(board, fresh=True)
            if state is not None and model.door(state, lock) == "open":
                return True
            if time.monotonic() >= deadline:
                log.warning("compartment %d (board %d lock %d): unlocked, still latched after"
                            " %.1fs", n, board, lock, self.config.open_confirm_s)
                return False
            time.sleep(self.config.confirm_poll_s)

    def door_state(self, n: int) -> DoorState:
        board, lock = self._where[n]
        state = self._read(board)
        return "unknown" if state is None else self._models[board].door(state, lock)

    def occupancy(self, n: int) -> bool | None:
        board, lock = self._where[n]
        state = self._read(board)
        return None if state is None else self._models[board].occupied(state, lock)

    # --- faults ------------------------------------------------------------------------------

    def take_faults(self) -> list[BoardFault]:
        with self._state_lock:
            faults, self._faults = self._faults, []
        return faults

    def open_failure(self, n: int) -> str | None:
        return "board_offline" if self._is_offline(self._where[n][0]) else None

    def board_of(self, n: int) -> int | None:
        return self._where[n][0]

    def offline_boards(self) -> list[int]:
        with self._state_lock:
            return sorted(a for a, health in self._health.items() if health.offline)

    # --- reading -----------------------------------------------------------------------------

    def _is_offline(self, board: int) -> bool:
        with self._state_lock:
            return self._health[board].offline

    def _read(self, board: int, *, fresh: bool = False) -> StateReply | None:
        """The board's state: cached for `status_max_age_s`; an offline board is asked again
        only every `offline_retry_s` (it must not hold the bus for the boards that answer)."""
        now = time.monotonic()
        with self._state_lock:
            health = self._health[board]
            age = now - health.read_at
            if health.offline and age < self.config.offline_retry_s and not fresh:
                return None
            if not fresh and not health.offline and age < self.config.status_max_age_s:
                return health.last
            health.read_at = now
        reply = self.bus.status(board)
        if reply is None:
            self._failed(board)
            return None
        self._record(board, reply)
        return reply

    def _record(self, board: int, reply: StateReply) -> None:
        with self._state_lock:
            health = self._health[board]
            health.last, health.read_at, health.failures = reply, time.monotonic(), 0
            if health.offline:
                health.offline = False
                log.warning("board %d answers again", board)
                self._faults.append(BoardFault("board_recovered", f"board {board} answers again",
                                               board=board))

    def _failed(self, board: int) -> None:
        with self._state_lock:
            health = self._health[board]
            health.failures += 1
            health.last = None
            if not health.offline and health.failures >= self.config.offline_after:
                health.offline = True
                log.error("board %d does not answer: offline", board)
                self._faults.append(BoardFault(
                    "board_offline",
                    f"board {board} did not answer {health.failures} status reads",
                    board=board,
                ))
