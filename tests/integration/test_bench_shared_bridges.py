"""bench/shared_bridges.py in a tiny configuration, so the benchmark cannot rot: one locker's
bursts split over two bridges are all applied, none asked of the locker again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_shared_bridges_benchmark_applies_every_event(bench_database: str) -> None:
    run = subprocess.run(
        [sys.executable, "bench/shared_bridges.py", "--bridges", "2", "--events", "12",
         "--runs", "1", "--database", bench_database],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    [result] = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert result["bridges"] == 2 and result["applied"] == result["events"] == 12
    assert result["resends_asked"] == 0
    assert 0 < result["p50_ms"] <= result["p90_ms"] <= result["max_ms"]
