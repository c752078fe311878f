"""Home delivery by a trusted person (docs/home-delivery.md): the shop's offer, the request by
the resident or by the shop for them, the courier's own link, taken, delivered with the
resident's code, the cancel (and its race with the take), the end-of-day return."""

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from relay_ops import outbox
from relay_ops.db.models import HomeDelivery, Notification, Parcel, ParcelEvent
from relay_ops.domain.errors import DomainError
from relay_ops.jobs import handlers, run_sweep
from relay_ops.services import home_delivery
from relay_ops.services.principal import Principal, Role
from relay_ops.services.resident import tracking_token
from tests.conftest import Clock
from tests.support import World, is_problem, row_counts, shelf_counts_agree

TUESDAY, FRIDAY = "2026-12-01", "2026-12-04"  # the test clock starts on Tuesday 1 December
NEIGHBOUR = {"kind": "neighbour", "name": "Marcel Petit"}


@pytest.fixture
def delivering(world: World) -> World:
    """The Bourg shop delivers on Tuesdays and Fridays, in the bourg."""
    assert world.shopkeeper.put(f"/sites/{world.shop_id}/services", json={
        "services": ["receive", "home_delivery"]}).status_code == 200
    answer = world.shopkeeper.put(f"/sites/{world.shop_id}/home-delivery",
                                  json={"days": ["fri", "tue"], "area": "Bourg"})
    assert answer.status_code == 200, answer.json
    assert answer.json == {"site": "bourg", "offered": True, "days": ["tue", "fri"],
                           "area": "Bourg"}
    return world


def link(world: World, parcel_id: int) -> str:
    return "/track/" + tracking_token(world.ctx, parcel_id)


def ask(world: World, parcel_id: int, day: str = TUESDAY, courier: Any = None,
        **body: Any) -> Any:
    return world.anonymous.post(link(world, parcel_id) + "/home-delivery", json={
        "day": day, "courier": courier or NEIGHBOUR, "consent": True, "in_area": True,
        **body})


def courier_path(answer: dict[str, Any]) -> str:
    return "/courier/" + answer["courier_url"].rsplit("/", 1)[1]


def events(world: World, parcel_id: int) -> list[str]:
    return [e["action"] for e in
            world.operator.get(f"/parcels/{parcel_id}/events").json["items"]]


def messages(app: Flask, world: World, parcel_id: int) -> list[dict[str, Any]]:
    outbox.run_pending_jobs(world.ctx.db, handlers(world.ctx, app.config), world.ctx.now)
    path = Path(app.config["NOTIFY_FILE_PATH"])
    lines = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    with world.ctx.db.read() as session:
        ids = {f"relayops-notification-{n.id}": n.kind for n in session.scalars(
            select(Notification).where(Notification.parcel_id == parcel_id))}
    return [{**line, "kind": ids[line["idempotency_key"]]} for line in lines
            if line.get("idempotency_key") in ids]


# ---------------------------------------------------------------- the whole way


def test_a_neighbour_brings_the_parcel_home_and_the_residents_code_confirms_it(
        app: Flask, delivering: World) -> None:
    world = delivering
    parcel = world.ready("ACME00000900")
    asked = ask(world, parcel["id"])
    assert asked.status_code == 201, asked.json
    assert asked.json["status"] == "requested" and asked.json["requested_by"] == "resident"
    assert asked.json["courier"] == NEIGHBOUR and asked.json["day"] == TUESDAY
    courier = courier_path(asked.json)
    # The courier's link sees its delivery: the parcel, the resident's name, the day.
    seen = world.anonymous.get(courier)
    assert seen.status_code == 200
    assert seen.json["parcel"]["tracking_number"] == "ACME00000900"
    assert seen.json["parcel"]["recipient_name"] == "Jeanne Martin"
    assert "courier_url" not in seen.json  # the link is not handed on by the link
    taken = world.anonymous.post(courier + "/taken")
    assert taken.status_code == 200 and taken.json["status"] == "taken"
    assert taken.json["parcel"]["state"] == "out_for_delivery"
    assert world.anonymous.post(courier + "/taken").json["status"] == "taken"  # idempotent
    code = world.code_of(parcel["id"])
    delivered = world.anonymous.post(courier + "/delivered", json={"code": code})
    assert delivered.status_code == 200, delivered.json
    assert delivered.json["status"] == "delivered"
    assert delivered.json["parcel"]["state"] == "delivered"
    assert events(world, parcel["id"])[-3:] == [
        "home_delivery_requested", "hand_to_courier", "deliver"]
    # The link dies with the delivery, and so does the code.
    assert is_problem(world.anonymous.get(courier), 404, "not-found")
    again = world.pick_up(code=code)
    assert is_problem(again, 403, "wrong-pickup-code"), again.json
    assert shelf_counts_agree(world.ctx)
    sent = messages(app, world, parcel["id"])
    planned = [m for m in sent if m["kind"] == "home_planned"]
    assert planned and all("Marcel Petit" in m["body"] for m in planned)
    assert any("mardi 1er décembre" in m["body"] for m in planned)
    done = [m for m in sent if m["kind"] == "home_delivered"]
    assert {m["channel"] for m in done} == {"email", "sms"}
    assert all("Marcel Petit" in m["body"] for m in done)


