"""Sending from a locker and producers' orders deposited at one (issue 17, items 1 and 2),
through the real path: the API, the services, the outbox, the bridge, the machine's
Mosquitto, a real locker agent with a simulated board (docs/outbound.md and
docs/producers.md, "At a locker")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from locker_harness import SHARED_BROKER, unique_locker_id, wait_until
from sqlalchemy import select, update

from firmware_bridge.agent.agent import LockerAgent
from firmware_bridge.agent.drivers import SimulatedBoard
from firmware_bridge.bridge import Bridge, BridgeSettings
from relay_ops import outbox
from relay_ops.db.models import (
    Compartment,
    LockerAlert,
    Notification,
    OutboundParcel,
    OutboxMessage,
    Parcel,
    ParcelEvent,
)
from relay_ops.db.models import Site as SiteRow
from relay_ops.domain.errors import NotFound
from relay_ops.jobs import handlers, run_sweep
from relay_ops.services import (
    credentials,
    expiry,
    locker_carrier_codes,
    locker_compartments,
    locker_dropoff,
    locker_registry,
    locker_sending,
    locker_sync,
    locker_take_back,
    resident,
)
from relay_ops.services.context import Ctx
from relay_ops.services.locker_sending import DROP_OFF_VALIDITY
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.integration.firmware_bridge.conftest import FakeClock, fast_settings
from tests.integration.firmware_bridge.test_bridge import (  # noqa: F401 (fixtures)
    Site,
    bridge_for,
    clock,
    locker_site,
)
from tests.support import Api, World, is_problem, provisioned

ACME = Principal(Role.CARRIER, carrier_id=1)
SENDER = {"phone": "+33698765432", "email": "sender@example.org"}
CUSTOMER = {"phone": "+33611223344", "email": "client@example.org"}
SIZES = {1: "S", 2: "S", 3: "M", 4: "M", 5: "L", 6: "XL"}  # the mini-6 model


@pytest.fixture
def site(locker_site: Callable[..., Site]) -> Site:  # noqa: F811 (the fixture imported)
    """A registered locker (mini-6: doors 1-2 S, 3-4 M, 5 L, 6 XL) online with its agent."""
    return locker_site()


def acme_collects_at(world: World, site_id: int) -> None:
    """Acme collects its own labels (ACME...) at this locker within 24 h."""
    assert world.operator.put("/carriers/acme/label-networks",
                              json={"label_networks": ["prefix:ACME"]}).status_code == 200
    assert world.operator.put(f"/sites/{site_id}/carriers/acme",
                              json={"collection_delay_hours": 24}).status_code == 200


def announce_drop_off(site: Site, number: str, size_class: str = "M",
                      api: Api | None = None) -> dict[str, Any]:
    """The sender announces online (no key); waits until the locker holds the door's code."""
    response = (api or site.world.anonymous).post(
        f"/lockers/{site.site_id}/drop-offs",
        json={"tracking_number": number, "size_class": size_class, "sender": SENDER})
    assert response.status_code == 201, response.json
    synced(site)
    return dict(response.json)


def door_of(site: Site, number: str) -> int:
    compartment = site.parcel(number).compartment_id
    with site.world.ctx.db.read() as session:
        box = session.get(Compartment, compartment)
        assert box is not None
        return box.number


def messages(world: World, number: str) -> list[str]:
    """The messages queued for the parcel's contact, in order (one per kind: each goes by
    SMS and e-mail)."""
    with world.ctx.db.read() as session:
        kinds = session.scalars(
            select(Notification.kind).join(Parcel, Parcel.id == Notification.parcel_id)
            .where(Parcel.tracking_number == number).order_by(Notification.id))
        return list(dict.fromkeys(kinds))


def synced(site: Site) -> None:
    """The locker holds every credential version sent to it."""
    wait_until(lambda: (link := site.view()["link"])["credential_version_held"]
               == link["credential_version_sent"], 10, "the locker synced")


def event(world: World, number: str, action: str) -> ParcelEvent:
    with world.ctx.db.read() as session:
        found = session.scalar(select(ParcelEvent).join(Parcel).where(
            Parcel.tracking_number == number, ParcelEvent.action == action))
        assert found is not None, f"no {action} for {number}"
        return found


def shown(site: Site, text: str) -> Callable[[], bool]:
    return lambda: any(text in line for line in site.board.display)


