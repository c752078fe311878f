"""What the KR-CU16 driver costs per bus transaction, on the board emulator's pty.

    .venv/bin/python -m bench.kerong_bus --reads 2000 --opens 300

The pty has no baud rate: the figures are the driver's own cost (framing, locking, parsing,
the pty round trip, the emulator's answer), to which a real bus adds the time on the wire
(printed too: 10 bits per byte at 19200 baud) and the board's own answer time. CPU is the
process's (driver and emulator threads together), divided by the transactions.
Results: bench/results/kerong-bus-*.json; docs/benchmarks-lock-boards.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

from firmware_bridge.agent.board_emulator import BoardEmulator, EmulatedBoard
from firmware_bridge.agent.kerong import (
    BAUDRATE,
    REPLY_LEN,
    REQUEST_LEN,
    KerongBoard,
    KerongConfig,
)

RESULTS = Path(__file__).parent / "results"


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(action: object, count: int) -> dict[str, float | int]:
    assert callable(action)
    walls = []
    cpu_before = cpu_s()
    for i in range(count):
        started = time.perf_counter()
        action(i)
        walls.append(time.perf_counter() - started)
    cpu = cpu_s() - cpu_before
    return {"count": count, "wall_p50_ms": statistics.median(walls) * 1e3,
            "wall_p99_ms": percentile(walls, 0.99) * 1e3,
            "cpu_per_op_ms": cpu / count * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--opens", type=int, default=300)
    args = parser.parse_args()
    with BoardEmulator([EmulatedBoard(0), EmulatedBoard(1)]) as emulator:
        board = KerongBoard(KerongConfig.from_dict({
            "port": emulator.port, "boards": [{"address": 0}, {"address": 1}],
            "status_max_age_s": 0.0, "confirm_poll_s": 0.0,
        }))

        def read(i: int) -> None:
            assert board.door_state(1 + i % 32) == "closed"

        def open_and_shut(i: int) -> None:
            address, index = divmod(i % 32, 16)
            assert board.open(1 + i % 32)
            emulator.close_door(address, index + 1)

        reads = timed(read, args.reads)
        reads["frames_on_the_wire"] = len(emulator.requests)
        opens = timed(open_and_shut, args.opens)
        opens["frames_on_the_wire"] = len(emulator.requests) - reads["frames_on_the_wire"]
        board.close()
    wire_ms = (REQUEST_LEN + REPLY_LEN) * 10 / BAUDRATE * 1e3
    result = {
        "reads": reads, "opens": opens,
        "wire_ms_per_status_at_19200": round(wire_ms, 2),
        "machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]},
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"kerong-bus-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
