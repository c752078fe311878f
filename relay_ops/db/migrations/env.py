"""Alembic environment: the engine comes from the caller (relay_ops.db.migrate)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from alembic import context

from relay_ops.db.models import Base

config = context.config
engine = config.attributes["engine"]


@contextmanager
def sqlite_foreign_keys_off(connection: Any) -> Iterator[None]:
    """SQLite rebuilds a table to change its constraints (batch mode): the old table's drop
    would cascade to every row referencing it while foreign keys are enforced (the product's
    engine turns them on). Off for the migration, on again after, as SQLite's own procedure
    for altering a table says; the pragma only takes effect outside a transaction, so it is
    set on the driver's connection before Alembic begins one."""
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = connection.connection.dbapi_connection
    enforced = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if enforced:
            raw.execute("PRAGMA foreign_keys=ON")


with engine.connect() as connection, sqlite_foreign_keys_off(connection):
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
