"""The database handle's transactions."""

from __future__ import annotations

from sqlalchemy import text

from relay_ops.services.context import Ctx


def test_a_transaction_that_need_not_be_durable_skips_the_flush_and_only_it(ctx: Ctx) -> None:
    if ctx.db.is_sqlite:  # SQLite has no such setting: the flag must do nothing there
        with ctx.db.transaction(durable=False) as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        return
    with ctx.db.transaction(durable=False) as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar() == "off"
    with ctx.db.transaction() as session:
        assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
