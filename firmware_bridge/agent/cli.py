"""Command line of one locker agent.

    python -m firmware_bridge.agent --locker-id L1 --compartments config.json \\
        --broker 127.0.0.1:1883 --journal /var/lib/relayops/L1.sqlite3 \\
        [--board simulated | kerong --board-config board.json | kerong-emulated]

    relayops-locker-agent --config /etc/relayops/agent.toml    # an installed locker

Boards:
- `simulated` (default): doors in memory, driven from standard input with the simulator's
  console commands (`scan TOKEN`, `pin 1234`, `close 3 occupied`, ...);
- `kerong`: Kerong KR-CU16 boards on a serial line, configured by a JSON file
  (docs/lock-boards.md, "Configuration"); no console and no readers (it opens on the
  backend's commands only: a bench check), it runs until SIGTERM; an installed locker with
  its scanner and keypad runs from `--config`;
- `kerong-emulated`: the same driver on emulated boards behind a pseudo-terminal
  (`firmware_bridge.agent.emulated`), driven by the same console.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from pathlib import Path

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.config import (
    AgentConfig,
    build_agent,
    build_board,
    configure_logging,
)
from firmware_bridge.agent.emulated import EmulatedKerongLocker
from firmware_bridge.agent.kerong import KerongBoard, KerongConfig
from firmware_bridge.agent.sdnotify import Watchdog, notify
from firmware_bridge.simulator import (
    Fleet,
    SimulatedLocker,
    add_common_arguments,
    load_compartments,
    load_identities,
    parse_broker,
    serve,
    settings_from,
)

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="relayops-locker-agent", description="RelayOps locker agent"
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="an installed locker's TOML file (docs/install-locker.md); "
                             "then no other option is read")
    parser.add_argument("--locker-id")
    parser.add_argument("--journal", type=Path, default=None, help="SQLite journal file")
    parser.add_argument("--board", choices=["simulated", "kerong", "kerong-emulated"],
                        default="simulated")
    parser.add_argument("--board-config", type=Path, default=None,
                        help="the kerong board's JSON configuration (docs/lock-boards.md)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.config is not None:
        return run_installed(args.config)
    if args.locker_id is None:
        parser.error("--locker-id (or --config) is required")
    if args.board == "kerong" and args.board_config is None:
        parser.error("--board kerong needs --board-config")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    host, port = parse_broker(args.broker)
    journal = args.journal or Path("instance") / f"locker-{args.locker_id}.sqlite3"
    journal.parent.mkdir(parents=True, exist_ok=True)
    if args.board == "simulated":
        fleet = Fleet.build(
            [args.locker_id],
            load_compartments(args.compartments),
            host,
            port,
            journal.parent,
            settings=settings_from(args),
            open_delay_s=args.open_delay,
            journal_names={args.locker_id: journal.name},
            identities=load_identities(args.bundles, [args.locker_id]),
        )
        return serve(fleet, args)
    return _serve_kerong(args, host, port, journal)


def _serve_kerong(args: argparse.Namespace, host: str, port: int, journal: Path) -> int:
    identity = load_identities(args.bundles, [args.locker_id]).get(args.locker_id)
    if identity is None:
        log.warning("%s has no provisioning bundle: it obeys no command and the backend"
                    " refuses its events", args.locker_id)
    if args.board == "kerong-emulated":
        emulated = EmulatedKerongLocker(load_compartments(args.compartments))
        log.info("emulated KR-CU16 boards on %s", emulated.emulator.port)
        agent = LockerAgent(args.locker_id, emulated.board, host, port, journal,
                            reader=emulated, settings=settings_from(args), identity=identity)
        try:
            return serve(Fleet([SimulatedLocker(args.locker_id, emulated, agent)]), args)
        finally:
            emulated.close()
    board = KerongBoard(KerongConfig.from_dict(json.loads(args.board_config.read_text())))
    agent = LockerAgent(args.locker_id, board, host, port, journal,
                        settings=settings_from(args), identity=identity)
    try:
        return _run_until_signalled(agent)
    finally:
        board.close()


def run_installed(path: Path) -> int:
    """An installed locker (systemd unit config/systemd/relayops-locker-agent.service): the
    configuration file, READY=1 once started, WATCHDOG=1 from the worker loop."""
    config = AgentConfig.load(path)
    configure_logging(config)
    board = build_board(config.board)
    agent = build_agent(config, board, watchdog=Watchdog().ping)
    try:
        return _run_until_signalled(agent)
    finally:
        close = getattr(board, "close", None)
        if callable(close):
            close()


def _run_until_signalled(agent: LockerAgent) -> int:
    """A real locker has no console: it runs until SIGTERM (systemd) or SIGINT."""
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    agent.start()
    notify("READY=1")
    print("ready", flush=True)
    try:
        done.wait()
    finally:
        notify("STOPPING=1")
        agent.stop()
    return 0
