"""Several parcels for one recipient at one shop share a shelf location and one pickup code
(docs/forecast.md, "Parcels grouped at a shop")."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from relay_ops.db.models import CredentialParcel, Parcel, ParcelEvent, PickupCredential
from relay_ops.domain.errors import CredentialLocked, WrongPickupCode
from relay_ops.services import (
    checkin,
    checkin_registration,
    expiry,
    parcel_views,
    pickup,
    pickup_preview,
    retention,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.conftest import Clock
from tests.integration.test_delivery import run_jobs, sent_lines
from tests.support import World, is_problem, shop

JEANNE = {"name": "Jeanne Martin", "phone": "+33612345678", "email": "jeanne@example.org"}
PAUL = {"name": "Paul Durand", "phone": "+33698765432", "email": "paul@example.org"}


def announce(world: World, number: str, recipient: dict[str, Any], site: str = "bourg",
             **item: Any) -> None:
    response = world.announce(number, site=site, recipient=recipient, **item)
    assert response.status_code == 201, response.json


def keeper(site_id: int) -> Principal:
    return Principal(Role.SHOPKEEPER, user_id=2, site_ids=frozenset({site_id}))


def check_in(world: World, number: str, site_id: int | None = None) -> dict[str, Any]:
    site_id = site_id or world.shop_id
    answer = checkin.check_in(world.ctx, keeper(site_id), site_id, number)
    assert answer["status"] == "checked_in"
    return answer["parcel"]


def arrive(world: World, number: str, recipient: dict[str, Any]) -> dict[str, Any]:
    announce(world, number, recipient)
    return check_in(world, number)


def covered(world: World, parcel_id: int) -> list[int]:
    """The parcels the live recipient code of this parcel hands over."""
    with world.ctx.db.read() as session:
        code = session.scalars(
            select(PickupCredential)
            .join(CredentialParcel, CredentialParcel.credential_id == PickupCredential.id)
            .where(CredentialParcel.parcel_id == parcel_id, PickupCredential.holder == "recipient",
                   PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None))
        ).one()
        return [p.id for p in code.parcels]


def lock_code(world: World, number: str) -> None:
    """Five wrong codes given with the tracking number lock the parcel's codes."""
    for _ in range(4):
        with pytest.raises(WrongPickupCode):
            pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code="000000",
                            tracking_number=number)
    with pytest.raises(CredentialLocked):
        pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code="000000",
                        tracking_number=number)


def state_of(world: World, parcel_id: int) -> str:
    with world.ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        assert parcel is not None
        return parcel.state


# ---------------------------------------------------------------- check-in


def test_a_second_parcel_for_the_same_recipient_joins_the_code_and_the_shelf(
        world: World) -> None:
    first = arrive(world, "GROUP0000001", JEANNE)
    second = arrive(world, "GROUP0000002", JEANNE)

    assert second["location"] == first["location"]
    assert world.code_of(second["id"]) == world.code_of(first["id"])
    assert covered(world, first["id"]) == [first["id"], second["id"]]
    assert second["group"]["size"] == 2 and second["group"]["same_code"] is True
    assert [p["tracking_number"] for p in second["group"]["parcels"]] == [
        "GROUP0000001", "GROUP0000002"]
    with world.ctx.db.read() as session:
        # The first parcel stays the credential's parcel_id (older readers rely on it).
        code = session.scalars(select(PickupCredential)).one()
        assert code.parcel_id == first["id"]
        event = session.scalars(select(ParcelEvent).where(
            ParcelEvent.parcel_id == second["id"], ParcelEvent.action == "check_in")).one()
        assert event.data["grouped_with"] == ["GROUP0000001"]


def test_the_same_phone_written_another_way_is_the_same_recipient(world: World) -> None:
    first = arrive(world, "GROUP0000003", {"name": "J", "phone": "+33612345678"})
    second = arrive(world, "GROUP0000004", {"name": "J", "phone": "06 12 34 56 78"})
    assert world.code_of(second["id"]) == world.code_of(first["id"])


