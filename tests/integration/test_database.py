"""The database handle's transactions."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy import create_engine, func, literal, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import Base, ParcelEvent
from relay_ops.services.context import Ctx
from tests.conftest import empty_database
from tests.support import make_world

ONE = Prebuilt(lambda: select(literal(1)))


def test_a_transaction_that_need_not_be_durable_skips_the_flush_and_only_it(ctx: Ctx) -> None:
    if ctx.db.is_sqlite:  # SQLite has no such setting: the flag must do nothing there
        with ctx.db.transaction(durable=False) as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        return
    with ctx.db.transaction(durable=False) as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"
    with ctx.db.transaction() as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"


def _kill_pooled_connections(ctx: Ctx) -> None:
    """Every connection the pool holds is ended by the server, as a restart would end it."""
    with ctx.db.engine.connect() as connection:
        mine = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    admin = create_engine(ctx.db.url, poolclass=NullPool)
    with admin.connect() as connection:
        ended = connection.execute(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": mine}).scalar()
    admin.dispose()
    assert ended


def test_a_single_read_survives_a_dead_connection_in_steady_use(ctx: Ctx) -> None:
    if ctx.db.is_sqlite:
        assert ctx.db.read_once(ONE) == [(1,)]
        return
    # Never pinged (it went back to the pool a moment ago): the statement fails, the pool is
    # emptied, and the read is tried once more on a fresh connection.
    ctx.db.ping_after_idle_s = 3600
    _kill_pooled_connections(ctx)
    assert ctx.db.read_once(ONE) == [(1,)]


def test_a_dead_idle_connection_is_replaced_before_a_transaction_uses_it(ctx: Ctx) -> None:
    if ctx.db.is_sqlite:
        return  # no pool of server connections
    ctx.db.ping_after_idle_s = 0  # every pooled connection counts as idle: pinged
    _kill_pooled_connections(ctx)
    with ctx.db.transaction() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_a_connection_in_steady_use_is_not_pinged(ctx: Ctx) -> None:
    if ctx.db.is_sqlite:
        return
    ctx.db.ping_after_idle_s = 3600
    _kill_pooled_connections(ctx)
    # No ping: the transaction's first statement meets the dead connection (and the pool is
    # emptied for the next one). This is what the idle threshold trades for a round trip.
    with pytest.raises(DBAPIError) as failed, ctx.db.transaction() as session:
        session.execute(text("SELECT 1"))
    assert failed.value.connection_invalidated
    with ctx.db.transaction() as session:
        assert session.execute(text("SELECT 1")).scalar() == 1



@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_the_tests_emptying_leaves_no_row_and_restarts_every_id(
        ctx: Ctx, client: FlaskClient, pg_url: str) -> None:
    """tests/conftest.py empties the shared test database after each PostgreSQL test: the
    next test must find it as new, every table empty and ids from 1 again."""
    world = make_world(ctx, client)
    world.ready("EMPTY0000001")
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ParcelEvent)) > 0
    ctx.db.dispose()

    empty_database(pg_url)

    with ctx.db.read() as session:
        for table in Base.metadata.sorted_tables:
            assert session.scalar(select(func.count()).select_from(table)) == 0, table.name
    assert make_world(ctx, client).shop_id == 1
