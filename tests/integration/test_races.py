"""Concurrency proven, not hoped for: many threads on one parcel, one effect each."""

import threading
from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from relay_ops.db.models import ParcelEvent
from relay_ops.domain.errors import DomainError
from relay_ops.services import checkin, parcel_views, pickup
from relay_ops.services.principal import Principal, Role
from tests.support import World, shelf_counts, shelf_counts_agree

THREADS = 20


def race(action: Callable[[], str]) -> Counter[str]:
    """Run ``action`` in THREADS threads released together; count what each got."""
    barrier = threading.Barrier(THREADS)
    results: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            outcome = action()
        except DomainError as err:
            outcome = err.slug
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == THREADS
    return Counter(results)


def test_twenty_check_ins_and_twenty_pickups_give_one_of_each(world: World) -> None:
    assert world.announce("RACE00000001").status_code == 201
    marie = Principal(Role.SHOPKEEPER, user_id=1, site_ids=frozenset({world.shop_id}))

    def check_in() -> str:
        return checkin.check_in(world.ctx, marie, world.shop_id, "RACE00000001")["status"]

    assert race(check_in) == Counter({"checked_in": 1, "already_checked_in": THREADS - 1})
    parcel_id = world.carrier.get("/parcels", tracking_number="RACE00000001").json["id"]
    code = world.code_of(parcel_id)

    def pick_up() -> str:
        return pickup.pick_up(world.ctx, marie, world.shop_id, code=code)["status"]

    outcomes = race(pick_up)
    assert outcomes["picked_up"] == 1
    assert set(outcomes) <= {"picked_up", "wrong-pickup-code", "invalid-transition"}
    with world.ctx.db.read() as session:
        actions = dict(session.execute(
            select(ParcelEvent.action, func.count()).where(ParcelEvent.parcel_id == parcel_id)
            .group_by(ParcelEvent.action)).all())
    assert actions == {"announce": 1, "check_in": 1, "pick_up": 1}
    assert shelf_counts_agree(world.ctx), shelf_counts(world.ctx)


def test_twenty_check_ins_never_overfill_a_shelf(world: World) -> None:
    numbers = [f"RACE000001{i:02d}" for i in range(THREADS)]
    assert world.announce(*numbers, size_class="L", reference="BIG").status_code == 201
    marie = Principal(Role.SHOPKEEPER, user_id=1, site_ids=frozenset({world.shop_id}))
    queue = iter(numbers)
    lock = threading.Lock()

    def check_in_next() -> str:
        with lock:
            number = next(queue)
        return checkin.check_in(world.ctx, marie, world.shop_id, number)["status"]

    # Shelf B1 holds 5 L parcels and is the only one that takes them.
    assert race(check_in_next) == Counter({"checked_in": 5, "site-at-capacity": THREADS - 5})
    assert shelf_counts(world.ctx)[f"{world.shop_id}/B1"] == (5, 5)


def test_a_parcel_joining_a_code_being_spent_is_never_left_without_a_code(
        world: World) -> None:
    """A check-in joins the recipient's code while a pickup spends it: the new parcel is
    either handed over with the others or keeps a live code of its own, never stranded."""
    marie = Principal(Role.SHOPKEEPER, user_id=1, site_ids=frozenset({world.shop_id}))
    jeanne = {"name": "Jeanne", "phone": "+33612345678"}
    for round_ in range(5):
        first, second = f"RACEGRP{round_}0001", f"RACEGRP{round_}0002"
        assert world.announce(first, second, recipient=jeanne).status_code == 201
        checkin.check_in(world.ctx, marie, world.shop_id, first)
        first_id = world.carrier.get("/parcels", tracking_number=first).json["id"]
        code = world.code_of(first_id)
        barrier = threading.Barrier(2)

        def pick_up(code: str = code, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            pickup.pick_up(world.ctx, marie, world.shop_id, code=code)

        def check_in(number: str = second, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            checkin.check_in(world.ctx, marie, world.shop_id, number)

        threads = [threading.Thread(target=pick_up), threading.Thread(target=check_in)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        second_view = world.carrier.get("/parcels", tracking_number=second).json
        assert parcel_views.get_parcel(world.ctx, marie, first_id)["state"] == "picked_up"
        if second_view["state"] == "ready_for_pickup":
            assert world.code_of(second_view["id"]) != code
        else:
            assert second_view["state"] == "picked_up"
    assert shelf_counts_agree(world.ctx), shelf_counts(world.ctx)


def test_twenty_wrong_codes_at_once_are_ten_guesses(world: World) -> None:
    # Each live code meets at most PICKUP_CODE_ONLY_MISSES (10) wrong code-alone guesses
    # (docs/decisions/0004), even when the guesses arrive together: the others are refused
    # before the code is read.
    parcel = world.ready("RACE00000300")
    right = world.code_of(parcel["id"])
    marie = Principal(Role.SHOPKEEPER, user_id=1, site_ids=frozenset({world.shop_id}))
    guesses = iter(f"{n:07d}" for n in range(100) if f"{n:07d}" != right)
    lock = threading.Lock()

    def guess() -> str:
        with lock:
            code = next(guesses)
        return pickup.pick_up(world.ctx, marie, world.shop_id, code=code)["status"]

    misses = world.ctx.settings.pickup_code_only_misses
    assert race(guess) == Counter({"wrong-pickup-code": misses,
                                   "code-needs-tracking-or-name": THREADS - misses})
