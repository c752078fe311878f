"""The embedded demo: a few sites of rural Pays-de-la-Loire, a carrier, staff, parcels.

Demo credentials are fixed so the README's curl examples work as printed. They exist only in
a database seeded by ``relay-ops demo``; production refuses the development secrets anyway.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import click
from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import Carrier, CarrierSite, Producer, Site
from relay_ops.services import (
    accounts,
    api_tokens,
    carrier_sites,
    checkin,
    credentials,
    home_delivery,
    locker_compartments,
    locker_dropoff,
    locker_registry,
    manifests,
    outbound,
    parcel_views,
    producer_announcements,
    producer_counter,
    producers,
    resident,
    site_locations,
    sites,
    staff_sign_in,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM, Principal, Role

OPERATOR_TOKEN = "st_demo_operator.demo-operator-secret"  # noqa: S105 - demo only
SHOPKEEPER_TOKEN = "st_demo_shop.demo-shopkeeper-secret"  # noqa: S105 - demo only
CARRIER_TOKEN = "ck_demo_carrier.demo-carrier-secret"  # noqa: S105 - demo only
PRODUCER_TOKEN = "pk_demo_producer.demo-producer-secret"  # noqa: S105 - demo only
DEMO_PASSWORD = "relayops-demo"  # noqa: S105 - demo only
METRICS_TOKEN = "demo-metrics-token"  # noqa: S105 - demo only
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
PRODUCER_ORDER = "PANIER-12"  # a producer's order, kept cold on the Bourg shop's fridge shelf
HOME_PARCEL = "RELAYDEMO0002"  # brought home to its resident by a neighbour
# Every day the Bourg shop opens: whatever day the demo starts, a delivery day is near.
DELIVERY_DAYS = ["tue", "wed", "thu", "fri", "sat"]


def seed(ctx: Ctx) -> None:
    with ctx.db.read() as session:
        seeded = session.scalar(select(Carrier).where(Carrier.code == "ligerien")) is not None
        has_locker = session.scalar(select(Site).where(Site.code == LOCKER["code"])) is not None
        sends = session.scalar(select(CarrierSite.site_id).limit(1)) is not None
        producing = session.scalar(select(Producer.id).limit(1)) is not None
    if not seeded:
        _seed_shops(ctx)
    if not has_locker:  # also for a demo database made before lockers existed
        _seed_locker(ctx)
    if not sends:  # also for a demo database made before parcels were sent
        _seed_sending(ctx)
    if not producing:  # also for a demo database made before producers and home delivery
        _seed_short_circuit(ctx)
        _seed_home_delivery(ctx)


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
    staff_sign_in.log_in(ctx, "operateur", DEMO_PASSWORD, ttl=long, fixed=OPERATOR_TOKEN)
    staff_sign_in.log_in(ctx, "marie", DEMO_PASSWORD, ttl=long, fixed=SHOPKEEPER_TOKEN)
    _announce_and_check_in(ctx, site_ids["riaille-bourg"])


def _seed_locker(ctx: Ctx) -> None:
    # after the shops, so the README's tour keeps its site ids
    locker_registry.register_locker(ctx, SYSTEM, LOCKER)
    manifests.announce(ctx, api_tokens.authenticate(ctx, CARRIER_TOKEN), {
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
    carrier_sites.set_label_networks(ctx, SYSTEM, "ligerien", ["prefix:LIG", "upu-s10"])
    carrier_sites.serve_site(ctx, SYSTEM, shop_id, "ligerien", 48)
    sites.set_services(ctx, SYSTEM, shop_id, ["receive", "send"])
    outbound.drop_off(ctx, SYSTEM, shop_id, SENT_PARCEL, size_class="S",
                      sender=outbound.Sender(phone="+33644556677"))


def _seed_short_circuit(ctx: Ctx) -> None:
    """A farm's order for a resident, announced with its key and put in the Bourg shop's
    fridge: the shop declares "cold" and gets a refrigerated shelf (docs/producers.md)."""
    shop_id = sites.site_id_for_code(ctx, "riaille-bourg")
    site_locations.add_locations(ctx, SYSTEM, shop_id, [
        {"label": "F1", "size_class": "M", "capacity": 4, "refrigerated": True}])
    sites.set_services(ctx, SYSTEM, shop_id, ["receive", "send", "cold", "home_delivery"])
    producers.create_producer(ctx, SYSTEM, code="ferme", name="Ferme des Trois Chênes")
    producers.issue_producer_key(ctx, SYSTEM, "ferme", "demo", fixed=PRODUCER_TOKEN)
    farm = api_tokens.authenticate(ctx, PRODUCER_TOKEN)
    producer_announcements.announce(ctx, farm, producer_announcements.Order(
        reference=PRODUCER_ORDER, site="riaille-bourg", phone="+33655667788",
        name="Claire Dubois", size_class="S", keep_cold=True, holding_hours=48))
    producer_counter.deposit(ctx, _counter(shop_id), shop_id, PRODUCER_ORDER)


def _seed_home_delivery(ctx: Ctx) -> None:
    """The Bourg shop delivers on the days it opens; Louis Bernard, who cannot come, asks
    from his page that his neighbour bring his parcel home on the first day it can."""
    shop_id = sites.site_id_for_code(ctx, "riaille-bourg")
    operator = Principal(Role.OPERATOR, user_id=0)
    home_delivery.set_offer(ctx, operator, shop_id, {
        "days": DELIVERY_DAYS, "area": "Riaillé, le bourg et les hameaux à moins de 5 km"})
    parcel = parcel_views.find_parcel(ctx, SYSTEM, HOME_PARCEL)
    if parcel["state"] == "announced":
        checkin.check_in(ctx, _counter(shop_id), shop_id, HOME_PARCEL)
    louis = Principal(Role.RESIDENT, parcel_id=parcel["id"])
    days = home_delivery.for_resident(ctx, louis)["days"]
    if days:  # none only if the parcel's deadline leaves no open day
        home_delivery.request(ctx, louis, parcel["id"], day=date.fromisoformat(days[0]),
                              courier_kind="neighbour", courier_name="Marcel Petit",
                              consent=True, in_area=True)


def _counter(shop_id: int) -> Principal:
    return Principal(Role.SHOPKEEPER, user_id=0, site_ids=frozenset({shop_id}), name="demo")


def _announce_and_check_in(ctx: Ctx, shop_id: int) -> None:
    carrier = api_tokens.authenticate(ctx, CARRIER_TOKEN)
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
    checkin.check_in(ctx, _counter(shop_id), shop_id, "RR123456785FR")


def print_welcome(ctx: Ctx, host: str, port: int, ctx_notify_path: str,
                  metrics_token: str) -> None:
    base = f"http://{host}:{port}"
    click.echo(f"""
