"""bench/refusal_at_scale.py on a small network, so the benchmark cannot rot: every refusal is
a 409 naming Voisin, decided at the counter, in the same statements with 300 more sites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_refusal_benchmark_runs_and_costs_the_same_statements_in_a_bigger_network(
        tmp_path: Path, bench_database: str) -> None:
    out = tmp_path / "refusals.json"
    run = subprocess.run(
        [sys.executable, "bench/refusal_at_scale.py", "--sites", "0", "300",
         "--refusals", "2", "--database", bench_database, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    small, big = json.loads(out.read_text())
    assert (small["other_sites"], big["other_sites"]) == (0, 300)
    for result in (small, big):
        assert result["refusals"] == 2 and result["decided"] == ["no-alternative"]
        assert result["nearest_site"] == ["voisin"]  # the drawn shops are all farther
    assert big["statements_median"] == small["statements_median"] > 0
