"""The resident's signed link: parcel, code, QR code, extension, proxy."""

import subprocess
from pathlib import Path

from relay_ops.services.resident import tracking_token, tracking_url
from tests.support import World, is_problem


def test_the_link_shows_the_parcel_site_and_code(world: World) -> None:
    parcel = world.ready("ACME00000900")
    link = tracking_token(world.ctx, parcel["id"])
    assert tracking_url(world.ctx, parcel["id"]) == f"http://relayops.test/t/{link}"
    view = world.anonymous.get(f"/track/{link}").json
    assert view["state"] == "ready_for_pickup"
    assert view["pickup_code"] == world.code_of(parcel["id"])
    assert view["site"]["address"] == "1 rue de la Poste"
    assert view["can_extend"] is True
    assert "phone" not in view["recipient"]


def test_a_forged_link_is_not_found(world: World) -> None:
    parcel = world.ready("ACME00000901")
    link = tracking_token(world.ctx, parcel["id"])
    assert is_problem(world.anonymous.get(f"/track/{link[:-2]}xx"), 404, "not-found")


def test_the_resident_asks_for_the_one_extension(world: World) -> None:
    parcel = world.ready("ACME00000902")
    link = tracking_token(world.ctx, parcel["id"])
    assert world.anonymous.post(f"/track/{link}/extension").status_code == 200
    assert is_problem(world.anonymous.post(f"/track/{link}/extension"), 409, "extension-refused")
    assert world.anonymous.get(f"/track/{link}").json["can_extend"] is False


def test_the_link_dies_with_the_parcel(world: World) -> None:
    parcel = world.ready("ACME00000903")
    link = tracking_token(world.ctx, parcel["id"])
    world.pick_up(code=world.code_of(parcel["id"]))
    assert is_problem(world.anonymous.get(f"/track/{link}"), 410, "link-expired")


def test_a_link_cannot_read_another_parcel(world: World) -> None:
    mine = world.ready("ACME00000904")
    theirs = world.ready("ACME00000905")
    link = tracking_token(world.ctx, mine["id"])
    # The link is the only credential: API paths with ids stay closed to it.
    response = world.client.get(f"/api/v1/parcels/{theirs['id']}",
                                headers={"Authorization": f"Bearer {link}"})
    assert is_problem(response, 401, "unauthenticated")


def test_the_qr_png_decodes_to_the_pickup_code(world: World, tmp_path: Path) -> None:
    parcel = world.ready("ACME00000906")
    link = tracking_token(world.ctx, parcel["id"])
    response = world.anonymous.get(f"/track/{link}/qr.png")
    assert response.mimetype == "image/png"
    image = tmp_path / "qr.png"
    image.write_bytes(response.data)
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(image)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert decoded == world.code_of(parcel["id"])
    svg = world.anonymous.get(f"/track/{link}/qr.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
