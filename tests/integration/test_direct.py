"""A prebuilt statement run on the driver's cursor (db/direct.py) gives what SQLAlchemy's own
execution gives: the same rows and Python values (aware UTC datetimes, JSON, a column's
defaults and the clock's time), inside the session's transaction, after its pending changes,
seen by ``before_cursor_execute`` listeners, and SQLAlchemy's errors. On both databases; on
SQLite it is SQLAlchemy's execution itself."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, bindparam, event, insert, literal, select
from sqlalchemy.exc import IntegrityError

from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import Notification, Parcel, ParcelEvent
from relay_ops.services.context import Ctx
from tests.support import World

NOTIFICATIONS = cast(Table, Notification.__table__)
EVENTS = cast(Table, ParcelEvent.__table__)


def _owe() -> Any:
    # created_at and status come from the columns' defaults (the clock's time, 'queued').
    return insert(NOTIFICATIONS).values(
        parcel_id=bindparam("parcel_id"), kind="ready", channel="sms",
        dedupe_key=bindparam("key"),
    ).returning(NOTIFICATIONS.c.id, NOTIFICATIONS.c.created_at, NOTIFICATIONS.c.status)


OWE = Prebuilt(_owe)
EVENT_DATA = Prebuilt(lambda: select(EVENTS.c.at, EVENTS.c.data, EVENTS.c.action)
                      .where(EVENTS.c.parcel_id == bindparam("parcel_id"))
                      .order_by(EVENTS.c.id))


@pytest.fixture
def parcel_id(world: World) -> int:
    return int(world.ready("ACME00000901")["id"])


def test_an_insert_takes_its_columns_defaults_and_the_clock(world: World, parcel_id: int
                                                             ) -> None:
    with world.ctx.db.transaction() as session:
        [(notification_id, created_at, status)] = OWE.rows(
            session, {"parcel_id": parcel_id, "key": "direct:1"})
    assert created_at == world.ctx.now() and created_at.tzinfo is not None
    assert status == "queued"
    with world.ctx.db.read() as session:
        stored = session.get(Notification, notification_id)
        assert stored is not None and stored.created_at == world.ctx.now()


def test_rows_read_back_as_sqlalchemy_reads_them(world: World, parcel_id: int) -> None:
    with world.ctx.db.read() as session:
        expected = [tuple(row) for row in session.execute(
            EVENT_DATA.statement, {"parcel_id": parcel_id})]
    with world.ctx.db.transaction() as session:
        rows = EVENT_DATA.rows(session, {"parcel_id": parcel_id})
    assert rows == expected
    at, data, action = rows[-1]
    assert action == "check_in" and isinstance(data, dict) and data["location"]
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)


def test_pending_changes_are_written_first_and_stay_in_the_transaction(
    world: World, parcel_id: int
) -> None:
    moment = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(RuntimeError), world.ctx.db.transaction() as session:
        session.add(ParcelEvent(parcel_id=parcel_id, at=moment, action="direct_test",
                                from_state=None, to_state="ready_for_pickup",
                                actor_kind="system", site_id=world.shop_id, data={"n": 1}))
        rows = EVENT_DATA.rows(session, {"parcel_id": parcel_id})
        assert rows[-1] == (moment, {"n": 1}, "direct_test")  # autoflushed, then read
        raise RuntimeError("rolled back")
    with world.ctx.db.read() as session:
        actions = session.scalars(select(ParcelEvent.action)
                                  .where(ParcelEvent.parcel_id == parcel_id))
        assert "direct_test" not in list(actions)


def test_listeners_see_each_statement(ctx: Ctx) -> None:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])

    one = Prebuilt(lambda: select(literal(7)))
    event.listen(ctx.db.engine, "before_cursor_execute", note)
    try:
        with ctx.db.transaction() as session:
            assert one.rows(session, {}) == [(7,)]
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", note)
    # (SQLite's writer also sends its BEGIN IMMEDIATE through the listeners.)
    assert [s for s in seen if s.startswith("SELECT")] == [seen[-1]] and "7" not in seen[-1]


def test_a_broken_constraint_is_sqlalchemys_integrity_error(world: World, parcel_id: int
                                                             ) -> None:
    with world.ctx.db.transaction() as session:
        OWE.rows(session, {"parcel_id": parcel_id, "key": "direct:dup"})
    with pytest.raises(IntegrityError), world.ctx.db.transaction() as session:
        OWE.rows(session, {"parcel_id": parcel_id, "key": "direct:dup"})
    with world.ctx.db.read() as session:  # the failed transaction left nothing
        keys = session.scalars(select(Notification.dedupe_key)
                               .where(Notification.dedupe_key == "direct:dup"))
        assert list(keys) == ["direct:dup"]


def test_a_statement_sqlalchemy_must_complete_runs_through_it(ctx: Ctx, world: World) -> None:
    # An IN list is rendered at each run: left to SQLAlchemy, same answer.
    parcels = Prebuilt(lambda: select(Parcel.id).where(
        Parcel.id.in_(bindparam("ids", expanding=True))))
    with ctx.db.transaction() as session:
        assert parcels.rows(session, {"ids": [-1, -2]}) == []



def test_a_fresh_process_makes_objects_before_any_orm_query() -> None:
    # A web worker's first request may be a check-in: its first ORM objects come from a
    # loader, before any ORM query has configured the mappers.
    code = ("from sqlalchemy.orm import Session\n"
            "from relay_ops.db.loaders import CARRIERS\n"
            "carrier = CARRIERS.one(Session(), tuple(range(CARRIERS.width)))\n"
            "assert carrier.id == 0 and carrier.code == 1\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