def test_a_sender_s_code_opens_a_door_of_its_size_then_the_carrier_s_code_collects_it(
        site: Site) -> None:
    world = site.world
    acme_collects_at(world, site.site_id)
    started = time.monotonic()
    drop = announce_drop_off(site, "ACME00000701", "M")
    announced_s = time.monotonic() - started
    assert drop["status"] == "announced" and drop["size_class"] == "M"
    assert drop["qr"] == f"RODEP:{drop['code']}/ACME00000701"
    door = door_of(site, "ACME00000701")
    assert SIZES[door] == "M"
    assert world.anonymous.get(drop["qr_svg_url"].split("/api/v1")[1]).status_code == 200

    site.board.type_carrier_code("99999999" if drop["code"] != "99999999" else "99999998")
    wait_until(shown(site, "refused: unknown_code"), 10, "a wrong code refused")
    assert site.board.open_calls == []

    site.board.type_carrier_code(drop["code"])
    wait_until(shown(site, "1 to deposit"), 10, "the screen asks for the parcel")
    site.board.scan("ACME00000701")
    wait_until(lambda: site.board.door_state(door) == "open", 10, "its door opens")
    closed = time.monotonic()
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("ACME00000701") == "awaiting_collection", 10, "deposited")
    print(f"drop-off announced and held by the locker: {announced_s:.2f} s; door closed to "
          f"awaiting_collection: {time.monotonic() - closed:.2f} s")
    assert site.actions("ACME00000701") == [
        "drop_off_announced", "compartment_reserved", "offline_deposit_verified", "drop_off",
        "accept_outbound"]
    assert messages(world, "ACME00000701") == ["drop_off_code", "dropped_off"]
    assert site.view()["compartments"][door - 1]["state"] == "occupied"
    synced(site)  # the carrier's collection reservation is at the locker
    listed = world.carrier.get(f"/sites/{site.site_id}/outbound/pickup-list").json["items"]
    assert [p["tracking_number"] for p in listed] == ["ACME00000701"]
    # at a locker, only a door's closing says the parcel left
    assert is_problem(world.carrier.post(f"/sites/{site.site_id}/outbound/collections",
                                         json={"taken": ["ACME00000701"]}),
                      409, "site-has-no-shelves")

    # the code is spent: typed again, it opens nothing
    site.board.display.clear()
    site.board.type_carrier_code(drop["code"])
    wait_until(shown(site, "refused"), 10, "a spent code refused")
    assert site.board.open_calls == [door]

    # the carrier's own code opens the sent parcel's door; door closed empty: it has left
    code = locker_carrier_codes.carrier_code_view(world.ctx, ACME, site.site_id)["code"]
    site.board.type_carrier_code(code)
    wait_until(lambda: site.board.open_calls == [door, door], 10, "the carrier's door opens")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("ACME00000701") == "collected", 10, "collected")
    assert event(world, "ACME00000701", "collect").actor_kind == "carrier"
    assert messages(world, "ACME00000701") == ["drop_off_code", "dropped_off", "collected"]
    assert site.view()["compartments"][door - 1]["state"] == "free"


def test_the_carrier_s_collection_session_opens_the_sent_parcels_doors_one_after_another(
        site: Site) -> None:
    acme_collects_at(site.world, site.site_id)
    doors = []
    for number, size in (("ACME00000711", "S"), ("ACME00000712", "XL")):
        drop = announce_drop_off(site, number, size)
        doors.append(door_of(site, number))
        site.board.type_carrier_code(drop["code"])
        wait_until(shown(site, "1 to deposit"), 10, "the screen asks for the parcel")
        site.board.display.clear()
        site.board.scan(number)
        wait_until(lambda n=doors[-1]: site.board.door_state(n) == "open", 10, "door open")
        site.board.close_door(doors[-1], occupied=True)
        wait_until(lambda n=number: site.state_of(n) == "awaiting_collection", 10, "deposited")
    assert [SIZES[n] for n in doors] == ["S", "XL"]

    session = locker_dropoff.open_session(site.world.ctx, ACME, site.site_id)
    started = locker_collection_start(site.world.ctx, session["id"])
    assert started["to_collect"] == ["ACME00000711", "ACME00000712"]
    wait_until(lambda: site.board.door_state(doors[0]) == "open", 10, "the first door")
    assert site.board.door_state(doors[1]) == "closed"  # one at a time
    site.board.close_door(doors[0], occupied=False)
    wait_until(lambda: site.board.door_state(doors[1]) == "open", 10, "then the next")
    site.board.close_door(doors[1], occupied=False)
    wait_until(lambda: site.state_of("ACME00000712") == "collected", 10, "both collected")
    assert site.state_of("ACME00000711") == "collected"


