"""The grouping rules on their own: same recipient, which code to join, which shelf, what a
shared code hands over."""

from relay_ops.domain import credentials as creds
from relay_ops.domain import grouping
from relay_ops.domain.sizing import ShelfSlot

PEPPER = b"pepper"
CLASSES = {"S": (100, 300, 400), "M": (200, 400, 500), "L": (400, 500, 700)}
JEANNE = grouping.RecipientKeys(phone="k-phone-jeanne", email="k-mail-jeanne")


def held(parcel_id: int, credential_id: int, keys: grouping.RecipientKeys,
         locked: bool = False, location: int | None = 1) -> grouping.HeldParcel:
    return grouping.HeldParcel(parcel_id, credential_id, location, keys, code_locked=locked)


def test_one_shared_address_is_the_same_recipient() -> None:
    assert JEANNE.same_recipient(grouping.RecipientKeys(phone="k-phone-jeanne"))
    assert JEANNE.same_recipient(grouping.RecipientKeys(email="k-mail-jeanne"))
    assert not JEANNE.same_recipient(grouping.RecipientKeys(phone="k-phone-paul"))
    assert not grouping.RecipientKeys().same_recipient(grouping.RecipientKeys())


def test_a_recipient_key_ignores_the_e_mail_case_and_differs_by_kind() -> None:
    assert creds.recipient_key(PEPPER, "email", "Jeanne@Example.org ") == creds.recipient_key(
        PEPPER, "email", "jeanne@example.org")
    assert creds.recipient_key(PEPPER, "phone", "+33612345678") != creds.recipient_key(
        PEPPER, "email", "+33612345678")
    assert creds.recipient_key(PEPPER, "phone", "+33612345678") != creds.recipient_key(
        b"other pepper", "phone", "+33612345678")
    assert creds.recipient_key(PEPPER, "phone", "+33612345678") != creds.hash_code(
        PEPPER, 1, "+33612345678")


def test_the_new_parcel_joins_the_oldest_matching_code_that_is_not_locked() -> None:
    paul = grouping.RecipientKeys(phone="k-phone-paul")
    candidates = [held(1, 7, paul), held(2, 5, JEANNE, locked=True), held(3, 9, JEANNE),
                  held(4, 8, JEANNE)]
    assert grouping.group_to_join(JEANNE, candidates) == 8
    assert grouping.group_to_join(JEANNE, [held(2, 5, JEANNE, locked=True)]) is None
    assert grouping.group_to_join(grouping.RecipientKeys(), candidates) is None


def test_the_group_s_shelf_when_it_has_room_for_the_class() -> None:
    slots = [ShelfSlot(1, "A1", "S", 2, 2), ShelfSlot(2, "B1", "L", 3, 1),
             ShelfSlot(3, "C1", "L", 9, 0)]
    assert grouping.shelf_in_group(CLASSES, slots, [2], "M") == slots[1]
    # Full, or too small: None (the usual shelf policy then decides, same code).
    assert grouping.shelf_in_group(CLASSES, slots, [1], "S") is None
    assert grouping.shelf_in_group(CLASSES, [ShelfSlot(1, "A1", "S", 5, 0)], [1], "L") is None
    assert grouping.shelf_in_group(CLASSES, slots, [None], "S") is None


def test_a_pickup_hands_over_the_ready_parcels_and_names_the_others() -> None:
    split = grouping.split_for_pickup(
        {3: "ready_for_pickup", 1: "expired", 2: "ready_for_pickup", 4: "returned"},
        "ready_for_pickup",
    )
    assert split.handed_over == (2, 3)
    assert split.left == ((1, "expired"), (4, "returned"))


def door(number: int, *keys: grouping.RecipientKeys, carrier: int | None = 1,
         locked: bool = False) -> grouping.Door:
    return grouping.Door(number, keys, (carrier,) * len(keys), code_locked=locked)


def test_a_locker_parcel_joins_the_lowest_door_of_its_recipient_with_room() -> None:
    doors = [door(4, JEANNE), door(2, JEANNE, JEANNE), door(6, JEANNE)]
    assert grouping.door_to_share(JEANNE, 1, doors, lambda n: n != 2) == 4
    assert grouping.door_to_share(JEANNE, 1, doors, lambda n: True) == 2
    assert grouping.door_to_share(JEANNE, 1, doors, lambda n: False) is None


def test_a_locker_door_is_shared_by_one_carrier_and_one_recipient_only() -> None:
    paul = grouping.RecipientKeys(phone="k-phone-paul")
    doors = [door(4, JEANNE, carrier=2), door(3, paul), door(1, JEANNE, locked=True),
             door(5, JEANNE, paul)]
    anywhere = lambda n: True  # noqa: E731
    assert grouping.door_to_share(JEANNE, 1, doors, anywhere) is None
    assert grouping.door_to_share(JEANNE, None, doors, anywhere) is None
    assert grouping.door_to_share(JEANNE, 2, doors, anywhere) == 4
    assert grouping.door_to_share(grouping.RecipientKeys(), 2, doors, anywhere) is None
    assert grouping.door_to_share(JEANNE, 1, [grouping.Door(7, (), ())], anywhere) is None
