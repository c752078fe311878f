"""KR-CU16 boards on a pseudo-terminal: the driver's tests, the demo, and a bench without
hardware (docs/lock-boards.md).

    relayops-board-emulator --boards 0,1 --link /tmp/kerong

prints `port /tmp/kerong` (or the pty's own path), then reads commands on standard input:

    close B L [occupied|empty]   the door of lock L on board B is pushed shut (it latches)
    open B L                     the door opens without an unlock (a manual key)
    jam B L | unjam B L          the lock ignores unlocks (the door stays latched)
    stick B L open|closed|off    the hook switch reports this whatever the door does
    occupy B L | empty B L       the infrared sensor sees a parcel, or none
    silent B on|off              the board stops answering (power cut, broken A/B wire)
    badsum B on|off              its replies carry a wrong checksum
    slow B SECONDS               it answers that late (0: at once)
    noise HEX                    these bytes go on the line before the next reply
    state                        the boards as JSON
    quit

A board behaves as its model says (docs/lock-boards.md): `--lock-bit-set open` inverts the
hook bits, `--unlock-silent` makes unlocks go unanswered, `--no-ir` leaves the infrared bits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

from firmware_bridge.agent.kerong import (
    CMD_STATUS,
    CMD_UNLOCK,
    LOCKS_PER_BOARD,
    REQUEST_LEN,
    STX,
    BoardModel,
    parse_request,
    state_frame,
)

log = logging.getLogger(__name__)


@dataclass
class EmulatedLock:
    door_open: bool = False
    occupied: bool = False
    jammed: bool = False  # an unlock does not release it
    sensor_stuck: Literal["open", "closed"] | None = None  # the hook switch reports this


@dataclass
class EmulatedBoard:
    address: int
    model: BoardModel = field(default_factory=BoardModel)
    locks: dict[int, EmulatedLock] = field(
        default_factory=lambda: {n: EmulatedLock() for n in range(1, LOCKS_PER_BOARD + 1)}
    )
    silent: bool = False
    bad_checksum: bool = False
    slow_s: float = 0.0

    def hooks(self) -> int:
        bits = 0
        for n, lock in self.locks.items():
            reported_open = (lock.sensor_stuck == "open") if lock.sensor_stuck else lock.door_open
            latched = not reported_open
            if latched == (self.model.lock_bit_set == "closed"):
                bits |= 1 << (n - 1)
        return bits

    def infrared(self) -> int:
        if not self.model.has_ir:
            return 0
        bits = 0
        for n, lock in self.locks.items():
            if lock.occupied == (self.model.ir_bit_set == "occupied"):
                bits |= 1 << (n - 1)
        return bits


class BoardEmulator:
    """One RS-485 bus with boards on it, behind a pty: the driver opens `port` like a
    USB-RS485 adapter. Everything received is kept in `wire` (the bytes, in order) and
    `requests` (the valid frames), so a test can check what the driver put on the bus."""

    def __init__(self, boards: list[EmulatedBoard]) -> None:
        self.boards = {board.address: board for board in boards}
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: a byte stream like a UART
        self.port = os.ttyname(self._slave)
        self.wire = bytearray()
        self.requests: list[bytes] = []
        self.replies: list[bytes] = []
        self.garbage = bytearray()
        self.noise = b""  # sent before the next reply, then cleared
        self.lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending = bytearray()

    def start(self) -> BoardEmulator:
        self._thread = threading.Thread(target=self._serve, name="board-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> BoardEmulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- driving the boards from code ---------------------------------------------------------

    def lock_of(self, board: int, lock: int) -> EmulatedLock:
        return self.boards[board].locks[lock]

    def close_door(self, board: int, lock: int, *, occupied: bool | None = None) -> None:
        with self.lock:
            target = self.lock_of(board, lock)
            target.door_open = False
            if occupied is not None:
                target.occupied = occupied

    def state(self) -> dict[str, object]:
        with self.lock:
            return {
                str(address): {
                    "silent": board.silent, "bad_checksum": board.bad_checksum,
                    "slow_s": board.slow_s,
                    "open": [n for n, lock in board.locks.items() if lock.door_open],
                    "occupied": [n for n, lock in board.locks.items() if lock.occupied],
                }
                for address, board in self.boards.items()
            }

    # --- the wire ------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self._master, 1024)
            except OSError:
                return  # the pty was closed
            for frame in self._frames(data):
                self._answer(frame)

    def _frames(self, data: bytes) -> list[bytes]:
        """Complete requests in what arrived; garbage before a valid frame is kept aside."""
        with self.lock:
            self.wire += data
        self._pending += data
        frames: list[bytes] = []
        while True:
            start = self._pending.find(STX)
            if start < 0:
                self._note_garbage(bytes(self._pending))
                self._pending.clear()
                return frames
            if start:
                self._note_garbage(bytes(self._pending[:start]))
                del self._pending[:start]
            if len(self._pending) < REQUEST_LEN:
                return frames
            candidate = bytes(self._pending[:REQUEST_LEN])
            if parse_request(candidate) is None:
                self._note_garbage(candidate[:1])
                del self._pending[:1]
                continue
            del self._pending[:REQUEST_LEN]
            frames.append(candidate)

    def _note_garbage(self, data: bytes) -> None:
        if data:
            with self.lock:
                self.garbage += data

    def _answer(self, frame: bytes) -> None:
        parsed = parse_request(frame)
        assert parsed is not None  # _frames keeps only valid requests
        address, lock, command = parsed
        with self.lock:
            self.requests.append(frame)
            board = self.boards.get(address)
            if board is None or board.silent:
                return
            if command == CMD_UNLOCK and not board.locks[lock].jammed:
                board.locks[lock].door_open = True
            answers = command == CMD_STATUS or (
                command == CMD_UNLOCK and board.model.unlock_answers
            )
            if not answers:
                return
            reply = bytearray(state_frame(address, board.hooks(), board.infrared(),
                                          lock=lock if command == CMD_UNLOCK else 1))
            if board.bad_checksum:
                reply[-1] = (reply[-1] + 1) & 0xFF
            delay, noise, self.noise = board.slow_s, self.noise, b""
        if delay:
            time.sleep(delay)  # a slow board holds the line while it thinks
        with self.lock:
            self.replies.append(bytes(reply))
        os.write(self._master, noise + bytes(reply))


# --- the program -----------------------------------------------------------------------------


def execute(emulator: BoardEmulator, line: str) -> str:
    verb, *args = line.split()
    if verb == "state":
        return json.dumps(emulator.state())
    if verb == "noise":
        with emulator.lock:
            emulator.noise = bytes.fromhex("".join(args))
        return "ok"
    board = emulator.boards[int(args[0])]
    with emulator.lock:
        if verb in {"silent", "badsum"}:
            on = args[1] == "on"
            if verb == "silent":
                board.silent = on
            else:
                board.bad_checksum = on
        elif verb == "slow":
            board.slow_s = float(args[1])
        else:
            _lock_command(board.locks[int(args[1])], verb, args[2:])
    return "ok"


def _lock_command(lock: EmulatedLock, verb: str, rest: list[str]) -> None:
    if verb == "close":
        lock.door_open = False
        if rest:
            lock.occupied = {"occupied": True, "empty": False}[rest[0]]
    elif verb == "open":
        lock.door_open = True
    elif verb in {"jam", "unjam"}:
        lock.jammed = verb == "jam"
    elif verb == "stick":
        lock.sensor_stuck = None if rest[0] == "off" else ("open" if rest[0] == "open"
                                                           else "closed")
    elif verb in {"occupy", "empty"}:
        lock.occupied = verb == "occupy"
    else:
        raise ValueError(f"unknown command {verb!r}")


def run_console(emulator: BoardEmulator, stream: TextIO, out: TextIO) -> None:
    for line in stream:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line == "quit":
            return
        try:
            print(execute(emulator, line), file=out, flush=True)
        except (KeyError, ValueError, IndexError) as error:
            print(f"error: {error}", file=out, flush=True)


def build(addresses: list[int], model: BoardModel) -> BoardEmulator:
    return BoardEmulator([EmulatedBoard(address, model) for address in addresses])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relayops-board-emulator",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--boards", default="0", help="board addresses, e.g. 0,1,2")
    parser.add_argument("--lock-bit-set", choices=["closed", "open"], default="closed")
    parser.add_argument("--unlock-silent", action="store_true", help="unlocks get no answer")
    parser.add_argument("--no-ir", action="store_true", help="no infrared sensors")
    parser.add_argument("--link", type=Path, default=None, help="a symlink to the pty")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    model = BoardModel(lock_bit_set=args.lock_bit_set, unlock_answers=not args.unlock_silent,
                       has_ir=not args.no_ir)
    emulator = build([int(a) for a in args.boards.split(",")], model)
    port = emulator.port
    if args.link is not None:
        args.link.unlink(missing_ok=True)
        args.link.symlink_to(emulator.port)
        port = str(args.link)
    with emulator:
        print(f"port {port}", flush=True)
        run_console(emulator, sys.stdin, sys.stdout)
    if args.link is not None:
        args.link.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
