"""A shop says when it opens, operators change it, and a resident's code is never skipped
silently (issue 13, item 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select, update

from relay_ops import outbox
from relay_ops.db.models import Notification, ParcelEvent, Site
from relay_ops.jobs import handlers
from tests.conftest import Clock
from tests.support import HOURS, World, is_problem, shop

WEEKDAYS = {"mon": [["09:00", "12:00"]], "tue": [["09:00", "12:00"]]}


def run_jobs(app: Flask, world: World) -> int:
    return outbox.run_pending_jobs(world.ctx.db, handlers(world.ctx, app.config), world.ctx.now)


def notifications(world: World) -> list[tuple[str, str, str | None]]:
    with world.ctx.db.read() as session:
        rows = session.scalars(select(Notification).order_by(Notification.id))
        return [(n.kind, n.status, n.error) for n in rows]


def new_shop(**extra: Any) -> dict[str, Any]:
    return shop("mairie", 47.59, -1.15, [("A1", "M", 8)], **extra)


def test_a_shop_is_created_with_hours_that_open(world: World) -> None:
    without = new_shop()
    del without["opening_hours"]
    refused = world.operator.post("/sites", json=without)
    assert is_problem(refused, 422, "validation-failed")
    assert "opening_hours" in refused.json["detail"]
    for never in ({}, {"mon": []}):
        assert is_problem(world.operator.post("/sites", json=new_shop(opening_hours=never)),
                          422, "validation-failed")
    assert world.operator.post("/sites", json=new_shop(opening_hours=WEEKDAYS)).status_code == 201
    locker = dict(without, code="casier", kind="locker", locations=[])
    assert world.operator.post("/sites", json=locker).json["opening_hours"] == "24/7"


def test_an_operator_sets_a_sites_hours(world: World, clock: Clock) -> None:
    path = f"/sites/{world.other_shop_id}/opening-hours"
    # 09:00 UTC on Tuesday: 10:00 in Paris; Monday-only hours close the shop now.
    closed = world.operator.put(path, json={"opening_hours": {"mon": [["09:00", "19:00"]]}})
    assert closed.status_code == 200 and closed.json["opening_hours"] == {
        "mon": [["09:00", "19:00"]]}
    listed = world.anonymous.get("/sites", open_now="true").json["items"]
    assert [s["code"] for s in listed] == ["bourg"]
    assert world.operator.put(path, json={"opening_hours": "24/7"}).status_code == 200
    assert len(world.anonymous.get("/sites", open_now="true").json["items"]) == 2
    assert is_problem(world.operator.put(path, json={"opening_hours": {}}), 422,
                      "validation-failed")
    assert is_problem(world.operator.put(path, json={"opening_hours": {"lundi": []}}), 422,
                      "invalid-request")
    assert is_problem(world.other_shopkeeper.put(path, json={"opening_hours": HOURS}), 403,
                      "forbidden")
    assert is_problem(world.operator.put("/sites/999/opening-hours",
                                         json={"opening_hours": HOURS}), 404, "not-found")


def test_a_shop_left_without_hours_fails_its_messages_visibly_until_they_are_set(
    app: Flask, world: World, clock: Clock
) -> None:
    # A shop created before hours were required: stored with none.
    with world.ctx.db.transaction() as session:
        session.execute(update(Site).where(Site.id == world.shop_id).values(opening_hours={}))
    parcel = world.ready("HRS000000001")
    run_jobs(app, world)
    sent = notifications(world)
    assert [(kind, status) for kind, status, _ in sent] == [("ready", "failed")] * 2
    assert all("no opening hours" in error and "opening-hours" in error for *_, error in sent)
    operator_view = world.operator.get(f"/parcels/{parcel['id']}/notifications").json["items"]
    assert {n["status"] for n in operator_view} == {"failed"}
    assert not Path(app.config["NOTIFY_FILE_PATH"]).exists()  # nothing went out

    clock.advance(days=2)  # Thursday 3 December
    world.sign_in_again()
    answer = world.operator.put(f"/sites/{world.shop_id}/opening-hours",
                                json={"opening_hours": HOURS})
    assert answer.status_code == 200
    assert run_jobs(app, world) == 2
    assert [(k, s) for k, s, _ in notifications(world)] == [
        ("ready", "failed"), ("ready", "failed"), ("ready", "sent"), ("ready", "sent")]
    lines = [json.loads(x) for x in Path(app.config["NOTIFY_FILE_PATH"]).read_text().splitlines()]
    code = world.code_of(parcel["id"])
    assert len(lines) == 2 and all(code in x["body"] for x in lines)
    # The deadline nobody was told (41 days out) is counted from now: 10 days, as decided.
    again = world.shopkeeper.get(f"/parcels/{parcel['id']}").json
    assert again["holding_deadline"].startswith("2026-12-14")  # Sunday 13: no hours
    with world.ctx.db.read() as session:
        reset = session.scalars(select(ParcelEvent).where(
            ParcelEvent.action == "deadline_reset")).one()
    assert reset.data["holding_days"] == 10
    # Setting the hours again owes nothing more.
    world.operator.put(f"/sites/{world.shop_id}/opening-hours", json={"opening_hours": HOURS})
    assert run_jobs(app, world) == 0


def test_a_ready_message_for_a_parcel_already_gone_is_still_skipped(
    app: Flask, world: World
) -> None:
    parcel = world.ready("HRS000000002")
    code = world.code_of(parcel["id"])
    assert world.pick_up(code=code).status_code == 200
    run_jobs(app, world)
    statuses = [(k, s) for k, s, _ in notifications(world)]
    assert statuses.count(("ready", "skipped")) == 2
    assert statuses.count(("picked_up", "sent")) == 2
