"""What timing a request for the metrics costs (relay_ops/metrics.py): the before_request and
after_request pair, run ``--runs`` times in one request context of a check-in, in this process
and with prometheus_client's multiprocess mode (gunicorn's, config/gunicorn.conf.py).

    .venv/bin/python bench/metrics_overhead.py --runs 50000

Each mode runs in a fresh interpreter: prometheus_client picks its value store at import.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(runs: int) -> list[float]:
    """Microseconds per request, three rounds, in this process's mode."""
    sys.path.insert(0, str(REPO))
    from flask import Response

    from relay_ops import create_app, metrics

    app = create_app({"DATABASE_URL": "sqlite://", "LOG_LEVEL": "WARNING"})
    answer = Response("{}", status=201)
    rounds = []
    with app.test_request_context("/api/v1/sites/1/check-ins", method="POST"):
        for _ in range(3):
            started = time.process_time()
            for _ in range(runs):
                metrics._started()
                metrics._observed(answer)
            rounds.append((time.process_time() - started) / runs * 1e6)
    return rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50_000)
    parser.add_argument("--here", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.here:
        print(" ".join(f"{us:.1f}" for us in measure(args.runs)))
        return 0
    for mode in ("in process", "multiprocess"):
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        with tempfile.TemporaryDirectory() as folder:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = folder
            done = subprocess.run([sys.executable, __file__, "--here", "--runs", str(args.runs)],
                                  env=env, check=True, capture_output=True, text=True)
        print(f"{mode:>12}: {done.stdout.strip()} µs per request (three rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
