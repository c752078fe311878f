"""The scheduler's leader lock, and the operator commands."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import OutboxMessage
from relay_ops.worker.config import redis_of
from relay_ops.worker.scheduler import Scheduler
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


def test_operators_follow_jobs_from_the_command_line(app: Flask, world: World) -> None:
    world.ready("SCHED0000002")
    runner = app.test_cli_runner()
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
