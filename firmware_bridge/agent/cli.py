"""Command line of one locker agent.

    python -m firmware_bridge.agent --locker-id L1 --compartments config.json \
        --broker 127.0.0.1:1883 --journal /var/lib/relayops/L1.sqlite3

The only board driver today is the simulated one, driven from standard input with the
simulator's console commands (`scan TOKEN`, `pin 1234`, `close 3 occupied`, ...).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from firmware_bridge.simulator import (
    Fleet,
    add_common_arguments,
    load_compartments,
    load_identities,
    parse_broker,
    serve,
    settings_from,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="relayops-locker-agent", description="RelayOps locker agent"
    )
    parser.add_argument("--locker-id", required=True)
    parser.add_argument("--journal", type=Path, default=None, help="SQLite journal file")
    parser.add_argument("--board", choices=["simulated"], default="simulated")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    host, port = parse_broker(args.broker)
    journal = args.journal or Path("instance") / f"locker-{args.locker_id}.sqlite3"
    journal.parent.mkdir(parents=True, exist_ok=True)
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
