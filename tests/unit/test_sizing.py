from hypothesis import given
from hypothesis import strategies as st

from relay_ops.domain.sizing import (
    DEFAULT_SIZE_CLASSES,
    Compartment,
    ShelfSlot,
    choose_compartment,
    choose_shelf,
    fit_together,
    fits,
    smallest_class_for,
)

C = DEFAULT_SIZE_CLASSES


def test_a_parcel_fits_in_some_rotation() -> None:
    assert fits((640, 80, 380), (80, 380, 640))
    assert not fits((81, 380, 640), (80, 380, 640))


def test_two_flat_parcels_stack_in_one_compartment() -> None:
    # two 80 mm high shoeboxes in an M door (190 mm): stacked 160 mm high
    assert fit_together([(300, 200, 80), (80, 350, 250)], C["M"])
    # a third makes 240 mm: no longer
    assert not fit_together([(300, 200, 80)] * 3, C["M"])
    # one is too long for the door whatever the other
    assert not fit_together([(50, 100, 700), (50, 100, 100)], C["M"])
    # the stack is a block that may be turned: 2 x 100 mm stands in a door 250 mm wide
    assert fit_together([(100, 300, 600)] * 2, (380, 250, 640))
    assert not fit_together([(100, 300, 600)] * 3, (380, 250, 640))


dims = st.tuples(*[st.integers(1, 900)] * 3)


@given(st.lists(dims, min_size=1, max_size=4), dims)
def test_fitting_together_implies_each_fits_alone(parcels: list, box: tuple) -> None:
    if fit_together(parcels, box):
        assert all(fits(p, box) for p in parcels)
        # and any of them taken out still fits with the rest
        assert fit_together(parcels[1:], box)


@given(dims, dims)
def test_one_parcel_fits_together_exactly_when_it_fits(parcel: tuple, box: tuple) -> None:
    assert fit_together([parcel], box) == fits(parcel, box)


def test_smallest_class_for_dimensions() -> None:
    assert smallest_class_for(C, (50, 200, 300)) == "S"
    assert smallest_class_for(C, (150, 300, 600)) == "M"
    assert smallest_class_for(C, (450, 450, 700)) == "XL"
    assert smallest_class_for(C, (900, 900, 900)) is None


def test_shelf_policy_prefers_the_smallest_class_then_the_emptiest() -> None:
    slots = [
        ShelfSlot(1, "B1", "L", 5, 0),
        ShelfSlot(2, "A1", "S", 10, 7),
        ShelfSlot(3, "A2", "S", 10, 2),
    ]
    assert choose_shelf(C, slots, "S") == slots[2]
    assert choose_shelf(C, slots, "M") == slots[0]


def test_shelf_policy_uses_a_bigger_shelf_when_small_ones_are_full() -> None:
    slots = [ShelfSlot(1, "A1", "S", 1, 1), ShelfSlot(2, "B1", "L", 1, 0)]
    assert choose_shelf(C, slots, "S") == slots[1]
    assert choose_shelf(C, [slots[0]], "S") is None


dims = st.tuples(*(st.integers(1, 900),) * 3)
compartments = st.lists(
    st.builds(Compartment, st.integers(1, 1000), st.sampled_from(list(C.values()))),
    max_size=30, unique_by=lambda c: c.number,
)


@given(compartments, dims)
def test_compartment_choice_never_refuses_while_one_fits(
    free: list[Compartment], parcel: tuple[int, int, int]
) -> None:
    chosen = choose_compartment(free, parcel)
    fitting = [c for c in free if fits(parcel, c.dims)]
    if not fitting:
        assert chosen is None
        return
    assert chosen is not None and fits(parcel, chosen.dims)
    volume = chosen.dims[0] * chosen.dims[1] * chosen.dims[2]
    assert all(volume <= c.dims[0] * c.dims[1] * c.dims[2] for c in fitting)