def locker_collection_start(ctx: Ctx, session_id: int) -> dict[str, Any]:
    from relay_ops.services import locker_collection

    return locker_collection.start_collection(ctx, ACME, session_id)


def test_an_offline_locker_takes_a_drop_off_by_its_qr_code_and_the_backend_catches_up(
        world: World, ctx: Ctx, tmp_path: Any, private_broker: Any) -> None:
    code = unique_locker_id("S")
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
    acme_collects_at(world, site_id)
    bridge = Bridge(ctx, "127.0.0.1", private_broker.port,
                    BridgeSettings(resend_after_s=1.0, gap_wait_s=0.5, poll_s=0.05))
    bridge.start()
    board = SimulatedBoard(list(range(1, 7)))
    agent = LockerAgent(code, board, "127.0.0.1", private_broker.port,
                        tmp_path / f"{code}.sqlite3", settings=fast_settings(),
                        identity=provisioned(world.ctx, site_id))
    agent.start()
    site = Site(world, agent, board, site_id)
    try:
        wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
        drop = announce_drop_off(site, "ACME00000721", "L")
        door = door_of(site, "ACME00000721")
        private_broker.stop()
        wait_until(lambda: not agent.online, 10, "locker offline")
        board.scan(drop["qr"])  # one scan: the code and the parcel
        wait_until(lambda: board.door_state(door) == "open", 10, "door open offline")
        board.close_door(door, occupied=True)
        assert site.state_of("ACME00000721") == "announced"  # the backend cannot know yet
        private_broker.start()
        wait_until(lambda: site.state_of("ACME00000721") == "awaiting_collection", 30,
                   "reconciled")
    finally:
        agent.stop()
        bridge.stop()
    assert SIZES[door] == "L"
    deposit = event(world, "ACME00000721", "drop_off")
    assert deposit.data["offline"] is True
    assert deposit.at < datetime.fromisoformat(deposit.data["received_at"])
    assert site.actions("ACME00000721").count("drop_off") == 1
    assert messages(world, "ACME00000721") == ["drop_off_code", "dropped_off"]


def test_a_drop_off_code_past_its_time_opens_nothing(
        world: World, tmp_path: Any, bridge_for: Callable[..., Bridge]) -> None:  # noqa: F811
    site = started_locker(world, tmp_path, bridge_for, agent_clock := FakeClock())
    acme_collects_at(world, site.site_id)
    try:
        drop = announce_drop_off(site, "ACME00000731", "S")
        # the locker's own clock says the three days are over: it refuses alone
        agent_clock.offset = (DROP_OFF_VALIDITY + timedelta(minutes=1)).total_seconds()
        site.board.type_carrier_code(drop["code"])
        wait_until(shown(site, "refused: expired"), 10, "the typed code refused")
        site.board.display.clear()
        site.board.scan(drop["qr"])
        wait_until(shown(site, "refused: expired"), 10, "the QR code refused")
        assert site.board.open_calls == []
    finally:
        site.agent.stop()
    # the backend gives the door back when its time is over (its clock is the wall clock
    # here: the reservation is made to end now), and the code dies with it
    with world.ctx.db.transaction() as session:
        session.execute(update(Compartment).where(Compartment.site_id == site.site_id).values(
            reserved_until=world.ctx.now() - timedelta(seconds=1)))
    assert locker_dropoff.expire_stale_reservations(world.ctx) == 1
    assert site.state_of("ACME00000731") == "announced"
    assert site.parcel("ACME00000731").compartment_id is None
    assert world.anonymous.get(drop["qr_svg_url"].split("/api/v1")[1]).status_code == 404
    # announced again, the parcel gets a door and a code anew
    again = world.anonymous.post(f"/lockers/{site.site_id}/drop-offs", json={
        "tracking_number": "ACME00000731", "size_class": "S", "sender": SENDER})
    assert again.status_code == 201 and again.json["qr"] != drop["qr"]


