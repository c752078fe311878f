"""Prebuilt statements run straight on the driver's cursor on PostgreSQL (issue 15).

SQLAlchemy spends about 0.1 ms of CPU on each statement it executes before and after the
driver's own work, even with its compiled cache: the statement's cache key walked again, an
execution context, the cursor's description turned into a result's metadata. On the hot
paths (a check-in, a pickup, authentication) that is a large share of a request. A
:class:`Prebuilt` is compiled once per dialect; on PostgreSQL each run hands the compiled SQL
and its parameters (through the statement's own bind processors) to the psycopg cursor of the
session's connection, in the session's transaction, and reads plain tuples back (through the
columns' own result processors). Elsewhere, and for a statement SQLAlchemy must complete at
each run (an IN list, a default that is neither a constant nor a function), it is executed by
SQLAlchemy as usual: the same statement, the same rows.

Kept from SQLAlchemy: the session's autoflush (pending ORM changes are written first, so the
history keeps its order), the columns' Python-side defaults (the clock's time...),
``before_cursor_execute`` listeners (the tests count statements with them), DBAPI errors
raised as SQLAlchemy's (``IntegrityError``...), and a dropped connection invalidated so the
pool replaces it.

A :class:`Loader` turns whole rows of a table read that way into the ORM objects a query
would have loaded (``db/loaders.py``): the domain and the views keep working on objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, exc, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper, Session, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import instance_state
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any] | None
_T = TypeVar("_T")


@dataclass
class _Plan:
    """A statement compiled for one dialect, and what turns values into parameters and rows
    into Python values."""

    compiled: SQLCompiler
    sql: str
    binds: tuple[tuple[str, Processor], ...]
    types: tuple[Any, ...]  # the result columns' SQLAlchemy types
    returns_rows: bool
    # Columns' Python-side defaults an INSERT takes (a constant, or the clock's time through
    # the connection, ``models.stamp_now``), by parameter name.
    defaults: tuple[tuple[str, Any], ...]
    # The result columns' processors, found at the first run: some (numbers) depend on the
    # type the server sends, which only a cursor's description says.
    results: tuple[Processor, ...] | None = None

    def learn_results(self, dialect: Dialect, cursor: Any) -> None:
        type_codes = [column.type_code for column in cursor.description]
        processors = tuple(type_._cached_result_processor(dialect, code)
                           for type_, code in zip(self.types, type_codes, strict=True))
        # () when no column needs one: rows are then passed on without a look at each value
        self.results = processors if any(processors) else ()

    def parameters(self, values: Mapping[str, Any], connection: Connection) -> dict[str, Any]:
        if self.defaults:
            values = dict(values)
            for name, default in self.defaults:
                if name not in values:
                    values[name] = (default.arg if default.is_scalar
                                    else default.arg(_DefaultContext(connection)))
        given = self.compiled.construct_params(values)
        return {name: (given[name] if proc is None or given[name] is None else proc(given[name]))
                for name, proc in self.binds}

    def rows(self, raw: list[Any]) -> list[tuple[Any, ...]]:
        results = self.results
        if not results:  # none learnt (no rows), or none needed: psycopg's tuples as they are
            return raw
        return [tuple(value if proc is None else proc(value)
                      for value, proc in zip(row, results, strict=True)) for row in raw]


class Prebuilt:
    """One statement, built on first use by ``build`` and compiled once per dialect."""

    def __init__(self, build: Callable[[], Executable]) -> None:
        self._build = build
        self._statement: Executable | None = None
        self._plans: dict[str, _Plan | None] = {}

    @property
    def statement(self) -> Executable:
        if self._statement is None:
            self._statement = self._build()
        return self._statement

    def rows(self, session: Session, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The statement's rows (none for a statement that returns none) in the session's
        transaction."""
        if session.autoflush:
            session.flush()  # returns at once when nothing is pending
        return self.run(session.connection(), values)

    def run(self, connection: Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The same on a Core connection."""
        plan = self._plan(connection.dialect)
        if plan is None:
            result = connection.execute(self.statement, values)
            return [tuple(row) for row in result] if result.returns_rows else []
        return _execute(connection, plan, values)

    def _plan(self, dialect: Dialect) -> _Plan | None:
        try:
            return self._plans[dialect.name]
        except KeyError:
            plan = _compile(self.statement, dialect) if dialect.name == "postgresql" else None
            self._plans[dialect.name] = plan
            return plan


def _compile(statement: Executable, dialect: Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    defaults = []
    for column in compiled.insert_prefetch:
        default = column.default
        if compiled.update_prefetch or default is None or not (default.is_scalar
                                                               or default.is_callable):
            return None  # values SQLAlchemy computes another way: leave the run to it
        defaults.append((column.key, default))
    if compiled.literal_execute_params:
        return None
    if any(bind.expanding for bind in compiled.binds.values()):
        return None  # IN lists are rendered per run
    processors = cast(Mapping[str, Processor], compiled._bind_processors)
    names = [compiled.bind_names[bind] for bind in compiled.binds.values()]
    binds = tuple((name, processors.get(name)) for name in dict.fromkeys(names))
    types = tuple(column.type for column in compiled._result_columns)
    return _Plan(compiled, compiled.string, binds, types, bool(compiled._result_columns),
                 tuple(defaults))


@dataclass(frozen=True)
class _DefaultContext:
    """What a column's callable default is given in place of SQLAlchemy's execution context:
    the connection (``models.stamp_now`` reads the clock from it)."""

    connection: Connection


def _execute(connection: Connection, plan: _Plan, values: Mapping[str, Any]
             ) -> list[tuple[Any, ...]]:
    with driver_cursor(connection, plan.sql, plan.parameters(values, connection)) as (
            cursor, sql, parameters):
        cursor.execute(sql, parameters)
        # psycopg builds a description's columns on each read of it: read at the first run
        # only.
        if plan.returns_rows and plan.results is None:
            plan.learn_results(connection.dialect, cursor)
        raw = cursor.fetchall() if plan.returns_rows else []
    return plan.rows(raw)


@contextmanager
def driver_cursor(connection: Connection, sql: str, parameters: Mapping[str, Any]
                  ) -> Iterator[tuple[Any, str, Mapping[str, Any]]]:
    """The driver's cursor on ``connection``, for a statement SQLAlchemy does not send itself
    (a prebuilt one, a COPY: ``db/bulk.py``), with what SQLAlchemy would have done around it:
    the ``before_cursor_execute`` listeners told (they may rewrite the statement: yielded
    with the cursor), DBAPI errors raised as SQLAlchemy's, the cursor closed."""
    dbapi_connection = connection.connection.driver_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if connection._has_events or connection.engine._has_events:
            for listener in connection.dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, None, False)
        yield cursor, sql, parameters
    except connection.dialect.loaded_dbapi.Error as error:
        raise _translated(connection, error, cursor, sql, parameters) from error
    finally:
        cursor.close()