def test_another_recipient_gets_a_code_of_their_own(world: World) -> None:
    first = arrive(world, "GROUP0000005", JEANNE)
    second = arrive(world, "GROUP0000006", PAUL)
    assert world.code_of(second["id"]) != world.code_of(first["id"])
    assert first["group"] is None and second["group"] is None
    assert covered(world, second["id"]) == [second["id"]]


def test_a_recipient_without_any_address_is_never_grouped(world: World) -> None:
    """Unannounced parcels may carry only a name: a name alone proves nothing."""
    def unannounced(number: str) -> dict[str, Any]:
        return checkin.check_in(
            world.ctx, keeper(world.shop_id), world.shop_id, number, accept_unannounced=True,
            recipient=checkin_registration.Recipient(name="Sans Adresse"))["parcel"]

    first, second = unannounced("GROUP0000007"), unannounced("GROUP0000008")
    assert covered(world, first["id"]) == [first["id"]]
    assert covered(world, second["id"]) == [second["id"]]


def test_a_parcel_at_another_shop_is_not_grouped(world: World) -> None:
    here = arrive(world, "GROUP0000009", JEANNE)
    announce(world, "GROUP0000010", JEANNE, site="voisin")
    there = check_in(world, "GROUP0000010", world.other_shop_id)
    assert covered(world, here["id"]) == [here["id"]]
    assert covered(world, there["id"]) == [there["id"]]
    assert there["group"] is None


def test_a_full_shelf_sends_the_parcel_elsewhere_with_the_same_code(world: World) -> None:
    site_id = sites.create_site(world.ctx, SYSTEM, shop(
        "etroit", 47.6, -1.3, [("A1", "S", 1), ("A2", "S", 2)]))["id"]
    announce(world, "GROUP0000011", JEANNE, site="etroit")
    announce(world, "GROUP0000012", JEANNE, site="etroit")
    first = check_in(world, "GROUP0000011", site_id)
    second = check_in(world, "GROUP0000012", site_id)
    assert first["location"] == "A2"  # the shelf policy: most free places first
    assert second["location"] == "A2"  # then with its group, while there is room

    announce(world, "GROUP0000013", JEANNE, site="etroit")
    third = check_in(world, "GROUP0000013", site_id)
    assert third["location"] == "A1"  # A2 is full: another place, the same code
    assert covered(world, first["id"]) == [first["id"], second["id"], third["id"]]
    assert third["group"]["size"] == 3
    assert {p["location"] for p in third["group"]["parcels"]} == {"A1", "A2"}


def test_joining_never_changes_the_deadline_already_announced(
        world: World, clock: Clock) -> None:
    first = arrive(world, "GROUP0000014", JEANNE)
    clock.advance(days=3)
    second = arrive(world, "GROUP0000015", JEANNE)
    assert parcel_views.get_parcel(world.ctx, SYSTEM, first["id"])["holding_deadline"] == (
        first["holding_deadline"])
    assert second["holding_deadline"] > first["holding_deadline"]


def test_a_locked_code_is_not_joined(world: World) -> None:
    first = arrive(world, "GROUP0000016", JEANNE)
    lock_code(world, "GROUP0000016")
    second = arrive(world, "GROUP0000017", JEANNE)
    assert covered(world, second["id"]) == [second["id"]]
    assert world.code_of(second["id"]) != world.code_of(first["id"])


# ---------------------------------------------------------------- pickup


def test_the_code_hands_over_every_parcel_it_covers(world: World) -> None:
    first = arrive(world, "GROUP0000018", JEANNE)
    second = arrive(world, "GROUP0000019", JEANNE)
    code = world.code_of(first["id"])

    preview = pickup_preview.pickup_preview(world.ctx, keeper(world.shop_id), world.shop_id, code)
    assert [p["id"] for p in preview["parcels"]] == [first["id"], second["id"]]
    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code=code)

    assert answer["status"] == "picked_up"
    assert [p["tracking_number"] for p in answer["parcels"]] == ["GROUP0000018", "GROUP0000019"]
    assert answer["not_handed_over"] == []
    assert {state_of(world, first["id"]), state_of(world, second["id"])} == {"picked_up"}
    with world.ctx.db.read() as session:
        pickups = session.scalars(select(ParcelEvent.parcel_id).where(
            ParcelEvent.action == "pick_up").order_by(ParcelEvent.parcel_id)).all()
        assert pickups == [first["id"], second["id"]]  # one event per parcel
        code_row = session.scalars(select(PickupCredential)).one()
        assert code_row.used_at is not None
    with pytest.raises(WrongPickupCode):  # single use, for the whole group
        pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code=code)


