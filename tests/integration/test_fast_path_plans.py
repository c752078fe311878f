"""The fast path stays flat as a shop fills (issue 15): every statement a check-in and a
pickup by code run reaches the rows it needs through an index condition, never by reading a
whole table that grows with the parcels (parcels, codes, their links, events, messages,
jobs), neither by a sequential scan nor by walking a whole index.

A plan, not a timing: PostgreSQL's EXPLAIN of each statement the request ran, with the
values it ran with, as a custom plan and as the generic plan a prepared statement is run
with after its fifth run (the driver prepares them), on a shop holding thousands of parcels
with live codes among many more picked up long ago. The statistics are taken before the
parcel of the test is made: its ids are newer than the histograms know, as every new
parcel's are in service between two ANALYZEs (the pickup's code lookup once walked the
parcels' primary key there: 270 ms a pickup at 1,000,000 parcels). The benchmark
(bench/fast_path.py) measures the time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, text

from relay_ops.services.context import Ctx
from tests.support import World

pytestmark = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

# Tables that grow with every parcel the network handles; the others (sites, shelves,
# tokens, users, forecasts, closing days, failed attempts) stay the size of the network.
GROWING = {"parcels", "pickup_credentials", "credential_parcels", "parcel_events",
           "notifications", "outbox"}
# Below this many rows a sequential scan is the planner's right choice, whatever the table
# grows to (its statistics then change the plan).
SMALL = 1000
ON_HAND = 3000
PAST = 30_000  # picked up long ago, their codes purged with them


def seed_on_hand(ctx: Ctx, site_id: int, carrier: str, on_hand: int = ON_HAND) -> None:
    """``ON_HAND`` ready parcels at the shop, each with its live code and link, and ``PAST``
    picked up long ago without codes, then ANALYZE: written in SQL, as the benchmark seeds."""
    with ctx.db.engine.begin() as conn:
        location = conn.execute(text("SELECT min(id) FROM locations WHERE site_id = :s"),
                                {"s": site_id}).scalar_one()
        carrier_id = conn.execute(text("SELECT id FROM carriers WHERE code = :c"),
                                  {"c": carrier}).scalar_one()
        for state, tag, n in (("ready_for_pickup", "HELD", on_hand),
                              ("picked_up", "GONE", PAST)):
            conn.execute(text(
                "INSERT INTO parcels (tracking_number, carrier_id, site_id, location_id, state,"
                " direction, unannounced, recipient_name, recipient_phone, recipient_locale,"
                " recipient_phone_key, extended, holding_deadline, checked_in_at, created_at,"
                " updated_at) SELECT :tag || lpad(n::text, 8, '0'), :carrier, :site, :loc,"
                " :state, 'inbound', false, 'Jeanne Martin', '+3361' || lpad(n::text, 7, '0'),"
                " 'fr', md5(:tag || n::text), false, now() + interval '9 days', now(), now(),"
                " now() FROM generate_series(1, :n) AS n"),
                {"tag": tag, "carrier": carrier_id, "site": site_id, "loc": location,
                 "state": state, "n": n})
        conn.execute(text(
            "INSERT INTO pickup_credentials (parcel_id, site_id, holder, nonce, code_hash,"
            " failed_attempts, created_at) SELECT p.id, p.site_id, 'recipient',"
            " md5(p.tracking_number), md5('code' || p.tracking_number), 0,"
            " now() - interval '1 day' FROM parcels p WHERE p.tracking_number LIKE 'HELD%'"))
        conn.execute(text(
            "INSERT INTO credential_parcels (credential_id, parcel_id, added_at)"
            " SELECT c.id, c.parcel_id, c.created_at FROM pickup_credentials c"
            " WHERE c.nonce IN (SELECT md5(tracking_number) FROM parcels)"))
        conn.execute(text("UPDATE locations SET capacity = capacity + :n, held = held + :n "
                          "WHERE id = :loc"), {"n": on_hand, "loc": location})
    with ctx.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def ran(ctx: Ctx) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append((statement, parameters))

    event.listen(ctx.db.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", keep)


@pytest.fixture
def statements(world: World) -> Iterator[list[tuple[str, Any]]]:
    yield from ran(world.ctx)


def plan_of(ctx: Ctx, statement: str, parameters: Any, mode: str) -> dict[str, Any]:
    """The statement's plan as PostgreSQL makes it with ``plan_cache_mode`` ``mode``
    (``force_custom_plan``: for these values; ``force_generic_plan``: for any, as a prepared
    statement runs after its fifth run), prepared as the driver prepares it."""
    raw = ctx.db.engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        connection.execute(f"SET LOCAL plan_cache_mode = {mode}")
        [[plan]] = connection.execute(
            "EXPLAIN (FORMAT JSON) " + statement, parameters, prepare=True).fetchall()
    finally:
        raw.rollback()
        raw.close()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return plan[0]["Plan"]


def reads_of_growing_tables(plan: dict[str, Any], big: set[str]) -> list[str]:
    """The tables of ``big`` that the plan reads whole: a sequential scan, or an index
    walked from end to end (an index scan with no condition on the index)."""
    found: list[str] = []
    relation, kind = plan.get("Relation Name"), plan.get("Node Type", "")
    if relation in big and (kind == "Seq Scan" or (
            kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in plan)):
        found.append(f"{kind} on {relation}")
    for child in plan.get("Plans", ()):
        found += reads_of_growing_tables(child, big)
    return found


def big_growing_tables(ctx: Ctx) -> set[str]:
    with ctx.db.engine.connect() as conn:
        return {name for name, rows in conn.execute(text(
            "SELECT relname, reltuples FROM pg_class WHERE relkind = 'r'")) if
            name in GROWING and rows > SMALL}


def whole_table_reads(ctx: Ctx, seen: list[tuple[str, Any]]) -> dict[str, list[str]]:
    reads = {}
    big = big_growing_tables(ctx)
    assert "parcels" in big
    for statement, parameters in seen:
        for mode in ("force_custom_plan", "force_generic_plan"):
            found = reads_of_growing_tables(plan_of(ctx, statement, parameters, mode), big)
            if found:
                reads[f"{mode}: {' '.join(statement.split())[:120]}"] = found
    return reads


def test_a_check_in_at_a_full_shop_reads_no_growing_table_whole(
        world: World, statements: list[tuple[str, Any]]) -> None:
    seed_on_hand(world.ctx, world.shop_id, "acme")
    world.ready("ACME00000900")  # the pool and the caches warm
    assert world.announce("ACME00000901").status_code == 201
    statements.clear()
    response = world.check_in("ACME00000901")
    assert response.status_code == 201, response.json
    assert len(statements) >= 6  # the request's statements were seen
    reads = whole_table_reads(world.ctx, statements)
    assert reads == {}, "\n".join(f"{s}: {r}" for s, r in reads.items())


# A shop with few parcels in a big table is the case where a stale histogram misleads most:
# the codes the statistics know are few, with the lowest ids.
@pytest.mark.parametrize("on_hand", [ON_HAND, 50])
def test_a_pickup_by_code_at_a_full_shop_reads_no_growing_table_whole(
        world: World, statements: list[tuple[str, Any]], on_hand: int) -> None:
    seed_on_hand(world.ctx, world.shop_id, "acme", on_hand)
    parcel = world.ready("ACME00000910")
    code = world.code_of(parcel["id"])
    statements.clear()
    response = world.pick_up(code=code)
    assert response.status_code == 200, response.json
    assert len(statements) >= 6
    # Before the live codes' index, the oldest live code here was found by reading every
    # code of the table (the code-only throttle's count, services/throttle.py); before
    # db/few_ids.py, the code's parcels were found by walking the parcels' primary key.
    reads = whole_table_reads(world.ctx, statements)
    assert reads == {}, "\n".join(f"{s}: {r}" for s, r in reads.items())