RelayOps demo running on {base}
  pages         {base}/login   (marie: scan station, operateur: dashboard)
  carrier pages {base}/carrier/login   (sign in with the carrier key below;
                "Collections" lists {SENT_PARCEL}, sent from the Bourg shop)
  producer page {base}/producer/login   (sign in with the producer key below:
                order {PRODUCER_ORDER}, kept cold at the Bourg shop, in the shop's
                "Producteurs" page too)
  home delivery {_home_delivery_line(ctx)}
  API docs      {base}/api/docs
  OpenAPI       {base}/api/v1/openapi.json
  health        {base}/health
  metrics       {base}/metrics   (Prometheus; Authorization: Bearer {metrics_token})
Demo credentials (Authorization: Bearer ...):
  operator      {OPERATOR_TOKEN}
  shopkeeper    {SHOPKEEPER_TOKEN}   (Tabac-Presse du Bourg, Riaillé)
  carrier       {CARRIER_TOKEN}
  producer      {PRODUCER_TOKEN}   (Ferme des Trois Chênes)
  staff password for 'operateur' and 'marie': {DEMO_PASSWORD}
Messages to residents are written to {ctx_notify_path}
""")


def _home_delivery_line(ctx: Ctx) -> str:
    parcel = parcel_views.find_parcel(ctx, SYSTEM, HOME_PARCEL)
    planned = home_delivery.for_resident(
        ctx, Principal(Role.RESIDENT, parcel_id=parcel["id"]))["delivery"]
    if planned is None:
        return f"{HOME_PARCEL}: none planned (see the shop's \"Remise à domicile\" page)"
    return (f"{HOME_PARCEL} for Louis Bernard, brought by his neighbour on {planned['day']};\n"
            f"                the neighbour's phone page: {planned['courier_url']}\n"
            f"                (the shop's \"Remise à domicile\" page hands it over)")


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
