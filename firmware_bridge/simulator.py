"""Simulated lockers: one or a fleet of N (a LockerAgent + SimulatedBoard each) in one process.

They share nothing but the process: each has its own MQTT client, journal file and board, and
speaks exactly the protocol a real locker speaks.

    python -m firmware_bridge.simulator --lockers 50 --broker 127.0.0.1:1883 --journal-dir /tmp/sim

Then type commands on standard input (or pipe a script), one per line:

    L1 scan RO1:...        the QR scanner of locker L1 reads a token
    L1 pin 123456          a resident types a PIN
    L1 carrier 12345678    a carrier types its offline code: expired parcels' doors open one
                           after the other (close each to get the next)
    L1 scan 6A1234567890   then the scanner reads a parcel's barcode: its reserved door opens
    L1 close 3 occupied    door 3 closes, occupancy sensor says occupied (or: empty, -)
    L1 jam 3 | unjam 3 | stick 3 | unstick 3
    L1 state               print the doors and the screen
    list                   the lockers
    quit

With a single locker, the locker id may be left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import DoorState, SimulatedBoard
from firmware_bridge.agent.state import AgentSettings
from firmware_bridge.identity import LockerIdentity

log = logging.getLogger(__name__)


class ConsoleBoard(Protocol):
    """What the console drives: the simulated board, or the emulated KR-CU16 locker
    (`firmware_bridge.agent.emulated`)."""

    display: list[str]

    def compartments(self) -> list[int]: ...
    def door_state(self, n: int) -> DoorState: ...
    def occupancy(self, n: int) -> bool | None: ...
    def scan(self, text: str) -> None: ...
    def type_pin(self, digits: str) -> None: ...
    def type_carrier_code(self, code: str) -> None: ...
    def close_door(self, n: int, *, occupied: bool | None = None) -> bool: ...
    def jam(self, n: int, jammed: bool = True) -> None: ...
    def stick_open(self, n: int, stuck: bool = True) -> None: ...


@dataclass
class SimulatedLocker:
    locker_id: str
    board: ConsoleBoard
    agent: LockerAgent


class Fleet:
    def __init__(self, lockers: list[SimulatedLocker]) -> None:
        self.lockers = {locker.locker_id: locker for locker in lockers}

    @classmethod
    def build(
        cls,
        locker_ids: Iterable[str],
        compartments: list[int],
        host: str,
        port: int,
        journal_dir: Path,
        *,
        settings: AgentSettings | None = None,
        open_delay_s: float = 0.0,
        journal_names: dict[str, str] | None = None,
        identities: Mapping[str, LockerIdentity] | None = None,
    ) -> Fleet:
        journal_dir.mkdir(parents=True, exist_ok=True)
        lockers = []
        for locker_id in locker_ids:
            board = SimulatedBoard(compartments, open_delay_s=open_delay_s)
            name = (journal_names or {}).get(locker_id, f"{locker_id}.sqlite3")
            identity = (identities or {}).get(locker_id)
            if identity is None:
                log.warning("%s has no provisioning bundle: it obeys no command and the backend"
                            " refuses its events", locker_id)
            agent = LockerAgent(locker_id, board, host, port, journal_dir / name,
                                settings=settings, identity=identity)
            lockers.append(SimulatedLocker(locker_id, board, agent))
        return cls(lockers)

    def start(self) -> None:
        for locker in self.lockers.values():
            locker.agent.start()

    def stop(self) -> None:
        for locker in self.lockers.values():
            locker.agent.stop()


def run_console(fleet: Fleet, stream: TextIO, out: TextIO) -> None:
    """Read commands from `stream` until end of input or `quit`."""
    for line in stream:
        line = line.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.strip() == "quit":
            return
        try:
            print(execute(fleet, line), file=out, flush=True)
        except (KeyError, ValueError, IndexError, RuntimeError) as error:
            reason = error.args[0] if error.args else type(error).__name__
            print(f"error: {reason}", file=out, flush=True)


def execute(fleet: Fleet, line: str) -> str:
    """One console command. The value of scan/pin/carrier is the rest of the line, verbatim:
    a base45 QR token may contain spaces."""
    first, _, rest = line.strip(" ").partition(" ")
    if first == "list":
        return " ".join(sorted(fleet.lockers))
    if first in fleet.lockers:
        locker = fleet.lockers[first]
        verb, _, rest = rest.lstrip(" ").partition(" ")
    elif len(fleet.lockers) == 1:
        locker, verb = next(iter(fleet.lockers.values())), first
    else:
        raise KeyError(f"unknown locker {first!r}")
    board, args = locker.board, rest.split()
    if verb == "scan":
        board.scan(rest)
    elif verb == "pin":
        board.type_pin(rest.strip())
    elif verb == "carrier":
        board.type_carrier_code(rest.strip())
    elif verb == "close":
        occupied = {"occupied": True, "empty": False}.get(args[1]) if len(args) > 1 else None
        if not board.close_door(int(args[0]), occupied=occupied):
            return f"door {args[0]} is stuck open"
    elif verb in {"jam", "unjam"}:
        board.jam(int(args[0]), verb == "jam")
    elif verb in {"stick", "unstick"}:
        board.stick_open(int(args[0]), verb == "stick")
    elif verb == "state":
        doors = {n: (board.door_state(n), board.occupancy(n)) for n in board.compartments()}
        return json.dumps(
            {"online": locker.agent.online, "doors": doors, "screen": board.display[-3:],
             "journal_waiting": locker.agent.journal.unacked_count()}
        )
    else:
        # a board with verbs of its own (the emulated KR-CU16's bus faults: `board silent 1 on`)
        own = getattr(board, "console", None)
        if not callable(own):
            raise ValueError(f"unknown command {verb!r}")
        return str(own(verb, args))
    return "ok"


def load_compartments(spec: str) -> list[int]:
    """A count ("12"), or a JSON file: [1, 2, 3], or {"compartments": [{"number": 1}, ...]}."""
    if spec.isdigit():
        return list(range(1, int(spec) + 1))
    data = json.loads(Path(spec).read_text())
    if isinstance(data, dict):
        data = data["compartments"]
    if isinstance(data, int):
        return list(range(1, data + 1))
    return sorted(item["number"] if isinstance(item, dict) else int(item) for item in data)


def load_identities(directory: Path | None, locker_ids: Iterable[str]) -> dict[str, LockerIdentity]:
    """The bundles `<locker id>.json` found in ``directory`` (written by `relay-ops locker
    provision`), by locker id."""
    if directory is None:
        return {}
    return {
        locker_id: LockerIdentity.load(directory / f"{locker_id}.json")
        for locker_id in locker_ids
        if (directory / f"{locker_id}.json").exists()
    }


def parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host or "127.0.0.1"), int(port or 1883)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", default="127.0.0.1:1883", help="host:port")
    parser.add_argument("--bundles", type=Path, default=None,
                        help="folder of provisioning bundles, <locker id>.json")
    parser.add_argument("--compartments", default="12", help="a count or a JSON file")
    parser.add_argument("--door-left-open", type=float, default=120.0, help="alarm after (s)")
    parser.add_argument("--forward-timeout", type=float, default=5.0, help="backend answer (s)")
    parser.add_argument("--open-delay", type=float, default=0.0, help="simulated lock time (s)")
    parser.add_argument("--reconnect-min", type=float, default=1.0)
    parser.add_argument("--reconnect-max", type=float, default=60.0)
    parser.add_argument("--heartbeat", type=float, default=60.0)
    parser.add_argument("--keepalive", type=int, default=30, help="MQTT keepalive (s)")
    parser.add_argument("--resend-min", type=float, default=5.0, help="journal resend (s)")
    parser.add_argument("--resend-max", type=float, default=300.0)
    parser.add_argument("--site-id", default=None)
    parser.add_argument("--no-console", action="store_true", help="ignore standard input")
    parser.add_argument("--log-level", default="INFO")


def settings_from(args: argparse.Namespace) -> AgentSettings:
    return AgentSettings(
        site_id=args.site_id,
        door_left_open_s=args.door_left_open,
        forward_timeout_s=args.forward_timeout,
        reconnect_min_s=args.reconnect_min,
        reconnect_max_s=args.reconnect_max,
        heartbeat_s=args.heartbeat,
        keepalive_s=args.keepalive,
        resend_min_s=args.resend_min,
        resend_max_s=args.resend_max,
    )


def serve(fleet: Fleet, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT, or until standard input ends when the console is on."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    fleet.start()
    print("ready", flush=True)
    try:
        if args.no_console:
            done.wait()
        else:
            def console_then_stop() -> None:
                run_console(fleet, sys.stdin, sys.stdout)
                done.set()

            console = threading.Thread(target=console_then_stop, daemon=True)
            console.start()
            done.wait()
    finally:
        fleet.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="relayops-locker-sim", description=__doc__.split("\n")[0])
    parser.add_argument("--lockers", type=int, default=1, help="how many lockers")
    parser.add_argument("--prefix", default="SIM", help="locker ids are PREFIX-0001, ...")
    parser.add_argument("--journal-dir", type=Path, default=Path("instance/simulator"))
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    host, port = parse_broker(args.broker)
    ids = [f"{args.prefix}-{i:04d}" for i in range(1, args.lockers + 1)]
    fleet = Fleet.build(
        ids,
        load_compartments(args.compartments),
        host,
        port,
        args.journal_dir,
        settings=settings_from(args),
        open_delay_s=args.open_delay,
        identities=load_identities(args.bundles, ids),
    )
    return serve(fleet, args)


if __name__ == "__main__":
    sys.exit(main())