def test_the_code_with_a_tracking_number_hands_over_the_group_too(world: World) -> None:
    first = arrive(world, "GROUP0000020", JEANNE)
    second = arrive(world, "GROUP0000021", JEANNE)
    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id,
                             code=world.code_of(first["id"]), tracking_number="GROUP0000021")
    assert answer["parcel"]["id"] == second["id"]
    assert sorted(p["id"] for p in answer["parcels"]) == [first["id"], second["id"]]


def test_an_identity_check_instead_of_a_locked_code_hands_over_the_group(world: World) -> None:
    first = arrive(world, "GROUP0000035", JEANNE)
    second = arrive(world, "GROUP0000036", JEANNE)
    lock_code(world, "GROUP0000036")
    identity = pickup.IdentityCheck("id_card", "1234", "Jeanne Martin")
    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id,
                             tracking_number="GROUP0000036", identity=identity,
                             override_lock=True)
    assert [p["id"] for p in answer["parcels"]] == [first["id"], second["id"]]
    with world.ctx.db.read() as session:
        assert session.scalars(select(PickupCredential)).one().revoked_at is not None


def test_one_parcel_expired_meanwhile_stays_and_the_answer_says_so(
        world: World, clock: Clock) -> None:
    first = arrive(world, "GROUP0000022", JEANNE)
    clock.advance(days=5)
    second = arrive(world, "GROUP0000023", JEANNE)
    code = world.code_of(first["id"])
    clock.advance(days=7)  # past the first deadline only

    assert expiry.expire_overdue(world.ctx) == [first["id"]]
    # The code lives on for the parcel still held.
    assert world.code_of(second["id"]) == code
    assert second["group"]["size"] == 2
    assert parcel_views.get_parcel(world.ctx, SYSTEM, second["id"])["group"] is None

    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code=code)
    assert [p["id"] for p in answer["parcels"]] == [second["id"]]
    assert answer["not_handed_over"] == [{"id": first["id"], "tracking_number": "GROUP0000022",
                                          "state": "expired", "location": first["location"]}]
    assert state_of(world, first["id"]) == "expired"
    assert state_of(world, second["id"]) == "picked_up"


def test_a_parcel_returned_meanwhile_is_named_in_the_preview(world: World) -> None:
    first = arrive(world, "GROUP0000024", JEANNE)
    second = arrive(world, "GROUP0000025", JEANNE)
    code = world.code_of(first["id"])
    expiry.declare(world.ctx, keeper(world.shop_id), first["id"], "damaged", "wet box")
    carrier = Principal(Role.CARRIER, carrier_id=1)
    assert expiry.collect(world.ctx, carrier, world.shop_id, ["GROUP0000024"])[0][
        "status"] == "returned"

    preview = pickup_preview.pickup_preview(world.ctx, keeper(world.shop_id), world.shop_id, code)
    assert preview["parcel"]["id"] == second["id"]
    assert [p["state"] for p in preview["not_handed_over"]] == ["returned"]
    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code=code)
    assert [p["id"] for p in answer["parcels"]] == [second["id"]]


def test_when_every_parcel_expired_the_code_dies(world: World, clock: Clock) -> None:
    first = arrive(world, "GROUP0000026", JEANNE)
    arrive(world, "GROUP0000027", JEANNE)
    code = world.code_of(first["id"])
    clock.advance(days=30)
    assert len(expiry.expire_overdue(world.ctx)) == 2
    with world.ctx.db.read() as session:
        assert session.scalars(select(PickupCredential)).one().revoked_at is not None
    with pytest.raises(WrongPickupCode):
        pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id, code=code)


# ---------------------------------------------------------------- personal data