def test_the_shopkeeper_asks_for_the_resident_and_delivers_it_themselves(
        delivering: World) -> None:
    world = delivering
    parcel = world.ready("ACME00000901")
    asked = world.shopkeeper.post(f"/parcels/{parcel['id']}/home-delivery", json={
        "day": TUESDAY, "courier": {"kind": "shopkeeper"}, "consent": True, "in_area": True})
    assert asked.status_code == 201, asked.json
    assert asked.json["requested_by"] == "shop" and asked.json["courier_url"] is None
    listed = world.shopkeeper.get(f"/sites/{world.shop_id}/home-deliveries", day=TUESDAY)
    assert [d["id"] for d in listed.json["items"]] == [asked.json["id"]]
    delivery = asked.json["id"]
    assert world.shopkeeper.post(f"/home-deliveries/{delivery}/taken").status_code == 200
    done = world.shopkeeper.post(f"/home-deliveries/{delivery}/delivered",
                                 json={"code": world.code_of(parcel["id"])})
    assert done.status_code == 200 and done.json["status"] == "delivered"
    with world.ctx.db.read() as session:
        event = session.scalar(select(ParcelEvent).where(
            ParcelEvent.parcel_id == parcel["id"], ParcelEvent.action == "home_delivery_requested"))
        assert event is not None and event.actor_kind == "shopkeeper"
        assert event.data["requested_by"] == "shop" and event.data["consent"] is True
        assert "Marcel" not in json.dumps(event.data)  # no courier name in the history


# ---------------------------------------------------------------- what is refused


def test_requests_the_shop_cannot_keep_are_refused_and_change_nothing(
        world: World) -> None:
    parcel = world.ready("ACME00000902")
    before = row_counts(world.ctx)
    assert is_problem(ask(world, parcel["id"]), 409, "home-delivery-refused")  # not offered
    assert row_counts(world.ctx) == before
    world.shopkeeper.put(f"/sites/{world.shop_id}/services",
                         json={"services": ["receive", "home_delivery"]})
    world.shopkeeper.put(f"/sites/{world.shop_id}/home-delivery",
                         json={"days": ["tue"], "area": "Bourg"})
    before = row_counts(world.ctx)
    assert is_problem(ask(world, parcel["id"], day="2026-12-02"), 409, "home-delivery-refused")
    assert is_problem(ask(world, parcel["id"], in_area=False), 409, "home-delivery-refused")
    assert is_problem(ask(world, parcel["id"], consent=False), 422, "invalid-request")
    assert is_problem(ask(world, parcel["id"], courier={"kind": "volunteer", "name": " "}),
                      422, "validation-failed")
    assert row_counts(world.ctx) == before
    assert ask(world, parcel["id"]).status_code == 201
    assert is_problem(ask(world, parcel["id"]), 409, "home-delivery-refused")  # one at a time


def test_a_wrong_code_at_the_door_counts_as_at_the_counter_and_five_lock_it(
        delivering: World) -> None:
    world = delivering
    parcel = world.ready("ACME00000903")
    courier = courier_path(ask(world, parcel["id"]).json)
    world.anonymous.post(courier + "/taken")
    code = world.code_of(parcel["id"])
    wrong = "000000" if code != "000000" else "111111"
    first = world.anonymous.post(courier + "/delivered", json={"code": wrong})
    assert is_problem(first, 403, "wrong-pickup-code") and first.json["attempts_left"] == 4
    for _ in range(3):
        world.anonymous.post(courier + "/delivered", json={"code": wrong})
    fifth = world.anonymous.post(courier + "/delivered", json={"code": wrong})
    assert is_problem(fifth, 423, "pickup-code-locked")
    locked = world.anonymous.post(courier + "/delivered", json={"code": code})
    assert is_problem(locked, 423, "pickup-code-locked")  # the right code no longer opens it
    assert events(world, parcel["id"]).count("wrong_code") == 5