def started_locker(world: World, tmp_path: Any, bridge_for: Callable[..., Bridge],  # noqa: F811
                   agent_clock: FakeClock) -> Site:
    code = unique_locker_id("E")
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": code, "name": "Casier", "locker_model": "mini-6", "address": "Place",
        "postcode": "44440", "city": "Riaillé", "latitude": 47.5, "longitude": -1.3})["id"]
    bridge_for()
    board = SimulatedBoard(list(range(1, 7)))
    agent = LockerAgent(code, board, *SHARED_BROKER, tmp_path / f"{code}.sqlite3",
                        settings=fast_settings(), identity=provisioned(world.ctx, site_id),
                        clock=agent_clock)
    agent.start()
    site = Site(world, agent, board, site_id)
    wait_until(lambda: site.view()["link"]["credential_version_held"] == 1, 10, "synced")
    return site


def test_a_drop_off_is_refused_with_its_reason_and_keeps_nothing(
        site: Site) -> None:
    world = site.world
    path = f"/lockers/{site.site_id}/drop-offs"
    body = {"tracking_number": "ACME00000741", "size_class": "M", "sender": SENDER}
    assert is_problem(world.anonymous.post(path, json=body), 409, "label-not-collected-here")
    acme_collects_at(world, site.site_id)
    assert is_problem(world.anonymous.post(path, json={**body, "size_class": "Q"}), 422,
                      "validation-failed")
    assert is_problem(world.anonymous.post(path, json={**body, "sender": {}}), 422,
                      "invalid-request")
    assert is_problem(world.shopkeeper.post(path, json=body), 403, "forbidden")
    first = world.carrier.post(path, json=body)  # the carrier's platform announces it
    assert first.status_code == 201
    # the carrier's own drop-off session does not put a sender's parcel in
    session = locker_dropoff.open_session(world.ctx, ACME, site.site_id)
    with pytest.raises(NotFound):
        locker_dropoff.deposit(world.ctx, ACME, session["id"], "ACME00000741")
    again = world.carrier.post(path, json=body)  # and retries: the same drop-off
    assert again.status_code == 200 and again.json["code"] == first.json["code"]
    # anyone else learns nothing of it
    assert is_problem(world.anonymous.post(path, json=body), 409, "conflict")
    # six doors: two may wait for drop-offs at once
    assert world.anonymous.post(path, json={**body, "tracking_number": "ACME00000742"}
                                ).status_code == 201
    assert is_problem(world.anonymous.post(path, json={**body, "tracking_number":
                                                       "ACME00000743"}),
                      409, "parcel-does-not-fit")
    with world.ctx.db.read() as session:
        assert session.scalar(select(Parcel).where(
            Parcel.tracking_number == "ACME00000743")) is None


# ---------------------------------------------------------------- producers


@pytest.fixture
def producer(world: World) -> Api:
    assert world.operator.post("/producers", json={"code": "ferme", "name": "Ferme"}
                               ).status_code == 201
    response = world.operator.post("/producers/ferme/keys", json={"label": "site web"})
    assert response.status_code == 201, response.json
    return Api(world.client, response.json["token"])


def test_a_producer_s_cold_order_needs_a_refrigerated_door_and_its_code_opens_it(
        site: Site, producer: Api) -> None:
    world = site.world
    sell_by = (world.ctx.now() + timedelta(hours=30)).isoformat()
    order = {"reference": "CMD-1", "site": site.code, "recipient": CUSTOMER, "size_class": "M",
             "keep_cold": True, "holding_hours": 12, "sell_by": sell_by}
    refused = producer.post("/producer/orders", json=order)
    assert is_problem(refused, 409, "no-cold-place")
    with world.ctx.db.read() as session:  # nothing kept: the producer keeps it back
        assert session.scalar(select(Parcel).where(Parcel.site_id == site.site_id)) is None
    assert world.operator.put(f"/lockers/{site.site_id}/compartments/5/refrigerated",
                              json={"refrigerated": True}).status_code == 200
    announced = producer.post("/producer/orders", json=order)
    assert announced.status_code == 201, announced.json
    assert announced.json["compartment"] == 5  # the cold door, though an M door is free
    label = announced.json["label"]
    # an ordinary order keeps out of the fridge
    plain = producer.post("/producer/orders", json={**order, "reference": "CMD-2",
                                                    "keep_cold": False})
    assert plain.status_code == 201 and plain.json["compartment"] == 3
    synced(site)

    code = producer.get(f"/producer/lockers/{site.site_id}/code").json["code"]
    site.board.type_carrier_code(code)
    wait_until(shown(site, "2 to deposit"), 10, "the producer's orders waiting")
    site.board.scan(label)
    wait_until(lambda: site.board.door_state(5) == "open", 10, "the cold door opens")
    site.board.close_door(5, occupied=True)
    wait_until(lambda: site.state_of(label) == "ready_for_pickup", 10, "ready")
    check_in = event(world, label, "check_in")
    assert check_in.data["holding_rule"] == "perishable"
    assert check_in.data["holding_hours"] == 12
    assert check_in.actor_kind == "locker"
    assert messages(world, label) == ["ready"]
    mine = producer.get("/producer/orders/CMD-1").json
    assert mine["state"] == "ready_for_pickup" and mine["compartment"] == 5
    deadline = datetime.fromisoformat(mine["holding_deadline"])
    assert deadline <= datetime.fromisoformat(sell_by)
    # another producer's key sees no code of this one's
    assert is_problem(world.carrier.get(f"/producer/lockers/{site.site_id}/code"), 403,
                      "forbidden")


