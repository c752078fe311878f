"""A carrier learns nothing of tracking numbers it did not announce: where it names a number,
another carrier's parcel is answered exactly like a number that does not exist."""

from __future__ import annotations

from relay_ops.services import expiry
from tests.conftest import Clock
from tests.support import World, is_problem


def _without_number(answer: dict[str, object], number: str) -> dict[str, object]:
    return {k: (str(v).replace(number, "N") if isinstance(v, str) else v)
            for k, v in answer.items() if k not in ("tracking_number", "instance")}


def test_collecting_another_carriers_parcel_looks_like_a_number_that_is_nowhere(
        world: World, clock: Clock) -> None:
    world.ready("ACME00000960")
    clock.advance(days=11)
    expiry.expire_overdue(world.ctx)
    answer = world.other_carrier.post(f"/sites/{world.shop_id}/collections", json={
        "tracking_numbers": ["ACME00000960", "ACME00000961"]}).json["items"]
    theirs, nowhere = answer
    assert theirs["status"] == nowhere["status"] == "refused"
    assert _without_number(theirs, "ACME00000960") == _without_number(nowhere, "ACME00000961")


def test_looking_up_another_carriers_number_looks_like_a_number_that_is_nowhere(
        world: World) -> None:
    world.ready("ACME00000962")
    theirs = world.other_carrier.get("/parcels", tracking_number="ACME00000962")
    nowhere = world.other_carrier.get("/parcels", tracking_number="ACME00000963")
    assert is_problem(theirs, 404, "not-found") and is_problem(nowhere, 404, "not-found")
    assert _without_number(theirs.json, "ACME00000962") == _without_number(
        nowhere.json, "ACME00000963")
