"""Many rows in one statement (``relay_ops.db.bulk``): the same rows as the ORM would write, on
SQLite (the ORM's own path) and on PostgreSQL (one array per column, unnested)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import event, func, select

from relay_ops.db import bulk
from relay_ops.db.models import Parcel, ParcelEvent
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
