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

from relay_ops.db.models import Carrier, CarrierSite, Site
from relay_ops.services import (
    accounts,
    checkin,
    credentials,
    locker_compartments,
    locker_dropoff,
    locker_registry,
    manifests,
    outbound,
    parcel_views,
    resident,
    sites,
)
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
LOCKER: dict[str, Any] = {
    "code": "riaille-casier", "name": "Casier de la mairie de Riaillé", "network": "relais-44",
    "locker_model": "mini-6", "address": "1 rue de la Mairie", "postcode": "44440",
    "city": "Riaillé", "latitude": 47.5172, "longitude": -1.2931, "area": "countryside",
    "step_free_access": True,
}
LOCKER_PARCEL = "RELAYDEMO0101"
PANEL_PARCEL = "RELAYDEMO0102"  # announced, left for the visitor to drop off from the panel
SENT_PARCEL = "LIGENVOI0001"  # a resident's parcel dropped off at the counter for sending


def seed(ctx: Ctx) -> None:
    with ctx.db.read() as session:
        seeded = session.scalar(select(Carrier).where(Carrier.code == "ligerien")) is not None
        has_locker = session.scalar(select(Site).where(Site.code == LOCKER["code"])) is not None
        sends = session.scalar(select(CarrierSite.site_id).limit(1)) is not None
    if not seeded:
        _seed_shops(ctx)
    if not has_locker:  # also for a demo database made before lockers existed
        _seed_locker(ctx)
    if not sends:  # also for a demo database made before parcels were sent
        _seed_sending(ctx)


def _seed_shops(ctx: Ctx) -> None:
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


def _seed_locker(ctx: Ctx) -> None:
    # after the shops, so the README's tour keeps its site ids
    locker_registry.register_locker(ctx, SYSTEM, LOCKER)
    manifests.announce(ctx, accounts.authenticate(ctx, CARRIER_TOKEN), {
        "reference": "DEMO-LOCKER-1",
        "parcels": [{"tracking_number": number, "site": LOCKER["code"], "size_class": "S",
                     "recipient": {"name": name, "phone": "+33698765432", "locale": "fr"}}
                    for number, name in ((LOCKER_PARCEL, "Lucie Moreau"),
                                         (PANEL_PARCEL, "Hugo Lefèvre"))],
    })


def _seed_sending(ctx: Ctx) -> None:
    """The carrier collects its own labels and postal S10 ones at the Bourg shop within two
    days; one parcel waits on its pickup list (docs/outbound.md)."""
    shop_id = sites.site_id_for_code(ctx, "riaille-bourg")
    outbound.set_label_networks(ctx, SYSTEM, "ligerien", ["prefix:LIG", "upu-s10"])
    outbound.serve_site(ctx, SYSTEM, shop_id, "ligerien", 48)
    sites.set_services(ctx, SYSTEM, shop_id, ["receive", "send"])
    outbound.drop_off(ctx, SYSTEM, shop_id, SENT_PARCEL, size_class="S",
                      sender=outbound.Sender(phone="+33644556677"))


def _announce_and_check_in(ctx: Ctx, shop_id: int) -> None:
    carrier = accounts.authenticate(ctx, CARRIER_TOKEN)
    body = {
        "reference": "DEMO-ROUND-1",
        "parcels": [
            # Three residents, three phones: one phone's parcels would share a code.
            {"tracking_number": number, "site": "riaille-bourg", "size_class": size,
             "recipient": {"name": name, "phone": phone, "locale": "fr"}}
            for number, size, name, phone in (
                ("RR123456785FR", "S", "Jeanne Martin", "+33612345678"),
                ("RELAYDEMO0002", "M", "Louis Bernard", "+33622334455"),
                ("RELAYDEMO0003", "S", "Anne Petit", "+33633445566"),
            )
        ],
    }
    manifests.announce(ctx, carrier, body)
    shopkeeper = Principal(Role.SHOPKEEPER, user_id=0, site_ids=frozenset({shop_id}),
                           name="demo")
    checkin.check_in(ctx, shopkeeper, shop_id, "RR123456785FR")


def print_welcome(ctx: Ctx, host: str, port: int, ctx_notify_path: str) -> None:
    base = f"http://{host}:{port}"
    click.echo(f"""
RelayOps demo running on {base}
  pages         {base}/login   (marie: scan station, operateur: dashboard)
  carrier pages {base}/carrier/login   (sign in with the carrier key below;
                "Collections" lists {SENT_PARCEL}, sent from the Bourg shop)
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


def stock_locker(ctx: Ctx, embedded: Any) -> None:
    """The carrier's first drop at the demo locker, played through the real protocol: a session,
    a scan, the door opens, the parcel goes in, the door closes."""
    with ctx.db.read() as session:
        site = locker_compartments.locker_by_code(session, LOCKER["code"])
        site_id = site.id
        carrier = session.scalar(select(Carrier).where(Carrier.code == "ligerien"))
        assert carrier is not None
    if parcel_views.find_parcel(ctx, SYSTEM, LOCKER_PARCEL)["state"] != "announced":
        return
    van = Principal(Role.CARRIER, carrier_id=carrier.id)
    drop = locker_dropoff.open_session(ctx, van, site_id)
    door = locker_dropoff.deposit(ctx, van, drop["id"], LOCKER_PARCEL)["compartment"]
    if embedded.wait_until(lambda: embedded.board.door_state(door) == "open", 15):
        embedded.board.close_door(door, occupied=True)
        embedded.wait_until(
            lambda: parcel_views.find_parcel(ctx, SYSTEM, LOCKER_PARCEL)["state"]
            == "ready_for_pickup",
            15)
    locker_dropoff.close_session(ctx, van, drop["id"])


def print_locker_welcome(ctx: Ctx, base: str) -> None:
    view = parcel_views.find_parcel(ctx, SYSTEM, LOCKER_PARCEL)
    if view["state"] != "ready_for_pickup":
        click.echo(f"The demo locker is not stocked yet ({LOCKER_PARCEL} is {view['state']}).")
        return
    with ctx.db.read() as session:
        credential = credentials.live_credentials(session, view["id"])[0]
        pin = credentials.code_of(ctx, credential)
    link = resident.tracking_token(ctx, view["id"])
    door = view["compartment"]
    click.echo(f"""
A simulated locker, {LOCKER["code"]}, runs in this process (MQTT broker on 127.0.0.1).
Parcel {LOCKER_PARCEL} waits in compartment {door}. Type in this terminal:
  pin {pin}        the resident types the PIN: door {door} opens
  close {door} empty      the resident took the parcel and closed the door
  state             the doors, as the locker sees them
The resident's QR code: {base}/api/v1/track/{link}/qr.png (scan RO1:... to use it)
The locker panel, in a browser (no sign-in in the demo): scan {PANEL_PARCEL} as the carrier,
close its door "parcel inside", then type the PIN its resident's phone shows on the keypad:
  {base}/lockers/{lockers_site_id(ctx)}/panel
The locker as an operator sees it: {base}/api/v1/lockers/{lockers_site_id(ctx)}
""")


def lockers_site_id(ctx: Ctx) -> int:
    return sites.site_id_for_code(ctx, LOCKER["code"])


def serve(app: Flask, host: str, port: int) -> None:
    from werkzeug.serving import run_simple

    from relay_ops.jobs import InProcessRunner

    runner = InProcessRunner(app.extensions["relay_ops"], app.config)
    runner.start()
    try:
        run_simple(host, port, app, threaded=True, use_reloader=False)
    finally:
        runner.stop()