# ---------------------------------------------------------------- codes by message, returns


def run_jobs(world: World) -> int:
    app = world.client.application
    return outbox.run_pending_jobs(world.ctx.db, handlers(world.ctx, app.config), world.ctx.now)


def sent_lines(world: World) -> list[dict[str, Any]]:
    path = Path(world.client.application.config["NOTIFY_FILE_PATH"])
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def deposited(site: Site, number: str, code: str) -> int:
    """The sender types its code, scans the label, puts the parcel in: its door."""
    door = door_of(site, number)
    site.board.type_carrier_code(code)
    wait_until(shown(site, "1 to deposit"), 10, "the screen asks for the parcel")
    site.board.scan(number)
    wait_until(lambda: site.board.door_state(door) == "open", 10, "its door opens")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of(number) == "awaiting_collection", 10, "deposited")
    synced(site)
    return door


def test_the_sender_gets_its_drop_off_code_by_message_and_on_its_receipt_page(
        site: Site) -> None:
    world = site.world
    acme_collects_at(world, site.site_id)
    drop = announce_drop_off(site, "ACME00000751", "S")
    assert run_jobs(world) == 2
    lines = {x["channel"]: x for x in sent_lines(world)}
    assert set(lines) == {"sms", "email"}
    for line in lines.values():
        assert drop["code"] in line["body"] and "ACME00000751" in line["body"]
        assert drop["receipt_url"] in line["body"]  # the page with the code and the QR code
    assert drop["qr_svg_url"] in lines["email"]["body"]
    assert lines["email"]["subject"].startswith("Votre code de dépôt")  # the sender's French

    token = drop["receipt_url"].rsplit("/", 1)[1]
    receipt = world.anonymous.get(f"/outbound/receipts/{token}").json
    assert receipt["state"] == "announced"
    assert receipt["locker_code"]["purpose"] == "drop_off"
    assert receipt["locker_code"]["code"] == drop["code"]
    assert receipt["locker_code"]["qr_svg_url"] == drop["qr_svg_url"]
    page = world.client.get(f"/envoi/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert drop["code"] in html and drop["qr_svg_url"] in html

    # the code of the message opens the door; deposited, the page keeps no code
    deposited(site, "ACME00000751", drop["code"])
    assert world.anonymous.get(f"/outbound/receipts/{token}").json["locker_code"] is None
    assert drop["code"] not in world.client.get(f"/envoi/{token}").get_data(as_text=True)


def test_a_carrier_refuses_a_sent_parcel_in_its_door_and_the_sender_s_new_code_takes_it_back(
        site: Site) -> None:
    world = site.world
    acme_collects_at(world, site.site_id)
    drop = announce_drop_off(site, "ACME00000761", "M")
    door = deposited(site, "ACME00000761", drop["code"])
    parcel_id = site.parcel("ACME00000761").id
    refused = world.carrier.post(f"/parcels/{parcel_id}/outbound-refusal",
                                 json={"reason": "badly packed"})
    assert refused.status_code == 200, refused.json
    assert refused.json["state"] == "refused"
    synced(site)
    # the carrier's code no longer opens the door
    site.board.display.clear()
    site.board.type_carrier_code(
        locker_carrier_codes.carrier_code_view(world.ctx, ACME, site.site_id)["code"])
    wait_until(shown(site, "refused"), 10, "the carrier's code opens nothing")
    assert site.board.open_calls == [door]
    # at a locker only the door says the parcel left: no counter hand-back
    assert is_problem(world.operator.post(f"/parcels/{parcel_id}/hand-back"), 409,
                      "site-has-no-shelves")

    # the sender's refused message gives a new code, its receipt page too
    run_jobs(world)
    refusal = [x for x in sent_lines(world) if "ACME00000761" in x["body"]
               and x["channel"] == "sms" and "n'a pas pris" in x["body"]]
    assert len(refusal) == 1
    token = drop["receipt_url"].rsplit("/", 1)[1]
    code = world.anonymous.get(f"/outbound/receipts/{token}").json["locker_code"]
    assert code["purpose"] == "take_back" and code["compartment"] == door
    assert code["code"] != drop["code"] and code["code"] in refusal[0]["body"]
    # left in its door three days: the operator is told, once
    assert locker_take_back.raise_take_back_alerts(world.ctx) == 0
    with world.ctx.db.transaction() as session:
        session.execute(update(ParcelEvent).where(
            ParcelEvent.parcel_id == parcel_id, ParcelEvent.action == "refuse"
        ).values(at=world.ctx.now() - locker_take_back.REFUSED_ALERT_AFTER
                 - timedelta(minutes=1)))
    assert locker_take_back.raise_take_back_alerts(world.ctx) == 1
    assert locker_take_back.raise_take_back_alerts(world.ctx) == 0
    assert event(world, "ACME00000761", "take_back_overdue").reason == (
        "not taken back by its sender")

    site.board.display.clear()
    site.board.type_carrier_code(code["code"])
    wait_until(lambda: site.board.open_calls == [door, door], 10, "the sender's door opens")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("ACME00000761") == "returned", 10, "taken back")
    hand_back = event(world, "ACME00000761", "hand_back")
    assert hand_back.actor_kind == "locker" and hand_back.data["by"] == "sender"
    assert site.view()["compartments"][door - 1]["state"] == "free"
    synced(site)
    # spent: the code opens nothing more
    site.board.display.clear()
    site.board.type_carrier_code(code["code"])
    wait_until(shown(site, "refused"), 10, "a spent code refused")
    assert site.board.open_calls == [door, door]


