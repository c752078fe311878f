"""The locker's credential readers: a QR scanner (serial CDC-ACM, or a keyboard wedge) and a
keypad (a USB keypad, or any key source such as a GPIO matrix driver).

- A serial scanner sends each reading as a line (CR and/or LF) on `/dev/ttyACM*`.
- A keyboard-wedge scanner and a USB keypad are Linux input devices (`/dev/input/event*`):
  the reader decodes `struct input_event` records itself (no python-evdev needed) and grabs
  the device (EVIOCGRAB) so a resident's code never reaches a login console.
- A keypad is a `KeySource` (key names: "0"-"9", "enter", "back", "clear", "carrier"); the
  USB keypad is one, a GPIO matrix driver is another. `Keypad` turns keys into a PIN, or a
  carrier code when the `carrier` key (`*` on a USB keypad) was pressed first.

`ReaderPanel` gathers the readers as the agent's one `CredentialReader`.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, Protocol

from firmware_bridge.agent.drivers import CredentialKind, InputHandler
from firmware_bridge.agent.kerong import SerialPort, open_serial

log = logging.getLogger(__name__)

MAX_READING = 1024  # a QR token is ~150 characters; a longer line is noise
Deliver = Callable[[CredentialKind, str], None]


class Reader(Protocol):
    def start(self, deliver: Deliver) -> None: ...
    def stop(self) -> None: ...


class ReaderPanel:
    """Every reader of one locker as one `CredentialReader`: readers run while a handler is
    set (the agent sets it at start and clears it at stop)."""

    def __init__(self, readers: Iterable[Reader]) -> None:
        self.readers = list(readers)
        self._handler: InputHandler | None = None
        self._running = False

    def set_input_handler(self, handler: InputHandler | None) -> None:
        self._handler = handler
        if handler is not None and not self._running:
            self._running = True
            for reader in self.readers:
                reader.start(self._deliver)
        elif handler is None and self._running:
            self._running = False
            for reader in self.readers:
                reader.stop()

    def _deliver(self, kind: CredentialKind, value: str) -> None:
        handler = self._handler
        if handler is None:
            log.warning("a %s reading arrived with no agent listening: dropped", kind)
            return
        try:
            handler(kind, value)
        except Exception:
            log.exception("the agent refused a %s reading", kind)


# --- lines (serial scanner) --------------------------------------------------------------------


class LineSplitter:
    """Bytes in, readings out: CR, LF or CRLF end a reading; an over-long or non-text line is
    dropped whole (a half token must never be presented)."""

    def __init__(self, max_len: int = MAX_READING) -> None:
        self.max_len = max_len
        self._buffer = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> list[str]:
        readings = []
        for byte in data:
            if byte in (0x0D, 0x0A):
                reading = self._end_line()
                if reading:
                    readings.append(reading)
            elif len(self._buffer) >= self.max_len:
                self._overflow = True
            else:
                self._buffer.append(byte)
        return readings

    def _end_line(self) -> str | None:
        raw, overflow = bytes(self._buffer), self._overflow
        self._buffer.clear()
        self._overflow = False
        if overflow:
            log.warning("scanner line longer than %d bytes: dropped", self.max_len)
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("scanner line is not text: dropped")
            return None
        return text.strip() if text.strip().isprintable() else None


class SerialScanner:
    """A QR scanner in USB CDC-ACM (virtual serial port) mode."""

    def __init__(self, port: str, *, baudrate: int = 9600, poll_s: float = 0.1,
                 reopen_s: float = 2.0) -> None:
        self.port, self.baudrate, self.poll_s, self.reopen_s = port, baudrate, poll_s, reopen_s
        self.opened = threading.Event()  # set while the port is open (lines sent before: lost)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deliver: Deliver) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(deliver,), name="qr-serial",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2)

    def _run(self, deliver: Deliver) -> None:
        """Read lines; a scanner unplugged (or not there yet) is opened again every
        `reopen_s` until it answers, as long as the agent runs."""
        while not self._stopping.is_set():
            try:
                connection = open_serial(self.port, self.baudrate, timeout_s=self.poll_s)
            except OSError as error:  # pyserial's SerialException is an OSError
                log.warning("QR scanner %s: %s", self.port, error)
                self._stopping.wait(self.reopen_s)
                continue
            self.opened.set()
            try:
                self._read_lines(connection, deliver)
            except OSError:
                log.exception("QR scanner %s lost", self.port)
                self._stopping.wait(self.reopen_s)
            finally:
                self.opened.clear()
                connection.close()

    def _read_lines(self, connection: SerialPort, deliver: Deliver) -> None:
        splitter = LineSplitter()
        while not self._stopping.is_set():
            for reading in splitter.feed(connection.read(max(1, connection.in_waiting))):
                deliver("qr", reading)


# --- input devices (keyboard wedge, USB keypad) ------------------------------------------------

# struct input_event on 64-bit Linux: struct timeval (two longs), __u16 type, __u16 code,
# __s32 value
INPUT_EVENT = struct.Struct("llHHi")
EV_KEY = 0x01
KEY_DOWN = 1  # 0 is up, 2 is autorepeat
EVIOCGRAB = 0x40044590

KEY_ESC, KEY_BACKSPACE, KEY_ENTER, KEY_KPENTER = 1, 14, 28, 96
KEY_LEFTSHIFT, KEY_RIGHTSHIFT, KEY_KPASTERISK, KEY_KPDOT = 42, 54, 55, 83

# US layout, what a scanner in its default "USB keyboard" mode types: (plain, shifted)
_ROWS = {
    2: "1!", 3: "2@", 4: "3#", 5: "4$", 6: "5%", 7: "6^", 8: "7&", 9: "8*", 10: "9(", 11: "0)",
    12: "-_", 13: "=+", 26: "[{", 27: "]}", 39: ";:", 40: "'\"", 41: "`~", 43: "\\|",
    51: ",<", 52: ".>", 53: "/?", 57: "  ",
}
_LETTERS = {
    16: "q", 17: "w", 18: "e", 19: "r", 20: "t", 21: "y", 22: "u", 23: "i", 24: "o", 25: "p",
    30: "a", 31: "s", 32: "d", 33: "f", 34: "g", 35: "h", 36: "j", 37: "k", 38: "l",
    44: "z", 45: "x", 46: "c", 47: "v", 48: "b", 49: "n", 50: "m",
}
KEYMAP: dict[int, str] = {**_ROWS, **{code: c + c.upper() for code, c in _LETTERS.items()}}
KEYPAD_DIGITS = {82: "0", 79: "1", 80: "2", 81: "3", 75: "4", 76: "5", 77: "6", 71: "7",
                 72: "8", 73: "9", **{code: KEYMAP[code][0] for code in range(2, 12)}}


def key_events(stream: BinaryIO) -> Iterator[tuple[int, int]]:
    """(key code, value) for each EV_KEY record of an event device (or a recording of one)."""
    while True:
        record = stream.read(INPUT_EVENT.size)
        if len(record) < INPUT_EVENT.size:
            return  # end of a recording, or the device went away
        _sec, _usec, type_, code, value = INPUT_EVENT.unpack(record)
        if type_ == EV_KEY:
            yield code, value


class WedgeDecoder:
    """Key presses of a keyboard-wedge scanner back into text, a reading per Enter."""

    def __init__(self, max_len: int = MAX_READING) -> None:
        self.max_len = max_len
        self._shift = False
        self._text: list[str] = []

    def feed(self, code: int, value: int) -> str | None:
        if code in (KEY_LEFTSHIFT, KEY_RIGHTSHIFT):
            self._shift = value != 0
            return None
        if value != KEY_DOWN:
            return None
        if code in (KEY_ENTER, KEY_KPENTER):
            text, self._text = "".join(self._text), []
            if len(text) > self.max_len:
                log.warning("wedge reading longer than %d characters: dropped", self.max_len)
                return None
            return text or None
        chars = KEYMAP.get(code)
        if chars is None:
            log.debug("key %d is not part of a reading", code)
        else:
            self._text.append(chars[1] if self._shift else chars[0])
        return None


class InputDevice:
    """A Linux input device read in a thread, grabbed so nobody else sees its keys. A
    recording (a file of `input_event` records) is read the same way, to its end."""

    def __init__(self, path: str, on_key: Callable[[int, int], None], *, grab: bool = True
                 ) -> None:
        self.path, self.on_key, self.grab = path, on_key, grab
        self._fd: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_RDONLY)
        if self.grab:
            fcntl.ioctl(self._fd, EVIOCGRAB, 1)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(self._fd,),
                                        name=f"input-{os.path.basename(self.path)}",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2)
        if self._fd is not None:
            os.close(self._fd)  # also releases the grab
            self._fd = None

    def wait(self, timeout_s: float) -> None:
        """Until a recording is read to its end (tests)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self, fd: int) -> None:
        pending = bytearray()
        while not self._stopping.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, INPUT_EVENT.size * 64)
            except OSError:
                log.warning("input device %s went away", self.path)
                return
            if not data:
                return  # the end of a recording
            pending += data
            whole = len(pending) - len(pending) % INPUT_EVENT.size
            for code, value in key_events(io.BytesIO(bytes(pending[:whole]))):
                self.on_key(code, value)
            del pending[:whole]


