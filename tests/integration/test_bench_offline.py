"""bench/offline.py in a tiny configuration, so the benchmark cannot rot: both parts run, the
offline agent opens every door it should, and every replay converges on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_offline_benchmark_runs_and_its_replays_converge(tmp_path: Path, bench_database: str
        ) -> None:
    run = subprocess.run(
        [sys.executable, "bench/offline.py", "--rounds", "1", "--compartments", "4",
         "--revoked", "12", "--spent", "6", "--micro", "20", "--gap", "0",
         "--lockers", "2", "--e2e-lockers", "1", "--database", bench_database,
         "--journal-dir", str(tmp_path / "journals"), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (written,) = tmp_path.glob("offline-*.json")
    result = json.loads(written.read_text())

    latency = result["offline_check"]["latency"]
    assert {kind: latency[kind]["n"] for kind in latency} == {
        "qr": 4, "pin": 2, "pin_after_wrong": 2, "wrong_pin": 2, "spent_qr": 1}
    # one commit before each door (the keypad state included) and before a wrong PIN's answer
    for kind in ("qr", "pin", "pin_after_wrong", "wrong_pin"):
        assert latency[kind]["journal_commits_before_answer"] == 1, kind
    assert latency["spent_qr"]["journal_commits_before_answer"] == 0  # the screen answers first
    assert set(result["goals"]) == {
        "qr_p99_le_5_ms", "pin_p99_le_5_ms", "pin_after_wrong_p99_le_5_ms"}

    replay = result["replay"]
    day = replay["one_locker_batch_20"]
    # 4 pickups of 3 entries, 1 wrong PIN, the snapshot
    assert day["entries"] == 14 and day["converged"]["ok"]
    assert day["converged"]["parcels_by_state"] == {"picked_up": 4}
    assert replay["2_lockers_together_batch_20"]["converged"]["parcels_by_state"] == {
        "picked_up": 8}
    assert replay["end_to_end"]["all_applied"] and replay["end_to_end"]["converged"]["ok"]
    # the restarted agents' snapshots waited for their replay, then were reconciled
    assert replay["end_to_end"]["snapshots_reconciled"]