def test_a_resident_returns_a_parcel_picked_up_at_the_locker_through_a_drop_off(
        site: Site) -> None:
    world = site.world
    acme_collects_at(world, site.site_id)
    with world.ctx.db.transaction() as session:  # a parcel the resident took from this locker
        received = Parcel(tracking_number="ACME00000770", site_id=site.site_id, carrier_id=1,
                          state="picked_up", direction="inbound")
        session.add(received)
        session.flush()
        received_id = received.id
    path = f"/lockers/{site.site_id}/drop-offs"
    body = {"tracking_number": "ACME00000771", "size_class": "S", "sender": SENDER,
            "reason": "return", "return_of": "ACME00000770"}
    assert is_problem(world.anonymous.post(path, json={**body, "return_of": "ACME00000779"}),
                      404, "not-found")  # not a parcel picked up here
    assert is_problem(world.anonymous.post(path, json={**body, "return_of": None}), 422,
                      "validation-failed")
    with world.ctx.db.read() as session:
        assert session.scalar(select(Parcel).where(
            Parcel.tracking_number == "ACME00000771")) is None
    drop = world.anonymous.post(path, json=body)
    assert drop.status_code == 201, drop.json
    synced(site)
    deposited(site, "ACME00000771", drop.json["code"])
    sent = site.parcel("ACME00000771")
    with world.ctx.db.read() as session:
        extra = session.get(OutboundParcel, sent.id)
        assert extra is not None
        assert (extra.reason, extra.return_of_parcel_id) == ("return", received_id)
    listed = world.carrier.get(f"/sites/{site.site_id}/outbound/pickup-list").json["items"]
    assert [(p["tracking_number"], p["reason"]) for p in listed] == [("ACME00000771",
                                                                     "return")]


