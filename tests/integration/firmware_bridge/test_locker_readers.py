"""The locker's readers with fake devices: a serial scanner on a pty, a keyboard-wedge scanner
and a USB keypad from event streams recorded as the kernel writes them (`struct input_event`
records: EV_MSC scan code, EV_KEY, EV_SYN, per key, as `evtest` shows for a USB keyboard)."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

from firmware_bridge.agent.drivers import CredentialKind, CredentialReader
from firmware_bridge.agent.readers import (
    EV_KEY,
    INPUT_EVENT,
    KEY_ENTER,
    KEY_KPASTERISK,
    KEY_KPENTER,
    KEY_LEFTSHIFT,
    KEYMAP,
    Keypad,
    LineSplitter,
    ReaderPanel,
    SerialScanner,
    UsbKeypadKeys,
    WedgeDecoder,
    WedgeScanner,
)

EV_SYN, EV_MSC, MSC_SCAN = 0x00, 0x04, 0x04
TOKEN = "RO1:6BFA%DN4 J-1$K*+./Z"  # base45's whole alphabet family, shifted keys included
Reading = tuple[CredentialKind, str]


def record(keys: list[tuple[int, bool]], started: float = 1_700_000_000.0) -> bytes:
    """Events for keys typed one after the other: (code, shifted)."""
    out = bytearray()
    clock = started

    def event(type_: int, code: int, value: int) -> None:
        nonlocal clock
        clock += 0.004
        out.extend(INPUT_EVENT.pack(int(clock), int(clock % 1 * 1e6), type_, code, value))

    for code, shifted in keys:
        if shifted:
            event(EV_KEY, KEY_LEFTSHIFT, 1)
        for value in (1, 0):
            event(EV_MSC, MSC_SCAN, 0x70000 + code)
            event(EV_KEY, code, value)
            event(EV_SYN, 0, 0)
        if shifted:
            event(EV_KEY, KEY_LEFTSHIFT, 0)
    return bytes(out)


def typed(text: str) -> list[tuple[int, bool]]:
    by_char = {}
    for code, chars in KEYMAP.items():
        by_char.setdefault(chars[1], (code, True))
        by_char[chars[0]] = (code, False)
    return [by_char[c] for c in text] + [(KEY_ENTER, False)]


def test_lines_end_with_cr_lf_or_both_and_bad_lines_are_dropped() -> None:
    splitter = LineSplitter(max_len=20)
    assert splitter.feed(b"RO1:AB") == []
    assert splitter.feed(b"C\r\nRO1:X\rRO1:Y\n\n") == ["RO1:ABC", "RO1:X", "RO1:Y"]
    assert splitter.feed(b"x" * 25 + b"\r\nok\n") == ["ok"]  # the long line, dropped whole
    assert splitter.feed(b"\xff\xfe\r\n\x1b[A\r\n") == []  # not text, not printable


def test_a_serial_scanner_on_a_pty_delivers_each_line(tmp_path: Path) -> None:
    master, slave = os.openpty()
    readings: queue.Queue[Reading] = queue.Queue()
    scanner = SerialScanner(os.ttyname(slave), poll_s=0.02)
    panel = ReaderPanel([scanner])
    assert isinstance(panel, CredentialReader)
    panel.set_input_handler(lambda kind, value: readings.put((kind, value)))
    try:
        assert scanner.opened.wait(3)
        os.write(master, TOKEN[:7].encode())
        time.sleep(0.1)  # a reading split across USB packets
        os.write(master, TOKEN[7:].encode() + b"\r\n")
        os.write(master, b"6A1234567890\r\n")
        assert readings.get(timeout=3) == ("qr", TOKEN)
        assert readings.get(timeout=3) == ("qr", "6A1234567890")
    finally:
        panel.set_input_handler(None)
        os.close(master)
        os.close(slave)


def test_a_serial_scanner_not_plugged_in_yet_is_opened_when_it_appears(tmp_path: Path) -> None:
    link = tmp_path / "ttyACM-scanner"
    readings: queue.Queue[Reading] = queue.Queue()
    scanner = SerialScanner(str(link), poll_s=0.02, reopen_s=0.05)
    scanner.start(lambda kind, value: readings.put((kind, value)))
    master, slave = os.openpty()
    try:
        time.sleep(0.1)
        link.symlink_to(os.ttyname(slave))  # plugged in
        deadline = time.monotonic() + 3
        while readings.empty() and time.monotonic() < deadline:
            os.write(master, b"RO1:LATE\r\n")
            time.sleep(0.1)
        assert readings.get(timeout=1) == ("qr", "RO1:LATE")
    finally:
        scanner.stop()
        os.close(master)
        os.close(slave)


def test_a_keyboard_wedge_recording_decodes_to_the_token(tmp_path: Path) -> None:
    recording = tmp_path / "wedge.events"
    recording.write_bytes(record(typed(TOKEN)) + record(typed("6A1234567890")))
    readings: list[Reading] = []
    scanner = WedgeScanner(str(recording), grab=False)
    scanner.start(lambda kind, value: readings.append((kind, value)))
    scanner.device.wait(5)
    scanner.stop()
    assert readings == [("qr", TOKEN), ("qr", "6A1234567890")]


def test_a_wedge_reading_arriving_in_pieces_through_a_pipe() -> None:
    """A live device hands events over as they come: records may split across reads."""
    read_end, write_end = os.pipe()
    readings: queue.Queue[Reading] = queue.Queue()
    scanner = WedgeScanner(f"/proc/self/fd/{read_end}", grab=False)
    scanner.start(lambda kind, value: readings.put((kind, value)))
    data = record(typed("RO1:PIPE"))
    try:
        for start in range(0, len(data), 7):  # 7 bytes: never a whole 24-byte record
            os.write(write_end, data[start:start + 7])
        assert readings.get(timeout=3) == ("qr", "RO1:PIPE")
    finally:
        os.close(write_end)
        scanner.stop()
        os.close(read_end)


def test_the_wedge_decoder_ignores_releases_repeats_and_unknown_keys() -> None:
    decoder = WedgeDecoder()
    assert decoder.feed(30, 1) is None  # a
    assert decoder.feed(30, 2) is None  # autorepeat is not a second key
    assert decoder.feed(30, 0) is None
    assert decoder.feed(183, 1) is None  # F13: no character
    assert decoder.feed(KEY_ENTER, 1) == "a"
    assert decoder.feed(KEY_ENTER, 1) is None  # an empty reading is none


class ManualKeys:
    """A key source driven from the test (what a GPIO matrix driver would be)."""

    def __init__(self) -> None:
        self.on_key: object = None
        self.running = False

    def start(self, on_key) -> None:  # type: ignore[no-untyped-def]
        self.on_key, self.running = on_key, True

    def stop(self) -> None:
        self.running = False

    def press(self, *names: str) -> None:
        for name in names:
            self.on_key(name)  # type: ignore[operator]


def test_the_keypad_makes_pins_and_carrier_codes() -> None:
    keys = ManualKeys()
    now = [0.0]
    keypad = Keypad(keys, max_digits=8, entry_timeout_s=30, now=lambda: now[0])
    readings: list[Reading] = []
    panel = ReaderPanel([keypad])
    panel.set_input_handler(lambda kind, value: readings.append((kind, value)))
    assert keys.running
    keys.press("1", "2", "3", "9", "back", "4", "5", "6", "enter")
    keys.press("carrier", "1", "2", "3", "4", "5", "6", "7", "8", "9", "enter")  # 8 digits kept
    keys.press("enter")  # nothing typed: nothing sent
    keys.press("7", "7", "clear", "4", "2", "enter")
    keys.press("5", "5")
    now[0] += 31  # walked away; the next person starts clean
    keys.press("8", "8", "enter")
    assert readings == [("pin", "123456"), ("carrier", "12345678"), ("pin", "42"),
                        ("pin", "88")]
    panel.set_input_handler(None)
    assert not keys.running


def test_a_usb_keypad_recording(tmp_path: Path) -> None:
    keypad_digits = {"0": 82, "1": 79, "2": 80, "3": 81, "4": 75, "5": 76, "6": 77}
    recording = tmp_path / "keypad.events"
    recording.write_bytes(record(
        [(keypad_digits[d], False) for d in "604132"] + [(KEY_KPENTER, False)]
        + [(KEY_KPASTERISK, False)] + [(keypad_digits[d], False) for d in "12345601"]
        + [(KEY_KPENTER, False)]
    ))
    readings: list[Reading] = []
    source = UsbKeypadKeys(str(recording), grab=False)
    keypad = Keypad(source)
    keypad.start(lambda kind, value: readings.append((kind, value)))
    source.device.wait(5)
    keypad.stop()
    assert readings == [("pin", "604132"), ("carrier", "12345601")]


def test_a_failing_handler_does_not_kill_the_reader() -> None:
    keys = ManualKeys()
    panel = ReaderPanel([Keypad(keys)])
    calls: list[str] = []

    def handler(kind: CredentialKind, value: str) -> None:
        calls.append(value)
        raise RuntimeError("agent busy")

    panel.set_input_handler(handler)
    keys.press("1", "enter", "2", "enter")
    assert calls == ["1", "2"]
