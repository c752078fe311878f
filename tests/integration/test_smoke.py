from tests.support import World


def test_announce_check_in_pick_up(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    assert parcel["state"] == "ready_for_pickup"
    code = world.code_of(parcel["id"])
    response = world.pick_up(code=code)
    assert response.status_code == 200, response.json
    assert response.json["parcel"]["state"] == "picked_up"