def test_the_purge_of_a_closed_parcel_neither_crashes_nor_stops_the_grouping(
        world: World, clock: Clock) -> None:
    first = arrive(world, "GROUP0000028", JEANNE)
    second = arrive(world, "GROUP0000029", JEANNE)
    expiry.declare(world.ctx, keeper(world.shop_id), first["id"], "damaged", "crushed")
    expiry.collect(world.ctx, Principal(Role.CARRIER, carrier_id=1), world.shop_id,
                    ["GROUP0000028"])
    clock.advance(hours=1)
    assert retention.purge_due(world.ctx, retention_days=0) == [first["id"]]
    with world.ctx.db.read() as session:
        gone = session.get(Parcel, first["id"])
        assert gone is not None
        assert (gone.recipient_phone, gone.recipient_phone_key, gone.recipient_email_key) == (
            None, None, None)

    third = arrive(world, "GROUP0000030", JEANNE)
    assert covered(world, second["id"]) == [first["id"], second["id"], third["id"]]
    assert world.code_of(third["id"]) == world.code_of(second["id"])
    answer = pickup.pick_up(world.ctx, keeper(world.shop_id), world.shop_id,
                             code=world.code_of(third["id"]))
    assert [p["id"] for p in answer["parcels"]] == [second["id"], third["id"]]


# ---------------------------------------------------------------- messages


def test_the_later_parcel_s_message_says_same_code_same_place(
        app: Flask, world: World) -> None:
    announce(world, "GROUP0000031", JEANNE)
    announce(world, "GROUP0000032", {**JEANNE, "locale": "en"})
    first = check_in(world, "GROUP0000031")
    run_jobs(app, world)
    second = check_in(world, "GROUP0000032")
    run_jobs(app, world)
    code = world.code_of(first["id"])
    lines = sent_lines(app)
    assert len(lines) == 4
    alone, grouped = lines[:2], lines[2:]
    assert all("GROUP0000032" not in x["body"] for x in alone)
    for line in grouped:
        assert code in line["body"] and "GROUP0000031" in line["body"], line["body"]
        assert "same code" in line["body"]
    assert second["group"]["size"] == 2


# ---------------------------------------------------------------- API and pages


def test_the_api_shows_the_group_and_hands_it_over(world: World) -> None:
    announce(world, "GROUP0000033", JEANNE)
    announce(world, "GROUP0000034", JEANNE)
    first = world.check_in("GROUP0000033").json["parcel"]
    response = world.check_in("GROUP0000034")
    assert response.status_code == 201
    assert response.json["parcel"]["group"]["size"] == 2

    shown = world.shopkeeper.get(f"/parcels/{first['id']}").json
    assert shown["group"]["size"] == 2 and shown["group"]["same_code"] is True
    listed = world.shopkeeper.get(f"/sites/{world.shop_id}/parcels").json["items"]
    assert [p["group"]["size"] for p in listed] == [2, 2]

    # The carrier sees its parcel, not the recipient's other parcels.
    assert world.carrier.get(f"/parcels/{first['id']}").json["group"] is None

    code = world.code_of(first["id"])
    done = world.pick_up(code=code)
    assert done.status_code == 200
    assert [p["tracking_number"] for p in done.json["parcels"]] == [
        "GROUP0000033", "GROUP0000034"]
    assert done.json["not_handed_over"] == []
    again = world.pick_up(code=code)
    assert is_problem(again, 403, "wrong-pickup-code")  # spent, for the whole group


def test_a_message_sent_after_the_other_parcel_left_does_not_announce_it(
        app: Flask, world: World, clock: Clock) -> None:
    announce(world, "GROUP0000037", JEANNE)
    announce(world, "GROUP0000038", JEANNE)
    first = check_in(world, "GROUP0000037")
    run_jobs(app, world)
    clock.advance(days=5)
    second = check_in(world, "GROUP0000038")
    assert second["group"]["size"] == 2
    clock.advance(days=7)  # the first parcel expires before the second one's message goes
    assert expiry.expire_overdue(world.ctx) == [first["id"]]
    run_jobs(app, world)
    later = [x for x in sent_lines(app) if "GROUP0000038" in x["body"]]
    assert len(later) == 2
    for line in later:
        body = line["body"]
        assert "GROUP0000037" not in body and "identiques" not in body and "même code" not in body
        assert world.code_of(second["id"]) in line["body"]
