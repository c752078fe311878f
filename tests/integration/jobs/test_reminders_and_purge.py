"""Reminders before the deadline and the personal-data purge, driven by the sweeps (in process,
on SQLite and PostgreSQL, with the test clock)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from relay_ops import jobs, outbox
from relay_ops.db.models import Notification, Parcel, ParcelEvent, PickupCredential
from relay_ops.domain.holding import HoldingPolicy
from relay_ops.services import reminders
from relay_ops.services.context import Ctx
from tests.conftest import Clock
from tests.support import World


def run_jobs(app: Flask, world: World) -> int:
    return outbox.run_pending_jobs(world.ctx.db, jobs.handlers(world.ctx, app.config),
                                   world.ctx.now)


def sweep(app: Flask, world: World, name: str) -> int:
    return jobs.run_sweep(world.ctx, app.config, name)


def sent(app: Flask) -> list[dict[str, Any]]:
    path = Path(app.config["NOTIFY_FILE_PATH"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def kinds_sent(world: World, parcel_id: int) -> list[tuple[str, str]]:
    with world.ctx.db.read() as session:
        rows = session.execute(select(Notification.kind, Notification.status)
                               .where(Notification.parcel_id == parcel_id)
                               .order_by(Notification.id)).all()
    return [(kind, status) for kind, status in rows]


def test_a_shop_parcel_gets_one_reminder_two_days_before_its_deadline(
        app: Flask, world: World, clock: Clock) -> None:
    parcel = world.ready("REMIND000001")
    run_jobs(app, world)
    with world.ctx.db.read() as session:
        deadline = session.get(Parcel, parcel["id"]).holding_deadline  # type: ignore[union-attr]
    clock.now = deadline - timedelta(hours=49)
    assert sweep(app, world, "reminders") == 0
    clock.advance(hours=2)
    assert sweep(app, world, "reminders") == 1
    assert sweep(app, world, "reminders") == 0
    assert run_jobs(app, world) == 2
    assert kinds_sent(world, parcel["id"]) == [
        ("ready", "sent"), ("ready", "sent"), ("reminder", "sent"), ("reminder", "sent")]
    with world.ctx.db.read() as session:
        ids = session.scalars(select(Notification.id).where(Notification.kind == "reminder"))
        keys = {f"relayops-notification-{i}" for i in ids}
    reminders = [m for m in sent(app) if m["idempotency_key"] in keys]
    assert sorted(m["channel"] for m in reminders) == ["email", "sms"]
    assert all("REMIND000001" in m["body"] for m in reminders)


def test_an_extension_earns_a_reminder_for_the_new_deadline(
        app: Flask, world: World, clock: Clock) -> None:
    parcel = world.ready("REMIND000002")
    clock.advance(days=9)
    world.sign_in_again()
    assert sweep(app, world, "reminders") == 1
    assert world.shopkeeper.post(f"/parcels/{parcel['id']}/extension").status_code == 200
    assert sweep(app, world, "reminders") == 0  # the new deadline is five days further
    clock.advance(days=5)
    assert sweep(app, world, "reminders") == 1
    assert [k for k, _ in kinds_sent(world, parcel["id"])].count("reminder") == 4


def test_a_parcel_picked_up_or_checked_in_inside_its_window_gets_no_reminder(
        app: Flask, world: World, clock: Clock) -> None:
    picked = world.ready("REMIND000003")
    assert world.pick_up(code=world.code_of(picked["id"])).status_code == 200
    # A holding period shorter than its reminder window: the "ready" message said it all.
    long_window = HoldingPolicy(days=10, extension_days=5, reminder_before_hours=24 * 12)
    settings = replace(world.ctx.settings, holding={"shop": long_window})
    eager = Ctx(db=world.ctx.db, settings=settings, clock=clock)
    late = world.ready("REMIND000004")
    assert reminders.send_due(eager) == []
    clock.advance(days=9)
    assert reminders.send_due(eager) == []
    # With the usual 48 hours, the parcel still held gets its reminder, the other one none.
    assert reminders.send_due(world.ctx) == [late["id"]]
    assert "reminder" not in [k for k, _ in kinds_sent(world, picked["id"])]


def test_personal_data_is_erased_after_the_retention_period_and_history_stays(
        app: Flask, world: World, clock: Clock) -> None:
    parcel = world.ready("PURGE0000001")
    run_jobs(app, world)
    assert world.pick_up(code=world.code_of(parcel["id"])).status_code == 200
    run_jobs(app, world)
    with world.ctx.db.transaction() as session:
        # Providers echo the address in their answer; the purge must not leave that copy.
        note = session.scalars(select(Notification)).first()
        assert note is not None
        note.provider_response = "202 accepted for +33612345678 / jeanne@example.org"
    events_before = world.operator.get(f"/parcels/{parcel['id']}/events").json["items"]

    clock.advance(days=29, hours=23)
    world.sign_in_again()
    assert sweep(app, world, "personal-data-purge") == 0
    clock.advance(hours=2)
    assert sweep(app, world, "personal-data-purge") == 1
    assert sweep(app, world, "personal-data-purge") == 0

    with world.ctx.db.read() as session:
        row = session.get(Parcel, parcel["id"])
        assert row is not None
        assert (row.recipient_name, row.recipient_phone, row.recipient_email) == (None,) * 3
        assert row.personal_data_purged_at == clock.now
        assert row.state == "picked_up" and row.tracking_number == "PURGE0000001"
        assert all(c.holder_name is None for c in session.scalars(select(PickupCredential)))
        texts = " ".join(f"{n.provider_response} {n.error}"
                         for n in session.scalars(select(Notification)))
        assert "+33612345678" not in texts and "jeanne@example.org" not in texts
        assert "[purged]" in texts
        statuses = session.scalars(select(Notification.status)).all()
    assert statuses == ["sent"] * 4  # what was sent is still known
    events_after = world.operator.get(f"/parcels/{parcel['id']}/events").json["items"]
    assert events_after[:-1] == events_before
    assert events_after[-1]["action"] == "personal_data_purged"
    assert events_after[-1]["actor"] == {"kind": "system", "id": "system"}
    assert world.operator.get(f"/parcels/{parcel['id']}").json["recipient"] == {
        "name": None, "phone": None, "email": None, "locale": "fr"}


def test_parcels_still_held_are_never_purged(app: Flask, world: World, clock: Clock) -> None:
    world.ready("PURGE0000002")
    clock.advance(days=400)
    assert sweep(app, world, "personal-data-purge") == 0
    with world.ctx.db.read() as session:
        assert session.scalar(select(Parcel.recipient_phone)) == "+33612345678"
        assert session.scalar(select(ParcelEvent).where(
            ParcelEvent.action == "personal_data_purged")) is None


def test_the_embedded_runner_sends_messages_and_runs_every_sweep(
        app: Flask, world: World, clock: Clock) -> None:
    parcel = world.ready("INPROC000001")
    with world.ctx.db.transaction() as session:
        row = session.get(Parcel, parcel["id"])
        assert row is not None
        row.holding_deadline = clock.now - timedelta(minutes=1)
    runner = jobs.InProcessRunner(world.ctx, app.config)
    assert set(runner.intervals) == {"expiry", "reminders", "personal-data-purge",
                                     "locker-reservations", "forecast",
                                     "outbound-overdue", "home-delivery-end-of-day",
                                     "place-reservations", "locker-take-back"}
    runner.run_once()  # sends "ready", then the expiry sweep expires the parcel
    runner.run_once()  # sends "expired"; the sweeps are not due again yet
    assert kinds_sent(world, parcel["id"]) == [
        ("ready", "sent"), ("ready", "sent"), ("expired", "sent"), ("expired", "sent")]
    overview = world.operator.get("/jobs").json
    assert overview == {"mode": "in_process", "outbox": {
        "pending": 0, "dispatched": 0, "done": 4, "failed": 0, "oldest_waiting_since": None}}
