"""Check-in benchmark: RelayOps under gunicorn on PostgreSQL against a bare Flask endpoint.

    /work/main/.venv/bin/python bench/checkin.py --duration 20

One run: a fresh database (dropped and re-created), migrated and seeded through the services;
two gunicorn servers with the same settings (RelayOps, and ``bench/bare_app.py`` as the
reference); then, on 127.0.0.1 only, each phase bounded in time:

1. warm-up of both servers (wrk, not measured);
2. maximum throughput of the reference, then of check-in (wrk, closed loop, N connections);
3. latency of check-in at a constant rate of half its maximum (open loop, ``loadgen.py``),
   then of the reference at the same rate;
4. checks in the database: each parcel checked in at most once, every answered check-in
   stored, no 5xx.

The web workers' RSS is sampled from /proc all along; CPU use per process group is read from
/proc before and after each phase. A summary is printed and a JSON file written.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's relay_ops, not an installed copy

import psycopg  # noqa: E402

from bench import loadgen, seed  # noqa: E402
from relay_ops.domain.pickup_token import (  # noqa: E402
    generate_private_key,
    private_key_to_pem,
)

HOST = "127.0.0.1"
TICK = os.sysconf("SC_CLK_TCK")
GOALS = {"throughput_ratio_min": 0.5, "p99_ms_max": 25.0, "worker_rss_mb_max": 150.0}


# ---------------------------------------------------------------- processes and /proc


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def pids_named(name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() == name:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def backends_of(database: str) -> list[int]:
    """The PostgreSQL backends connected to ``database`` (their process titles name it); a
    shared server runs other people's databases."""
    found = []
    for pid in pids_named("postgres"):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f" {database} " in title:
            found.append(pid)
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8]) / TICK
    idle = (values[3] + values[4]) / TICK
    return total - idle, total


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    _workers: list[int] = field(default_factory=list)

    def workers(self) -> list[int]:
        """The worker pids (cached; looked up again if one of them has gone)."""
        if not self._workers or not all(Path(f"/proc/{p}").exists() for p in self._workers):
            self._workers = children_of(self.process.pid)
        return self._workers

    def all_pids(self) -> list[int]:
        return [self.process.pid, *self.workers()]


def start_server(name: str, app_spec: str, port: int, args: argparse.Namespace,
                 env: dict[str, str], logdir: Path) -> Server:
    log = logdir / f"{name}.log"
    cmd = [str(Path(sys.executable).parent / "gunicorn"), *gunicorn_settings(args),
           "-b", f"{HOST}:{port}", "--chdir", str(REPO), app_spec]
    process = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                               cwd=REPO)
    server = Server(name, port, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} server exited: see {log}\n{log.read_text()[-2000:]}")
        if len(children_of(process.pid)) >= args.workers and _listening(port):
            time.sleep(1)  # let the workers import the app
            return server
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{name} server did not start in 30 s: see {log}")


