"""The scheduler's leader lock, and the operator commands."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from flask.testing import FlaskCliRunner
from rq import Queue
from sqlalchemy import select

from relay_ops.db.models import OutboxMessage
from relay_ops.worker.config import JobsConfig, redis_of
from relay_ops.worker.scheduler import Scheduler
from relay_ops.worker.supervise import RelayWorker
from tests.support import World


def test_one_scheduler_acts_and_a_second_one_stands_by(app: Flask, world: World) -> None:
    redis = redis_of(app)
    assert redis is not None
    active = Scheduler(world.ctx, app.config, redis)
    standby = Scheduler(world.ctx, app.config, redis)
    world.ready("SCHED0000001")
    standby_first = Scheduler(world.ctx, app.config, redis)
    active.tick()
    standby.tick()
    standby_first.tick()
    assert (active.leading, standby.leading, standby_first.leading) == (True, False, False)
    with world.ctx.db.read() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {"dispatched"}
    # The active one stops: its lock is released and a standby takes over at its next tick.
    active.stop()
    active._resign()
    standby.tick()
    assert standby.leading
    standby._resign()


def test_operators_follow_jobs_from_the_command_line(
    app: Flask, world: World, cli_runner: FlaskCliRunner
) -> None:
    world.ready("SCHED0000002")
    runner = cli_runner
    status = runner.invoke(args=["jobs", "status"])
    assert status.exit_code == 0 and '"mode": "rq"' in status.output
    assert '"pending": 2' in status.output
    failed = runner.invoke(args=["jobs", "failed"])
    assert failed.exit_code == 0 and "0 failed job(s)" in failed.output
    missing = runner.invoke(args=["jobs", "retry", "nope"])
    assert missing.exit_code == 1 and "not-found" in missing.output
    sweep = runner.invoke(args=["sweep", "reminders"])
    assert sweep.exit_code == 0 and sweep.output.strip() == "reminders: 0"
    unknown = runner.invoke(args=["sweep", "everything"])
    assert unknown.exit_code == 2 and "personal-data-purge" in unknown.output


def test_a_sweep_still_waiting_on_a_busy_queue_is_not_queued_again(
        app: Flask, world: World) -> None:
    redis = redis_of(app)
    assert redis is not None
    jc = JobsConfig.from_config(app.config)
    sweeps = Queue(jc.sweeps_queue, connection=redis)
    scheduler = Scheduler(world.ctx, app.config, redis)

    def all_due_again() -> None:
        for sweep in scheduler.cron.get_jobs():
            sweep.next_enqueue_time = datetime(2000, 1, 1, tzinfo=UTC)

    scheduler.tick()
    waiting = sweeps.count
    assert waiting == len(scheduler.cron.get_jobs()) > 0
    all_due_again()  # the workers are busy: no sweep has started
    scheduler.tick()
    scheduler.tick()
    assert sweeps.count == waiting
    # Once a worker has run them, they are queued again when due.
    RelayWorker([jc.sweeps_queue], connection=redis, name=f"{jc.prefix}-w").work(burst=True)
    assert sweeps.count == 0
    all_due_again()
    scheduler.tick()
    assert sweeps.count == waiting
    scheduler._resign()
