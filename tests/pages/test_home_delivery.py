"""Home delivery's pages: the resident asks and cancels, the shop hands over, the courier's
phone page takes the parcel and confirms it with the resident's code."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from relay_ops.services import resident
from tests.pages.support import Pages, csrf_of
from tests.support import World


def _offer(world: World) -> None:
    world.shopkeeper.put(f"/sites/{world.shop_id}/services",
                         json={"services": ["receive", "home_delivery"]})
    world.shopkeeper.put(f"/sites/{world.shop_id}/home-delivery",
                         json={"days": ["tue", "fri"], "area": "le bourg"})


def _link(world: World, parcel_id: int) -> str:
    return resident.tracking_url(world.ctx, parcel_id).removeprefix(
        world.ctx.settings.public_base_url)


def _ask(world: World, path: str, **form: str) -> tuple[FlaskClient, str]:
    client = world.client.application.test_client()
    data = {"csrf_token": csrf_of(client.get(path)), "day": "2026-12-01",
            "courier_kind": "neighbour", "courier_name": "Marcel Petit",
            "consent": "yes", "in_area": "yes", **form}
    response = client.post(path + "/home-delivery", data=data)
    assert response.status_code == 303
    return client, client.get(path).get_data(as_text=True)


def test_no_home_delivery_section_where_the_shop_does_not_deliver(world: World) -> None:
    parcel = world.ready("HOME00000001")
    html = world.client.application.test_client().get(
        _link(world, parcel["id"])).get_data(as_text=True)
    assert 'id="home-delivery"' not in html


def test_the_resident_asks_for_home_delivery_and_cancels_it(world: World) -> None:
    _offer(world)
    parcel = world.ready("HOME00000002")
    path = _link(world, parcel["id"])
    before = world.client.application.test_client().get(path).get_data(as_text=True)
    assert "Remise à domicile" in before and "J’habite : le bourg" in before
    assert '<option value="2026-12-04">' in before  # Friday, a delivery day
    client, html = _ask(world, path)
    assert "Marcel Petit vous apportera votre colis le mardi 1 décembre 2026." in html
    assert 'id="courier-link"' in html and 'id="home-delivery-cancel"' in html
    response = client.post(path + "/home-delivery/cancel",
                           data={"csrf_token": csrf_of(client.get(path))})
    assert response.status_code == 303
    html = client.get(path).get_data(as_text=True)
    assert "La livraison à domicile est annulée" in html
    assert 'id="home-delivery-ask"' in html  # it can be asked again


def test_a_refused_request_says_why(world: World) -> None:
    _offer(world)
    parcel = world.ready("HOME00000003")
    _, html = _ask(world, _link(world, parcel["id"]), day="2026-12-02")
    assert "is not a delivery day" in html
    assert 'id="home-delivery-ask"' in html


def test_the_shop_hands_over_and_the_courier_confirms_with_the_residents_code(
        world: World, marie: Pages) -> None:
    _offer(world)
    parcel = world.ready("HOME00000004")
    _, html = _ask(world, _link(world, parcel["id"]))
    courier_url = re.search(r'id="courier-link" href="([^"]+)"', html)
    assert courier_url is not None
    courier_path = courier_url.group(1).removeprefix(world.ctx.settings.public_base_url)
    listing = marie.text(f"/shop/{world.shop_id}/home-delivery")
    assert "HOME00000004" in listing and "Marcel Petit" in listing
    assert "Remettre au livreur" in listing and "Remise à domicile" in listing
    delivery_id = re.search(r'id="delivery-(\d+)"', listing)
    assert delivery_id is not None
    handed = marie.post(f"/shop/{world.shop_id}/home-delivery/{delivery_id.group(1)}/taken")
    assert handed.status_code == 303
    assert "en livraison" in marie.text(f"/shop/{world.shop_id}/home-delivery")
    # The courier's phone: the parcel, then the resident types their code.
    phone = world.client.application.test_client()
    page = phone.get(courier_path)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "Pour Jeanne Martin" in text and "HOME00000004" in text
    assert 'id="courier-code"' in text and 'id="courier-taken"' not in text
    wrong = phone.post(courier_path + "/delivered",
                       data={"csrf_token": csrf_of(page), "code": "000000"
                             if world.code_of(parcel["id"]) != "000000" else "111111"})
    assert wrong.status_code == 303
    again = phone.get(courier_path)
    done = phone.post(courier_path + "/delivered", data={
        "csrf_token": csrf_of(again), "code": world.code_of(parcel["id"])})
    assert done.status_code == 200
    assert "Remis. Merci !" in done.get_data(as_text=True)
    assert phone.get(courier_path).status_code == 404  # the link is spent
    assert "Aucune remise à domicile prévue." in marie.text(
        f"/shop/{world.shop_id}/home-delivery")


def test_the_courier_taps_taken_on_their_phone(world: World) -> None:
    _offer(world)
    parcel = world.ready("HOME00000005")
    _, html = _ask(world, _link(world, parcel["id"]))
    found = re.search(r'id="courier-link" href="([^"]+)"', html)
    assert found is not None
    path = found.group(1).removeprefix(world.ctx.settings.public_base_url)
    phone = world.client.application.test_client()
    page = phone.get(path)
    assert 'id="courier-taken"' in page.get_data(as_text=True)
    taken = phone.post(path + "/taken", data={"csrf_token": csrf_of(page)})
    assert taken.status_code == 303
    after = phone.get(path).get_data(as_text=True)
    assert "Pris : apportez-le au destinataire aujourd’hui." in after
    assert 'id="courier-code"' in after
    # The resident can no longer cancel: the page says so.
    tracking = world.client.application.test_client().get(_link(world, parcel["id"]))
    assert "ne peut plus être annulée" in tracking.get_data(as_text=True)


def test_another_shops_staff_do_not_see_the_list(world: World) -> None:
    paul = Pages.signed_in(world, "paul")
    assert paul.get(f"/shop/{world.shop_id}/home-delivery").status_code == 404
