"""The embedded demo: a few sites of rural Pays-de-la-Loire, a carrier, staff, parcels.

Demo credentials are fixed so the README's curl examples work as printed. They exist only in
a database seeded by ``relay-ops demo``; production refuses the development secrets anyway.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import Carrier
from relay_ops.services import accounts, manifests, parcels, sites
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role

OPERATOR_TOKEN = "st_demo_operator.demo-operator-secret"  # noqa: S105 - demo only
SHOPKEEPER_TOKEN = "st_demo_shop.demo-shopkeeper-secret"  # noqa: S105 - demo only
CARRIER_TOKEN = "ck_demo_carrier.demo-carrier-secret"  # noqa: S105 - demo only
DEMO_PASSWORD = "relayops-demo"  # noqa: S105 - demo only
SHOP_HOURS = {
    day: [["08:30", "12:30"], ["15:00", "19:00"]] for day in ("tue", "wed", "thu", "fri", "sat")
}

SITES: list[dict[str, Any]] = [
    {"code": "riaille-bourg", "name": "Tabac-Presse du Bourg", "kind": "shop",
     "network": "relais-44", "address": "2 place de l'Église", "postcode": "44440",
     "city": "Riaillé", "latitude": 47.5167, "longitude": -1.2917, "area": "countryside",
     "opening_hours": SHOP_HOURS, "step_free_access": True,
     "locations": [{"label": "A1", "size_class": "S", "capacity": 20},
                   {"label": "A2", "size_class": "M", "capacity": 15},
                   {"label": "B1", "size_class": "L", "capacity": 6}]},
    {"code": "joue-epicerie", "name": "Épicerie de Joué", "kind": "shop",
     "network": "relais-44", "address": "5 rue du Moulin", "postcode": "44440",
     "city": "Joué-sur-Erdre", "latitude": 47.4958, "longitude": -1.4214, "area": "countryside",
     "opening_hours": SHOP_HOURS, "step_free_access": False,
     "locations": [{"label": "A1", "size_class": "M", "capacity": 12}]},
]


def seed(ctx: Ctx) -> None:
    with ctx.db.read() as session:
        if session.scalar(select(Carrier).where(Carrier.code == "ligerien")) is not None:
            return
    site_ids = {s["code"]: sites.create_site(ctx, SYSTEM, s)["id"] for s in SITES}
    accounts.create_carrier(ctx, SYSTEM, code="ligerien", name="Transports Ligériens")
    accounts.issue_carrier_key(ctx, SYSTEM, "ligerien", "demo", fixed=CARRIER_TOKEN)
    accounts.create_user(ctx, SYSTEM, username="operateur", password=DEMO_PASSWORD,
                         role="operator", display_name="Opérateur du territoire")
    accounts.create_user(ctx, SYSTEM, username="marie", password=DEMO_PASSWORD,
                         role="shopkeeper", display_name="Marie (Tabac-Presse)",
                         site_codes=["riaille-bourg"])
    long = timedelta(days=365)
    accounts.log_in(ctx, "operateur", DEMO_PASSWORD, ttl=long, fixed=OPERATOR_TOKEN)
    accounts.log_in(ctx, "marie", DEMO_PASSWORD, ttl=long, fixed=SHOPKEEPER_TOKEN)
    _announce_and_check_in(ctx, site_ids["riaille-bourg"])


def _announce_and_check_in(ctx: Ctx, shop_id: int) -> None:
    carrier = accounts.authenticate(ctx, CARRIER_TOKEN)
    body = {
        "reference": "DEMO-ROUND-1",
        "parcels": [
            {"tracking_number": number, "site": "riaille-bourg", "size_class": size,
             "recipient": {"name": name, "phone": "+33612345678", "locale": "fr"}}
            for number, size, name in (
                ("RR123456785FR", "S", "Jeanne Martin"),
                ("RELAYDEMO0002", "M", "Louis Bernard"),
                ("RELAYDEMO0003", "S", "Anne Petit"),
            )
        ],
    }
    manifests.announce(ctx, carrier, body)
    shopkeeper = Principal(Role.SHOPKEEPER, user_id=0, site_ids=frozenset({shop_id}),
                           name="demo")
    parcels.check_in(ctx, shopkeeper, shop_id, "RR123456785FR")


def print_welcome(ctx: Ctx, host: str, port: int, ctx_notify_path: str) -> None:
    base = f"http://{host}:{port}"
    click.echo(f"""
RelayOps demo running on {base}
  pages         {base}/login   (marie: scan station, operateur: dashboard)
  carrier pages {base}/carrier/login   (sign in with the carrier key below)
  API docs      {base}/api/docs
  OpenAPI       {base}/api/v1/openapi.json
  health        {base}/health
Demo credentials (Authorization: Bearer ...):
  operator      {OPERATOR_TOKEN}
  shopkeeper    {SHOPKEEPER_TOKEN}   (Tabac-Presse du Bourg, Riaillé)
  carrier       {CARRIER_TOKEN}
  staff password for 'operateur' and 'marie': {DEMO_PASSWORD}
Messages to residents are written to {ctx_notify_path}
""")


def serve(app: Flask, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from relay_ops.jobs import InProcessRunner

    runner = InProcessRunner(app.extensions["relay_ops"], app.config)
    runner.start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        runner.stop()
