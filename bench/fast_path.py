"""The HTTP fast path (issue 15): check-in and pickup by code, flat as parcels pile up.

    .venv/bin/python bench/fast_path.py --on-hand 100,10000,100000 --total 1000000
    .venv/bin/python bench/fast_path.py --on-hand 100 --total 0 --duration 5   # a quick look
    .venv/bin/python bench/fast_path.py --on-hand 100 --total 0 --shops 8      # a network

``--shops 1`` (the default) sends every request to one shop: a check-in holds its shop's row
lock until it commits (two never take the last place), and a pickup by code its shop's
code-guess lock, so one shop's maximum is how short that hold is, not the CPU. With several
shops the requests spread as a network's do, and the maximum is the machine's.

One run, gunicorn ``-w 2 -k gthread --threads 4`` on PostgreSQL, side by side:

1. the references, once: a bare Flask endpoint parsing the same JSON, and the same plus one
   psycopg ``INSERT … RETURNING`` (``bench/bare_app.py``), each at its maximum (wrk) and at a
   constant rate (``loadgen.py``);
2. for each level of parcels on hand in the shop (``--on-hand``), a fresh database seeded fast
   with COPY in the schema's own shape (ready parcels on shelves, each with its pickup code,
   its link and its check-in event; ``--total`` parcels in the database in all, the others
   picked up at another shop long ago; announced parcels waiting to be checked in, one
   recipient each): RelayOps check-in, then pickup by code (the codes of every live
   credential, derived as the resident's page derives them), each at its maximum and at half
   of it; then a manifest of ``--manifest`` parcels POSTed by the carrier, timed;
3. at each level, the same check-ins and pickups (the next announced parcels, the codes still
   live) served by the **floor** (``bench/floor_app.py``): bare Flask running the very
   statements RelayOps runs for them on psycopg's cursor, and nothing else. What RelayOps
   spends above it is its layers; the floor itself is what the statements cost
   (``--no-floor``: not measured).

CPU per request is read from /proc: the gunicorn master and workers of the server measured,
and the PostgreSQL backends connected to the benchmark database (not the other databases of a
shared server). Each phase's answers are checked against the database: every 2xx stored once,
no 5xx, the shelf counts consistent. The check-in plumbing (servers, wrk, the open-loop
generator, /proc) is ``bench/checkin.py``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

import psycopg  # noqa: E402

from bench import checkin, loadgen, seed  # noqa: E402
from bench.bare_app import INSERT_TABLE_DDL  # noqa: E402
from bench.checkin import HOST, Phase, Server, Watch  # noqa: E402
from relay_ops.domain import credentials as creds  # noqa: E402

# Issue 15's goals, per request, server + PostgreSQL.
GOALS = {"cpu_ms_max": 2.5, "ratio_to_bare_min": 0.3, "ratio_to_insert_min": 0.5,
         "p99_ms_max": 25.0, "flat_within": 0.20}


# ---------------------------------------------------------------- seeding, fast


@dataclass
class Seeded:
    site_ids: list[int]
    other_site_id: int
    on_hand: int
    total: int
    announced: int
    seconds: float


def _firsts_backfill() -> str:
    """The parcels' firsts from the events just copied, as migration 0020 reads them."""
    from alembic.script import ScriptDirectory

    from relay_ops.db import migrate

    revision = ScriptDirectory(str(migrate.MIGRATIONS)).get_revision("0020_first_attempt")
    assert revision is not None
    return str(revision.module.BACKFILL)


def _columns(conn: psycopg.Connection[Any], table: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))}


