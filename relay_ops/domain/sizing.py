"""Size classes, fitting, and where a parcel goes: a shelf location or a locker compartment.

A parcel fits a box if its dimensions fit in some rotation; for rectangular boxes turned by
quarter turns that is "each sorted dimension is at most the box's sorted dimension".
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Dims = tuple[int, int, int]

# Inner dimensions in mm (height, width, depth). S-L follow InPost's A-C lockers, XL its D.
DEFAULT_SIZE_CLASSES: dict[str, Dims] = {
    "S": (80, 380, 640),
    "M": (190, 380, 640),
    "L": (410, 380, 640),
    "XL": (500, 500, 800),
}


def fits(parcel: Dims, box: Dims) -> bool:
    return all(p <= b for p, b in zip(sorted(parcel), sorted(box), strict=True))


def fit_together(parcels: Sequence[Dims], box: Dims) -> bool:
    """The parcels fit in the box at once, laid flat one on the other: each lies on its two
    longest sides, so the stack is as high as the sum of their shortest sides and as wide and
    deep as the largest of the others. A sufficient rule, not a packing search: a courier
    stacks parcels; a pair it rejects may still fit some other way, and then gets a door of
    its own, which is never wrong."""
    if not parcels:
        return True
    sides = [sorted(p) for p in parcels]
    stack = (sum(s[0] for s in sides), max(s[1] for s in sides), max(s[2] for s in sides))
    return fits(stack, box)


def class_ranks(size_classes: Mapping[str, Dims]) -> dict[str, int]:
    """Each class's rank by volume (0: the smallest), so "smaller" means the same thing for
    any site model."""
    ordered = sorted(size_classes, key=lambda c: _volume(size_classes[c]))
    return {name: rank for rank, name in enumerate(ordered)}


def smallest_class(size_classes: Mapping[str, Dims]) -> str:
    """The class a parcel of unknown size is taken for."""
    return min(size_classes, key=lambda c: _volume(size_classes[c]))


def smallest_class_for(size_classes: Mapping[str, Dims], parcel: Dims) -> str | None:
    fitting = [c for c, dims in size_classes.items() if fits(parcel, dims)]
    return min(fitting, key=lambda c: _volume(size_classes[c]), default=None)


def _volume(d: Dims) -> int:
    return d[0] * d[1] * d[2]


@dataclass(frozen=True)
class ShelfSlot:
    """A shelf location as the allocator sees it."""

    id: int
    label: str
    size_class: str
    capacity: int
    used: int
    refrigerated: bool = False

    @property
    def free(self) -> int:
        return self.capacity - self.used


def takes(slot: ShelfSlot, keep_cold: bool) -> bool:
    """Only a refrigerated place takes a "keep cold" item; any place takes the others."""
    return slot.refrigerated or not keep_cold


def choose_shelf(
    size_classes: Mapping[str, Dims], slots: Iterable[ShelfSlot], parcel_class: str,
    keep_cold: bool = False,
) -> ShelfSlot | None:
    """Shelf policy: a refrigerated place for a "keep cold" item (and, for the others, a
    place that is not, while one has room: the fridge stays free for what needs it), then
    the smallest shelf class that takes the parcel (big shelves stay free for big parcels),
    then the location with the most free places (parcels spread out, so a shopkeeper finds
    them quickly), then the label, for a stable answer."""
    ranks = class_ranks(size_classes)  # once: every shelf is ranked by its class
    need = ranks[parcel_class]
    candidates = [
        s for s in slots
        if s.free > 0 and ranks[s.size_class] >= need and takes(s, keep_cold)
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda s: (s.refrigerated and not keep_cold, ranks[s.size_class], -s.free, s.label),
    )


@dataclass(frozen=True)
class Compartment:
    """A locker compartment as the allocator sees it."""

    number: int
    dims: Dims


def choose_compartment(free: Sequence[Compartment], parcel: Dims) -> Compartment | None:
    """The smallest free compartment the parcel fits in (any rotation); ties by number."""
    fitting = [c for c in free if fits(parcel, c.dims)]
    return min(fitting, key=lambda c: (_volume(c.dims), c.number), default=None)


class CompartmentPool:
    """Free compartments indexed by inner dimensions, for allocating many parcels at once
    (a carrier's whole round): each `take` costs one step per distinct compartment shape, not
    per compartment. It answers exactly what `choose_compartment` answers on the same free set:
    the smallest fitting volume, then the lowest number."""

    def __init__(self, free: Iterable[Compartment]) -> None:
        self._groups: dict[Dims, list[int]] = {}
        for compartment in free:
            self._groups.setdefault(compartment.dims, []).append(compartment.number)
        for numbers in self._groups.values():
            heapq.heapify(numbers)
        # shapes by volume; a shape's sorted sides are what `fits` compares
        self._order = sorted(self._groups, key=lambda d: (_volume(d), d))
        self._sorted_sides = {d: tuple(sorted(d)) for d in self._order}

    def take(self, parcel: Dims) -> Compartment | None:
        sides = sorted(parcel)
        best: tuple[int, int, Dims] | None = None
        for dims in self._order:
            if best is not None and _volume(dims) > best[0]:
                break  # bigger shapes can no longer win
            numbers = self._groups[dims]
            box = self._sorted_sides[dims]
            if numbers and sides[0] <= box[0] and sides[1] <= box[1] and sides[2] <= box[2]:
                candidate = (_volume(dims), numbers[0], dims)
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            return None
        return Compartment(heapq.heappop(self._groups[best[2]]), best[2])

    def __len__(self) -> int:
        return sum(len(numbers) for numbers in self._groups.values())
