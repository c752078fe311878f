"""The fast path stays flat as a shop fills (issue 15): every statement a check-in and a
pickup by code run reaches the rows it needs through an index, never by reading a whole
table that grows with the parcels (parcels, codes, their links, events, messages, jobs).

A plan, not a timing: PostgreSQL's EXPLAIN of each statement the request ran, with the
values it ran with, on a shop holding thousands of parcels with live codes, its statistics
fresh (as autovacuum keeps them). The benchmark (bench/fast_path.py) measures the time.
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
ON_HAND = 3000


def seed_on_hand(ctx: Ctx, site_id: int, carrier: str) -> None:
    """``ON_HAND`` ready parcels at the shop, each with its live code and link, and as many
    picked up long ago, then ANALYZE: written in SQL, as the benchmark seeds."""
    with ctx.db.engine.begin() as conn:
        location = conn.execute(text("SELECT min(id) FROM locations WHERE site_id = :s"),
                                {"s": site_id}).scalar_one()
        carrier_id = conn.execute(text("SELECT id FROM carriers WHERE code = :c"),
                                  {"c": carrier}).scalar_one()
        for state, tag in (("ready_for_pickup", "HELD"), ("picked_up", "GONE")):
            conn.execute(text(
                "INSERT INTO parcels (tracking_number, carrier_id, site_id, location_id, state,"
                " direction, unannounced, recipient_name, recipient_phone, recipient_locale,"
                " recipient_phone_key, extended, holding_deadline, checked_in_at, created_at,"
                " updated_at) SELECT :tag || lpad(n::text, 8, '0'), :carrier, :site, :loc,"
                " :state, 'inbound', false, 'Jeanne Martin', '+3361' || lpad(n::text, 7, '0'),"
                " 'fr', md5(:tag || n::text), false, now() + interval '9 days', now(), now(),"
                " now() FROM generate_series(1, :n) AS n"),
                {"tag": tag, "carrier": carrier_id, "site": site_id, "loc": location,
                 "state": state, "n": ON_HAND})
            conn.execute(text(
                "INSERT INTO pickup_credentials (parcel_id, site_id, holder, nonce, code_hash,"
                " failed_attempts, created_at, used_at) SELECT p.id, p.site_id, 'recipient',"
                " md5(p.tracking_number), md5('code' || p.tracking_number), 0,"
                " now() - interval '1 day', CASE WHEN p.state = 'picked_up' THEN now() END"
                " FROM parcels p WHERE p.tracking_number LIKE :tag || '%'"), {"tag": tag})
        conn.execute(text(
            "INSERT INTO credential_parcels (credential_id, parcel_id, added_at)"
            " SELECT c.id, c.parcel_id, c.created_at FROM pickup_credentials c"
            " WHERE c.nonce IN (SELECT md5(tracking_number) FROM parcels)"))
        conn.execute(text("UPDATE locations SET capacity = capacity + :n, held = held + :n "
                          "WHERE id = :loc"), {"n": ON_HAND, "loc": location})
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


def scans_of_growing_tables(ctx: Ctx, statement: str, parameters: Any) -> list[str]:
    """The tables of ``GROWING`` that the statement's plan reads whole (a sequential scan)."""
    raw = ctx.db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        [[plan]] = cursor.fetchall()
    finally:
        raw.rollback()
        raw.close()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    found: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("Node Type") == "Seq Scan" and node.get("Relation Name") in GROWING:
            found.append(node["Relation Name"])
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def whole_table_reads(ctx: Ctx, seen: list[tuple[str, Any]]) -> dict[str, list[str]]:
    reads = {" ".join(s.split())[:120]: scans_of_growing_tables(ctx, s, p) for s, p in seen}
    return {s: tables for s, tables in reads.items() if tables}


def test_a_check_in_at_a_full_shop_reads_no_growing_table_whole(
        world: World, statements: list[tuple[str, Any]]) -> None:
    world.ready("ACME00000900")  # the pool and the caches warm
    seed_on_hand(world.ctx, world.shop_id, "acme")
    assert world.announce("ACME00000901").status_code == 201
    statements.clear()
    response = world.check_in("ACME00000901")
    assert response.status_code == 201, response.json
    assert len(statements) >= 6  # the request's statements were seen
    assert whole_table_reads(world.ctx, statements) == {}


def test_a_pickup_by_code_at_a_full_shop_reads_no_growing_table_whole(
        world: World, statements: list[tuple[str, Any]]) -> None:
    parcel = world.ready("ACME00000910")
    code = world.code_of(parcel["id"])
    seed_on_hand(world.ctx, world.shop_id, "acme")
    statements.clear()
    response = world.pick_up(code=code)
    assert response.status_code == 200, response.json
    assert len(statements) >= 6
    # Before the live codes' index, the oldest live code here was found by reading every
    # code of the table (the code-only throttle's count, services/throttle.py).
    assert whole_table_reads(world.ctx, statements) == {}