def _translated(connection: Connection, error: Any, cursor: Any, sql: str,
                parameters: Mapping[str, Any]) -> exc.StatementError:
    """The driver's error as SQLAlchemy raises it; a dropped connection is invalidated, so
    the pool connects afresh and ``Database.read_once`` may try again."""
    dialect = connection.dialect
    dropped = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    if dropped and not connection.invalidated:
        connection.invalidate(error)
    return exc.DBAPIError.instance(sql, parameters, error, dialect.loaded_dbapi.Error,
                                   connection_invalidated=dropped, dialect=dialect)


class Loader(Generic[_T]):
    """ORM objects of one mapped class made from whole rows of its table read by a
    :class:`Prebuilt` (its columns in the table's order), as the session would have loaded
    them: persistent, their values committed, one object per identity (an object the session
    holds already is returned as it is, as a query without ``populate_existing`` would)."""

    def __init__(self, entity: type[_T]) -> None:
        self.entity = entity
        self._mapper: Mapper[_T] = inspect(entity)
        table = self._mapper.local_table
        self.columns = tuple(table.columns)
        self._keys = tuple(self._mapper.get_property_by_column(c).key for c in self.columns)
        if len(self._mapper.column_attrs) != len(self._keys):
            # An attribute that is not a column of the table (a column_property...) would be
            # left expired, and loaded by a query of its own at its first read.
            raise TypeError(f"{entity.__name__} maps more than its table's columns")
        primary = {c.key for c in self._mapper.primary_key}
        self._primary = tuple(i for i, c in enumerate(self.columns) if c.key in primary)

    @property
    def width(self) -> int:
        return len(self.columns)

    def id_of(self, row: Sequence[Any]) -> Any:
        """The row's primary key (its first column, for a composite one)."""
        return row[self._primary[0]]

    def maybe(self, session: Session, row: Sequence[Any], *, fresh: bool = False
              ) -> _T | None:
        """:meth:`one`, or None for the NULLs of an outer join that found no row."""
        return None if self.id_of(row) is None else self.one(session, row, fresh=fresh)

    def one(self, session: Session, row: Sequence[Any], *, fresh: bool = False) -> _T:
        """The object of ``row``; ``fresh``: an object the session holds already takes the
        row's values (``populate_existing``: what a row read under its lock says wins)."""
        identity = self._mapper.identity_key_from_primary_key(
            tuple(row[i] for i in self._primary))
        held = session.identity_map.get(identity)
        if held is not None:
            if fresh:
                for key, value in zip(self._keys, row, strict=True):
                    set_committed_value(held, key, value)
            return held
        if not self._mapper.configured:
            # A worker's first request may come here before any ORM query has configured
            # the mappers (their attributes' loaders are not set up until then).
            configure_mappers()
        obj = self._mapper.class_manager.new_instance()
        state = instance_state(obj)
        state.dict.update(zip(self._keys, row, strict=True))
        make_transient_to_detached(obj)  # the values committed, the identity key set
        # Persistent, as session.add would make it (no INSERT: it has its key), without
        # add's cascade along relationships, which have nothing loaded yet: three quarters
        # of add's cost, about as much as a whole ORM query's per-object work.
        session._update_impl(state)
        return obj


def split(row: Sequence[Any], *parts: Loader[Any] | int) -> list[Sequence[Any]]:
    """A row read as consecutive parts: each loader's whole row (its width), each number that
    many plain columns, the parts covering the row exactly. A statement that reads several
    tables' rows side by side (``*A.columns, x, *B.columns``) is split by the same list that
    built it, instead of offsets counted by hand."""
    pieces: list[Sequence[Any]] = []
    start = 0
    for part in parts:
        end = start + (part if isinstance(part, int) else part.width)
        pieces.append(row[start:end])
        start = end
    if start != len(row):
        raise ValueError(f"the parts cover {start} columns of a row of {len(row)}")
    return pieces
