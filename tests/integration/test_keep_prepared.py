"""A refused request's rollback keeps the connection's prepared statements (issue 15,
relay_ops/db/keep_prepared.py): psycopg's own rollback deallocated them all, and the
connection then parsed and planned every statement again for its next runs."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from relay_ops.db.keep_prepared import KeepsPreparedOnRollback
from relay_ops.services.context import Ctx
from tests.support import World

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def prepared_on(ctx: Ctx) -> set[str]:
    """The statements prepared on the pool's connection: its only one (the tests empty the
    pool first and use it one request at a time), so the one the requests used."""
    assert ctx.db.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT statement FROM pg_prepared_statements"))
        return {row[0] for row in rows}


def a_statement_prepared(ctx: Ctx) -> set[str]:
    """A statement run until psycopg prepared it, on the pool's one connection: what is
    prepared there."""
    ctx.db.dispose()
    for _ in range(6):  # psycopg prepares at the fifth run
        with ctx.db.transaction() as session:
            session.execute(text("SELECT count(*) FROM carriers WHERE code = :c"), {"c": "x"})
    prepared = prepared_on(ctx)
    assert any("FROM carriers" in s for s in prepared)
    return prepared


def test_the_pool_lends_connections_that_keep_their_prepared_statements(ctx: Ctx) -> None:
    with ctx.db.engine.connect() as conn:
        assert isinstance(conn.connection.driver_connection, KeepsPreparedOnRollback)


def test_a_rolled_back_transaction_is_undone_and_the_prepared_statements_stay(
        ctx: Ctx) -> None:
    before = a_statement_prepared(ctx)

    class Refused(Exception):
        pass

    with pytest.raises(Refused), ctx.db.transaction() as session:
        session.execute(text("INSERT INTO failed_attempts (scope, key, at) "
                             "VALUES ('test', 'gone', now())"))
        raise Refused
    assert prepared_on(ctx) >= before
    with ctx.db.transaction() as session:
        assert session.execute(text("SELECT count(*) FROM failed_attempts WHERE key = 'gone'")
                               ).scalar_one() == 0  # undone


def test_a_savepoint_rolled_back_is_undone_alone_and_the_prepared_statements_stay(
        ctx: Ctx) -> None:
    """The locker bridge's retry path: a poisoned event is undone in its savepoint, whose
    rollback psycopg took for a transaction's (its tag is ROLLBACK) and dropped every
    statement the connection prepared."""
    before = a_statement_prepared(ctx)
    insert = text("INSERT INTO failed_attempts (scope, key, at) VALUES ('test', :key, now())")
    with ctx.db.transaction() as session:
        session.execute(insert, {"key": "kept"})
        savepoint = session.begin_nested()
        session.execute(insert, {"key": "undone"})
        with pytest.raises(IntegrityError):  # what poisons an event: a refused row
            session.execute(text("INSERT INTO failed_attempts (scope, key, at) "
                                 "VALUES ('test', NULL, now())"))
        savepoint.rollback()
        session.execute(insert, {"key": "after"})
    assert prepared_on(ctx) >= before
    with ctx.db.read() as session:
        keys = session.scalars(text("SELECT key FROM failed_attempts WHERE scope = 'test' "
                                    "ORDER BY id")).all()
    assert keys == ["kept", "after"]


def test_a_rollback_to_a_savepoint_that_is_not_there_fails_as_psycopg_fails(ctx: Ctx) -> None:
    url = ctx.db.url.replace("postgresql+psycopg://", "postgresql://")
    with KeepsPreparedOnRollback.connect(url) as conn:
        conn.execute("SELECT 1")  # a transaction open
        with pytest.raises(psycopg.errors.InvalidSavepointSpecification):
            conn.rollback_to_savepoint("never_made")


def test_after_a_refused_check_in_the_next_one_runs_prepared_statements(world: World) -> None:
    world.ctx.db.dispose()
    for n in range(6):
        assert world.announce(f"ACME0000{n:04d}").status_code == 201
        assert world.check_in(f"ACME0000{n:04d}").status_code == 201
    before = prepared_on(world.ctx)
    assert any("FOR UPDATE OF sites" in s for s in before)  # the check-in's shop statement
    refused = world.check_in("NOTANNOUNCED1")
    assert refused.status_code == 409, refused.json
    assert prepared_on(world.ctx) >= before


def test_a_rollback_on_a_dead_connection_still_fails_as_psycopg_fails(ctx: Ctx) -> None:
    url = ctx.db.url.replace("postgresql+psycopg://", "postgresql://")
    conn = KeepsPreparedOnRollback.connect(url)
    conn.execute("SELECT 1")  # a transaction open
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
    with pytest.raises(psycopg.OperationalError):
        conn.rollback()
    conn.close()
    with pytest.raises(psycopg.OperationalError):
        conn.rollback()  # closed: psycopg's own answer


def test_a_rollback_outside_a_transaction_does_nothing(ctx: Ctx) -> None:
    url = ctx.db.url.replace("postgresql+psycopg://", "postgresql://")
    with KeepsPreparedOnRollback.connect(url) as conn:
        conn.rollback()
        row: Any = conn.execute("SELECT 1").fetchone()
        assert row == (1,)
