"""``column IN (a subquery that yields a few ids)``, planned as the few lookups it is, whatever
the statistics say: ``in_few_ids(Parcel.id, select(...))``.

PostgreSQL plans ``id IN (SELECT parcel_id FROM links WHERE ...)`` as a join, and may pick a
merge join that walks the big table's primary key in order until it meets the subquery's ids,
costed from the link table's histogram. New parcels always have the newest ids, beyond the
histogram of the last ANALYZE, so the walk runs over nearly the whole table: seen on the
benchmark's database (1,000,000 parcels, the newest codes issued after the statistics), 270 ms
of PostgreSQL per pickup by code instead of 2, for the prepared statement's generic plan
(issue 15). ``= ANY(ARRAY(subquery))`` computes the few ids first, once, and reads the table
by its index for them; it cannot become a join. SQLite has no arrays and plans ``IN
(subquery)`` as lookups already: it keeps the plain form.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnExpressionArgument, Select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import coercions, roles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean


class _InFewIds(ColumnElement[bool]):
    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a predicate: SQLite gets no "= 1" after it

    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy's own declaration)
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnExpressionArgument[Any], ids: Select[Any]) -> None:
        self.column: ColumnElement[Any] = coercions.expect(roles.ExpressionElementRole, column)
        self.ids = ids.scalar_subquery()  # rendered "(SELECT ...)"


def in_few_ids(column: ColumnExpressionArgument[Any], ids: Select[Any]) -> ColumnElement[bool]:
    """``column`` is one of the ids ``ids`` (a one-column SELECT) yields; for subqueries
    that yield a handful of rows (a code's parcels), never a table's worth."""
    return _InFewIds(column, ids)


@compiles(_InFewIds, "postgresql")
def _on_postgresql(element: _InFewIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY(ARRAY{compiler.process(element.ids, **kw)})"


@compiles(_InFewIds)
def _elsewhere(element: _InFewIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} IN {compiler.process(element.ids, **kw)}"