class WedgeScanner:
    """A QR scanner in keyboard mode, on its input device (`/dev/input/by-id/...-event-kbd`)."""

    def __init__(self, path: str, *, grab: bool = True) -> None:
        self.decoder = WedgeDecoder()
        self._deliver: Deliver | None = None
        self.device = InputDevice(path, self._on_key, grab=grab)

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.device.open()

    def stop(self) -> None:
        self.device.close()

    def _on_key(self, code: int, value: int) -> None:
        reading = self.decoder.feed(code, value)
        if reading is not None and self._deliver is not None:
            self._deliver("qr", reading)


# --- keypads -----------------------------------------------------------------------------------


class KeySource(Protocol):
    """What a keypad driver gives: key names "0"-"9", "enter", "back", "clear", "carrier".
    A USB keypad is one (`UsbKeypadKeys`); a GPIO matrix scanner implements the same."""

    def start(self, on_key: Callable[[str], None]) -> None: ...
    def stop(self) -> None: ...


class Keypad:
    """Keys into credentials: digits then enter is a PIN; `carrier` first makes it a carrier
    code. An entry left for `entry_timeout_s` is forgotten (the next person starts clean)."""

    def __init__(self, source: KeySource, *, max_digits: int = 16, entry_timeout_s: float = 30.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.source, self.max_digits, self.entry_timeout_s = source, max_digits, entry_timeout_s
        self._now = now
        self._digits: list[str] = []
        self._carrier = False
        self._last_key = float("-inf")
        self._deliver: Deliver | None = None

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.source.start(self.key)

    def stop(self) -> None:
        self.source.stop()

    def key(self, name: str) -> None:
        now = self._now()
        if now - self._last_key > self.entry_timeout_s:
            self._clear()
        self._last_key = now
        if name.isdigit() and len(name) == 1:
            if len(self._digits) < self.max_digits:
                self._digits.append(name)
        elif name == "back":
            if self._digits:
                self._digits.pop()
        elif name == "clear":
            self._clear()
        elif name == "carrier":
            self._digits, self._carrier = [], True
        elif name == "enter":
            self._submit()

    def _clear(self) -> None:
        self._digits, self._carrier = [], False

    def _submit(self) -> None:
        kind: CredentialKind = "carrier" if self._carrier else "pin"
        code = "".join(self._digits)
        self._clear()
        if code and self._deliver is not None:
            self._deliver(kind, code)


class UsbKeypadKeys:
    """A USB numeric keypad (an input device) as a `KeySource`: keypad and top-row digits,
    Enter, Backspace, Esc or `.` to clear, `*` for a carrier code."""

    NAMES = {**KEYPAD_DIGITS, KEY_ENTER: "enter", KEY_KPENTER: "enter", KEY_BACKSPACE: "back",
             KEY_ESC: "clear", KEY_KPDOT: "clear", KEY_KPASTERISK: "carrier"}

    def __init__(self, path: str, *, grab: bool = True) -> None:
        self._on_key: Callable[[str], None] | None = None
        self.device = InputDevice(path, self._key, grab=grab)

    def start(self, on_key: Callable[[str], None]) -> None:
        self._on_key = on_key
        self.device.open()

    def stop(self) -> None:
        self.device.close()

    def _key(self, code: int, value: int) -> None:
        name = self.NAMES.get(code)
        if value == KEY_DOWN and name is not None and self._on_key is not None:
            self._on_key(name)
