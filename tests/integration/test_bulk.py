"""Many rows in one statement (``relay_ops.db.bulk``): the same rows as the ORM would write, on
SQLite (the ORM's own path) and on PostgreSQL (``COPY … FROM STDIN``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from relay_ops.db import bulk
from relay_ops.db.models import NoRoomDecision, Parcel, ParcelEvent
from relay_ops.services.context import Ctx
from tests.support import World


def new_parcels(world: World, count: int) -> list[Parcel]:
    return [
        Parcel(tracking_number=f"BULK{n:06d}", site_id=world.shop_id, state="announced",
               recipient_name="Jeanne Martin", recipient_phone="+33612345678",
               expected_date=date(2026, 12, 2) if n % 2 else None)
        for n in range(count)
    ]


def test_objects_get_ids_defaults_and_stay_in_the_session(ctx: Ctx, world: World) -> None:
    with ctx.db.transaction() as session:
        parcels = new_parcels(world, 300)
        bulk.insert_objects(session, parcels)
        ids = [p.id for p in parcels]
        assert len(set(ids)) == 300 and all(isinstance(i, int) for i in ids)
        # attached as loaded rows: changing one writes an UPDATE, not a second INSERT
        assert all(p in session and not session.is_modified(p) for p in parcels)
        # every column loaded, defaults included: reading them runs no statement
        seen: list[str] = []

        def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            seen.append(statement)

        event.listen(ctx.db.engine, "before_cursor_execute", keep)
        try:
            assert (parcels[1].created_at, parcels[1].direction) == (ctx.now(), "inbound")
            assert parcels[1].holding_deadline is None and parcels[1].extended is False
        finally:
            event.remove(ctx.db.engine, "before_cursor_execute", keep)
        assert seen == []
        parcels[0].state = "ready_for_pickup"
    with ctx.db.read() as session:
        rows = {p.id: p for p in session.scalars(select(Parcel).where(Parcel.id.in_(ids)))}
        assert len(rows) == 300
        first, second = rows[ids[0]], rows[ids[1]]
        assert first.state == "ready_for_pickup" and second.state == "announced"
        assert second.tracking_number == "BULK000001" and second.expected_date == date(2026, 12, 2)
        assert rows[ids[2]].expected_date is None
        # column defaults applied as the ORM would: the context's clock, the declared values
        assert second.created_at == ctx.now() and second.direction == "inbound"
        assert second.recipient_locale == "fr" and second.extended is False


def test_rows_keep_their_json_and_nulls(ctx: Ctx, world: World) -> None:
    with ctx.db.transaction() as session:
        parcels = new_parcels(world, 3)
        bulk.insert_objects(session, parcels)
        bulk.insert_rows(session, ParcelEvent, [
            {"parcel_id": p.id, "at": ctx.now(), "action": "announce", "from_state": None,
             "to_state": "announced", "actor_kind": "carrier", "actor_id": None,
             "site_id": world.shop_id, "reason": None,
             "data": {"manifest": "R-1", "n": i, "nested": {"é": [1, None]}}}
            for i, p in enumerate(parcels)
        ])
        ids = [p.id for p in parcels]
    with ctx.db.read() as session:
        events = session.scalars(
            select(ParcelEvent).where(ParcelEvent.parcel_id.in_(ids)).order_by(ParcelEvent.id)
        ).all()
        assert [e.data["n"] for e in events] == [0, 1, 2]
        assert events[2].data == {"manifest": "R-1", "n": 2, "nested": {"é": [1, None]}}
        assert events[0].from_state is None and events[0].at == ctx.now()


def test_nothing_to_write_writes_nothing(ctx: Ctx, world: World) -> None:
    with ctx.db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(Parcel))
        bulk.insert_objects(session, [])
        bulk.insert_rows(session, ParcelEvent, [])
        assert session.scalar(select(func.count()).select_from(Parcel)) == before


def test_new_rows_get_ids_and_defaults_with_no_object(ctx: Ctx, world: World) -> None:
    seen: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    with ctx.db.transaction() as session:
        parcels = new_parcels(world, 3)
        bulk.insert_objects(session, parcels)
        rows = [{"parcel_id": p.id, "carrier_id": None, "policy_id": None,
                 "site_id": world.shop_id, "day": date(2026, 12, 2), "step": "none",
                 "to_site_id": None, "hold_until": None,
                 "tried": [{"step": "hold", "why": f"full {n}"}]}
                for n, p in enumerate(parcels)]
        event.listen(ctx.db.engine, "before_cursor_execute", keep)
        try:
            ids = bulk.insert_new_rows(session, NoRoomDecision, rows)
        finally:
            event.remove(ctx.db.engine, "before_cursor_execute", keep)
        # the keys in order, and each dict holds what was written: its key, the defaults
        assert [r["id"] for r in rows] == ids and len(set(ids)) == 3
        assert all(r["created_at"] == ctx.now() for r in rows)
        # nothing of it in the session: no object to flush or to expire
        assert not any(isinstance(o, NoRoomDecision) for o in session)
    # on PostgreSQL one statement for the rows (after the sequence's numbers), which the
    # engine's statement listeners see though it is a COPY; on SQLite one per row
    writes = [s for s in seen if s.startswith(("INSERT INTO no_room_decisions",
                                               "COPY no_room_decisions"))]
    assert len(writes) == (3 if ctx.db.is_sqlite else 1), seen
    with ctx.db.read() as session:
        stored = {d.id: d for d in session.scalars(
            select(NoRoomDecision).where(NoRoomDecision.id.in_(ids)))}
        assert [stored[i].parcel_id for i in ids] == [p.id for p in parcels]
        assert stored[ids[2]].tried == [{"step": "hold", "why": "full 2"}]
        assert stored[ids[0]].created_at == ctx.now() and stored[ids[0]].to_site_id is None


def test_no_new_rows_write_nothing(ctx: Ctx) -> None:
    with ctx.db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(NoRoomDecision))
        assert bulk.insert_new_rows(session, NoRoomDecision, []) == []
        assert session.scalar(select(func.count()).select_from(NoRoomDecision)) == before


def test_text_that_copy_escapes_comes_back_as_written(ctx: Ctx, world: World) -> None:
    """COPY's text format gives tabs, newlines, backslashes and ``\\N`` a meaning: a value
    holding them must come back as it was, not split, unescaped or read as NULL."""
    awkward = ["tab\there", "line\nbreak\r\n", "back\\slash", "\\N", "", "quote \" ' é 🚚"]
    with ctx.db.transaction() as session:
        parcels = new_parcels(world, len(awkward))
        for parcel, name in zip(parcels, awkward, strict=True):
            parcel.recipient_name = name
        bulk.insert_objects(session, parcels)
        bulk.insert_rows(session, ParcelEvent, [
            {"parcel_id": p.id, "at": ctx.now(), "action": "announce", "from_state": None,
             "to_state": "announced", "actor_kind": "carrier", "actor_id": None,
             "site_id": world.shop_id, "reason": name, "data": {"name": name}}
            for p, name in zip(parcels, awkward, strict=True)])
        ids = [p.id for p in parcels]
    with ctx.db.read() as session:
        names = {p.id: p.recipient_name for p in session.scalars(
            select(Parcel).where(Parcel.id.in_(ids)))}
        assert [names[i] for i in ids] == awkward
        events = session.scalars(select(ParcelEvent).where(ParcelEvent.parcel_id.in_(ids))
                                 .order_by(ParcelEvent.parcel_id)).all()
        assert [(e.reason, e.data["name"]) for e in events] == [(n, n) for n in awkward]


def test_rows_a_constraint_refuses_fail_as_sqlalchemy_fails_and_nothing_is_written(
        ctx: Ctx, world: World) -> None:
    """A refused COPY raises SQLAlchemy's IntegrityError, as the ORM's INSERT would (the
    error handlers and the retry paths know SQLAlchemy's errors, not the driver's), and its
    transaction leaves nothing behind."""
    refused = {"reason": "refused", "data": {}}
    with pytest.raises(IntegrityError), ctx.db.transaction() as session:
        parcels = new_parcels(world, 2)
        bulk.insert_objects(session, parcels)
        bulk.insert_rows(session, ParcelEvent, [
            {"parcel_id": parcel_id, "at": ctx.now(), "action": "announce", "from_state": None,
             "to_state": "announced", "actor_kind": "carrier", "actor_id": None,
             "site_id": world.shop_id, **refused}
            for parcel_id in (parcels[0].id, 10**9)])  # no such parcel
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Parcel).where(
            Parcel.tracking_number.like("BULK%"))) == 0
        assert session.scalar(select(func.count()).select_from(ParcelEvent).where(
            ParcelEvent.reason == "refused")) == 0
