"""Offline lockers benchmark (issue 6, "Speed"; figures in docs/benchmarks.md, "Offline lockers").

1. Offline credential check: a real `LockerAgent` with no broker to talk to (its broker address
   is a closed port on 127.0.0.1), its journal a real SQLite file (WAL, synchronous=FULL) in
   `--journal-dir`, the real `OfflineVerifier` over a realistic credential set (a locker of 60
   compartments, 60 live PINs, a few hundred revoked and spent credentials). Time from the
   reading (`board.scan` / `board.type_pin`) to the lock board's `open()` call, for QR tokens
   and PINs, and to the screen's answer for a wrong PIN; and what each step of it costs.
2. Replay: a locker's journal of a day offline (pickups with their door events, wrong PINs,
   faults, doors left open, the reconnect snapshot), built with the protocol models, applied on
   PostgreSQL by `services.locker_events.apply_events` in the bridge's batches; one locker, then
   `--lockers` lockers together; then end to end: real agents holding those journals reconnect
   to a private Mosquitto and a `relayops-bridge` process applies their replay.

    .venv/bin/python bench/offline.py                 # everything, ~11 min on 2 loaded CPUs
    .venv/bin/python bench/offline.py --skip-replay   # part 1 only, ~40 s, no database

Part 2 drops and re-creates the PostgreSQL database `relayops_bench_offline` on 127.0.0.1:5432.
Everything runs on 127.0.0.1. Results: bench/results/offline-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import platform
import random
import secrets
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import lockers as bench_lockers  # noqa: E402
from bench.lockers import TimedBoard, summary, wait  # noqa: E402
from firmware_bridge import protocol as p  # noqa: E402
from firmware_bridge.agent import journal as j  # noqa: E402
from firmware_bridge.agent.agent import LockerAgent  # noqa: E402
from firmware_bridge.agent.credentials import OfflineVerifier  # noqa: E402
from firmware_bridge.agent.state import AgentSettings  # noqa: E402
from firmware_bridge.identity import LockerIdentity  # noqa: E402
from relay_ops.domain.pickup_token import (  # noqa: E402
    TokenClaims,
    generate_private_key,
    issue_token,
    new_jti,
    public_key_to_text,
)
from relay_ops.services import locker_identity  # noqa: E402
from relay_ops.services.principal import SYSTEM  # noqa: E402

GOAL_P99_MS = 5.0
LOCKER = "offbench-1"


def closed_port() -> int:
    """A port nothing listens on: the agent's connection attempts are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def filesystem_of(path: Path) -> str:
    """`device type` of the mount holding `path` (an fsync costs what this disk makes it cost)."""
    best = ("?", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) >= len(best[2]):
            best = (device, kind, mount)
    return f"{best[0]} {best[1]}"


# ---------------------------------------------------------------- 1. the credential set