def seed_fast(world: seed.World, db_url: str, on_hand: int, total: int, announced: int,
              shops: int = 1) -> Seeded:
    """COPY the parcels in: ``on_hand`` ready at each of the ``shops`` measured shops (the
    first ones of the world), ``total - on_hand × shops - announced`` picked up at the last
    shop, ``announced`` waiting, parcel n at measured shop n % shops, as the load generators
    address them (tracking numbers BENCH%08d, one recipient each, so none joins another's
    code)."""
    t0 = time.perf_counter()
    settings = world.ctx.settings
    measured, other = world.site_ids[:shops], world.site_ids[shops]
    past = max(0, total - on_hand * shops - announced)
    now = datetime.now(UTC)
    deadline = now + timedelta(days=30)
    with psycopg.connect(db_url) as conn:
        shelves = {site: [r[0] for r in conn.execute(
            "SELECT id FROM locations WHERE site_id = %s ORDER BY id", (site,))]
            for site in measured}
        carrier = conn.execute("SELECT id FROM carriers WHERE code = 'bench'").fetchone()[0]  # type: ignore[index]
        pid = conn.execute("SELECT coalesce(max(id), 0) FROM parcels").fetchone()[0]  # type: ignore[index]
        cid = conn.execute("SELECT coalesce(max(id), 0) FROM pickup_credentials").fetchone()[0]  # type: ignore[index]
        parcel_cols = ("id, tracking_number, carrier_id, site_id, location_id, state, direction,"
                       " unannounced, recipient_name, recipient_phone, recipient_email,"
                       " recipient_locale, recipient_phone_key, recipient_email_key, size_class,"
                       " extended, holding_deadline, checked_in_at, closed_at, created_at,"
                       " updated_at")
        parcels_rows: list[tuple[Any, ...]] = []
        cred_rows: list[tuple[Any, ...]] = []
        link_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        used_hashes: set[str] = set()
        for k in range(on_hand * shops):
            pid += 1
            cid += 1
            phone = f"+3361{k:07d}"
            site = measured[k % shops]
            locations = shelves[site]
            parcels_rows.append((
                pid, f"HAND{k:08d}", carrier, site, locations[k // shops % len(locations)],
                "ready_for_pickup", "inbound", False, "Jeanne Martin", phone, None, "fr",
                creds.recipient_key(settings.pickup_code_pepper, "phone", phone), None, "S",
                False, deadline, now, None, now, now))
            while True:  # unique among the site's live codes, as issue_credential draws them
                nonce = creds.new_nonce()
                code = creds.derive_code(settings.pickup_code_derivation_key, nonce,
                                         settings.pickup_code_digits)
                code_hash = creds.hash_code(settings.pickup_code_pepper, site, code)
                if code_hash not in used_hashes:
                    used_hashes.add(code_hash)
                    break
            cred_rows.append((cid, pid, site, "recipient", nonce, code_hash, 0, now))
            link_rows.append((cid, pid, now))
            event_rows.append((pid, now, "check_in", "announced", "ready_for_pickup", "system",
                               site, "{}"))
        for k in range(past):
            pid += 1
            parcels_rows.append((
                pid, f"PAST{k:08d}", carrier, other, None, "picked_up", "inbound", False, None,
                None, None, "fr", None, None, "S", False, None, now, now, now, now))
            event_rows.append((pid, now, "pick_up", "ready_for_pickup", "picked_up", "system",
                               other, "{}"))
        for k in range(announced):
            pid += 1
            phone = f"+3362{k:07d}"
            parcels_rows.append((
                pid, seed.tracking_number(k), carrier, measured[k % shops], None, "announced",
                "inbound",
                False, "Jean Dupont", phone, None, "fr", None, None, None, False, None, None,
                None, now, now))
        with conn.cursor() as cur:
            _copy(cur, "parcels", parcel_cols, parcels_rows)
            _copy(cur, "pickup_credentials", "id, parcel_id, site_id, holder, nonce, code_hash,"
                  " failed_attempts, created_at", cred_rows)
            _copy(cur, "credential_parcels", "credential_id, parcel_id, added_at", link_rows)
            _copy(cur, "parcel_events", "parcel_id, at, action, from_state, to_state,"
                  " actor_kind, site_id, data", event_rows)
            cur.execute("SELECT setval(pg_get_serial_sequence('parcels', 'id'), "
                        "(SELECT max(id) FROM parcels))")
            cur.execute("SELECT setval(pg_get_serial_sequence('pickup_credentials', 'id'), "
                        "(SELECT max(id) FROM pickup_credentials))")
            if "first_attempt_at" in _columns(conn, "parcels"):  # the firsts (migration 0020)
                cur.execute(_firsts_backfill())
            if "held" in _columns(conn, "locations"):  # the shelf counter (migration 0010)
                cur.execute("UPDATE locations l SET held = (SELECT count(*) FROM parcels p "
                            "WHERE p.location_id = l.id AND p.state IN ('ready_for_pickup', "
                            "'expired', 'awaiting_collection', 'damaged'))")
            cur.execute(INSERT_TABLE_DDL)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")  # as autovacuum would have by then
    world.announced = announced
    return Seeded(measured, other, on_hand, pid, announced, round(time.perf_counter() - t0, 1))


def _copy(cur: psycopg.Cursor[Any], table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def live_codes(world: seed.World, db_url: str, site_ids: list[int]) -> list[str]:
    """Every live pickup code of the shops as "SITE CODE" lines, shuffled."""
    settings = world.ctx.settings
    with psycopg.connect(db_url) as conn:
        nonces = conn.execute(
            "SELECT c.site_id, c.nonce FROM pickup_credentials c WHERE c.site_id = ANY(%s)"
            " AND c.used_at IS NULL AND c.revoked_at IS NULL", (site_ids,)).fetchall()
    key, digits = settings.pickup_code_derivation_key, settings.pickup_code_digits
    lines = [f"{site} {creds.derive_code(key, n, digits)}" for site, n in nonces]
    random.shuffle(lines)
    return lines


# ---------------------------------------------------------------- measuring


class DatabaseWatch(Watch):
    """checkin.Watch, with PostgreSQL's CPU counted for the benchmark database's backends only
    (a shared server runs other people's databases)."""

    def __init__(self, servers: list[Server], database: str) -> None:
        super().__init__(servers)
        self.database = database

    def snapshot(self) -> dict[str, float]:
        snap = super().snapshot()
        snap["postgres"] = sum(checkin.cpu_seconds(p) for p in checkin.backends_of(self.database))
        return snap


def run_wrk_pickup(server: Server, args: argparse.Namespace, token: str, codes: Path,
                   seconds: float, name: str) -> Phase:
    cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections),
           "-d", f"{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(REPO / "bench" / "pickup.lua"), f"http://{HOST}:{server.port}", "--",
           str(codes), token, str(args.wrk_threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if out.returncode or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    secs = data["duration_us"] / 1e6
    phase = Phase(
        name=name, target=server.name, kind="max", first_parcel=0, sent=data["sent"],
        seconds=round(secs, 2), throughput=round(data["requests"] / secs, 1),
        statuses={str(k): v for k, v in data["statuses"].items()},
        errors={k: v for k, v in data["errors"].items() if v},
        latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
    )
    if data["exhausted"]:
        phase.notes.append("ran out of pickup codes: the figures cover fewer requests")
    return phase


def run_rate_pickup(server: Server, args: argparse.Namespace, token: str, codes: list[str],
                    rate: float, name: str) -> Phase:
    def make(i: int) -> bytes:
        site, code = codes[i % len(codes)].split()
        body = json.dumps({"code": code}).encode()
        return (f"POST /api/v1/sites/{site}/pickups HTTP/1.1\r\nHost: {HOST}\r\n"
                f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    result = loadgen.constant_rate(HOST, server.port, rate, args.duration, make,
                                   args.max_connections)
    phase = Phase(
        name=name, target=server.name, kind="rate", first_parcel=0, sent=result.scheduled,
        seconds=round(result.wall_seconds, 2),
        throughput=round(result.completed / args.duration, 1),
        statuses={str(k): v for k, v in sorted(result.statuses.items())},
        errors=dict(result.errors),
        latency_ms={f"p{p}": round(result.percentile(p) * 1000, 2) for p in (50, 95, 99)}
        | {"max": round(max(result.latencies, default=0) * 1000, 2)},
    )
    if result.scheduled > len(codes):
        phase.notes.append(f"only {len(codes)} codes for {result.scheduled} requests: "
                           "the later ones were refused as spent")
    return phase


def wait_until_serving(server: Server, seconds: float = 120) -> float:
    """Until both workers answer /ready: each imports the app after the fork, which takes many
    seconds on a loaded machine; a measured phase must not start while requests queue behind
    that (the first check-in then took 20 s). Eight requests at once, so both workers answer."""
    from concurrent.futures import ThreadPoolExecutor

    def ready(_: int) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 (http, ours)
                    f"http://{HOST}:{server.port}/ready", timeout=30) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        while time.perf_counter() - t0 < seconds:
            if all(pool.map(ready, range(8))):
                return time.perf_counter() - t0
            time.sleep(0.5)
    raise RuntimeError(f"{server.name} not ready after {seconds} s")


def announce_manifest(server: Server, world: seed.World, size: int, tag: str) -> dict[str, Any]:
    """One manifest of ``size`` parcels POSTed by the carrier, timed from send to answer."""
    from relay_ops.services import accounts
    from relay_ops.services.principal import SYSTEM

    key = accounts.issue_carrier_key(world.ctx, SYSTEM, "bench").token
    world.ctx.db.dispose()
    body = json.dumps({"reference": f"bench-manifest-{tag}", "parcels": [
        {"tracking_number": f"MANI{tag[:4].upper()}{n:07d}", "site": seed.shop_code(0),
         "recipient": {"name": "Jean Dupont", "phone": f"+3363{n:07d}"}}
        for n in range(size)]}).encode()
    request = urllib.request.Request(
        f"http://{HOST}:{server.port}/api/v1/manifests", data=body, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 (http, ours)
        answer = json.loads(response.read())
        status = response.status
    seconds = time.perf_counter() - t0
    return {"parcels": size, "status": status, "accepted": answer.get("accepted"),
            "seconds": round(seconds, 3), "body_kb": round(len(body) / 1024)}


def cpu_ms(phase: Phase) -> dict[str, float]:
    """CPU per answered request, in ms: the server's processes, and PostgreSQL's backends."""
    if not phase.throughput:
        return {"server": float("nan"), "postgres": float("nan"), "total": float("nan")}
    server = phase.cores.get(phase.target, 0) / phase.throughput * 1000
    pg = phase.cores.get("postgres", 0) / phase.throughput * 1000
    return {"server": round(server, 2), "postgres": round(pg, 2), "total": round(server + pg, 2)}


# ---------------------------------------------------------------- checks

STORING = ("relayops", "floor")  # the servers whose check-ins and pickups are stored


def verify(db_url: str, phases: list[Phase], site_ids: list[int]) -> list[str]:
    """Every answered check-in and pickup stored once, no 5xx, shelf counts consistent."""
    failures = []
    sent = {kind: sum(p.sent for p in phases if p.target in STORING and kind in p.name)
            for kind in ("check-in", "pickup")}
    ok = {kind: sum(v for p in phases if p.target in STORING and kind in p.name
                    for k, v in p.statuses.items() if k.startswith("2"))
          for kind in ("check-in", "pickup")}
    with psycopg.connect(db_url) as conn:
        def one(sql: str, *params: Any) -> int:
            row = conn.execute(sql, params or None).fetchone()
            return int(row[0])  # type: ignore[index]

        checked_in = one("SELECT count(*) FROM parcel_events e JOIN parcels p ON p.id = "
                         "e.parcel_id WHERE e.action = 'check_in' AND p.tracking_number "
                         "LIKE 'BENCH%'")
        picked = one("SELECT count(*) FROM parcel_events e JOIN parcels p ON p.id = e.parcel_id"
                     " WHERE e.action = 'pick_up' AND p.site_id = ANY(%s)", site_ids)
        twice = one("SELECT count(*) FROM (SELECT parcel_id, action FROM parcel_events WHERE "
                    "action IN ('check_in', 'pick_up') GROUP BY parcel_id, action "
                    "HAVING count(*) > 1) d")
        if "held" in _columns(conn, "locations"):
            drift = one("SELECT count(*) FROM locations l WHERE l.held <> (SELECT count(*) "
                        "FROM parcels p WHERE p.location_id = l.id AND p.state IN "
                        "('ready_for_pickup', 'expired', 'awaiting_collection', 'damaged'))")
            if drift:
                failures.append(f"{drift} shelf counters differ from the parcels they hold")
    if twice:
        failures.append(f"{twice} parcels checked in or picked up twice")
    if not ok["check-in"] <= checked_in <= sent["check-in"]:
        failures.append(f"{checked_in} check-ins stored for {ok['check-in']} answered 2xx / "
                        f"{sent['check-in']} sent")
    if not ok["pickup"] <= picked <= sent["pickup"]:
        failures.append(f"{picked} pickups stored for {ok['pickup']} answered 2xx / "
                        f"{sent['pickup']} sent")
    for p in phases:
        fives = sum(v for k, v in p.statuses.items() if k.startswith("5"))
        if fives:
            failures.append(f"{p.name}: {fives} 5xx answers")
        if p.errors:
            failures.append(f"{p.name}: transport errors {p.errors}")
    return failures


# ---------------------------------------------------------------- the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--on-hand", default="100,10000,100000",
                   help="comma-separated parcels on hand in the shop, one level each")
    p.add_argument("--total", type=int, default=1_000_000,
                   help="parcels in the database at each level (at least on hand + announced)")
    p.add_argument("--duration", type=float, default=10, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    p.add_argument("--announced", type=int, default=20_000,
                   help="announced parcels waiting to be checked in, per level")
    p.add_argument("--manifest", type=int, default=5000,
                   help="parcels in the manifest announced (timed) at each level; 0: none")
    p.add_argument("--shops", type=int, default=1,
                   help="shops the check-ins and pickups are spread over (parcel n at shop "
                        "n %% shops); --on-hand is per shop. One shop measures how fast one "
                        "counter's lock lets its requests through, several a network's")
    p.add_argument("--no-floor", action="store_true",
                   help="do not measure the floor (bench/floor_app.py) at each level")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-class", default="gthread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--max-connections", type=int, default=64, help="open-loop generator")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                   help="PostgreSQL server (the benchmark database is dropped and re-created)")
    p.add_argument("--database", default="relayops_bench_fast")
    p.add_argument("--port", type=int, default=18091,
                   help="RelayOps; the references use +1, +2, the floor +3")
    p.add_argument("--out", type=Path, default=None, help="JSON result file")
    return p.parse_args(argv)


def configure(args: argparse.Namespace, logdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    from relay_ops.domain.pickup_token import generate_private_key, private_key_to_pem

    secrets = {k: f"bench-{k.lower()}-{os.urandom(8).hex()}" for k in
               ("SECRET_KEY", "PICKUP_CODE_PEPPER", "PICKUP_CODE_DERIVATION_KEY",
                "API_TOKEN_PEPPER", "LOCKER_PIN_KEY_SECRET")}
    secrets["LOCKER_TOKEN_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    secrets["LOCKER_COMMAND_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    sa_url = f"{args.pg}/{args.database}".replace("postgresql://", "postgresql+psycopg://", 1)
    # The web processes as production runs them: jobs (messages, sweeps) go through the outbox
    # to RQ workers, which are not part of this benchmark. In process, the hourly forecast
    # sweep starts with the server and holds a key-share lock on the shop while it recomputes
    # (seconds with 10,000 parcels on hand), which stalls every check-in meanwhile.
    config = {"ENV": "production", "DATABASE_URL": sa_url, "LOG_LEVEL": "WARNING",
              "JOBS_IN_PROCESS": False,
              "NOTIFY_FILE_PATH": str(logdir / "notifications.jsonl"), **secrets}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_OPS_")}
    env |= {f"RELAY_OPS_{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in config.items()}
    env["PYTHONPATH"] = str(REPO)
    return config, env


def stop(servers: list[Server]) -> None:
    for server in servers:
        server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()


def fresh_world(args: argparse.Namespace, config: dict[str, Any], db_url: str,
                on_hand: int) -> tuple[seed.World, Seeded]:
    seed.recreate_database(f"{args.pg}/postgres", args.database)
    # the shops measured, and one where old parcels were picked up
    world = seed.build(config, args.shops + 1)
    seeded = seed_fast(world, db_url, on_hand,
                       max(args.total, on_hand * args.shops + args.announced), args.announced,
                       args.shops)
    world.ctx.db.dispose()
    return world, seeded


def references(args: argparse.Namespace, env: dict[str, str], logdir: Path,
               world: seed.World, db_url: str) -> list[Phase]:
    """The bare endpoint and bare + INSERT, each at its maximum and at a fixed rate."""
    phases: list[Phase] = []
    one_site = replace(world, site_ids=world.site_ids[:1])
    for name, spec, port in (("bare", "bench.bare_app:create_app()", args.port + 1),
                             ("bare+insert", "bench.bare_app:create_insert_app()",
                              args.port + 2)):
        phases += reference(args, env, logdir, one_site, name, spec, port)
    return phases


def reference(args: argparse.Namespace, env: dict[str, str], logdir: Path,
              world: seed.World, name: str, spec: str, port: int) -> list[Phase]:
    server = checkin.start_server(name, spec, port, args, env, logdir)
    watch = DatabaseWatch([server], args.database)
    watch.start()
    phases: list[Phase] = []
    try:
        checkin.run_wrk(server, args, world, 0, args.warmup, f"warm-up {name}")
        phases.append(checkin.measured(watch, [server], lambda: checkin.run_wrk(
            server, args, world, 0, args.duration, f"max {name}")))
        rate = phases[-1].throughput / 2
        phases.append(checkin.measured(watch, [server], lambda: checkin.run_rate(
            server, args, world, 0, rate, f"half-max {name}")))
    finally:
        watch.stop()
        stop([server])
    return phases


def counter_phases(args: argparse.Namespace, server: Server, watch: DatabaseWatch,
                   world: seed.World, measured: seed.World, db_url: str, seeded: Seeded,
                   nxt: int, phases: list[Phase]) -> int:
    """Check-in at its maximum and at half of it, from announced parcel ``nxt`` on, then
    pickup by code the same way (half the live codes each), appended to ``phases``; the next
    announced parcel is returned."""
    label = "" if server.name == "relayops" else f" {server.name}"
    phases.append(checkin.run_wrk(server, args, measured, nxt, args.warmup,
                                  f"warm-up check-in{label}"))  # not measured, but checked
    nxt += phases[-1].sent
    phases.append(checkin.measured(watch, [server], lambda: checkin.run_wrk(
        server, args, measured, nxt, args.duration, f"max check-in{label}")))
    nxt += phases[-1].sent
    rate = phases[-1].throughput / 2
    first = nxt
    phases.append(checkin.measured(watch, [server], lambda: checkin.run_rate(
        server, args, measured, first, rate, f"half-max check-in{label}")))
    nxt += phases[-1].sent
    if nxt >= world.announced:
        phases[-1].notes.append("ran out of announced parcels: raise --announced")
    codes = live_codes(world, db_url, seeded.site_ids)
    half = len(codes) // 2
    codes_file = Path(tempfile.mkdtemp(prefix="relayops-codes-")) / "codes-max.txt"
    codes_file.write_text("\n".join(codes[:half]) + "\n")
    phases.append(checkin.measured(watch, [server], lambda: run_wrk_pickup(
        server, args, world.shopkeeper_token, codes_file, args.duration, f"max pickup{label}")))
    rate = phases[-1].throughput / 2
    phases.append(checkin.measured(watch, [server], lambda: run_rate_pickup(
        server, args, world.shopkeeper_token, codes[half:], rate, f"half-max pickup{label}")))
    return nxt


def level(
    args: argparse.Namespace, config: dict[str, Any], env: dict[str, str], logdir: Path,
    db_url: str, on_hand: int,
) -> tuple[Seeded, list[Phase], list[str], seed.World, dict[str, Any] | None]:
    print(f"\n== {on_hand} parcels on hand: seeding", flush=True)
    world, seeded = fresh_world(args, config, db_url, on_hand)
    print(f"   {seeded.total} parcels in the database, {seeded.announced} announced "
          f"({seeded.seconds} s)", flush=True)
    measured = replace(world, site_ids=seeded.site_ids)  # the shops measured
    phases: list[Phase] = []
    manifest = None
    targets = [("relayops", "relay_ops:create_app()", args.port)]
    if not args.no_floor:
        targets.append(("floor", "bench.floor_app:create_app()", args.port + 3))
    nxt = 0
    for name, spec, port in targets:
        server = checkin.start_server(name, spec, port, args, env, logdir)
        print(f"   {name} ready in {wait_until_serving(server):.1f} s", flush=True)
        watch = DatabaseWatch([server], args.database)
        watch.start()
        try:
            nxt = counter_phases(args, server, watch, world, measured, db_url, seeded, nxt,
                                 phases)
            if name == "relayops" and args.manifest:
                manifest = announce_manifest(server, world, args.manifest, str(on_hand))
        finally:
            watch.stop()
            stop([server])
    problems = verify(db_url, phases, seeded.site_ids)
    if manifest is not None and manifest["accepted"] != args.manifest:
        problems.append(f"manifest: {manifest['accepted']} of {args.manifest} accepted")
    return seeded, phases, problems, world, manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkin.ensure_wrk()
    started = datetime.now(UTC)
    out = args.out or REPO / "bench" / "results" / f"fast-path-{started:%Y%m%d-%H%M%S}.json"
    db_url = f"{args.pg}/{args.database}"
    logdir = Path(tempfile.mkdtemp(prefix="relayops-fast-path-"))
    config, env = configure(args, logdir)
    levels = [int(x) for x in args.on_hand.split(",") if x.strip()]

    runs: list[dict[str, Any]] = []
    ref_phases: list[Phase] = []
    failures: list[str] = []
    for i, on_hand in enumerate(levels):
        seeded, phases, problems, world, manifest = level(args, config, env, logdir, db_url,
                                                          on_hand)
        if i == 0:
            print("== references", flush=True)
            ref_phases = references(args, env, logdir, world, db_url)
        failures += [f"{on_hand} on hand: {p}" for p in problems]
        runs.append({"seeded": asdict(seeded), "phases": [_phase(p) for p in phases],
                     "manifest": manifest})
    result = {
        **checkin.provenance(started),
        "settings": {"gunicorn": checkin.gunicorn_settings(args), "duration_s": args.duration,
                     "wrk": f"-t {args.wrk_threads} -c {args.connections}"},
        "references": [_phase(p) for p in ref_phases],
        "levels": runs,
        "failures": failures,
    }
    result["summary"] = summarise(result)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"\nresult: {out}\nserver logs: {logdir}")
    return 0 if not failures else 1


def _phase(p: Phase) -> dict[str, Any]:
    p.__dict__.pop("ok_numbers", None)
    return asdict(p) | {"cpu_ms_per_request": cpu_ms(p)}


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per measured target and level: CPU per request, req/s, latency, ratios."""
    refs = {p["name"]: p for p in result["references"]}
    bare = refs.get("max bare", {}).get("throughput") or float("nan")
    insert = refs.get("max bare+insert", {}).get("throughput") or float("nan")
    rows = []
    for name in ("bare", "bare+insert"):
        mx, half = refs.get(f"max {name}"), refs.get(f"half-max {name}")
        if mx and half:
            rows.append(_row(name, None, mx, half, bare, insert))
    for run in result["levels"]:
        by = {p["name"]: p for p in run["phases"]}
        for op in ("check-in", "pickup"):
            rows.append(_row(f"RelayOps {op}", run["seeded"]["on_hand"], by[f"max {op}"],
                             by[f"half-max {op}"], bare, insert))
        for op in ("check-in", "pickup"):
            if f"max {op} floor" in by:
                rows.append(_row(f"floor {op}", run["seeded"]["on_hand"],
                                 by[f"max {op} floor"], by[f"half-max {op} floor"], bare,
                                 insert))
    return rows


def _row(name: str, on_hand: int | None, mx: dict[str, Any], half: dict[str, Any],
         bare: float, insert: float) -> dict[str, Any]:
    return {"what": name, "on_hand": on_hand, "max_req_s": mx["throughput"],
            "cpu_ms": mx["cpu_ms_per_request"], "p50_ms_half": half["latency_ms"]["p50"],
            "p99_ms_half": half["latency_ms"]["p99"],
            "ratio_to_bare": round(mx["throughput"] / bare, 3),
            "ratio_to_insert": round(mx["throughput"] / insert, 3)}


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n{'':22} {'on hand':>8} {'req/s':>8} {'CPU ms: web':>11} {'pg':>6} {'total':>6} "
          f"{'p50':>7} {'p99':>7} {'/bare':>6} {'/insert':>7}")
    for r in result["summary"]:
        c = r["cpu_ms"]
        print(f"{r['what']:22} {r['on_hand'] if r['on_hand'] is not None else '':>8} "
              f"{r['max_req_s']:8.1f} {c['server']:11.2f} {c['postgres']:6.2f} {c['total']:6.2f}"
              f" {r['p50_ms_half']:7.2f} {r['p99_ms_half']:7.2f} {r['ratio_to_bare']:6.3f} "
              f"{r['ratio_to_insert']:7.3f}")
    for phases in [result["references"], *(r["phases"] for r in result["levels"])]:
        for p in phases:
            odd = {k: v for k, v in p["statuses"].items() if not k.startswith("2")}
            for note in p["notes"] + ([f"non-2xx answers {odd}"] if odd else []):
                print(f"  {p['name']}: {note}")
    for run in result["levels"]:
        m = run.get("manifest")
        if m:
            print(f"manifest of {m['parcels']} parcels ({m['body_kb']} kB) at "
                  f"{run['seeded']['on_hand']} on hand: {m['seconds']:.2f} s, HTTP {m['status']}, "
                  f"{m['accepted']} accepted")
    print("checks:", "OK" if not result["failures"] else "FAILED")
    for failure in result["failures"]:
        print(f"  - {failure}")


if __name__ == "__main__":
    sys.exit(main())