def last_sync(world: World, site: Site) -> dict[str, Any]:
    with world.ctx.db.read() as session:
        row = session.scalar(select(OutboxMessage).where(
            OutboxMessage.name == locker_sync.COMMAND_SYNC, OutboxMessage.target == site.code)
            .order_by(OutboxMessage.id.desc()).limit(1))
        assert row is not None
        return dict(row.payload["body"])


def producer_reservations(world: World, site: Site, label: str) -> list[str]:
    """The purposes of the reservations for ``label`` in the last credential sync."""
    return [r["purpose"] for r in last_sync(world, site).get("reservations", [])
            if r["parcel_ref"] == label]


def test_an_expired_producer_order_goes_back_to_its_producer_by_its_code(
        site: Site, producer: Api) -> None:
    world = site.world
    announced = producer.post("/producer/orders", json={
        "reference": "CMD-9", "site": site.code, "recipient": CUSTOMER, "size_class": "S"})
    assert announced.status_code == 201, announced.json
    label, door = announced.json["label"], announced.json["compartment"]
    synced(site)
    code = producer.get(f"/producer/lockers/{site.site_id}/code").json["code"]
    site.board.type_carrier_code(code)
    wait_until(shown(site, "1 to deposit"), 10, "the producer's order waiting")
    site.board.scan(label)
    wait_until(lambda: site.board.door_state(door) == "open", 10, "its door opens")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of(label) == "ready_for_pickup", 10, "ready")
    synced(site)

    with world.ctx.db.transaction() as session:  # nobody came: its deadline is over
        session.execute(update(Parcel).where(Parcel.tracking_number == label).values(
            holding_deadline=world.ctx.now() - timedelta(seconds=1)))
    assert len(expiry.expire_overdue(world.ctx)) == 1
    # the locker learns at once (an incremental sync) that the producer's code opens it
    assert (last_sync(world, site)["full"], producer_reservations(world, site, label)) == (
        False, ["collection"])
    synced(site)
    # and a full sync (a locker reconnecting) keeps it
    with world.ctx.db.transaction() as session:
        locker_site = session.get(SiteRow, site.site_id)
        assert locker_site is not None
        locker_sync.queue_sync(world.ctx, session, locker_site,
                               locker_compartments.link_of(session, locker_site),
                               force_full=True)
    assert (last_sync(world, site)["full"], producer_reservations(world, site, label)) == (
        True, ["collection"])
    synced(site)
    listed = producer.get("/producer/take-back").json["items"]
    assert [(o["reference"], o["site"], o["compartment"], o["at_locker"]) for o in listed] == [
        ("CMD-9", site.code, door, True)]
    # at a locker the counter's take-back would leave the order in its door
    assert is_problem(producer.post(f"/sites/{site.site_id}/producer-orders/take-back",
                                    json={"references": ["CMD-9"]}), 409, "site-has-no-shelves")
    # the carrier's code does not open a producer's door
    site.board.display.clear()
    site.board.type_carrier_code(
        locker_carrier_codes.carrier_code_view(world.ctx, ACME, site.site_id)["code"])
    wait_until(shown(site, "refused"), 10, "the carrier's code opens nothing")

    # left a day in its door: one alert for the operator, raised once
    assert locker_take_back.raise_take_back_alerts(world.ctx) == 0
    with world.ctx.db.transaction() as session:
        session.execute(update(ParcelEvent).where(
            ParcelEvent.parcel_id == site.parcel(label).id, ParcelEvent.action == "expire"
        ).values(at=world.ctx.now() - locker_take_back.ORDER_ALERT_AFTER
                 - timedelta(minutes=1)))
    sweep = "locker-take-back"  # the periodic sweep (SWEEP_INTERVALS)
    assert run_sweep(world.ctx, world.client.application.config, sweep) == 1
    assert run_sweep(world.ctx, world.client.application.config, sweep) == 0
    with world.ctx.db.read() as session:
        alert = session.scalar(select(LockerAlert).where(
            LockerAlert.kind == "take_back_overdue", LockerAlert.site_id == site.site_id))
        assert alert is not None and alert.compartment == door

    site.board.display.clear()
    site.board.type_carrier_code(code)
    wait_until(lambda: site.board.door_state(door) == "open", 10, "the producer's door opens")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of(label) == "returned", 10, "taken back")
    taken = event(world, label, "collect")
    assert taken.actor_kind == "producer" and taken.reason == "taken back by its producer"
    assert producer.get("/producer/take-back").json["items"] == []
    assert site.view()["compartments"][door - 1]["state"] == "free"