class LockerCredentials:
    """What the backend syncs to one locker: its keys, live PINs, revocations. The live set
    changes every round (yesterday's pickups are gone, new parcels came), the keys do not."""

    def __init__(self, compartments: int, revoked: int, rng: random.Random) -> None:
        self.compartments = compartments
        self.rng = rng
        self.private_key = generate_private_key()
        self.pin_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self.revoked_credentials = sorted(new_jti() for _ in range(revoked))
        self.revoked_parcels = sorted(f"OLD{n:06d}" for n in range(revoked // 6))
        self.version = 0
        self.pins: dict[int, str] = {}  # compartment -> the PIN typed to open it
        self.tokens: dict[int, str] = {}  # compartment -> the QR text of another parcel

    def next_round(self) -> p.SyncCredentials:
        self.version += 1
        now = datetime.now(UTC)
        taken = set()
        pins = []
        for n in range(1, self.compartments + 1):
            code = f"{self.rng.randrange(10**6):06d}"
            while code in taken:
                code = f"{self.rng.randrange(10**6):06d}"
            taken.add(code)
            self.pins[n] = code
            pins.append(p.PinCredential(
                credential_id=f"pin-{self.version}{n:04d}", parcel_ref=f"P{self.version}-{n}",
                compartment=n, pin_hash=p.keyed_code_hash(self.pin_key, code),
                not_before=now - timedelta(days=1), expires_at=now + timedelta(days=6)))
            self.tokens[n] = self.token(f"Q{self.version}-{n}", n)
        return p.SyncCredentials(
            version=self.version, full=True, site_id=LOCKER,
            public_keys=[p.PublicKey(kid="k1", key=public_key_to_text(
                self.private_key.public_key()))],
            pin_key=p.PinKey(key_id="pk1", key=self.pin_key), pins=pins,
            reservations=[p.Reservation(
                reservation_id=f"res-{self.version}-{n}", purpose="collection", compartment=n,
                code_hash=p.keyed_code_hash(self.pin_key, f"9{n:05d}"),
                expires_at=now + timedelta(days=1)) for n in range(1, 6)],
            revoked_credentials=self.revoked_credentials, revoked_parcels=self.revoked_parcels)

    def token(self, parcel_ref: str, compartment: int) -> str:
        issued = int(time.time())
        claims = TokenClaims(jti=new_jti(), parcel_id=parcel_ref, site=LOCKER,
                             compartment=compartment, not_before=issued - 60,
                             expires_at=issued + 6 * 86400)
        return issue_token(self.private_key, "k1", claims)

    def wrong_pin(self) -> str:
        live = set(self.pins.values())
        while True:
            code = f"{self.rng.randrange(10**6):06d}"
            if code not in live:
                return code


def seed_spent(journal_path: Path, count: int) -> None:
    """The uses an agent keeps from earlier days (credentials spent once, for good)."""
    journal = j.Journal(journal_path)
    with journal.atomic():
        for n in range(count):
            credential_id = new_jti() if n % 2 else f"pin-old{n:05d}"
            journal.record_use(credential_id, "qr" if n % 2 else "pin", f"OLD{n:06d}",
                               1 + n % 60)
            journal.set_use_outcome(credential_id, j.OPENED)
    journal.close()


def store_sync(journal_path: Path, sync: p.SyncCredentials) -> None:
    """As if the backend's sync had been applied before the link went down."""
    journal = j.Journal(journal_path)
    journal.store_credentials(sync.version, sync.model_dump_json())
    journal.close()


# ---------------------------------------------------------------- 1. timing the agent's steps


class StepClock:
    """Times named steps of the agent's worker by wrapping methods of the running instance.
    `journal_commit` is one outermost journal transaction: its SQL and its fsync."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self._depth = 0

    def wrap(self, owner: object, method: str, label: str) -> None:
        original = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spans.append((label, start, time.perf_counter()))

        setattr(owner, method, timed)

    def wrap_transactions(self, journal: j.Journal) -> None:
        original = journal.atomic

        @contextmanager
        def timed() -> Iterator[None]:
            outermost = self._depth == 0
            self._depth += 1
            start = time.perf_counter()
            try:
                with original():
                    yield
            finally:
                self._depth -= 1
                if outermost:
                    self.spans.append(("journal_commit", start, time.perf_counter()))

        journal.atomic = timed  # type: ignore[method-assign]

    def take(self, start: float, until: float) -> dict[str, float]:
        """Seconds per step between `start` and `until`, plus how many commits; then forget."""
        steps: dict[str, float] = {}
        for label, begin, end in self.spans:
            if begin >= start and end <= until:
                steps[label] = steps.get(label, 0.0) + end - begin
                if label == "journal_commit":
                    steps["commits"] = steps.get("commits", 0.0) + 1
        self.spans.clear()
        return steps


class AnsweringBoard(TimedBoard):
    """Records when the screen answered (a refusal is an answer without a door)."""

    def __init__(self, numbers: list[int]) -> None:
        super().__init__(numbers)
        self.answered_at: list[tuple[float, str]] = []

    def show(self, message: str) -> None:
        self.answered_at.append((time.perf_counter(), message))
        super().show(message)


def instrumented_agent(journal_path: Path, board: AnsweringBoard, clock: StepClock
                       ) -> LockerAgent:
    agent = LockerAgent(LOCKER, board, "127.0.0.1", closed_port(), journal_path,
                        settings=AgentSettings())
    agent.start()
    verifier = agent._verifier  # the bench's window on the worker: offline, no sync replaces it
    clock.wrap(verifier, "check_qr", "verify_qr")
    clock.wrap(verifier, "check_pin", "check_pin")
    clock.wrap(agent.journal, "use_of", "spent_lookup")
    clock.wrap_transactions(agent.journal)
    return agent


class Presenter:
    """One resident after another at the offline locker: present, wait for the door (or the
    screen), take the parcel, close the door, let the agent finish journaling."""

    def __init__(self, agent: LockerAgent, board: AnsweringBoard, clock: StepClock,
                 gap_s: float) -> None:
        self.agent, self.board, self.clock, self.gap_s = agent, board, clock, gap_s

    def _settled(self, seq: int) -> None:
        wait(lambda: self.agent.journal.last_seq(self.agent.boot_id) >= seq, 10,
             f"journal reaches seq {seq}")
        time.sleep(self.gap_s)

    def _present(self, kind: str, value: str) -> None:
        if kind == "qr":
            self.board.scan(value)
        else:
            self.board.type_pin(value)

    def pickup(self, kind: str, value: str, door: int) -> tuple[float, dict[str, float]]:
        seq = self.agent.journal.last_seq(self.agent.boot_id)
        start = time.perf_counter()
        self._present(kind, value)
        opened = wait(lambda: self.board.opened_at.get(door), 5, f"door {door} opens")
        self.board.opened_at.pop(door)
        self.board.close_door(door, occupied=False)
        self._settled(seq + 3)  # offline_pickup, door_opened, door_closed
        return opened - start, self.clock.take(start, opened)

    def refusal(self, kind: str, value: str, reason: str) -> tuple[float, dict[str, float]]:
        seq = self.agent.journal.last_seq(self.agent.boot_id)
        before = len(self.board.answered_at)
        start = time.perf_counter()
        self._present(kind, value)
        wait(lambda: len(self.board.answered_at) > before, 5, "screen answers")
        answered, message = self.board.answered_at[before]
        if message != f"refused: {reason}":
            raise AssertionError(f"expected a refusal ({reason}), the screen said {message!r}")
        self._settled(seq + 1)  # credential_presented (refused)
        return answered - start, self.clock.take(start, answered)


def offline_check(args: argparse.Namespace, journal_dir: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    credentials = LockerCredentials(args.compartments, args.revoked, rng)
    journal_path = journal_dir / f"{LOCKER}.sqlite3"
    seed_spent(journal_path, args.spent)
    samples: dict[str, list[tuple[float, dict[str, float]]]] = {
        "qr": [], "pin": [], "pin_after_wrong": [], "wrong_pin": [], "spent_qr": []}
    for _round in range(args.rounds):
        store_sync(journal_path, credentials.next_round())
        board = AnsweringBoard(list(range(1, args.compartments + 1)))
        clock = StepClock()
        agent = instrumented_agent(journal_path, board, clock)
        resident = Presenter(agent, board, clock, args.gap)
        try:
            doors = list(range(1, args.compartments + 1))
            rng.shuffle(doors)
            for door in doors:
                token, pin = credentials.tokens[door], credentials.pins[door]
                samples["qr"].append(resident.pickup("qr", token, door))
                if door % 2:  # half the residents mistype first: the right PIN resets the count
                    samples["wrong_pin"].append(
                        resident.refusal("pin", credentials.wrong_pin(), "unknown_code"))
                    samples["pin_after_wrong"].append(resident.pickup("pin", pin, door))
                else:
                    samples["pin"].append(resident.pickup("pin", pin, door))
                if door % 4 == 0:  # a photo of a QR code already used
                    samples["spent_qr"].append(resident.refusal("qr", token, "already_used"))
        finally:
            agent.stop()
    journal = j.Journal(journal_path)
    entries = journal.unacked_count()
    journal.close()
    return {
        "setup": {"compartments": args.compartments, "live_pins": args.compartments,
                  "revoked_credentials": args.revoked, "revoked_parcels": args.revoked // 6,
                  "spent_at_start": args.spent, "rounds": args.rounds,
                  "journal_entries_at_end": entries, "journal_dir": str(journal_dir),
                  "journal_filesystem": filesystem_of(journal_dir)},
        "latency": {kind: describe(values) for kind, values in samples.items()},
        "steps_alone": steps_alone(credentials, journal_dir, args.micro),
    }


STEPS = ("verify_qr", "check_pin", "spent_lookup", "journal_commit")


def describe(values: list[tuple[float, dict[str, float]]]) -> dict[str, Any]:
    """Latency percentiles, and the median cost of each step within them; `other` is the rest
    (queue hand-over to the worker thread, models, screen, board call)."""
    totals = [total for total, _ in values]
    steps: dict[str, Any] = {}
    for label in STEPS:
        times = [parts.get(label, 0.0) for _, parts in values]
        if any(times):
            steps[f"{label}_ms"] = {"p50": round(median(times) * 1000, 3),
                                    "p99": round(bench_lockers.pct(times, 99) * 1000, 3)}
    others = [total - sum(v for k, v in parts.items() if k in STEPS) for total, parts in values]
    steps["other_ms"] = {"p50": round(median(others) * 1000, 3),
                         "p99": round(bench_lockers.pct(others, 99) * 1000, 3)}
    commits = sorted(int(parts.get("commits", 0)) for _, parts in values)
    return {**summary(totals), "journal_commits_before_answer": commits[len(commits) // 2],
            "steps": steps}


def median(values: list[float]) -> float:
    return bench_lockers.pct(values, 50)


def repeat(action: Callable[[], object], times: int) -> dict[str, float]:
    durations = []
    for _ in range(times):
        start = time.perf_counter()
        action()
        durations.append(time.perf_counter() - start)
    return summary(durations)


def steps_alone(credentials: LockerCredentials, journal_dir: Path, times: int
                ) -> dict[str, Any]:
    """Each step on its own, in this thread, `times` times: the floor under the latencies."""
    sync = credentials.next_round()
    verifier = OfflineVerifier(sync, LOCKER)
    token, pin, wrong = credentials.tokens[1], credentials.pins[1], credentials.wrong_pin()
    now, tolerance = time.time(), p.CLOCK_TOLERANCE_S
    scratch = j.Journal(journal_dir / "scratch.sqlite3")
    boot = scratch.start_boot()
    body = p.OfflinePickup(presentation_id=uuid.uuid4(), credential_kind="qr",
                           credential_id=new_jti(), parcel_ref="P-1", compartment=1,
                           verified_at=datetime.now(UTC), token=token)
    try:
        return {
            "verify_qr_token": repeat(lambda: verifier.check_qr(token, now, 300), times),
            "check_pin_right": repeat(lambda: verifier.check_pin(pin, now, tolerance), times),
            "check_pin_wrong": repeat(lambda: verifier.check_pin(wrong, now, tolerance), times),
            "journal_commit_offline_pickup": repeat(
                lambda: scratch.append_event(boot, lambda seq: p.make_event(
                    LOCKER, boot, seq, body)), times // 4),
            "journal_commit_small_meta": repeat(
                lambda: scratch.set_meta("keypad_throttle", {"failures": 0}), times // 4),
        }
    finally:
        scratch.close()


# ---------------------------------------------------------------- 2. replay

REPLAY_DB = "relayops_bench_offline"
MODEL = "bench-offline"
DAY = timedelta(hours=24)


class Fleet:
    """Lockers on PostgreSQL, each full of ready parcels, stocked yesterday morning through the
    services (announce, deposit, door events) as `bench/lockers.py` stocks its locker."""

    def __init__(self, ctx: Any, compartments: int) -> None:
        self.ctx, self.compartments = ctx, compartments
        self.day_start = datetime.now(UTC) - DAY
        self.yesterday = dataclasses.replace(ctx, clock=lambda: self.day_start - timedelta(hours=2))

    def locker(self, code: str) -> int:
        from relay_ops.services import locker_registry
        from relay_ops.services.principal import SYSTEM

        site_id = int(locker_registry.register_locker(self.ctx, SYSTEM, {
            "code": code, "name": "bench", "locker_model": MODEL, "address": "x",
            "postcode": "1", "city": "x", "latitude": 47.0, "longitude": -1.0})["id"])
        bench_lockers.stock(self.yesterday, code, site_id, self.compartments)
        self._synced_before_the_outage(code, site_id)
        return site_id

    def _synced_before_the_outage(self, code: str, site_id: int) -> None:
        """The commands written while stocking were delivered before the link went down."""
        from sqlalchemy import update

        from relay_ops.db.models import LockerLink, OutboxMessage

        with self.ctx.db.transaction() as session:
            session.execute(update(OutboxMessage).where(OutboxMessage.target == code)
                            .values(status="done"))
            link = session.get(LockerLink, site_id)
            link.credential_version_held = link.credential_version_sent

    def day_bodies(self, site_id: int) -> list[tuple[datetime, p.EventBody]]:
        """A day offline: every parcel picked up (QR and PIN in turn) with its door events,
        a wrong PIN every 4 pickups, a door left open every 15, a fault every 20; spread
        evenly over the last 24 hours."""
        rows = self._ready_parcels(site_id)
        bodies: list[p.EventBody] = []
        for k, (_parcel, number, door, pin_id, jti, token) in enumerate(rows):
            if k % 4 == 0:
                bodies.append(p.CredentialPresented(presentation_id=uuid.uuid4(), kind="pin",
                                                    result="refused", reason="unknown_code"))
            by_qr = k % 2 == 0
            credential_id = jti if by_qr else pin_id
            bodies.append(p.OfflinePickup(
                presentation_id=uuid.uuid4(), credential_kind="qr" if by_qr else "pin",
                credential_id=credential_id, parcel_ref=number, compartment=door,
                verified_at=self.day_start, token=token if by_qr else None))
            bodies.append(p.DoorOpened(compartment=door, purpose="pickup",
                                       credential_id=credential_id))
            if k % 15 == 7:
                bodies.append(p.DoorLeftOpen(compartment=door, open_seconds=120,
                                             opened_for="pickup"))
            bodies.append(p.DoorClosed(compartment=door, occupied=False, opened_for="pickup",
                                       credential_id=credential_id, open_seconds=20))
            if k % 20 == 10:
                bodies.append(p.Fault(code="scanner_unreadable", detail="bench"))
        step = DAY / (len(bodies) + 1)
        timed = []
        for index, body in enumerate(bodies):
            ts = self.day_start + step * (index + 1)
            if isinstance(body, p.OfflinePickup):
                body = body.model_copy(update={"verified_at": ts})
            timed.append((ts, body))
        return timed

    def _ready_parcels(self, site_id: int) -> list[tuple[int, str, int, str, str, str]]:
        from sqlalchemy import select

        from relay_ops.db.models import Parcel, PickupCredential
        from relay_ops.services import locker_sync, locker_tokens

        with self.ctx.db.read() as session:
            rows = session.execute(
                select(Parcel, PickupCredential)
                .join(PickupCredential, PickupCredential.parcel_id == Parcel.id)
                .where(Parcel.site_id == site_id, PickupCredential.holder == "recipient",
                       PickupCredential.used_at.is_(None))
                .order_by(Parcel.id)).all()
            found = [(parcel.id, parcel.tracking_number, parcel.compartment.number,
                      locker_sync.pin_credential_id(credential), str(credential.token_jti))
                     for parcel, credential in rows]
        return [(*row, locker_tokens.qr_token(self.ctx, row[0]) or "") for row in found]

    def snapshot(self, entries: int) -> p.StateSnapshot:
        """What the agent reports when the link is back: every door closed and empty."""
        return p.StateSnapshot(
            compartments=[p.CompartmentState(number=n, door="closed", occupied=False,
                                             in_service=True)
                          for n in range(1, self.compartments + 1)],
            in_service=True, credential_version=None, acked_seq=0, unacked_events=entries,
            started_at=self.day_start - DAY, agent_version="bench")


def encoded_day(fleet: Fleet, code: str, site_id: int, boot: str) -> list[bytes]:
    """The day's journal as the bridge receives it, the reconnect's snapshot last."""
    timed = fleet.day_bodies(site_id)
    timed.append((datetime.now(UTC), fleet.snapshot(len(timed))))
    return [p.encode(p.make_event(code, boot, seq, body, ts=ts))
            for seq, (ts, body) in enumerate(timed, start=1)]


def apply_like_the_bridge(ctx: Any, code: str, boot: str, payloads: list[bytes]) -> int:
    """What `Bridge._apply` does with one batch: parse, then one `apply_events` transaction."""
    from relay_ops.services import locker_events

    envelopes = [p.parse_message(p.evt_topic(code), raw) for raw in payloads]
    result = locker_events.apply_events(ctx, code, boot, [
        locker_events.LockerEvent(e.seq, e.type, e.body.model_dump(mode="json"), e.ts)
        for e in envelopes if isinstance(e, p.EventEnvelope)])
    if result.held_back or result.applied != len(payloads):
        raise AssertionError(f"{code}: {result.applied} of {len(payloads)} applied")
    return result.applied


def replay(ctx: Any, journals: dict[str, tuple[str, list[bytes]]], batch: int
           ) -> dict[str, Any]:
    """One worker, like one bridge process: a batch of each locker in turn (the broker hands
    the bridge at most its in-flight window of messages before they are acknowledged)."""
    entries = sum(len(payloads) for _, payloads in journals.values())
    batches: list[float] = []
    done_at: dict[str, float] = {}
    start = time.perf_counter()
    for offset in range(0, max(len(payloads) for _, payloads in journals.values()), batch):
        for code, (boot, payloads) in journals.items():
            chunk = payloads[offset:offset + batch]
            if not chunk:
                continue
            began = time.perf_counter()
            apply_like_the_bridge(ctx, code, boot, chunk)
            batches.append(time.perf_counter() - began)
            if offset + batch >= len(payloads):
                done_at[code] = time.perf_counter() - start
    elapsed = time.perf_counter() - start
    return {"lockers": len(journals), "entries": entries, "batch": batch,
            "entries_per_locker": round(entries / len(journals), 1),
            "seconds": round(elapsed, 2), "entries_per_s": round(entries / elapsed, 1),
            "last_locker_done_s": round(max(done_at.values()), 2),
            "batch_ms": summary(batches)}


def converged(ctx: Any, codes: list[str]) -> dict[str, Any]:
    """After the replay: every parcel of these lockers picked up once, every door free."""
    from sqlalchemy import func, select

    from relay_ops.db.models import Compartment, LockerAlert, Parcel, ParcelEvent, Site

    with ctx.db.read() as session:
        site_ids = list(session.scalars(select(Site.id).where(Site.code.in_(codes))))
        states = dict(session.execute(select(Parcel.state, func.count()).where(
            Parcel.site_id.in_(site_ids)).group_by(Parcel.state)).all())
        doubled = session.scalar(select(func.count()).select_from(
            select(ParcelEvent.parcel_id).join(Parcel, Parcel.id == ParcelEvent.parcel_id)
            .where(Parcel.site_id.in_(site_ids), ParcelEvent.action == "pick_up")
            .group_by(ParcelEvent.parcel_id).having(func.count() > 1).subquery()))
        busy = session.scalar(select(func.count()).select_from(Compartment).where(
            Compartment.site_id.in_(site_ids), Compartment.state != "free"))
        alerts = dict(session.execute(select(LockerAlert.kind, func.count()).where(
            LockerAlert.site_id.in_(site_ids)).group_by(LockerAlert.kind)).all())
    return {"parcels_by_state": states, "picked_up_twice": doubled,
            "compartments_not_free": busy, "alerts": alerts,
            "ok": set(states) == {"picked_up"} and doubled == 0 and busy == 0}


def agent_journal(path: Path, fleet: Fleet, code: str, site_id: int,
                  identity: LockerIdentity) -> tuple[str, int]:
    """A real agent's journal holding the day, unacknowledged, as an earlier boot: the agent
    started on it replays it first when it reaches the broker (then its own snapshot)."""
    journal = j.Journal(path, encode=identity.sign)
    boot = journal.start_boot()
    timed = fleet.day_bodies(site_id)
    with journal.atomic():  # setup only: the agent journaled these one by one during the day
        for ts, body in timed:
            journal.append_event(boot, lambda seq, b=body, t=ts: p.make_event(
                code, boot, seq, b, ts=t))
    journal.close()
    return boot, len(timed)


def end_to_end(ctx: Any, url: str, fleet: Fleet, codes: list[str], journal_dir: Path
               ) -> dict[str, Any]:
    """Agents with a day's journal each connect at once to a private Mosquitto (configured as
    config/mosquitto.conf); a `relayops-bridge` process applies their replays on PostgreSQL.
    Timed from the agents' start until every day entry is committed (the cursors), then until
    every locker's new-boot snapshot is reconciled (it waits for the replay, then a fresh one
    is asked: services.locker_snapshot.state_snapshot)."""
    from sqlalchemy import select

    from firmware_bridge.agent.drivers import SimulatedBoard
    from relay_ops.db.models import LockerEventCursor, LockerLink, OutboxMessage, Site

    journals = {}
    identities: dict[str, LockerIdentity] = {}
    for code in codes:
        with ctx.db.read() as session:
            site_id = int(session.scalar(select(Site.id).where(Site.code == code)))
        identities[code] = LockerIdentity.from_bundle(
            locker_identity.provision(ctx, SYSTEM, site_id))
        journals[code] = (site_id, *agent_journal(journal_dir / f"{code}.sqlite3", fleet, code,
                                                  site_id, identities[code]))
    broker = bench_lockers.PrivateMosquitto(journal_dir)
    bench_lockers.BROKER = ("127.0.0.1", broker.port)
    agents: list[LockerAgent] = []
    bridge = bench_lockers.start_bridge(url, f"offbench-{uuid.uuid4().hex[:6]}",
                                        journal_dir / "bridge.log")
    try:
        def applied() -> dict[str, int]:
            with ctx.db.read() as session:
                return {code: int(session.scalar(select(LockerEventCursor.applied_seq).where(
                    LockerEventCursor.site_id == site_id, LockerEventCursor.boot_id == boot))
                    or 0) for code, (site_id, boot, _n) in journals.items()}

        start = time.perf_counter()
        for code in codes:
            agent = LockerAgent(code, SimulatedBoard(list(range(1, fleet.compartments + 1))),
                                "127.0.0.1", broker.port, journal_dir / f"{code}.sqlite3",
                                identity=identities[code])
            agent.start()
            agents.append(agent)
        def snapshots_not_reconciled() -> set[str]:
            with ctx.db.read() as session:
                waiting = set(session.scalars(select(Site.code).join(
                    LockerLink, LockerLink.site_id == Site.id).where(
                    Site.code.in_(codes), LockerLink.snapshot_waiting_boot.is_not(None))))
                # `done`: the agent journaled the fresh snapshot before its cmd_result, and a
                # boot's events apply in seq order
                asked = set(session.scalars(select(OutboxMessage.target).where(
                    OutboxMessage.target.in_(codes), OutboxMessage.name == "request_snapshot",
                    OutboxMessage.status.in_(("pending", "sent", "accepted")))))
            return waiting | asked

        done_at: dict[str, float] = {}
        deadline = start + 600
        while len(done_at) < len(codes) and time.perf_counter() < deadline:
            for code, seq in applied().items():
                if code not in done_at and seq >= journals[code][2]:
                    done_at[code] = time.perf_counter() - start
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
        while snapshots_not_reconciled() and time.perf_counter() < deadline:
            time.sleep(0.2)
        reconciled = not snapshots_not_reconciled()
        reconciled_s = time.perf_counter() - start
    finally:
        for agent in agents:
            agent.stop()
        bridge.terminate()
        bridge.wait(10)
        broker.stop()
        bench_lockers.BROKER = ("127.0.0.1", 1883)
    entries = sum(n for _site, _boot, n in journals.values())
    return {"lockers": len(codes), "entries": entries,
            "all_applied": len(done_at) == len(codes),
            "seconds": round(elapsed, 2), "entries_per_s": round(entries / elapsed, 1),
            "first_locker_done_s": round(min(done_at.values(), default=elapsed), 2),
            "last_locker_done_s": round(max(done_at.values(), default=elapsed), 2),
            "snapshots_reconciled": reconciled,
            "snapshots_reconciled_s": round(reconciled_s, 2)}


def replay_bench(args: argparse.Namespace, journal_dir: Path) -> dict[str, Any]:
    from relay_ops.services import accounts
    from relay_ops.services.principal import SYSTEM

    url = bench_lockers.fresh_database(args.database)
    ctx = bench_lockers.backend(url, {MODEL: args.compartments})
    accounts.create_carrier(ctx, SYSTEM, code="bench", name="Bench")
    fleet = Fleet(ctx, args.compartments)
    tag = uuid.uuid4().hex[:4]
    runs: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        plans = [("one_locker_batch_20", 1, 20), ("one_locker_batch_200", 1, 200),
                 (f"{args.lockers}_lockers_together_batch_20", args.lockers, 20)]
        for index, (name, count, batch) in enumerate(plans):
            journals = {}
            for n in range(count):
                code = f"OFF-{tag}-{index}-{n}"
                boot = f"day-{uuid.uuid4()}"
                journals[code] = (boot, encoded_day(fleet, code, fleet.locker(code), boot))
            runs[name] = replay(ctx, journals, batch)
            runs[name]["converged"] = converged(ctx, list(journals))
        if args.e2e_lockers:
            codes = [f"OFF-{tag}-e2e-{n}" for n in range(args.e2e_lockers)]
            for code in codes:
                fleet.locker(code)
            runs["end_to_end"] = end_to_end(ctx, url, fleet, codes, journal_dir)
            runs["end_to_end"]["converged"] = converged(ctx, codes)
        runs["total_s_with_stocking"] = round(time.perf_counter() - started, 1)
    finally:
        ctx.db.dispose()
    return runs


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8,
                        help="part 1: rounds of one pickup by QR and one by PIN per compartment "
                        "(each round a new credential set and a new agent boot)")
    parser.add_argument("--compartments", type=int, default=60)
    parser.add_argument("--revoked", type=int, default=300, help="revoked credentials synced")
    parser.add_argument("--spent", type=int, default=300, help="spent credentials in the journal")
    parser.add_argument("--gap", type=float, default=0.02,
                        help="seconds between one resident's door closing and the next reading")
    parser.add_argument("--micro", type=int, default=2000, help="repetitions of each step alone")
    parser.add_argument("--journal-dir", type=Path, default=None,
                        help="where the agent's journal lives (default: a new temporary folder)")
    parser.add_argument("--lockers", type=int, default=50,
                        help="part 2: lockers replaying together")
    parser.add_argument("--e2e-lockers", type=int, default=10,
                        help="part 2: lockers replaying through Mosquitto and the bridge (0: no)")
    parser.add_argument("--database", default=REPLAY_DB,
                        help="PostgreSQL database DROPPED and re-created for part 2")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--skip-replay", action="store_true", help="part 1 only")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="folder for the JSON result")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    journal_dir = args.journal_dir or Path(tempfile.mkdtemp(prefix="relayops-bench-offline-"))
    journal_dir.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).isoformat(timespec="seconds")
    result: dict[str, Any] = {
        "when": when,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average": os.getloadavg()},
        "offline_check": offline_check(args, journal_dir),
    }
    if not args.skip_replay:
        result["replay"] = replay_bench(args, journal_dir)
    checks = result["offline_check"]["latency"]
    result["goals"] = {f"{kind}_p99_le_{GOAL_P99_MS:g}_ms": checks[kind]["p99_ms"] <= GOAL_P99_MS
                       for kind in ("qr", "pin", "pin_after_wrong")}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"offline-{when[:19].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
    failed = failed_checks(result.get("replay", {}))
    for name in failed:
        print(f"CHECK FAILED: {name} did not converge", file=sys.stderr)
    return 1 if failed else 0


def failed_checks(replay_runs: dict[str, Any]) -> list[str]:
    """Runs whose backend state is not the expected one (a figure without it means nothing)."""
    return [name for name, run in replay_runs.items() if isinstance(run, dict) and (
        not run["converged"]["ok"] or run.get("all_applied") is False
        or run.get("snapshots_reconciled") is False)]


if __name__ == "__main__":
    sys.exit(main())
