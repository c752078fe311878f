"""Many rows of one table written in one statement (a manifest's 5,000 parcels and their events).

The ORM's multi-row INSERT sends one parameter per value: 5,000 parcels are 125,000
parameters, which psycopg converts in Python and PostgreSQL parses as 1,000-row VALUES lists
(6 s of a 10 s announcement on a loaded machine, issue 15), and an executemany is a
statement per row. On PostgreSQL the rows go instead through ``COPY … FROM STDIN``: one
statement whatever the count, each row written by psycopg's C code and parsed by the server
as a dump's would be (it replaced one array per column, unnested by the server, whose
conversion in Python cost twice as much: docs/benchmarks.md, tenth pass). Primary keys are
taken from the table's sequence beforehand, so the rows get their ids without being read
back. Other databases (SQLite, the embedded default) take the ORM's own path: same result,
same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Table, insert, text
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from relay_ops.db import direct
from relay_ops.db.models import Base


def insert_objects(session: Session, objects: Sequence[Base]) -> None:
    """Persist new ORM objects of one class, with their ids set, as ``add_all`` + ``flush``
    would (defaults applied, objects attached to the session as loaded ones)."""
    if not objects:
        return
    if not _copy_applies(session):
        session.add_all(objects)
        session.flush()
        return
    table = _table_of(type(objects[0]))
    (key,) = table.primary_key.columns
    ids = _new_ids(session, table, len(objects))
    context = _DefaultContext(session.connection())
    columns = list(table.columns)
    rows = []
    for obj, id_ in zip(objects, ids, strict=True):
        # The values go straight into the object's state, as a load puts them: through the
        # attributes (history, events) it was 225,000 instrumented sets for a manifest of
        # 5,000 parcels, a third of its CPU; make_transient_to_detached below commits them.
        values = instance_state(obj).dict
        values[key.key] = id_
        rows.append(_with_defaults(columns, values, context))
    insert_rows(session, type(objects[0]), rows)
    for obj in objects:
        make_transient_to_detached(obj)
        session.add(obj)


def insert_new_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
                    ) -> list[int]:
    """Write new rows of ``model``'s table, with no ORM object (thousands of rows nothing in the
    request reads back as objects): the model's defaults fill the columns a row leaves out,
    as the ORM's INSERT would, and each row gets a new primary key. Each dict is given what
    was written (defaults and key); the keys are returned in order."""
    if not rows:
        return []
    table = _table_of(model)
    (key,) = table.primary_key.columns
    context = _DefaultContext(session.connection())
    columns = list(table.columns)
    filled = [_with_defaults(columns, {k: v for k, v in row.items() if k != key.key}, context)
              for row in rows]
    if _copy_applies(session):
        ids = _new_ids(session, table, len(rows))
        for row, id_ in zip(filled, ids, strict=True):
            row[key.key] = id_
        insert_rows(session, model, filled)
    else:
        # SQLite: a statement per row (it does not promise RETURNING's order for many), as the
        # ORM's own flush would do; the embedded database never sees a national manifest.
        session.flush()  # rows these refer to (foreign keys) are written first
        for row in filled:
            del row[key.key]
        returning = insert(table).returning(key, sort_by_parameter_order=True)
        ids = list(session.scalars(returning, filled))
    for row, written, id_ in zip(rows, filled, ids, strict=True):
        row.update(written, **{key.key: id_})
    return ids


def _new_ids(session: Session, table: Table, count: int) -> list[int]:
    """``count`` primary keys from the table's sequence, so rows need not be read back."""
    (key,) = table.primary_key.columns
    # Names in this statement come from the models' tables and columns, never a request.
    sequence = f"pg_get_serial_sequence('{table.name}', '{key.name}')"
    numbers = f"SELECT nextval({sequence}) FROM generate_series(1, :n)"  # noqa: S608
    return list(session.scalars(text(numbers), {"n": count}).all())


def _with_defaults(columns: list[Column[Any]], values: dict[str, Any],
                   context: _DefaultContext) -> dict[str, Any]:
    """The row of every one of a table's ``columns`` (listed once per call: a table's column
    collection is slow to iterate thousands of times), ``values`` given the defaults they
    lack (which they take too: an object's state must hold what its row holds)."""
    row = {}
    for column in columns:
        if column.key not in values:
            values[column.key] = _default(column, context)
        row[column.key] = values[column.key]
    return row


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Write rows of ``model``'s table (dicts keyed by column, defaults already applied where
    wanted), nothing read back."""
    if not rows:
        return
    table = _table_of(model)
    if not _copy_applies(session):
        session.execute(insert(table), list(rows))
        return
    session.flush()  # rows this statement refers to (foreign keys) are written first
    columns = [c for c in table.columns if c.key in rows[0]]
    # JSON goes as its text; every other value as psycopg writes it for COPY (its C code).
    json_keys = {c.key for c in columns if isinstance(c.type, JSON)}
    names = ", ".join(c.name for c in columns)
    statement = f"COPY {table.name} ({names}) FROM STDIN"
    with direct.driver_cursor(session.connection(), statement, {}) as (cursor, _, _):
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([
                    json.dumps(row[c.key]) if c.key in json_keys and row[c.key] is not None
                    else row[c.key] for c in columns])


@dataclass(frozen=True)
class _DefaultContext:
    """What a column default's callable reads (``stamp_now`` takes the connection's clock)."""

    connection: Any


def _default(column: Column[Any], context: _DefaultContext) -> Any:
    """The column's Python-side default (None: none), as the ORM's INSERT would apply it."""
    default = column.default
    if default is None:
        return None
    if getattr(default, "is_callable", False):
        return default.arg(context)  # type: ignore[attr-defined]
    return getattr(default, "arg", None)


def _table_of(obj: Base | type[Base]) -> Table:
    table = obj.__table__
    assert isinstance(table, Table)
    return table


def _copy_applies(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
