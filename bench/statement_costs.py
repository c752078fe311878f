"""What each statement of the fast path costs, on its own (issue 15): the client's CPU
(psycopg, this process) and PostgreSQL's (the backend's), per run.

    .venv/bin/python bench/fast_path.py --on-hand 2000 --total 0 --manifest 0   # a database
    .venv/bin/python bench/statement_costs.py --runs 400
    .venv/bin/python bench/statement_costs.py --runs 400 --unprepared
    .venv/bin/python bench/statement_costs.py --runs 600 --pipelined

The statements are the floor's (``bench/floor_app.py``: RelayOps' own, verbatim), run on the
database the last ``bench/fast_path.py`` left (``--database``), each ``--runs`` times in a
transaction of its own that commits (a rolled-back transaction makes psycopg forget every
statement it prepared, see below), after a warm-up that lets the driver prepare it. The
cost of an empty transaction (BEGIN, COMMIT) is measured first and taken off each line.
Writes are made afresh each run (new message keys, a new code hash) so each one does its
whole work; the parcel written is the same one, again and again.

``--pipelined``: instead, the check-in's transaction (its reads, then its three writes) run
as RelayOps runs it, a round trip a statement, and with the writes sent together in
psycopg's pipeline mode (one round trip for the three), alternated three times: what
pipelining the writes would save.

``--unprepared``: each run sent unprepared, so PostgreSQL parses and plans it every time, as
it does for the first five runs of a statement on a connection, and again after any
ROLLBACK on that connection (psycopg then deallocates all its prepared statements, because
a rolled-back DDL may have changed what they mean).

PostgreSQL's CPU is read from /proc in clock ticks (10 ms): ``--runs`` × the cost must be
well above that (400 runs: a resolution of 0.025 ms).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.types.json import Json  # noqa: E402

from bench import floor_app as floor  # noqa: E402
from bench.checkin import cpu_seconds  # noqa: E402

Case = tuple[str, Callable[[], dict[str, Any]]]


def cases(conn: psycopg.Connection[Any]) -> list[Case]:
    """Each statement with the values it runs with: the shop's, an announced parcel's, a
    ready parcel's live code's."""
    now = datetime.now(UTC)
    today = now.date()
    announced = conn.execute("SELECT id, tracking_number FROM parcels WHERE state = "
                             "'announced' AND site_id = 1 LIMIT 1").fetchone()
    ready = conn.execute(
        "SELECT p.id, c.id, c.code_hash FROM parcels p JOIN credential_parcels l ON "
        "l.parcel_id = p.id JOIN pickup_credentials c ON c.id = l.credential_id WHERE p.state = "
        "'ready_for_pickup' AND p.site_id = 1 AND c.used_at IS NULL LIMIT 1").fetchone()
    shelf = conn.execute("SELECT min(id) FROM locations WHERE site_id = 1").fetchone()
    prefix = conn.execute("SELECT prefix FROM api_tokens LIMIT 1").fetchone()
    if announced is None or ready is None or shelf is None or prefix is None:
        raise SystemExit("run bench/fast_path.py first: its database is what this reads")
    parcel, number = announced
    write = {"site": 1, "at": now, "actor_kind": "shopkeeper", "actor_id": "user:2"}
    return [
        ("token", lambda: {"prefix": prefix[0]}),
        ("shop, locked", lambda: {"site_id": 1, "today": today, "until": today + timedelta(10),
                                  "yesterday": today - timedelta(1), "reserved_since": today}),
        ("shelves", lambda: {"site_id": 1}),
        ("parcel, locked", lambda: {"site_id": 1, "number": number}),
        ("group", lambda: {"site_id": 1, "parcel_id": parcel, "phone_key": "0" * 64}),
        ("check-in write", lambda: write | {
            "parcel": parcel, "location_id": shelf[0], "to_state": "ready_for_pickup",
            "phone_key": "0" * 64, "deadline": now, "first_attempt_at": now,
            "first_attempt_site_id": 1, "action": "check_in", "from_state": "announced",
            "data": Json({"location": "A", "holding_days": 10}), "change": 0}),
        ("new code", lambda: {"parcel_id": parcel, "site_id": 1, "nonce": "n" * 32,
                              "code_hash": os.urandom(32).hex(), "at": now}),
        ("messages", lambda: {"parcel_id": parcel, "kind": "ready", "at": now,
                              "key_0": os.urandom(8).hex(), "key_1": os.urandom(8).hex()}),
        ("site, guess lock", lambda: {"site_id": 1}),
        ("code-only misses", lambda: {"key": "1", "site_id": 1}),
        ("code, locked", lambda: {"site_id": 1, "code_hash": ready[2]}),
        ("code's parcels", lambda: {"credential_id": ready[1]}),
        ("pickup write", lambda: write | {
            "parcel": ready[0], "to_state": "ready_for_pickup", "action": "pick_up",
            "from_state": "ready_for_pickup", "data": Json({"holder": "recipient"}),
            "change": 0}),
        ("code spent", lambda: {"at": None, "credential_id": ready[1]}),
    ]


SQL = {"token": floor.TOKEN, "shop, locked": floor.SHOP, "shelves": floor.SHELVES,
       "parcel, locked": floor.PARCEL, "group": floor.GROUP,
       "check-in write": floor.CHECK_IN_WRITE, "new code": floor.NEW_CODE,
       "messages": floor.NOTIFY, "site, guess lock": floor.SITE_GUESS_LOCK,
       "code-only misses": floor.CODE_ONLY_MISSES, "code, locked": floor.CODE,
       "code's parcels": floor.CODE_PARCELS, "pickup write": floor.PICKUP_WRITE,
       "code spent": floor.CODE_SPENT}
CHECK_IN = ("token", "shop, locked", "shelves", "parcel, locked", "group", "check-in write",
            "new code", "messages")
PICKUP = ("token", "site, guess lock", "code-only misses", "code, locked", "code's parcels",
          "pickup write", "code spent", "messages")


def timed(conn: psycopg.Connection[Any], backend: int, runs: int, sql: str | None,
          params: Callable[[], dict[str, Any]] | None, prepare: bool | None) -> tuple[float, float]:
    """(client ms, PostgreSQL ms) per run of ``sql`` in a committed transaction of its own."""
    def once() -> None:
        with conn.transaction():
            if sql is not None and params is not None:
                cursor = conn.execute(sql, params(), prepare=prepare)
                if cursor.description:
                    cursor.fetchall()

    return per_run(once, backend, runs)


def per_run(once: Callable[[], None], backend: int, runs: int) -> tuple[float, float]:
    """(client ms, PostgreSQL ms) per call of ``once``, after a warm-up that lets the driver
    prepare its statements (at their fifth run)."""
    for _ in range(20):
        once()
    client, server = time.process_time(), cpu_seconds(backend)
    for _ in range(runs):
        once()
    return ((time.process_time() - client) / runs * 1000,
            (cpu_seconds(backend) - server) / runs * 1000)


CHECK_IN_READS = ("shop, locked", "shelves", "parcel, locked", "group")
CHECK_IN_WRITES = ("check-in write", "new code", "messages")


def check_in_transaction(conn: psycopg.Connection[Any], backend: int, runs: int,
                         params: dict[str, Callable[[], dict[str, Any]]], pipelined: bool
                         ) -> tuple[float, float]:
    """(client ms, PostgreSQL ms) per check-in transaction, its writes pipelined or not."""
    def once() -> None:
        with conn.transaction():
            for name in CHECK_IN_READS:
                conn.execute(SQL[name], params[name]()).fetchall()
            if pipelined:
                with conn.pipeline():
                    for name in CHECK_IN_WRITES:
                        conn.execute(SQL[name], params[name]())
            else:
                for name in CHECK_IN_WRITES:
                    conn.execute(SQL[name], params[name]()).fetchall()

    return per_run(once, backend, runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=400)
    p.add_argument("--pipelined", action="store_true",
                   help="the check-in's transaction with its writes pipelined, and without")
    p.add_argument("--unprepared", action="store_true",
                   help="send each run unprepared: parsed and planned every time")
    p.add_argument("--database", default="postgresql://postgres@127.0.0.1:5432/"
                                          "relayops_bench_fast")
    args = p.parse_args(argv)
    prepare = False if args.unprepared else None
    with psycopg.connect(args.database, autocommit=True) as conn:
        conn.execute("SET jit = off")  # as RelayOps' connections run
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        backend = row[0]
        if args.pipelined:
            params = dict(cases(conn))
            for _ in range(3):
                for pipelined in (False, True):
                    client, server = check_in_transaction(conn, backend, args.runs, params,
                                                          pipelined)
                    print(f"check-in, writes {'pipelined' if pipelined else 'one by one':10} "
                          f"client {client:.3f} ms  PostgreSQL {server:.3f} ms  "
                          f"= {client + server:.3f} ms")
            return 0
        base = timed(conn, backend, args.runs, None, None, prepare)
        print(f"{'empty transaction':18} client {base[0]:.3f} ms  PostgreSQL {base[1]:.3f} ms")
        costs = {}
        for name, params in cases(conn):
            client, server = timed(conn, backend, args.runs, SQL[name], params, prepare)
            costs[name] = (client - base[0], server - base[1])
            print(f"{name:18} client {costs[name][0]:.3f} ms  PostgreSQL "
                  f"{costs[name][1]:.3f} ms")
    for path, names in (("check-in", CHECK_IN), ("pickup by code", PICKUP)):
        # the token is read on its own, the rest in one transaction
        client = sum(costs[n][0] for n in names) + base[0]
        server = sum(costs[n][1] for n in names) + base[1]
        print(f"{path}: the statements and their transaction, client {client:.2f} ms + "
              f"PostgreSQL {server:.2f} ms = {client + server:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
