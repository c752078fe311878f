"""Background work: the job handlers, the periodic sweeps, and the in-process runner of the
embedded default.

Jobs take ids, never objects or personal data, and are idempotent. They reach this module
through the outbox (``relay_ops.outbox``): a job row is written in the transaction that made
the work necessary and run after the commit, by ``InProcessRunner`` here or by RQ workers
(``relay_ops.worker``), which call the same handlers and sweeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from relay_ops import outbox, runner_lock
from relay_ops.clock import Clock
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import Sender, build_sender
from relay_ops.runner_lock import RunnerLock
from relay_ops.services import (
    delivery,
    expiry,
    forecast_sweep,
    home_delivery,
    locker_dropoff,
    locker_take_back,
    outbound_exceptions,
    reminders,
    reservations,
    retention,
)
from relay_ops.services.context import Ctx
from relay_ops.services.notify import SEND_JOB

log = logging.getLogger(__name__)

Sweep = Callable[[Ctx, Mapping[str, Any]], int]


def senders_from(config: Mapping[str, Any], clock: Clock) -> delivery.SenderFactory:
    built: dict[Channel, Sender] = {}

    def sender_for(channel: Channel) -> Sender:
        if channel not in built:
            built[channel] = build_sender(channel, config, clock)
        return built[channel]

    return sender_for


def handlers(ctx: Ctx, config: Mapping[str, Any]) -> dict[str, outbox.JobHandler]:
    sender_for = senders_from(config, ctx.clock)

    def send_notification(payload: dict[str, Any]) -> None:
        delivery.deliver(ctx, int(payload["notification_id"]), sender_for)

    return {SEND_JOB: send_notification}


def give_up(ctx: Ctx, name: str, payload: dict[str, Any], error: str) -> None:
    """A job failed for good: record it where people look (the notification's status)."""
    if name == SEND_JOB:
        delivery.give_up(ctx, int(payload["notification_id"]), error)


def revive(session: Session, name: str, payload: dict[str, Any]) -> None:
    """An operator retries a job that failed for good: what it stands for is owed again, in
    the transaction that revives its outbox row."""
    if name == SEND_JOB:
        delivery.revive(session, int(payload["notification_id"]))


# ---------------------------------------------------------------- periodic sweeps


def _expiry(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return len(expiry.expire_overdue(ctx))


def _reminders(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return len(reminders.send_due(ctx))


def _purge(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return len(retention.purge_due(ctx, int(config["PERSONAL_DATA_RETENTION_DAYS"])))


def _forecast(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return forecast_sweep.forecast_all(ctx)["sites"]


def _outbound_overdue(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return len(outbound_exceptions.raise_overdue_alerts(ctx))


def _locker_take_back(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return locker_take_back.raise_take_back_alerts(ctx)


def _home_delivery_end_of_day(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return len(home_delivery.end_of_day(ctx))


def _place_reservations(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return sum(reservations.sweep(ctx).values())


def _locker_reservations(ctx: Ctx, config: Mapping[str, Any]) -> int:
    return locker_dropoff.expire_stale_reservations(ctx)


# Every sweep is safe to run twice or concurrently (row locks, unique notification keys).
# Their intervals are SWEEP_INTERVALS in the settings. RQ deployments add "outbox-redispatch"
# (relay_ops.worker.relay), which only makes sense with a queue.
SWEEPS: dict[str, Sweep | None] = {
    "expiry": _expiry,
    "reminders": _reminders,
    "personal-data-purge": _purge,
    # Occupancy forecasts of every site (docs/forecast.md); announcements refresh theirs.
    "forecast": _forecast,
    # Idle drop-off sessions time out; the compartments they still held are released.
    "locker-reservations": _locker_reservations,
    # Places held for rerouted parcels that did not come (their day + grace), or left.
    "place-reservations": _place_reservations,
    # Sent parcels their carrier has not taken within its agreed delay: one alert each.
    "outbound-overdue": _outbound_overdue,
    # Locker doors still holding what a producer or a sender should have taken back.
    "locker-take-back": _locker_take_back,
    # Home deliveries whose day is over: the parcel back on its shelf, deadline extended.
    "home-delivery-end-of-day": _home_delivery_end_of_day,
}


def sweep_intervals(config: Mapping[str, Any], names: list[str]) -> dict[str, float]:
    """Seconds between runs of each named sweep that is switched on."""
    intervals = config["SWEEP_INTERVALS"]
    return {n: float(intervals[n]) for n in names if float(intervals.get(n, 0) or 0) > 0}


def run_sweep(ctx: Ctx, config: Mapping[str, Any], name: str) -> int:
    sweep = SWEEPS.get(name)
    if sweep is None:
        raise LookupError(f"no sweep {name!r}")
    count = sweep(ctx, config)
    log.info("sweep %s: %d", name, count)
    return count


def active_sweeps() -> list[str]:
    return [name for name, sweep in SWEEPS.items() if sweep is not None]


class InProcessRunner(threading.Thread):
    """Runs due jobs and the periodic sweeps inside the web process (the embedded default).

    With a ``lock`` (one per deployment, ``relay_ops.runner_lock``), it runs only while it
    holds the lock, and stands by otherwise: every gunicorn worker starts one, one runs.
    Production runs the same handlers and sweeps in RQ workers instead.
    """

    def __init__(self, ctx: Ctx, config: Mapping[str, Any], interval_s: float = 1.0,
                 lock: RunnerLock | None = None) -> None:
        super().__init__(name="relay-ops-jobs", daemon=True)
        self.ctx, self.config, self.interval_s, self.lock = ctx, config, interval_s, lock
        self.run_jobs = partial(outbox.run_pending_jobs, ctx.db, handlers(ctx, config), ctx.now)
        self.intervals = sweep_intervals(config, active_sweeps())
        self.last_run: dict[str, float] = {}
        self.active = lock is None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval_s):
                self.run_once()
        finally:
            if self.lock is not None:
                self.lock.release()

    def run_once(self) -> None:
        if self.lock is not None:
            self.active = self.lock.acquire()
            if not self.active:
                return  # another process's runner holds the lock
        try:
            self.run_jobs()
        except Exception:  # the runner must outlive one bad round; the error is logged
            log.exception("background jobs failed; retrying in %ss", self.interval_s)
        for name, every in self.intervals.items():
            if time.monotonic() - self.last_run.get(name, -every) < every:
                continue
            self.last_run[name] = time.monotonic()
            try:
                run_sweep(self.ctx, self.config, name)
            except Exception:  # one failing sweep must not stop the others
                log.exception("sweep %s failed; next run in %ss", name, every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


# ---------------------------------------------------------------- the web process's runner

RUNNER_KEY = "relay_ops.jobs_runner"


def start_in_web(app: Flask) -> InProcessRunner | None:
    """The embedded default under gunicorn (its ``post_worker_init`` hook, in
    config/gunicorn.conf.py): each web worker starts a runner, the runner lock lets one run.
    Nothing with RQ: there the scheduler and workers run the jobs."""
    if not app.config["JOBS_IN_PROCESS"] or RUNNER_KEY in app.extensions:
        return None
    ctx: Ctx = app.extensions["relay_ops"]
    runner = InProcessRunner(ctx, app.config, lock=runner_lock.for_database(ctx.db))
    app.extensions[RUNNER_KEY] = runner
    runner.start()
    return runner


def stop_in_web(app: Flask) -> None:
    runner: InProcessRunner | None = app.extensions.pop(RUNNER_KEY, None)
    if runner is not None:
        runner.stop()


def runner_state(app: Flask) -> str:
    """For ``/ready``: ``active`` (this process runs the jobs), ``standby`` (its runner waits
    for another process's), ``elsewhere`` (no runner here; another process holds the lock), or
    ``none``: nothing runs the jobs."""
    runner: InProcessRunner | None = app.extensions.get(RUNNER_KEY)
    if runner is not None:
        return "active" if runner.active else "standby"
    ctx: Ctx = app.extensions["relay_ops"]
    return "elsewhere" if runner_lock.for_database(ctx.db).held_elsewhere() else "none"