# ---------------------------------------------------------------- who sees what


def test_a_courier_sees_only_the_parcel_entrusted_to_them(delivering: World) -> None:
    world = delivering
    mine, theirs = world.ready("ACME00000904"), world.ready("ACME00000905")
    courier = courier_path(ask(world, mine["id"]).json)
    other = ask(world, theirs["id"], courier={"kind": "volunteer", "name": "Lucie"}).json
    assert is_problem(world.anonymous.get("/courier/not-a-link"), 404, "not-found")
    # A courier principal acting on another delivery finds nothing.
    me = home_delivery.courier_principal(world.ctx, courier.rsplit("/", 1)[1])
    with pytest.raises(DomainError) as err:
        home_delivery.take(world.ctx, me, other["id"])
    assert err.value.slug == "not-found"
    # The link is no bearer token, and another shop's staff do not see the delivery.
    bearer = world.client.get(f"/api/v1/parcels/{mine['id']}", headers={
        "Authorization": "Bearer " + courier.rsplit("/", 1)[1]})
    assert bearer.status_code == 401
    paul = world.other_shopkeeper
    assert is_problem(paul.post(f"/home-deliveries/{other['id']}/taken"), 404, "not-found")
    assert is_problem(paul.get(f"/sites/{world.shop_id}/home-deliveries"), 404, "not-found")
    assert is_problem(paul.delete(f"/parcels/{theirs['id']}/home-delivery"), 404, "not-found")
    assert is_problem(world.carrier.post(f"/home-deliveries/{other['id']}/taken"),
                      403, "forbidden")
    assert is_problem(paul.put(f"/sites/{world.shop_id}/home-delivery",
                               json={"days": ["mon"], "area": "x"}), 404, "not-found")


# ---------------------------------------------------------------- cancel


def test_the_resident_cancels_until_the_courier_has_taken_it(delivering: World) -> None:
    world = delivering
    parcel = world.ready("ACME00000906")
    courier = courier_path(ask(world, parcel["id"]).json)
    cancelled = world.anonymous.delete(link(world, parcel["id"]) + "/home-delivery")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert cancelled.json["parcel"]["state"] == "ready_for_pickup"
    assert is_problem(world.anonymous.get(courier), 404, "not-found")  # the link is dead
    again = ask(world, parcel["id"])
    assert again.status_code == 201
    world.anonymous.post(courier_path(again.json) + "/taken")
    late = world.anonymous.delete(link(world, parcel["id"]) + "/home-delivery")
    assert is_problem(late, 409, "invalid-transition") and "already taken" in late.json["detail"]


