"""The bulk allocator answers exactly what the one-parcel rule answers, and never gives a door
twice or a door too small."""

from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ops.db import models
from relay_ops.domain.sizing import Compartment, CompartmentPool, choose_compartment, fits
from relay_ops.services.locker_compartments import DoorPool

side = st.integers(min_value=1, max_value=900)
dims = st.tuples(side, side, side)
shapes = st.lists(dims, min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(shapes=shapes, picks=st.lists(st.integers(min_value=0, max_value=40), max_size=60),
       parcels=st.lists(dims, max_size=60))
def test_the_pool_matches_choose_compartment_step_by_step(
        shapes: list[tuple[int, int, int]], picks: list[int], parcels: list[tuple[int, int, int]]
) -> None:
    free = [Compartment(n + 1, shapes[p % len(shapes)]) for n, p in enumerate(picks)]
    pool = CompartmentPool(free)
    taken: set[int] = set()
    for parcel in parcels:
        expected = choose_compartment(free, parcel)
        got = pool.take(parcel)
        assert got == expected
        if got is not None:
            assert got.number not in taken and fits(parcel, got.dims)
            taken.add(got.number)
            free.remove(got)
    assert len(pool) == len(free)


def test_the_door_pool_keeps_the_fridge_last_and_counts_the_doors_left_per_class() -> None:
    """The drop-off's rule as the reroute planner counts with it (``DoorPool``): the
    smallest door a parcel fits among the ordinary ones, a refrigerated one only when none
    is left; what remains is counted per size class."""
    def door(number: int, size: str, height: int, cold: bool = False) -> models.Compartment:
        return models.Compartment(number=number, size_class=size, height_mm=height,
                                  width_mm=380, depth_mm=640, refrigerated=cold)

    pool = DoorPool([door(1, "S", 80, cold=True), door(2, "S", 80), door(3, "L", 410)])
    small = (50, 300, 600)
    assert pool.count("S") == 2 and pool.count("L") == 1
    assert [d.number for d in (pool.take(small), pool.take(small))] == [2, 3]
    assert pool.count("S") == 1 and pool.count("L") == 0
    assert pool.take((400, 380, 640)) is None  # an L parcel: the L door is gone
    taken = pool.take(small)
    assert taken is not None and taken.number == 1  # the fridge, last
    assert pool.take(small) is None and pool.count("S") == 0