# ---------------------------------------------------------------- announcing without a key


def test_announcing_a_drop_off_without_a_key_is_rate_limited_per_address_and_per_locker(
        world: World) -> None:
    site_id = locker_registry.register_locker(world.ctx, SYSTEM, {
        "code": unique_locker_id("R"), "name": "Casier", "locker_model": "mini-6",
        "address": "Place", "postcode": "44440", "city": "Riaillé", "latitude": 47.5,
        "longitude": -1.3})["id"]
    path = f"/api/v1/lockers/{site_id}/drop-offs"
    # a label no carrier collects here: refused (409), and counted all the same
    body = {"tracking_number": "ACME00000781", "size_class": "S", "sender": SENDER}

    def announce(address: str) -> Any:
        return world.client.post(path, json=body, environ_base={"REMOTE_ADDR": address})

    per_client = locker_sending.DROP_OFFS_PER_CLIENT.attempts
    for _ in range(per_client):
        assert is_problem(announce("192.0.2.1"), 409, "label-not-collected-here")
    limited = announce("192.0.2.1")
    assert is_problem(limited, 429, "too-many-attempts")
    assert 0 < int(limited.headers["Retry-After"]) <= 3600
    # another address is not held back by this one; a carrier's platform (its key) is not
    assert is_problem(announce("192.0.2.2"), 409, "label-not-collected-here")
    assert is_problem(world.carrier.post(f"/lockers/{site_id}/drop-offs", json=body), 409,
                      "label-not-collected-here")
    # the locker as a whole: past its limit, every address waits
    for n in range(locker_sending.DROP_OFFS_PER_LOCKER.attempts - per_client - 1):
        assert announce(f"198.51.100.{n}").status_code == 409
    assert is_problem(announce("203.0.113.9"), 429, "too-many-attempts")


# ---------------------------------------------------------------- refused at the door


def test_a_resident_refuses_a_parcel_at_the_door_and_its_carrier_s_code_takes_it_back(
        site: Site) -> None:
    world = site.world
    door = site.drop("ACME00000791")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: site.state_of("ACME00000791") == "ready_for_pickup", 10, "ready")
    synced(site)
    parcel_id = site.parcel("ACME00000791").id
    with world.ctx.db.read() as session:
        pin = credentials.code_of(world.ctx, credentials.live_credentials(session, parcel_id)[0])
    # the resident opens the door, sees the wrong item, leaves it inside and closes the door
    site.board.type_pin(pin)
    wait_until(lambda: site.board.door_state(door) == "open", 10, "the resident's door opens")
    site.board.close_door(door, occupied=True)
    wait_until(lambda: "left_behind" in site.actions("ACME00000791"), 10, "left inside")
    assert site.state_of("ACME00000791") == "ready_for_pickup"  # forgotten, or refused?

    link = f"/track/{resident.tracking_token(world.ctx, parcel_id)}/refusal"
    assert world.anonymous.post(link, json={"reason": ""}).status_code == 422  # say why
    refused = world.anonymous.post(link, json={"reason": "wrong item"})
    assert refused.status_code == 200, refused.json
    assert site.state_of("ACME00000791") == "expired"
    assert event(world, "ACME00000791", "refuse").reason == "refused by its recipient: wrong item"
    assert is_problem(world.anonymous.post(link, json={"reason": "again"}), 409,
                      "invalid-transition")
    synced(site)
    # the resident's code died; the carrier's code opens the door and takes it back
    site.board.display.clear()
    site.board.type_pin(pin)
    wait_until(shown(site, "refused"), 10, "the dead code refused")
    assert site.board.open_calls == [door, door]
    opened = len(site.board.open_calls)  # the carrier's deposit, the resident's pickup
    site.board.type_carrier_code(
        locker_carrier_codes.carrier_code_view(world.ctx, ACME, site.site_id)["code"])
    wait_until(lambda: site.board.open_calls[opened:] == [door]
               and site.board.door_state(door) == "open", 10, "the carrier's door opens")
    site.board.close_door(door, occupied=False)
    wait_until(lambda: site.state_of("ACME00000791") == "returned", 10, "back to its carrier")
    assert event(world, "ACME00000791", "collect").actor_kind == "carrier"
