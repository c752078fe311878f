"""The bulk allocator answers exactly what the one-parcel rule answers, and never gives a door
twice or a door too small."""

from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ops.domain.sizing import Compartment, CompartmentPool, choose_compartment, fits

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
