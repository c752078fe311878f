"""The embedded locker stack of the demo: an in-process MQTT broker (amqtt, MQTT 3.1.1, bound to
127.0.0.1), the bridge in a thread, and one simulated locker, so a new user opens a locker door
on the first run without installing a broker. The locker's doors are a `SimulatedBoard`, or
(`board="kerong-emulated"`) the KR-CU16 driver talking real frames to emulated boards on a
pseudo-terminal (`firmware_bridge.agent.emulated`). The broker is anonymous, on the loopback
only; the locker is provisioned like a real one (signed commands and events, protocol
section 12).

amqtt has no shared subscriptions: the bridge subscribes plainly (one bridge only). It sends
retained messages to every client at connect, so nothing secret is ever retained (commands and
credential syncs never are).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from firmware_bridge import protocol as p
from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import LockBoard, SimulatedBoard
from firmware_bridge.agent.emulated import EmulatedKerongLocker
from firmware_bridge.agent.state import AgentSettings
from firmware_bridge.bridge import Bridge, BridgeSettings
from firmware_bridge.identity import LockerIdentity, write_bundle
from firmware_bridge.simulator import ConsoleBoard, Fleet, SimulatedLocker, run_console
from relay_ops.services import locker_compartments, locker_identity
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM

log = logging.getLogger(__name__)

BOARD_KINDS = ("simulated", "kerong-emulated")  # the CLI's `relay-ops demo --board`


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """amqtt in a thread that owns its asyncio loop."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="mqtt-broker", daemon=True)
        self._ready = threading.Event()
        self._broker: Any = None
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        # amqtt's state machine logs every transition at INFO: not for a demo's terminal
        for noisy in ("transitions", "amqtt"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the embedded MQTT broker did not start: {self._error}")

    def _run(self) -> None:
        from amqtt.broker import Broker

        asyncio.set_event_loop(self._loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                        {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config, loop=self._loop)
            self._loop.run_until_complete(self._broker.start())
        except BaseException as error:  # reported to start()
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is not None and self._loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                future.result(10)
            except Exception:
                log.exception("embedded broker shutdown failed")
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()


class EmbeddedLockers:
    """Broker + bridge + one simulated locker for the demo locker ``code``, on a simulated
    board or on emulated KR-CU16 boards (``board``)."""

    def __init__(self, ctx: Ctx, code: str, compartments: int, journal_dir: Path,
                 port: int = 0, board: str = "simulated") -> None:
        if board not in BOARD_KINDS:
            raise ValueError(f"board is one of {', '.join(BOARD_KINDS)}, not {board!r}")
        self.ctx, self.code = ctx, code
        self.broker = EmbeddedBroker(port)
        self.bridge: Bridge | None = None
        numbers = list(range(1, compartments + 1))
        # `board` is what the console and the locker panel drive (doors pushed, keypad,
        # scanner); `_locks` is what the agent drives: the same object when simulated, the
        # KR-CU16 driver on the emulator's pty when emulated.
        self.emulated: EmulatedKerongLocker | None = None
        self.board: ConsoleBoard
        self._locks: LockBoard
        if board == "kerong-emulated":
            self.emulated = EmulatedKerongLocker(numbers)
            self.board, self._locks = self.emulated, self.emulated.board
        else:
            simulated = SimulatedBoard(numbers)
            self.board, self._locks = simulated, simulated
        self.journal_dir = journal_dir
        self.agent: LockerAgent | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        self.broker.start()
        self.bridge = Bridge(self.ctx, "127.0.0.1", self.broker.port,
                             BridgeSettings(shared_subscription=False))
        self.bridge.start()
        self.journal_dir.mkdir(parents=True, exist_ok=True)
        self.agent = LockerAgent(self.code, self._locks, "127.0.0.1", self.broker.port,
                                 self.journal_dir / f"{self.code}.sqlite3",
                                 reader=self.emulated,
                                 settings=AgentSettings(reconnect_min_s=0.2, resend_min_s=1.0),
                                 identity=self._identity())
        self.agent.start()
        # idle drop-off sessions are timed out by the jobs runner's "locker-reservations" sweep

    def _identity(self) -> LockerIdentity:
        """The demo locker's bundle, kept beside its journal: its journaled events stay signed
        by the key the backend knows. Provisioned on the first run (or if the database was
        reset)."""
        path = self.journal_dir / f"{self.code}.bundle.json"
        with self.ctx.db.read() as session:
            site = locker_compartments.locker_by_code(session, self.code)
            site_id, known = site.id, locker_compartments.link_of(session, site).event_key
        if path.exists():
            identity = LockerIdentity.load(path)
            if known == p.raw_public_key(identity.event_key):
                return identity
        bundle = locker_identity.provision(self.ctx, SYSTEM, site_id)
        write_bundle(path, bundle)
        return LockerIdentity.from_bundle(bundle)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if predicate():
                return True
            time.sleep(0.05)
        return False

    def console(self, stream: TextIO, out: TextIO) -> threading.Thread:
        """The simulator's console on this terminal: `pin 123456`, `scan RO1:...`, ..."""
        assert self.agent is not None
        fleet = Fleet([SimulatedLocker(self.code, self.board, self.agent)])
        thread = threading.Thread(target=run_console, args=(fleet, stream, out),
                                  name="locker-console", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stopping.set()
        if self.agent is not None:
            self.agent.stop()
        if self.bridge is not None:
            self.bridge.stop()
        self.broker.stop()
        if self.emulated is not None:
            self.emulated.close()

    def board_description(self) -> str:
        """What the demo's terminal says the doors are."""
        if self.emulated is None:
            return "a simulated board (doors in memory)"
        return (f"emulated KR-CU16 boards on {self.emulated.emulator.port}, driven by the "
                "real driver over that pseudo-terminal")
