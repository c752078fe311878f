"""bench/territory.py over a few days, so the benchmark cannot rot (it once crashed unseen
when shops began grouping a recipient's parcels): shops and lockers take parcels, a full
locker sends one on, grouped parcels leave together, and the figures add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_territory(tmp_path: Path, *extra: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "bench.territory", "--start", "2026-12-07", "--days", "4",
         "--warm-up", "1", "--load", "1.0", "--mode", "reroute", "--out", str(tmp_path),
         *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    [written] = list(tmp_path.glob("territory-*.json"))
    [result] = json.loads(written.read_text())
    return result


def test_the_territory_replay_runs_with_lockers_and_grouped_parcels(tmp_path: Path) -> None:
    result = run_territory(tmp_path)
    lockers = result["lockers"]
    assert lockers["lockers"] == 3 and lockers["locker_days"] == 3 * 4
    assert lockers["deposits"] > 50  # a peak week: every locker takes parcels every day
    # every parcel a full locker turned away was either moved or refused, and each move is a
    # reroute proposal from a full locker
    assert lockers["moved_when_full"] == result["reroutes"]["from_full_lockers"]["moved"]
    assert result["grouping"]["shop_parcels_grouped"] > 0
    assert result["shop_days"] > 0 and result["parcels_announced"] > 500
    assert set(result["forecast_error"]) == {"1d", "3d"}  # 7 days ahead needs a longer run


def test_shops_only_replays_the_first_territory(tmp_path: Path) -> None:
    result = run_territory(tmp_path, "--shops-only")
    assert result["lockers"]["lockers"] == 0 and result["lockers"]["deposits"] == 0
    assert result["grouping"] == {"shop_parcels_grouped": 0, "locker_parcels_sharing_a_door": 0,
                                  "locker_deadlines_extended": 0}