def race_take_and_cancel(world: World, delivery_id: int, parcel_id: int,
                         courier: Principal) -> dict[str, str]:
    """The courier's take and the resident's cancel, released together: what each got."""
    resident = Principal(Role.RESIDENT, parcel_id=parcel_id)
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def run(name: str, action: Any) -> None:
        barrier.wait()
        try:
            outcomes[name] = action()["status"]
        except DomainError as err:
            outcomes[name] = err.slug

    threads = [
        threading.Thread(target=run, args=(
            "take", lambda: home_delivery.take(world.ctx, courier, delivery_id))),
        threading.Thread(target=run, args=(
            "cancel", lambda: home_delivery.cancel(world.ctx, resident, parcel_id))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


def test_a_cancel_and_a_take_racing_give_one_outcome(delivering: World) -> None:
    world = delivering
    for n in range(3):
        parcel = world.ready(f"ACME0000091{n}")
        asked = ask(world, parcel["id"]).json
        courier = home_delivery.courier_principal(world.ctx, courier_path(asked).rsplit("/")[-1])
        outcomes = race_take_and_cancel(world, asked["id"], parcel["id"], courier)
        # One wins; the other is refused, having seen the winner's outcome.
        assert outcomes in ({"take": "taken", "cancel": "invalid-transition"},
                            {"take": "invalid-transition", "cancel": "cancelled"}), outcomes
        with world.ctx.db.read() as session:
            row = session.get(HomeDelivery, asked["id"])
            stored = session.get(Parcel, parcel["id"])
            assert row is not None and stored is not None
            expected = "out_for_delivery" if row.status == "taken" else "ready_for_pickup"
            assert stored.state == expected
    assert shelf_counts_agree(world.ctx)


# ---------------------------------------------------------------- the end of the day


def test_a_parcel_not_delivered_by_the_end_of_the_day_goes_back_on_its_shelf(
        app: Flask, delivering: World, clock: Clock) -> None:
    world = delivering
    parcel = world.ready("ACME00000920")
    unused = world.ready("ACME00000921")
    courier = courier_path(ask(world, parcel["id"]).json)
    ask(world, unused["id"], day=FRIDAY)
    world.anonymous.post(courier + "/taken")
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 0  # still Tuesday
    clock.advance(hours=14)  # Wednesday 00:00 in Paris
    world.sign_in_again()
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 1
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 0  # once
    with world.ctx.db.read() as session:
        back = session.get(Parcel, parcel["id"])
        assert back is not None and back.state == "ready_for_pickup"
        assert back.holding_deadline is not None and parcel["holding_deadline"] is not None
        assert back.holding_deadline.isoformat() >= parcel["holding_deadline"]
    assert events(world, parcel["id"])[-1] == "return_to_shelf"
    assert is_problem(world.anonymous.get(courier), 404, "not-found")
    assert shelf_counts_agree(world.ctx)
    # The resident can collect it at the counter with their usual code.
    sent = messages(app, world, parcel["id"])
    assert any(m["kind"] == "home_returned" for m in sent)
    assert world.pick_up(code=world.code_of(parcel["id"])).status_code == 200
    # A request nobody took lapses once its day is over; the parcel never moved.
    clock.advance(days=3)
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 1
    with world.ctx.db.read() as session:
        lapsed = session.scalar(select(HomeDelivery).where(HomeDelivery.parcel_id == unused["id"]))
        assert lapsed is not None and lapsed.status == "lapsed"


def test_the_courier_name_is_purged_with_the_parcels_personal_data(
        app: Flask, delivering: World, clock: Clock) -> None:
    world = delivering
    parcel = world.ready("ACME00000930")
    courier = courier_path(ask(world, parcel["id"]).json)
    world.anonymous.post(courier + "/taken")
    world.anonymous.post(courier + "/delivered", json={"code": world.code_of(parcel["id"])})
    clock.advance(days=31)
    assert run_sweep(world.ctx, app.config, "personal-data-purge") >= 1
    with world.ctx.db.read() as session:
        row = session.scalar(select(HomeDelivery).where(HomeDelivery.parcel_id == parcel["id"]))
        assert row is not None and row.courier_name is None


def test_a_parcel_picked_up_at_the_counter_leaves_the_delivery_list(
        app: Flask, delivering: World, clock: Clock) -> None:
    world = delivering
    parcel = world.ready("ACME00000940")
    asked = ask(world, parcel["id"]).json
    assert world.pick_up(code=world.code_of(parcel["id"])).status_code == 200
    listed = world.shopkeeper.get(f"/sites/{world.shop_id}/home-deliveries")
    assert listed.status_code == 200 and listed.json["items"] == []
    taken = world.shopkeeper.post(f"/home-deliveries/{asked['id']}/taken")
    assert is_problem(taken, 409, "invalid-transition")
    clock.advance(days=1)
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 1
    with world.ctx.db.read() as session:
        row = session.get(HomeDelivery, asked["id"])
        assert row is not None and row.status == "lapsed"


def test_a_parcel_declared_missing_while_out_closes_its_delivery_at_the_end_of_the_day(
        app: Flask, delivering: World, clock: Clock) -> None:
    world = delivering
    lost, fine = world.ready("ACME00000950"), world.ready("ACME00000951")
    for parcel in (lost, fine):
        world.anonymous.post(courier_path(ask(world, parcel["id"]).json) + "/taken")
    declared = world.shopkeeper.post(f"/parcels/{lost['id']}/declarations",
                                     json={"kind": "missing", "note": "the courier lost it"})
    assert declared.status_code == 201 and declared.json["state"] == "missing"
    clock.advance(days=1)
    # Both close; the missing one stays missing, the other comes back to its shelf.
    assert run_sweep(world.ctx, app.config, "home-delivery-end-of-day") == 2
    with world.ctx.db.read() as session:
        states = {p.id: p.state for p in session.scalars(
            select(Parcel).where(Parcel.id.in_([lost["id"], fine["id"]])))}
        statuses = {d.parcel_id: d.status for d in session.scalars(select(HomeDelivery))}
    assert states == {lost["id"]: "missing", fine["id"]: "ready_for_pickup"}
    assert statuses[lost["id"]] == statuses[fine["id"]] == "returned"
    assert shelf_counts_agree(world.ctx)