def gunicorn_settings(args: argparse.Namespace) -> list[str]:
    return ["-w", str(args.workers), "-k", args.worker_class, "--threads", str(args.threads),
            "--backlog", "2048", "--timeout", "60", "--log-level", "warning"] + (
        ["--keep-alive", "5"] if args.worker_class == "gthread" else []
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((HOST, port)) == 0


class Watch:
    """Samples the workers' RSS every 0.2 s; reads CPU time per group around each phase."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.peaks: dict[str, dict[int, float]] = {s.name: {} for s in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def reset(self) -> None:
        self.peaks = {s.name: {} for s in self.servers}

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for server in self.servers:
                peaks = self.peaks[server.name]
                for pid in server.workers():
                    peaks[pid] = max(peaks.get(pid, 0.0), rss_mb(pid))

    def snapshot(self) -> dict[str, float]:
        busy, total = machine_busy()
        snap = {"machine_busy": busy, "machine_total": total, "time": time.monotonic()}
        for server in self.servers:
            snap[server.name] = sum(cpu_seconds(p) for p in server.all_pids())
        snap["postgres"] = sum(cpu_seconds(p) for p in pids_named("postgres"))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["wrk"] = usage.ru_utime + usage.ru_stime
        snap["this_process"] = time.process_time()
        return snap

    @staticmethod
    def cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """CPU used during a phase, in cores (1.0 = one core busy all the time)."""
        wall = after["time"] - before["time"]
        used = {k: round((after[k] - before[k]) / wall, 2)
                for k in after if k not in ("time", "machine_busy", "machine_total")}
        used["machine"] = round((after["machine_busy"] - before["machine_busy"])
                                / (after["machine_total"] - before["machine_total"])
                                * os.cpu_count(), 2)  # type: ignore[operator]
        used["other"] = round(used["machine"] - sum(
            v for k, v in used.items() if k not in ("machine", "other")), 2)
        return used


# ---------------------------------------------------------------- load phases


@dataclass
class Phase:
    name: str
    target: str
    kind: str  # "max" (wrk, closed loop) or "rate" (open loop)
    first_parcel: int
    sent: int
    seconds: float
    throughput: float
    statuses: dict[str, int]
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cores: dict[str, float] = field(default_factory=dict)
    worker_rss_mb: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_wrk(server: Server, args: argparse.Namespace, world: seed.World, first: int,
            seconds: float, name: str) -> Phase:
    # The references do not care which numbers they get; RelayOps and the floor (which check
    # the parcels in) must stay within the seed.
    last = world.announced if server.name in ("relayops", "floor") else 10**8 - 1
    cmd = ["wrk", "-t", str(args.wrk_threads), "-c", str(args.connections),
           "-d", f"{max(1, round(seconds))}s",
           "--timeout", "10s", "-s", str(REPO / "bench" / "checkin.lua"),
           f"http://{HOST}:{server.port}", "--", str(first), str(last),
           str(len(world.site_ids)), str(world.site_ids[0]), world.shopkeeper_token,
           str(args.wrk_threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRK_RESULT "))
    secs = data["duration_us"] / 1e6
    phase = Phase(
        name=name, target=server.name, kind="max", first_parcel=first, sent=data["sent"],
        seconds=round(secs, 2), throughput=round(data["requests"] / secs, 1),
        statuses={str(k): v for k, v in data["statuses"].items()},
        errors={k: v for k, v in data["errors"].items() if v},
        latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
    )
    if data["exhausted"]:
        phase.notes.append("ran out of announced parcels: raise --parcels")
    return phase


def request_maker(world: seed.World, first: int) -> Any:
    nsites, site0, token = len(world.site_ids), world.site_ids[0], world.shopkeeper_token

    def make(i: int) -> bytes:
        n = first + i
        body = json.dumps({"tracking_number": seed.tracking_number(n)}).encode()
        return (
            f"POST /api/v1/sites/{site0 + n % nsites}/check-ins HTTP/1.1\r\nHost: {HOST}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return make


def run_rate(server: Server, args: argparse.Namespace, world: seed.World, first: int,
             rate: float, name: str) -> Phase:
    result = loadgen.constant_rate(HOST, server.port, rate, args.duration,
                                   request_maker(world, first), args.max_connections)
    phase = Phase(
        name=name, target=server.name, kind="rate", first_parcel=first, sent=result.scheduled,
        seconds=round(result.wall_seconds, 2),
        throughput=round(result.completed / args.duration, 1),
        statuses={str(k): v for k, v in sorted(result.statuses.items())},
        errors=dict(result.errors),
        latency_ms={f"p{p}": round(result.percentile(p) * 1000, 2) for p in (50, 95, 99)}
        | {"max": round(max(result.latencies, default=0) * 1000, 2)},
    )
    phase.notes.append(
        f"target {rate:.1f} req/s; generator CPU {result.cpu_seconds / result.wall_seconds:.2f}"
        f" cores; latest send {result.max_start_lag * 1000:.1f} ms after its due time;"
        f" {result.connections} connections"
    )
    phase.ok_numbers = [first + i for i in result.ok_numbers]  # type: ignore[attr-defined]
    return phase


def start_profile(server: Server, args: argparse.Namespace,
                  out: Path) -> subprocess.Popen[bytes]:
    """Sample one worker (all its threads, idle ones excluded) as collapsed stacks."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        raise SystemExit("--profile needs py-spy in the venv: pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([str(spy), "record", "-p", str(server.workers()[0]), "-d",
                             str(int(args.duration)), "-r", "250", "--format", "raw", "-o",
                             str(out.with_suffix(".pyspy.txt"))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measured(watch: Watch, servers: list[Server], run: Any) -> Phase:
    watch.reset()
    before = watch.snapshot()
    phase: Phase = run()
    phase.cores = Watch.cores(before, watch.snapshot())
    for server in servers:
        peaks = watch.peaks[server.name]
        phase.worker_rss_mb[server.name] = round(max(peaks.values(), default=0.0), 1)
    return phase


# ---------------------------------------------------------------- checks


def verify(db_url: str, phases: list[Phase], world: seed.World) -> dict[str, Any]:
    app_phases = [p for p in phases if p.target == "relayops"]
    answered_201 = sum(p.statuses.get("201", 0) for p in app_phases)
    sent = sum(p.sent for p in app_phases)
    with psycopg.connect(db_url) as conn:
        def one(sql: str, *params: Any) -> int:
            return int(conn.execute(sql, params).fetchone()[0])  # type: ignore[index]

        events = one("SELECT count(*) FROM parcel_events WHERE action = 'check_in'")
        twice = one("SELECT count(*) FROM (SELECT parcel_id FROM parcel_events "
                    "WHERE action = 'check_in' GROUP BY parcel_id HAVING count(*) > 1) d")
        ready = one("SELECT count(*) FROM parcels WHERE state = 'ready_for_pickup'")
        credentials = one("SELECT count(*) FROM pickup_credentials")
        unannounced = one("SELECT count(*) FROM parcels WHERE unannounced")
        checks: dict[str, Any] = {
            "check_in_events": events, "answered_201": answered_201, "requests_sent": sent,
            "parcels_with_two_check_ins": twice, "parcels_ready": ready,
            "pickup_credentials": credentials, "unannounced_parcels": unannounced,
        }
        rate_phase = next((p for p in app_phases if p.kind == "rate"), None)
        if rate_phase is not None:
            numbers = [seed.tracking_number(n) for n in getattr(rate_phase, "ok_numbers", [])]
            stored = one("SELECT count(*) FROM parcels p WHERE p.tracking_number = ANY(%s) AND "
                         "p.state = 'ready_for_pickup' AND (SELECT count(*) FROM parcel_events e "
                         "WHERE e.parcel_id = p.id AND e.action = 'check_in') = 1", numbers)
            checks["rate_phase_answered_2xx"] = len(numbers)
            checks["rate_phase_stored_once"] = stored
    server_errors = sum(v for p in phases for k, v in p.statuses.items() if k.startswith("5"))
    failures = []
    if twice:
        failures.append(f"{twice} parcels checked in twice")
    if not answered_201 <= events <= sent:
        failures.append(f"{events} check-ins stored for {answered_201} answered / {sent} sent")
    if not events == ready == credentials:
        failures.append(f"events {events}, ready {ready}, credentials {credentials} differ")
    if unannounced:
        failures.append(f"{unannounced} unannounced parcels (numbers outside the seed)")
    if rate_phase is not None and checks["rate_phase_stored_once"] != len(numbers):
        failures.append("an answered check-in of the rate phase is not stored exactly once")
    if server_errors:
        failures.append(f"{server_errors} 5xx answers")
    for p in phases:
        if p.errors:
            failures.append(f"{p.name}: transport errors {p.errors}")
        odd = {k: v for k, v in p.statuses.items() if k != "201"}
        if odd:
            failures.append(f"{p.name}: answers other than 201: {odd}")
    checks["server_errors_5xx"] = server_errors
    checks["failures"] = failures
    checks["ok"] = not failures
    return checks


# ---------------------------------------------------------------- the run


def provenance(started: datetime) -> dict[str, Any]:
    """What every result file starts with: when, the command, the machine, the commit."""
    return {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "git_commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                     capture_output=True, text=True).stdout.strip(),
    }


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return {
        "nproc": os.cpu_count(), "cpu_model": model.group(1) if model else "?",
        "memory_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(), "python": platform.python_version(),
        "postgresql_client": pg, "wrk": wrk[0] if wrk else "?",
    }


def ensure_wrk() -> None:
    if shutil.which("wrk"):
        return
    print("wrk is missing: installing it with apt-get (Debian package 'wrk')", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "wrk"], check=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=20, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    p.add_argument("--shops", type=int, default=1, help="shops the parcels are spread over")
    p.add_argument("--parcels", type=int, default=0,
                   help="parcels announced before the max phase (default: estimated)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--worker-class", default="gthread")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--connections", type=int, default=16, help="wrk connections")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--max-connections", type=int, default=64, help="open-loop generator")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                   help="PostgreSQL server (the benchmark database is dropped and re-created)")
    p.add_argument("--database", default="relayops_bench")
    p.add_argument("--port", type=int, default=18081, help="RelayOps; the reference uses +1")
    p.add_argument("--out", type=Path, default=None, help="JSON result file")
    p.add_argument("--profile", action="store_true",
                   help="py-spy one RelayOps worker during the latency phase (perturbs it)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_wrk()
    started = datetime.now(UTC)
    out = args.out or REPO / "bench" / "results" / f"checkin-{started:%Y%m%d-%H%M%S}.json"
    db_url = f"{args.pg}/{args.database}"
    sa_url = db_url.replace("postgresql://", "postgresql+psycopg://", 1)
    logdir = Path(tempfile.mkdtemp(prefix="relayops-bench-"))

    secrets = {k: f"bench-{k.lower()}-{os.urandom(8).hex()}" for k in
               ("SECRET_KEY", "PICKUP_CODE_PEPPER", "PICKUP_CODE_DERIVATION_KEY",
                "API_TOKEN_PEPPER", "LOCKER_PIN_KEY_SECRET")}
    secrets["LOCKER_TOKEN_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    secrets["LOCKER_COMMAND_SIGNING_KEY"] = private_key_to_pem(generate_private_key())
    config = {"ENV": "production", "DATABASE_URL": sa_url, "LOG_LEVEL": "WARNING",
              "NOTIFY_FILE_PATH": str(logdir / "notifications.jsonl"), **secrets}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_OPS_")}
    env |= {f"RELAY_OPS_{k}": v for k, v in config.items()}
    env["PYTHONPATH"] = str(REPO)

    print(f"database {args.database}: re-creating, migrating, seeding {args.shops} shop(s)",
          flush=True)
    seed.recreate_database(f"{args.pg}/postgres", args.database)
    world = seed.build(config, args.shops)
    t0 = time.perf_counter()
    initial = args.parcels or int(200 * (args.warmup + args.duration)) + 1000
    seed.announce(world, initial)
    seed_rate = initial / (time.perf_counter() - t0)
    print(f"  {initial} parcels announced through the manifest service "
          f"({seed_rate:.0f} parcels/s)", flush=True)
    import relay_ops
    app_module = relay_ops.__file__

    app = start_server("relayops", "relay_ops:create_app()", args.port, args, env, logdir)
    servers = [app]
    watch = Watch(servers)
    phases: list[Phase] = []
    nxt = 0
    try:
        bare = start_server("bare", "bench.bare_app:create_app()", args.port + 1, args, env,
                            logdir)
        servers.append(bare)
        watch = Watch(servers)
        watch.start()
        idle_rss = {s.name: round(max(rss_mb(p) for p in s.workers()), 1) for s in servers}
        print("warm-up", flush=True)
        warm = run_wrk(bare, args, world, 0, args.warmup, "warm-up reference")
        warm = run_wrk(app, args, world, nxt, args.warmup, "warm-up check-in")
        phases.append(warm)
        nxt += warm.sent

        print(f"max throughput, {args.duration:.0f} s each (wrk -c {args.connections})",
              flush=True)
        phases.append(measured(watch, servers, lambda: run_wrk(
            bare, args, world, 0, args.duration, "max reference")))
        ref_max = phases[-1].throughput
        phases.append(measured(watch, servers, lambda: run_wrk(
            app, args, world, nxt, args.duration, "max check-in")))
        app_max = phases[-1].throughput
        nxt += phases[-1].sent

        rate = app_max / 2
        needed = nxt + int(rate * args.duration) + 100 - world.announced
        if needed > 0:
            seed.announce(world, needed)
        print(f"latency at {rate:.1f} req/s (half the check-in maximum), open loop", flush=True)
        first = nxt
        spy = start_profile(app, args, out) if args.profile else None
        phases.append(measured(watch, servers, lambda: run_rate(
            app, args, world, first, rate, "latency check-in")))
        if spy is not None:
            spy.wait(timeout=args.duration + 30)
            phases[-1].notes.append(f"profiled with py-spy: {out.with_suffix('.pyspy.txt')}")
        nxt += phases[-1].sent
        phases.append(measured(watch, servers, lambda: run_rate(
            bare, args, world, 0, rate, "latency reference")))
    finally:
        if watch._thread.is_alive():
            watch.stop()
        for server in servers:
            server.process.terminate()
        for server in servers:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
        world.ctx.db.dispose()

    checks = verify(db_url, phases, world)
    lat = next(p for p in phases if p.name == "latency check-in")
    worker_rss = max(p.worker_rss_mb["relayops"] for p in phases if p.worker_rss_mb)
    goals = {
        "throughput_ratio": {"value": round(app_max / ref_max, 3),
                             "goal": f">= {GOALS['throughput_ratio_min']}",
                             "met": app_max / ref_max >= GOALS["throughput_ratio_min"]},
        "p99_ms_at_half_max": {"value": lat.latency_ms["p99"],
                               "goal": f"<= {GOALS['p99_ms_max']}",
                               "met": lat.latency_ms["p99"] <= GOALS["p99_ms_max"]},
        "worker_rss_mb": {"value": worker_rss, "goal": f"< {GOALS['worker_rss_mb_max']}",
                          "met": worker_rss < GOALS["worker_rss_mb_max"]},
    }
    for p in phases:
        p.__dict__.pop("ok_numbers", None)
    result = {
        **provenance(started),
        "app_module": app_module,
        "settings": {"gunicorn": gunicorn_settings(args), "shops": args.shops,
                     "wrk": f"-t {args.wrk_threads} -c {args.connections}",
                     "duration_s": args.duration, "parcels_announced": world.announced,
                     "seed_parcels_per_s": round(seed_rate)},
        "idle_worker_rss_mb": idle_rss,
        "phases": [asdict(p) for p in phases],
        "goals": goals,
        "checks": checks,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_summary(result)
    print(f"\nresult: {out}\nserver logs: {logdir}")
    return 0 if checks["ok"] else 1


def print_summary(result: dict[str, Any]) -> None:
    print(f"\n{'phase':20} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'RSS MB':>7} {'cores: web':>10} {'pg':>5} {'loadgen':>7} {'other':>5} "
          f"{'all':>5}  statuses")
    for p in result["phases"]:
        if not p["cores"]:
            continue  # the warm-up is not measured
        c = p["cores"]
        gen = c.get("wrk", 0) if p["kind"] == "max" else c.get("this_process", 0)
        print(f"{p['name']:20} {p['throughput']:8.1f} {p['latency_ms']['p50']:8.2f} "
              f"{p['latency_ms']['p95']:8.2f} {p['latency_ms']['p99']:8.2f} "
              f"{p['worker_rss_mb'].get(p['target'], 0):7.1f} "
              f"{c.get(p['target'], 0):10.2f} {c.get('postgres', 0):5.2f} {gen:7.2f} "
              f"{c.get('other', 0):5.2f} {c.get('machine', 0):5.2f}  {p['statuses']} "
              f"{p['errors'] or ''}")
        for note in p["notes"]:
            print(f"{'':20} {note}")
    print()
    for name, g in result["goals"].items():
        print(f"goal {name:20} {g['value']!s:>8} (goal {g['goal']}): "
              f"{'PASS' if g['met'] else 'FAIL'}")
    checks = result["checks"]
    print(f"checks: {'OK' if checks['ok'] else 'FAILED'} - {checks['check_in_events']} "
          f"check-ins stored, {checks['answered_201']} answered 201, "
          f"{checks['requests_sent']} sent, {checks['parcels_with_two_check_ins']} twice, "
          f"{checks['server_errors_5xx']} 5xx")
    for failure in checks["failures"]:
        print(f"  - {failure}")


if __name__ == "__main__":
    sys.exit(main())
