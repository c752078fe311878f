"""A fresh PostgreSQL database for the benchmark: created, migrated, and seeded through the
services (one shop with room for every parcel, its shopkeeper, a carrier, announced parcels)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from flask import Flask

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.services import accounts, manifests, sites, staff_sign_in
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role

PASSWORD = "bench password not secret"
CAPACITY_PER_SHOP = 1_000_000  # shelf room is never what limits the benchmark
BATCH = manifests.MAX_PARCELS
HOURS = {d: [["00:00", "23:59"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def tracking_number(n: int) -> str:
    """Parcel n's number: a generic (non-S10) format, as the load generators build it."""
    return f"BENCH{n:08d}"


def recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class World:
    app: Flask
    ctx: Ctx
    site_ids: list[int]
    carrier: Principal
    shopkeeper_token: str
    announced: int = 0


def shop_code(i: int) -> str:
    return f"bench-shop-{i}"


def build(config: dict[str, Any], shops: int) -> World:
    """Migrate the (empty) database; create the shops, a carrier and one shopkeeper who works
    at every shop (so one bearer token serves every request)."""
    app = create_app(config)
    ctx: Ctx = app.extensions["relay_ops"]
    migrate.upgrade(ctx.db.engine)
    site_ids = []
    for i in range(shops):
        site = sites.create_site(ctx, SYSTEM, {
            "code": shop_code(i), "name": f"Bench shop {i}", "kind": "shop",
            "address": "1 rue du Banc", "postcode": "44000", "city": "Bourg",
            "latitude": 47.5 + i / 100, "longitude": -1.29, "opening_hours": HOURS,
            "locations": [{"label": f"S{k}", "size_class": "S", "capacity": CAPACITY_PER_SHOP // 4}
                          for k in range(1, 5)],
        })
        site_ids.append(int(site["id"]))
    if site_ids != list(range(site_ids[0], site_ids[0] + shops)):
        raise RuntimeError(f"expected consecutive site ids, got {site_ids}")
    carrier = accounts.create_carrier(ctx, SYSTEM, code="bench", name="Bench Parcels")
    accounts.create_user(ctx, SYSTEM, username="bench-shopkeeper", password=PASSWORD,
                         role="shopkeeper", site_codes=[shop_code(i) for i in range(shops)])
    token = staff_sign_in.log_in(ctx, "bench-shopkeeper", PASSWORD).token
    return World(app, ctx, site_ids, Principal(Role.CARRIER, carrier_id=int(carrier["id"])),
                 token)


def announce(world: World, count: int) -> None:
    """Announce ``count`` more parcels through the manifest service, in manifests of 5000;
    parcel n goes to shop n % shops (the load generators derive the site the same way)."""
    shops = len(world.site_ids)
    end = world.announced + count
    while world.announced < end:
        first, last = world.announced, min(world.announced + BATCH, end)
        status, answer = manifests.announce(world.ctx, world.carrier, {
            "reference": f"bench-{first}",
            "parcels": [
                {"tracking_number": tracking_number(n), "site": shop_code(n % shops),
                 "recipient": {"name": "Jeanne Martin", "phone": "+33612345678",
                               "email": "jeanne@example.org"}}
                for n in range(first, last)
            ],
        })
        if status != 201 or answer["accepted"] != last - first:
            raise RuntimeError(f"seeding refused parcels: {answer['rejected']} rejected")
        world.announced = last
