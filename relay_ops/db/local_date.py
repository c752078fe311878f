"""A timestamp's local calendar day, computed by the database: ``local_date(column, zone)``.

The forecast groups a site's 100,000 parcels and events by local day (issue 15): done in SQL,
PostgreSQL returns a few hundred groups instead of 100,000 rows for Python to convert one by
one. PostgreSQL converts with ``timezone(zone, column)``; SQLite has no time zones, so each
SQLite connection gets ``relay_local_date``, a function written in Python with the same
conversion as ``Ctx.local_day`` (registered by ``db/database.py`` when it connects).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnExpressionArgument, Date, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

SQLITE_FUNCTION = "relay_local_date"


class _LocalDate(FunctionElement[date]):
    type = Date()
    inherit_cache = True
    name = "local_date"


def local_date(column: ColumnExpressionArgument[Any], zone: ZoneInfo) -> ColumnElement[date]:
    """The day of ``column`` (an aware UTC timestamp) in ``zone``; NULL stays NULL.

    The zone is written into the statement, not bound: PostgreSQL must see the same
    expression in the select list and in its GROUP BY, and two bound parameters are two
    expressions to it. Zone names come from the settings (a ``ZoneInfo`` key), never a request.
    """
    name = zone.key.replace("'", "''")
    return _LocalDate(column, literal_column(f"'{name}'"))


@compiles(_LocalDate, "postgresql")
def _on_postgresql(element: _LocalDate, compiler: SQLCompiler, **kw: Any) -> str:
    column, zone = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(timezone({zone}, {column}) AS DATE)"


@compiles(_LocalDate, "sqlite")
def _on_sqlite(element: _LocalDate, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FUNCTION}({compiler.process(element.clauses, **kw)})"


def sqlite_local_date(value: str | None, zone: str) -> str | None:
    """``relay_local_date`` for SQLite, which stores UTC timestamps as naive ISO text."""
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def register_on_sqlite(dbapi_connection: Any) -> None:
    dbapi_connection.create_function(SQLITE_FUNCTION, 2, sqlite_local_date, deterministic=True)
