"""The web workers' memory over a long run (issue 15: "memory per web worker flat over a
10-minute run").

    .venv/bin/python bench/web_soak.py --minutes 10 --rate 60

One fresh database seeded as ``bench/fast_path.py`` seeds it (``--on-hand`` parcels ready at
one shop, enough announced for the run), RelayOps under the same gunicorn settings
(``-w 2 -k gthread --threads 4``, PostgreSQL, jobs through the outbox), then a steady
stream at ``--rate`` requests a second for ``--minutes``: check-ins of the announced parcels
and pickups by code of the live ones, one of each in turn, sent in slices of
``--slice-s`` seconds (the live codes read again before each slice, so the parcels checked
in are picked up later). After each slice every worker's resident memory (VmRSS) is read.

Reported: each worker's RSS at the end of the first slice after the warm-up and at the end
of the run, the growth, and every sample (``samples`` in the result file); the answers'
statuses (every one 2xx, else the run fails) and the latency of each slice.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

from bench import checkin, fast_path, loadgen, seed  # noqa: E402
from bench.checkin import HOST  # noqa: E402

# Worker growth from the first slice after the warm-up to the end that still counts as flat.
FLAT_WITHIN = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--rate", type=float, default=60, help="requests a second, both kinds")
    p.add_argument("--slice-s", type=float, default=30)
    p.add_argument("--warmup-slices", type=int, default=1,
                   help="slices before the first sample that counts (caches fill)")
    p.add_argument("--on-hand", type=int, default=2000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-class", default="gthread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--max-connections", type=int, default=64)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    p.add_argument("--database", default="relayops_bench_soak")
    p.add_argument("--port", type=int, default=18191)
    p.add_argument("--out", type=Path, default=None)
    return p.parse_args(argv)


def mixed_requests(world: seed.World, first: int, codes: list[str]) -> Any:
    """Request i: a check-in of announced parcel ``first + i // 2`` (i even), or a pickup by
    the live code ``codes[i // 2]`` (i odd)."""
    check_in = checkin.request_maker(world, first)
    token = world.shopkeeper_token

    def make(i: int) -> bytes:
        if i % 2 == 0 or i // 2 >= len(codes):
            return check_in(i // 2)  # type: ignore[no-any-return]
        site, code = codes[i // 2].split()
        body = json.dumps({"code": code}).encode()
        return (f"POST /api/v1/sites/{site}/pickups HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    return make


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.total = 0
    args.shops = 1
    started = datetime.now(UTC)
    out = args.out or REPO / "bench" / "results" / f"web-soak-{started:%Y%m%d-%H%M%S}.json"
    db_url = f"{args.pg}/{args.database}"
    logdir = Path(tempfile.mkdtemp(prefix="relayops-web-soak-"))
    config, env = fast_path.configure(args, logdir)
    slices = max(1, round(args.minutes * 60 / args.slice_s))
    args.announced = int(args.rate * args.slice_s * slices / 2 * 1.1) + 100
    world, seeded = fast_path.fresh_world(args, config, db_url, args.on_hand)
    world = replace(world, site_ids=seeded.site_ids)  # the shop measured, not the other one
    print(f"seeded: {seeded.on_hand} on hand, {seeded.announced} announced", flush=True)
    server = checkin.start_server("relayops", "relay_ops:create_app()", args.port, args, env,
                                  logdir)
    samples: list[dict[str, Any]] = []
    failures: list[str] = []
    statuses: dict[str, int] = {}
    nxt = 0
    t0 = time.monotonic()
    try:
        fast_path.wait_until_serving(server)
        for n in range(slices):
            codes = fast_path.live_codes(world, db_url, seeded.site_ids)
            result = loadgen.constant_rate(HOST, server.port, args.rate, args.slice_s,
                                           mixed_requests(world, nxt, codes),
                                           args.max_connections)
            nxt += (result.scheduled + 1) // 2
            for code, count in result.statuses.items():
                statuses[str(code)] = statuses.get(str(code), 0) + count
            if result.errors:
                failures.append(f"slice {n}: transport errors {dict(result.errors)}")
            sample = {"slice": n, "at_s": round(time.monotonic() - t0, 1),
                      "rss_mb": {str(pid): round(checkin.rss_mb(pid), 1)
                                 for pid in server.workers()},
                      "completed": result.completed,
                      "p50_ms": round(result.percentile(50) * 1000, 2),
                      "p99_ms": round(result.percentile(99) * 1000, 2)}
            samples.append(sample)
            print(f"slice {n:3} at {sample['at_s']:6.1f} s: RSS {sample['rss_mb']} MB, "
                  f"p50 {sample['p50_ms']} ms, p99 {sample['p99_ms']} ms", flush=True)
    finally:
        fast_path.stop([server])
    bad = {k: v for k, v in statuses.items() if not k.startswith("2")}
    if bad:
        failures.append(f"answers other than 2xx: {bad}")
    growth = summarise(samples, args.warmup_slices)
    for pid, g in growth.items():
        if g["growth"] > FLAT_WITHIN:
            failures.append(f"worker {pid} grew {100 * g['growth']:.1f} % "
                            f"({g['first_mb']} -> {g['last_mb']} MB)")
    result = {
        **checkin.provenance(started),
        "settings": {"gunicorn": checkin.gunicorn_settings(args), "rate": args.rate,
                     "minutes": args.minutes, "slice_s": args.slice_s,
                     "on_hand": args.on_hand},
        "statuses": statuses, "growth": growth, "samples": samples, "failures": failures,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for pid, g in growth.items():
        print(f"worker {pid}: {g['first_mb']} MB after the warm-up -> {g['last_mb']} MB at "
              f"the end ({100 * g['growth']:+.1f} %)")
    print(f"answers: {statuses}")
    print("checks:", "OK" if not failures else "FAILED")
    for failure in failures:
        print(f"  - {failure}")
    print(f"result: {out}")
    return 0 if not failures else 1


def summarise(samples: list[dict[str, Any]], warmup: int) -> dict[str, dict[str, float]]:
    """Per worker: RSS at the first sample after the warm-up, at the last, and the growth."""
    counted = samples[min(warmup, len(samples) - 1):]
    first, last = counted[0]["rss_mb"], counted[-1]["rss_mb"]
    return {pid: {"first_mb": first[pid], "last_mb": last[pid],
                  "growth": round(last[pid] / first[pid] - 1, 4)}
            for pid in first if pid in last and first[pid]}


if __name__ == "__main__":
    sys.exit(main())
