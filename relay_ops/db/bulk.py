"""Many rows of one table written in one statement (a manifest's 5,000 parcels and their events).

The ORM's multi-row INSERT sends one parameter per value: 5,000 parcels are 125,000
parameters, which psycopg converts in Python and PostgreSQL parses as 1,000-row VALUES lists
(6 s of a 10 s announcement on a loaded machine, issue 15), and an executemany is a
statement per row. On PostgreSQL the rows go instead as one array per column, unnested by
the server: a fixed, short statement whatever the count. Primary keys are taken from the
table's sequence beforehand, so the objects get their ids without reading rows back. Other
databases (SQLite, the embedded default) take the ORM's own path: same result, same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Table, insert, text
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state

from relay_ops.db.models import Base


def insert_objects(session: Session, objects: Sequence[Base]) -> None:
    """Persist new ORM objects of one class, with their ids set, as ``add_all`` + ``flush``
    would (defaults applied, objects attached to the session as loaded ones)."""
    if not objects:
        return
    if not _unnest_applies(session):
        session.add_all(objects)
        session.flush()
        return
    table = _table_of(type(objects[0]))
    (key,) = table.primary_key.columns
    # Names in these statements come from the models' tables and columns, never a request.
    sequence = f"pg_get_serial_sequence('{table.name}', '{key.name}')"
    numbers = f"SELECT nextval({sequence}) FROM generate_series(1, :n)"  # noqa: S608
    ids = session.scalars(text(numbers), {"n": len(objects)}).all()
    context = _DefaultContext(session.connection())
    rows = []
    for obj, id_ in zip(objects, ids, strict=True):
        # The values go straight into the object's state, as a load puts them: through the
        # attributes (history, events) it was 225,000 instrumented sets for a manifest of
        # 5,000 parcels, a third of its CPU; make_transient_to_detached below commits them.
        values = instance_state(obj).dict
        values[key.key] = id_
        row = {}
        for column in table.columns:
            if column.key not in values:
                values[column.key] = _default(column, context)
            row[column.key] = values[column.key]
        rows.append(row)
    insert_rows(session, type(objects[0]), rows)
    for obj in objects:
        make_transient_to_detached(obj)
        session.add(obj)


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Write rows of ``model``'s table (dicts keyed by column, defaults already applied where
    wanted), nothing read back."""
    if not rows:
        return
    table = _table_of(model)
    if not _unnest_applies(session):
        session.execute(insert(table), list(rows))
        return
    session.flush()  # rows this statement refers to (foreign keys) are written first
    dialect = session.get_bind().dialect
    columns = [c for c in table.columns if c.key in rows[0]]
    arrays: dict[str, list[Any]] = {}
    sources, selected = [], []
    for index, column in enumerate(columns):
        name, sql_type = f"c{index}", column.type.compile(dialect)
        values = [r[column.key] for r in rows]
        if isinstance(column.type, JSON):
            # psycopg would send a list of dicts as an array of records: send the text.
            arrays[name] = [None if v is None else json.dumps(v) for v in values]
            sources.append(f"CAST(:{name} AS TEXT[])")
            selected.append(f"CAST({name} AS {sql_type})")
        else:
            arrays[name] = values
            sources.append(f"CAST(:{name} AS {sql_type}[])")
            selected.append(name)
    names = ", ".join(f"c{i}" for i in range(len(columns)))
    target = f"{table.name} ({', '.join(c.name for c in columns)})"
    source = f"unnest({', '.join(sources)}) AS t({names})"
    statement = f"INSERT INTO {target} SELECT {', '.join(selected)} FROM {source}"  # noqa: S608
    session.execute(text(statement), arrays)


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


def _unnest_applies(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
