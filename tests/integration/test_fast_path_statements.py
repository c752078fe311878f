"""The fast path's statements, counted (issue 15): a check-in and a pickup by code through the
API, authentication included, on both databases. A count, not a timing: it belongs here; the
answer must still be whole (no statement saved by leaving something out)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from relay_ops.services.context import Ctx
from tests.support import World

# Transaction control (BEGIN, COMMIT, ROLLBACK) is not counted: SQLite's BEGIN IMMEDIATE goes
# through the cursor, PostgreSQL's through the driver, and neither reads nor writes a row.
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")
# Issue 15 asks for 8, reached on PostgreSQL (from 23 and 19). Check-in: authentication 1,
# the shop locked with its closing days and today's stored forecast 1, its shelves (read
# after the lock) 1, the parcel 1, the group lookup 1, then the writes: the parcel with its
# event and shelf counter (one statement on PostgreSQL, services/transition_write.py; three
# on SQLite), the code drawn unique with its link (a CTE on PostgreSQL; two on SQLite), the
# notifications with their outbox jobs (the same). Pickup by code: authentication, the site
# (with the code-guess advisory lock on PostgreSQL), the code-only throttle's count, the
# code, its parcels with their codes, then the parcel with its event and shelf counter, the
# code spent, the notifications with their jobs.
CHECK_IN_MAX = {"postgresql": 8, "sqlite": 12}
PICKUP_MAX = {"postgresql": 8, "sqlite": 11}
# Joining a code: the code locked, the link written (no code drawn), the code's parcels read
# again for the answer.
GROUPED_CHECK_IN_MAX = {"postgresql": 11, "sqlite": 14}


@contextmanager
def statements(ctx: Ctx) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(CONTROL):
            seen.append(" ".join(statement.split()))

    engines = {ctx.db.engine, ctx.db.read_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def counted(ctx: Ctx, action: Callable[[], Any]) -> tuple[Any, list[str]]:
    with statements(ctx) as seen:
        result = action()
    return result, seen


def listing(seen: list[str]) -> str:
    return "\n".join(f"{i + 1:2}. {s[:160]}" for i, s in enumerate(seen))


def dialect(ctx: Ctx) -> str:
    return ctx.db.engine.dialect.name


def test_a_check_in_runs_a_bounded_number_of_statements(world: World) -> None:
    world.ready("ACME00000900")  # the shop has parcels on hand; the pool is warm
    assert world.announce("ACME00000901").status_code == 201
    response, seen = counted(world.ctx, lambda: world.check_in("ACME00000901"))
    assert response.status_code == 201, response.json
    assert response.json["parcel"]["location"] is not None
    assert len(seen) <= CHECK_IN_MAX[dialect(world.ctx)], listing(seen)


def test_a_pickup_by_code_runs_a_bounded_number_of_statements(world: World) -> None:
    world.ready("ACME00000910")
    parcel = world.ready("ACME00000911")
    code = world.code_of(parcel["id"])
    response, seen = counted(world.ctx, lambda: world.pick_up(code=code))
    assert response.status_code == 200, response.json
    assert response.json["parcel"]["state"] == "picked_up"
    assert len(seen) <= PICKUP_MAX[dialect(world.ctx)], listing(seen)


def test_a_check_in_that_joins_a_recipient_s_code_reads_no_parcel_twice(world: World) -> None:
    """The group lookup loads a few columns of the parcels it finds; the answer's group view
    then reads them whole with the code's parcels: no statement per parcel to fill them in."""
    jeanne = {"name": "Jeanne Martin", "phone": "+33612345678"}
    for number in ("ACME00000920", "ACME00000921", "ACME00000922"):
        assert world.announce(number, recipient=jeanne).status_code == 201
    assert world.check_in("ACME00000920").status_code == 201
    assert world.check_in("ACME00000921").status_code == 201
    response, seen = counted(world.ctx, lambda: world.check_in("ACME00000922"))
    assert response.status_code == 201, response.json
    group = response.json["parcel"]["group"]
    assert group["size"] == 3, response.json
    assert len(seen) <= GROUPED_CHECK_IN_MAX[dialect(world.ctx)], listing(seen)
