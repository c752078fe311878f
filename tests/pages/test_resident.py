from __future__ import annotations

from flask.testing import FlaskClient

from relay_ops.services import resident
from tests.pages.support import Pages, csrf_of
from tests.support import World


def _link(world: World, parcel_id: int) -> str:
    url = resident.tracking_url(world.ctx, parcel_id)
    return url.removeprefix(world.ctx.settings.public_base_url)


def _visit(world: World, path: str) -> tuple[FlaskClient, str]:
    client = world.client.application.test_client()
    response = client.get(path)
    return client, response.get_data(as_text=True)


def test_the_page_shows_code_qr_site_hours_and_map(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    _, html = _visit(world, path)
    assert "Prêt à être retiré" in html
    assert world.code_of(parcel["id"]) in html
    token = path.removeprefix("/t/")
    assert f'src="/api/v1/track/{token}/qr.svg"' in html
    assert "1 rue de la Poste" in html and "44000 Bourg" in html
    assert "https://www.openstreetmap.org/?mlat=47.5167&amp;mlon=-1.2917" in html
    assert "<th scope=\"row\">Lundi</th><td>08:00–20:00</td>" in html
    assert "<th scope=\"row\">Dimanche</th><td>fermé</td>" in html


def test_the_page_says_which_other_parcels_the_code_hands_over(world: World) -> None:
    jeanne = {"name": "Jeanne Martin", "phone": "+33612345678"}
    assert world.announce("RR123456785FR", "PARCELGROUP01", recipient=jeanne).status_code == 201
    first = world.check_in("RR123456785FR").json["parcel"]
    second = world.check_in("PARCELGROUP01").json["parcel"]
    _, html = _visit(world, _link(world, second["id"]))
    assert world.code_of(first["id"]) in html
    assert "Ce code vous remet aussi vos autres colis ici : RR123456785FR." in html


def test_the_resident_asks_for_the_one_extension(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    client, html = _visit(world, path)
    assert 'id="extend-button"' in html
    response = client.post(path + "/extension", data={"csrf_token": csrf_of(client.get(path))})
    assert response.status_code == 303
    after = client.get(path).get_data(as_text=True)
    assert "votre colis est gardé jusqu" in after and 'id="extend-button"' not in after
    again = client.post(path + "/extension", data={"csrf_token": csrf_of(client.get(path))})
    assert again.status_code == 303
    assert "✖" in client.get(path).get_data(as_text=True)


def test_the_extension_needs_the_forms_token(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    client, _ = _visit(world, _link(world, parcel["id"]))
    assert client.post(_link(world, parcel["id"]) + "/extension").status_code == 400


def test_naming_a_proxy_shows_their_code_once(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    client, _ = _visit(world, path)
    response = client.post(path + "/proxy", data={"name": "Paul Voisin",
                                                  "csrf_token": csrf_of(client.get(path))},
                           follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Paul Voisin peut retirer votre colis" in html
    assert world.code_of(parcel["id"], holder="proxy") in html
    assert world.code_of(parcel["id"], holder="proxy") not in client.get(path).get_data(
        as_text=True)


def test_reloading_the_proxy_answer_keeps_the_code_given_to_the_neighbour(
        world: World) -> None:
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    client, _ = _visit(world, path)
    form = {"name": "Paul Voisin", "csrf_token": csrf_of(client.get(path))}
    posted = client.post(path + "/proxy", data=form)
    # Post/redirect/get: the browser's reload asks for the answer, it does not post again.
    assert posted.status_code == 303 and posted.location == path + "/proxy"
    given = world.code_of(parcel["id"], holder="proxy")
    answer = client.get(posted.location)
    assert given in answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    assert given in client.get(posted.location).get_data(as_text=True)  # the reload
    # The same person named again (a double tap, the form sent twice): the same live code.
    again = client.post(path + "/proxy", data=dict(form, name="  paul  VOISIN "),
                        follow_redirects=True)
    assert given in again.get_data(as_text=True)
    assert world.code_of(parcel["id"], holder="proxy") == given
    # Someone else replaces them, with a code of their own.
    client.post(path + "/proxy", data=dict(form, name="Lise Autre"))
    assert world.code_of(parcel["id"], holder="proxy") != given


def test_the_proxy_answer_without_a_proxy_goes_back_to_the_page(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    response = world.client.application.test_client().get(path + "/proxy")
    assert response.status_code == 303 and response.location == path


def test_a_forged_link_is_not_found_and_a_spent_one_is_gone(marie: Pages, world: World) -> None:
    _, html = _visit(world, "/t/forged-token")
    assert "Introuvable" in html
    parcel = world.ready("RR123456785FR")
    path = _link(world, parcel["id"])
    world.pick_up(code=world.code_of(parcel["id"]))
    response = world.client.application.test_client().get(path)
    assert response.status_code == 410 and response.mimetype == "text/html"
    assert "Ce lien a expiré" in response.get_data(as_text=True)


def test_the_page_follows_the_residents_language(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    client = world.client.application.test_client()
    html = client.get(_link(world, parcel["id"]),
                      headers={"Accept-Language": "en-GB,en;q=0.8"}).get_data(as_text=True)
    assert "Ready for pickup" in html and '<html lang="en">' in html


def test_the_resident_refuses_the_parcel_from_the_page(world: World) -> None:
    parcel = world.ready("RR123456785FR")
    code = world.code_of(parcel["id"])
    path = _link(world, parcel["id"])
    client, html = _visit(world, path)
    assert 'id="refuse-button"' in html
    response = client.post(path + "/refusal", data={
        "csrf_token": csrf_of(client.get(path)), "reason": "pas commandé"})
    assert response.status_code == 303
    after = client.get(path).get_data(as_text=True)
    assert "le colis repart chez son expéditeur" in after
    assert 'id="refuse-button"' not in after and code not in after
    events = world.operator.get(f"/parcels/{parcel['id']}/events").json["items"]
    assert (events[-1]["action"], events[-1]["to_state"]) == ("refuse", "expired")
