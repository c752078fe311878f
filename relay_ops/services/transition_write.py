"""A parcel's transition written in one round trip on PostgreSQL (issue 15's fast path).

``history.apply`` decides the transition; this module only writes it. The ORM would send
three statements (the event's INSERT, the parcel's UPDATE, the shelf counter's UPDATE); here
they are one, a chain of data-modifying CTEs built once per shape and cached:

    WITH site    AS (SELECT id, :parcel AS parcel_id FROM sites WHERE id = :site
                     FOR KEY SHARE),
         moved   AS (UPDATE parcels SET … FROM site WHERE parcels.id = site.parcel_id
                     RETURNING …),
         event   AS (INSERT INTO parcel_events … SELECT … FROM moved RETURNING id),
         counted AS (UPDATE locations SET held = held + :change FROM moved, event
                     WHERE locations.id = moved.location_id …)
    SELECT moved.updated_at, (SELECT id FROM event) FROM moved

Each step reads the one before, so the rows are locked in the order the ORM path locks them
and a check-in takes them (the site, the parcel, then its shelf location): a row is locked
only once the join that produces it has produced it, and the site's key-share lock, which
the event's foreign key would take only at the end of the statement, comes first. The
parcel's changes are the ORM's own pending ones (whatever the caller set before the
transition), marked written afterwards, so no flush writes them a second time.

Other databases return False and take the ORM's path: same rows, more statements.
"""

from __future__ import annotations

import functools
import typing
from typing import Any

from sqlalchemy import Integer, Select, Table, bindparam, insert, inspect, select, update
from sqlalchemy.orm import MANYTOONE, InstanceState, Session
from sqlalchemy.orm.attributes import set_committed_value

from relay_ops.db.database import session_now
from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import Location, Parcel, ParcelEvent, Site

PARCELS = typing.cast(Table, Parcel.__table__)
EVENTS = typing.cast(Table, ParcelEvent.__table__)
LOCATIONS = typing.cast(Table, Location.__table__)
SITES = typing.cast(Table, Site.__table__)
EVENT_COLUMNS = ("parcel_id", "at", "action", "from_state", "to_state", "actor_kind",
                 "actor_id", "site_id", "reason", "data")


def write(
    session: Session, parcel: Parcel, event: dict[str, Any], shelf: int | None, change: int,
) -> bool:
    """Write the parcel's pending changes, ``event`` (a ``parcel_events`` row) and, when
    ``shelf`` is given, ``change`` to its counter, in one statement. False (nothing written)
    where that does not apply: another database, or a parcel not yet in the database."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    state: InstanceState[Parcel] = inspect(parcel)
    changes = _pending_changes(state)
    if changes is None:
        return False
    changes["updated_at"] = session_now(session)
    _mark_written(state)
    params = {f"p_{column}": value for column, value in changes.items()}
    params.update({f"e_{column}": value for column, value in event.items()})
    params.update(parcel=parcel.id, site=parcel.site_id, change=change)
    # The session's autoflush (Core statements too) writes whatever else it holds (an event
    # recorded earlier...) first: the history keeps the order things happened in.
    [(updated_at, _event)] = _statement(tuple(sorted(changes)), shelf is not None).rows(
        session, params)
    set_committed_value(parcel, "updated_at", updated_at)
    return True


def _pending_changes(state: InstanceState[Parcel]) -> dict[str, Any] | None:
    """The parcel's columns changed since it was loaded, by column name; None if the ORM
    must write them (a new parcel, a change to a collection)."""
    if not state.persistent:
        return None
    mapper, values = state.mapper, state.dict
    changes: dict[str, Any] = {}
    for key in state.committed_state:
        if key in mapper.column_attrs:
            changes[mapper.column_attrs[key].columns[0].name] = values.get(key)
            continue
        relation = mapper.relationships.get(key)
        if relation is not None and relation.viewonly:
            continue
        if relation is None or relation.direction is not MANYTOONE:
            return None
        # A reference set by its object (``parcel.location = …``): its foreign key columns.
        target = values.get(key)
        for local, remote in relation.local_remote_pairs:
            attribute = relation.mapper.get_property_by_column(remote).key
            value = None if target is None else getattr(target, attribute)
            if target is not None and value is None:
                return None  # the target is new: the ORM inserts it first
            changes[local.name] = value
    return changes


def _mark_written(state: InstanceState[Parcel]) -> None:
    """The parcel as the ORM leaves it after a flush: its values committed, and out of the
    session's modified set, so neither the next flush nor the commit looks at it again (a
    unit of work run for one clean object cost several per cent of a check-in's CPU)."""
    state._commit_all(state.dict, state.session.identity_map if state.session else None)


@functools.lru_cache(maxsize=64)
def _statement(columns: tuple[str, ...], counts_shelf: bool) -> Prebuilt:
    """The statement for one set of changed parcel columns, built and compiled once and run
    on the driver's cursor (db/direct.py)."""
    return Prebuilt(lambda: _build(columns, counts_shelf))


def _build(columns: tuple[str, ...], counts_shelf: bool) -> Select[Any]:
    # The site carries the parcel's id, so each step joins the one before on a column.
    site = (
        select(SITES.c.id, bindparam("parcel", type_=Integer).label("parcel_id"))
        .where(SITES.c.id == bindparam("site", type_=Integer))
        .with_for_update(read=True, key_share=True).cte("site")
    )
    moved = (
        update(PARCELS).where(PARCELS.c.id == site.c.parcel_id)
        .values({c: bindparam(f"p_{c}", type_=PARCELS.c[c].type) for c in columns})
        .returning(PARCELS.c.id, PARCELS.c.location_id, PARCELS.c.updated_at).cte("moved")
    )
    event = (
        insert(EVENTS).from_select(
            EVENT_COLUMNS,
            select(*(moved.c.id if c == "parcel_id" else
                     bindparam(f"e_{c}", type_=EVENTS.c[c].type) for c in EVENT_COLUMNS)),
        ).returning(EVENTS.c.id, EVENTS.c.parcel_id).cte("event")
    )
    statement = select(moved.c.updated_at, select(event.c.id).scalar_subquery().label("event"))
    if counts_shelf:
        # The parcel's shelf location as written, once its event is.
        counted = (
            update(LOCATIONS)
            .where(LOCATIONS.c.id == moved.c.location_id, event.c.parcel_id == moved.c.id)
            .values(held=LOCATIONS.c.held + bindparam("change", type_=Integer))
            .returning(LOCATIONS.c.id).cte("counted")
        )
        statement = statement.add_cte(counted)
    return statement
