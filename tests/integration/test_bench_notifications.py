"""bench/notifications.py in a tiny configuration, so the benchmark cannot rot: the real worker
and scheduler drain a backlog and a short steady rate into the local sinks, each message once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.rq_jobs.conftest import SHARED_REDIS

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_notifications_benchmark_runs_and_each_message_arrives_once(
        tmp_path: Path, bench_database: str) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, "bench/notifications.py", "--messages", "20", "--rate", "4",
         "--duration", "3", "--sample-every", "0.5", "--timeout", "120",
         "--database", bench_database, "--redis", SHARED_REDIS, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())

    drain, rate = result["drain"], result["rate"]
    assert drain["messages"] == 20 and drain["messages_per_s"] > 0
    assert drain["worker_cpu_ms_per_message"] > 0
    assert rate["messages"] >= 6 and rate["messages"] % 2 == 0  # an e-mail and an SMS each
    assert 0 < rate["commit_to_send_p50_s"] <= rate["commit_to_send_p99_s"]
    checks = result["checks"]
    assert checks["ok"] and checks["duplicates"] == 0 and checks["unknown"] == 0
    assert checks["received"] == drain["messages"] + rate["messages"]
    assert checks["notifications"] == {"sent": checks["received"]}
    assert len(result["worker_rss_mb"]["samples"]) >= 2 and result["worker_rss_mb"]["max"] > 0
