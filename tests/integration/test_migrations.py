"""Migrations from an empty database produce exactly the models' schema, on both databases."""

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import IntegrityError

from relay_ops.db import migrate
from relay_ops.db.models import Base
from tests.conftest import PG_ADMIN_URL

SITE_ROW = ("INSERT INTO sites (id, code, name, kind, address, postcode, city, latitude,"
            " longitude, area, opening_hours, step_free_access, status, created_at) VALUES"
            " (:id, :code, 'Site', :kind, '1 rue', '44000', 'Bourg', 47.5, -1.3, 'countryside',"
            " '{}', false, 'open', :now)")


def _insert_site(connection: Connection, now: str, site_id: int = 1, code: str = "bourg",
                 kind: str = "shop") -> None:
    """A site row as the schema of any revision here holds it."""
    connection.execute(text(SITE_ROW), {"id": site_id, "code": code, "kind": kind, "now": now})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
        yield engine
        engine.dispose()
        return
    name = f"relayops_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_migrations_match_the_models(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    tables = set(inspect(empty_engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)


def test_migrations_go_down_to_empty_and_up_again(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    migrate.downgrade(empty_engine, "base")
    assert set(inspect(empty_engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty_engine)
    assert migrate.current_revision(empty_engine) is not None


def test_the_grouping_migration_gives_each_existing_code_its_parcel(
        empty_engine: Engine) -> None:
    """0006 adds credential_parcels; a code issued before it covers its one parcel, and going
    down again keeps the codes."""
    migrate.upgrade(empty_engine, "0005_snapshot_waiting")
    now = "2026-12-01 09:00:00"
    with empty_engine.begin() as connection:
        _insert_site(connection, now)
        connection.execute(text(
            "INSERT INTO parcels (id, tracking_number, site_id, state, direction, unannounced,"
            " recipient_locale, extended, created_at, updated_at) VALUES"
            " (7, 'MIGR00000001', 1, 'ready_for_pickup', 'inbound', false, 'fr', false,"
            " :now, :now)"), {"now": now})
        connection.execute(text(
            "INSERT INTO pickup_credentials (id, parcel_id, site_id, holder, nonce, code_hash,"
            " failed_attempts, created_at) VALUES"
            " (3, 7, 1, 'recipient', 'n', 'h', 0, :now)"), {"now": now})

    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        rows = connection.execute(
            text("SELECT credential_id, parcel_id FROM credential_parcels")).all()
    assert [tuple(r) for r in rows] == [(3, 7)]

    migrate.downgrade(empty_engine, "0005_snapshot_waiting")
    assert "credential_parcels" not in inspect(empty_engine).get_table_names()
    assert "recipient_phone_key" not in {
        c["name"] for c in inspect(empty_engine).get_columns("parcels")}
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT parcel_id FROM pickup_credentials")).all() == [(7,)]


def test_the_outbound_migration_says_what_existing_sites_offer(empty_engine: Engine) -> None:
    """0011 adds sites.services: a shop made before it receives parcels, a locker site is
    also a locker; carriers collect no label network until an operator says so."""
    migrate.upgrade(empty_engine, "0009_unannounced_scans")
    now = "2026-12-01 09:00:00"
    with empty_engine.begin() as connection:
        for site_id, code, kind in ((1, "bourg", "shop"), (2, "box", "locker")):
            _insert_site(connection, now, site_id, code, kind)
        connection.execute(text(
            "INSERT INTO carriers (id, code, name, reroute_policy, created_at) VALUES"
            " (1, 'acme', 'Acme', 'confirm', :now)"), {"now": now})
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        services = connection.execute(text("SELECT code, services FROM sites ORDER BY id")).all()
        networks = connection.execute(text("SELECT label_networks FROM carriers")).scalar_one()
    decoded = [(code, value if isinstance(value, list) else json.loads(value))
               for code, value in services]
    assert decoded == [("bourg", ["receive"]), ("box", ["receive", "locker"])]
    assert (networks if isinstance(networks, list) else json.loads(networks)) == []
    migrate.downgrade(empty_engine, "0009_unannounced_scans")
    assert "services" not in {c["name"] for c in inspect(empty_engine).get_columns("sites")}
    assert "outbound_parcels" not in inspect(empty_engine).get_table_names()


def _foreign_keys_on(engine: Engine) -> None:
    """As the product's own engine does (db/database.py): SQLite enforces foreign keys, so a
    migration that rebuilds a table must not let the old table's drop cascade."""
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA foreign_keys=ON")


def test_the_oracle_migration_makes_numbers_unique_per_carrier(empty_engine: Engine) -> None:
    """0018: two carriers may hold the same number, one carrier may not hold it twice, nor
    may two parcels of no carrier; the parcels and their rows survive the change."""
    _foreign_keys_on(empty_engine)
    migrate.upgrade(empty_engine, "0017_reservations")
    now = "2026-12-01 09:00:00"
    parcel = ("INSERT INTO parcels (id, tracking_number, carrier_id, site_id, state, direction,"
              " unannounced, recipient_locale, extended, created_at, updated_at) VALUES"
              " (:id, 'MIGR00000018', :carrier, 1, 'announced', 'inbound', false, 'fr', false,"
              " :now, :now)")
    with empty_engine.begin() as connection:
        _insert_site(connection, now)
        for carrier_id, code in ((1, "acme"), (2, "other")):
            connection.execute(text(
                "INSERT INTO carriers (id, code, name, reroute_policy, label_networks,"
                " created_at) VALUES (:id, :code, 'C', 'confirm', '[]', :now)"),
                {"id": carrier_id, "code": code, "now": now})
        connection.execute(text(parcel), {"id": 7, "carrier": 1, "now": now})
        connection.execute(text(
            "INSERT INTO parcel_events (id, parcel_id, at, action, to_state, actor_kind, data)"
            " VALUES (1, 7, :now, 'announce', 'announced', 'carrier', '{}')"), {"now": now})

    migrate.upgrade(empty_engine)
    with empty_engine.begin() as connection:
        assert connection.execute(text("SELECT parcel_id FROM parcel_events")).all() == [(7,)]
        connection.execute(text(parcel), {"id": 8, "carrier": 2, "now": now})
        connection.execute(text(parcel), {"id": 9, "carrier": None, "now": now})
    for carrier in (1, 2, None):
        with pytest.raises(IntegrityError), empty_engine.begin() as connection:
            connection.execute(text(parcel), {"id": 10, "carrier": carrier, "now": now})

    with empty_engine.begin() as connection:
        connection.execute(text("DELETE FROM parcels WHERE id IN (8, 9)"))
    migrate.downgrade(empty_engine, "0017_reservations")
    with empty_engine.connect() as connection:
        assert connection.execute(text("SELECT parcel_id FROM parcel_events")).all() == [(7,)]


def test_the_first_attempt_migration_reads_each_parcels_firsts_from_its_events(
        empty_engine: Engine) -> None:
    """0020: a parcel turned away at one shop, checked in at another, announced twice,
    picked up then declared missing keeps its first of each; a parcel with no events, none."""
    _foreign_keys_on(empty_engine)
    migrate.upgrade(empty_engine, "0019_locker17")
    parcel = ("INSERT INTO parcels (id, tracking_number, site_id, state, direction, unannounced,"
              " recipient_locale, extended, created_at, updated_at) VALUES (:id, :number, 2,"
              " 'picked_up', 'inbound', false, 'fr', false, :at, :at)")
    event = ("INSERT INTO parcel_events (id, parcel_id, at, action, to_state, actor_kind,"
             " site_id, data) VALUES (:id, 7, :at, :action, 'announced', 'system', :site, '{}')")
    history = [("announce", 1, "2026-11-20 08:00:00"), ("announce", 1, "2026-11-20 09:00:00"),
               ("check_in_refused", 1, "2026-11-21 10:00:00"),
               ("reroute", 2, "2026-11-21 11:00:00"),
               ("check_in", 2, "2026-11-22 12:00:00"), ("pick_up", 2, "2026-11-23 13:00:00"),
               ("declare_missing", 2, "2026-11-24 14:00:00")]
    with empty_engine.begin() as connection:
        for id_, code in ((1, "bourg"), (2, "voisin")):
            _insert_site(connection, "2026-11-01 00:00:00", id_, code)
        for id_, number in ((7, "MIGR00000020"), (8, "MIGR00000021")):
            connection.execute(text(parcel), {"id": id_, "number": number,
                                              "at": "2026-11-01 00:00:00"})
        for id_, (action, site_id, at) in enumerate(history, start=1):
            connection.execute(text(event), {"id": id_, "at": at, "action": action,
                                             "site": site_id})

    migrate.upgrade(empty_engine)
    columns = ("first_attempt_at", "first_attempt_site_id", "first_check_in_at", "announced_at",
               "ended_at", "ending")
    with empty_engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT id, first_attempt_at, first_attempt_site_id, first_check_in_at,"
            " announced_at, ended_at, ending FROM parcels ORDER BY id")).all()
        # The table rebuilt on SQLite: the events are still there (no cascade).
        assert connection.scalar(text("SELECT count(*) FROM parcel_events")) == len(history)
    assert [row[0] for row in rows] == [7, 8]
    first, none = rows
    assert first.first_attempt_site_id == 1 and first.ending == "pick_up"
    # Compared as text: each driver gives its own type (aware on PostgreSQL, naive on SQLite).
    assert [str(getattr(first, c))[:19] for c in ("first_attempt_at", "first_check_in_at",
                                                   "announced_at", "ended_at")] == [
        "2026-11-21 10:00:00", "2026-11-22 12:00:00", "2026-11-20 08:00:00",
        "2026-11-23 13:00:00"]
    assert all(getattr(none, c) is None for c in columns)
    migrate.downgrade(empty_engine, "0019_locker17")
    left = {c["name"] for c in inspect(empty_engine).get_columns("parcels")}
    assert "first_attempt_at" not in left and "ending" not in left
