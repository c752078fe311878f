"""Several parcels for one recipient at one site: one shelf location (or one locker door,
when they fit together in it), one pickup code.

Pure rules (no database): who counts as the same recipient, which code a new parcel joins,
which shelf or door it goes in, and what a pickup with a shared code hands over. The service
layer (``services/checkin_grouping.py`` and ``services/pickup.py`` for shops,
``services/locker_compartments.py`` and ``services/locker_door_deposit.py`` for lockers)
feeds them rows and applies the answers in its transaction (docs/forecast.md, "Parcels grouped at a
shop" and "... at a locker").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from relay_ops.domain import sizing


@dataclass(frozen=True)
class RecipientKeys:
    """Keyed hashes of a recipient's phone and e-mail (either may be missing)."""

    phone: str | None = None
    email: str | None = None

    def __bool__(self) -> bool:
        return bool(self.phone or self.email)

    def same_recipient(self, other: RecipientKeys) -> bool:
        # One shared address is enough: the messages of both parcels reach the same person,
        # so the code they would carry reaches them too.
        return bool(
            (self.phone and self.phone == other.phone)
            or (self.email and self.email == other.email)
        )


@dataclass(frozen=True)
class HeldParcel:
    """A ready parcel at the site and the live recipient code that covers it."""

    parcel_id: int
    credential_id: int
    location_id: int | None
    keys: RecipientKeys
    code_locked: bool = False


def group_to_join(new: RecipientKeys, held: Iterable[HeldParcel]) -> int | None:
    """The credential a new parcel for ``new`` joins, or None for a code of its own.

    A locked code is never joined: the new parcel would be locked behind guesses it never
    saw. With several candidates (codes issued before grouping existed), the oldest wins so
    the answer is stable.
    """
    if not new:
        return None
    candidates = {
        h.credential_id for h in held if not h.code_locked and new.same_recipient(h.keys)
    }
    return min(candidates, default=None)


def shelf_in_group(
    size_classes: Mapping[str, sizing.Dims],
    slots: Iterable[sizing.ShelfSlot],
    group_location_ids: Iterable[int | None],
    parcel_class: str,
    keep_cold: bool = False,
) -> sizing.ShelfSlot | None:
    """The group's own location when it takes one more parcel of this class, else None (the
    parcel then goes wherever the shelf policy says, with the same code)."""
    wanted = {loc for loc in group_location_ids if loc is not None}
    return sizing.choose_shelf(size_classes, [s for s in slots if s.id in wanted], parcel_class,
                               keep_cold)


@dataclass(frozen=True)
class Door:
    """A locker door as a candidate to share: who its parcels are for and who brought them
    (held ones and ones reserved on their way)."""

    id: int
    recipients: tuple[RecipientKeys, ...]
    carriers: tuple[int | None, ...]
    code_locked: bool = False


def door_to_share(
    new: RecipientKeys, carrier_id: int | None, doors: Iterable[Door],
    room_for: Callable[[int], bool],
) -> int | None:
    """The door a new parcel joins, or None for a door of its own: the lowest door whose
    parcels are all this recipient's and this carrier's, whose code is not locked, with
    ``room_for`` the new parcel laid on them.

    One carrier only: a door's parcels expire together and go back in one opening, to one
    carrier. A locked code is never joined (as at a shop)."""
    if not new or carrier_id is None:
        return None
    for door in sorted(doors, key=lambda d: d.id):
        if (door.recipients and not door.code_locked
                and all(new.same_recipient(keys) for keys in door.recipients)
                and all(carrier == carrier_id for carrier in door.carriers)
                and room_for(door.id)):
            return door.id
    return None


@dataclass(frozen=True)
class PickupSplit:
    """What a code hands over now, and what it no longer can (with the reason: the state)."""

    handed_over: tuple[int, ...]
    left: tuple[tuple[int, str], ...]


def split_for_pickup(states: Mapping[int, str], ready_state: str) -> PickupSplit:
    """Every covered parcel still ready goes; the others (expired, returned, declared
    missing...) stay where they are and the answer names them."""
    ordered = sorted(states)
    return PickupSplit(
        handed_over=tuple(pid for pid in ordered if states[pid] == ready_state),
        left=tuple((pid, states[pid]) for pid in ordered if states[pid] != ready_state),
    )
