"""The scan station's "Envoi" page, the carrier's collection pages and the sender's receipt."""

from __future__ import annotations

import re
from html import unescape

import pytest

from relay_ops.services import accounts, carrier_sites, pickup_lists, sites
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.pages.support import Pages
from tests.support import World


@pytest.fixture
def sending(world: World) -> World:
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "acme", ["prefix:ACME"])
    carrier_sites.set_label_networks(world.ctx, SYSTEM, "other", ["prefix:ACME", "upu-s10"])
    carrier_sites.serve_site(world.ctx, SYSTEM, world.shop_id, "acme", 48)
    sites.set_services(world.ctx, SYSTEM, world.shop_id, ["receive", "send"])
    return world


@pytest.fixture
def acme(sending: World) -> Pages:
    return Pages.carrier(sending, accounts.issue_carrier_key(sending.ctx, SYSTEM, "acme").token)


def _drop(marie: Pages, world: World, number: str, **form: str) -> str:
    response = marie.post(f"/shop/{world.shop_id}/send", {"tracking_number": number, **form})
    assert response.status_code == 200
    return unescape(response.get_data(as_text=True))


def _result(html: str, part: str) -> str:
    found = re.search(rf'id="result-{part}">(.*?)</p>', html, re.S)
    assert found, part
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_scan_station_links_to_sending(marie: Pages, sending: World) -> None:
    html = marie.text(f"/shop/{sending.shop_id}/scan")
    assert f'href="/shop/{sending.shop_id}/send">Envoi</a>' in html


def test_a_sent_parcel_gets_its_shelf_in_big_letters_and_a_receipt(
    marie: Pages, sending: World
) -> None:
    html = _drop(marie, sending, "ACME00000950", phone="06 98 76 54 32")
    assert "✔ Déposé pour l'envoi" in _result(html, "title")
    assert _result(html, "location") == "Emplacement A1"
    assert "acme l'enlève avant" in _result(html, "message")
    receipt = re.search(r'id="receipt-link" href="http://relayops.test(/envoi/[^"]+)"', html)
    assert receipt
    page = unescape(marie.text(receipt.group(1)))
    assert "Reçu de dépôt" in page and "Shop bourg" in page
    assert "Déposé le mardi 1 décembre 2026" in page or "Déposé le mardi 1er décembre" in page
    # The parcel waits on the page's list for its carrier.
    waiting = re.search(r'<table id="waiting">(.*?)</table>', html, re.S)
    assert waiting and "ACME00000950" in waiting.group(1)


def test_scanning_twice_says_already_here(marie: Pages, sending: World) -> None:
    _drop(marie, sending, "ACME00000951")
    again = _drop(marie, sending, "ACME00000951")
    assert "Déjà déposé : il est sur l'étagère A1." in _result(again, "message")


def test_a_label_no_carrier_takes_here_is_refused_in_words(marie: Pages, sending: World) -> None:
    html = _drop(marie, sending, "RR123456785FR")
    assert "Aucun transporteur pour cette étiquette" in _result(html, "title")
    assert 'class="result tone-error"' in html


def test_a_shop_without_send_says_so_and_refuses_in_words(marie: Pages, sending: World) -> None:
    sites.set_services(sending.ctx, SYSTEM, sending.shop_id, ["receive"])
    page = unescape(marie.text(f"/shop/{sending.shop_id}/send"))
    assert "Cette boutique ne déclare pas l'envoi parmi ses services" in page
    html = _drop(marie, sending, "ACME00000957")
    assert "Service non proposé ici" in _result(html, "title")
    assert 'class="result tone-error"' in html
    assert "ACME00000957" not in re.sub(r'id="result.*?</section>', "", html, flags=re.S)


def test_two_carriers_ask_which_and_list_them(marie: Pages, sending: World) -> None:
    carrier_sites.serve_site(sending.ctx, SYSTEM, sending.shop_id, "other", 24)
    html = _drop(marie, sending, "ACME00000952")
    assert "Quel transporteur ?" in _result(html, "title")
    assert "acme, other" in html
    chosen = _drop(marie, sending, "ACME00000952", carrier="other")
    assert "other l'enlève avant" in _result(chosen, "message")


def test_the_page_speaks_english_on_request(marie: Pages, sending: World) -> None:
    marie.post("/lang/en", {"next": "/"})
    html = _drop(marie, sending, "ACME00000953")
    assert "Dropped off for sending" in _result(html, "title")
    assert ">Sending</a>" in html


def test_another_shop_s_sending_page_is_not_found(marie: Pages, sending: World) -> None:
    assert marie.get(f"/shop/{sending.other_shop_id}/send").status_code == 404


def test_the_carrier_sees_its_shops_and_takes_its_parcels(
    marie: Pages, sending: World, acme: Pages
) -> None:
    _drop(marie, sending, "ACME00000954")
    _drop(marie, sending, "ACME00000955")
    sites = unescape(acme.text("/carrier/collections"))
    assert f'href="/carrier/collections/{sending.shop_id}">Shop bourg</a>' in sites
    listing = acme.text(f"/carrier/collections/{sending.shop_id}")
    assert "ACME00000954" in listing and "ACME00000955" in listing
    taken = acme.post(f"/carrier/collections/{sending.shop_id}",
                      {"tracking_number": "ACME00000954"}, follow_redirects=True)
    page = unescape(taken.get_data(as_text=True))
    assert "ACME00000954 pris." in page
    missing = acme.post(f"/carrier/collections/{sending.shop_id}",
                        {"tracking_number": "ACME00000955", "found": "0"}, follow_redirects=True)
    page = unescape(missing.get_data(as_text=True))
    assert "ACME00000955 noté introuvable" in page
    assert "Rien à prendre ici." in page


def test_the_carrier_s_list_is_cut_by_round_and_its_shops_name_the_next_one(
    marie: Pages, sending: World, acme: Pages, clock: Clock
) -> None:
    carrier_sites.serve_site(sending.ctx, SYSTEM, sending.shop_id, "acme", 48,
                             ["10:30", "16:00"])
    _drop(marie, sending, "ACME00000957")  # 10:00 in Bourg: the 10:30 round
    clock.advance(hours=1)
    _drop(marie, sending, "ACME00000958")  # 11:00: the 16:00 round
    listing = unescape(acme.text(f"/carrier/collections/{sending.shop_id}"))
    rounds = re.findall(r'<h3 class="round">(.*?)</h3>', listing)
    assert len(rounds) == 2 and "10:30" in rounds[0] and "16:00" in rounds[1]
    assert listing.index("ACME00000957") < listing.index(rounds[1]) < listing.index(
        "ACME00000958")
    sites_page = unescape(acme.text("/carrier/collections"))
    assert "16:00" in sites_page  # the next round, at 11:00


def test_a_carrier_sees_no_other_carrier_s_parcels(marie: Pages, sending: World) -> None:
    _drop(marie, sending, "ACME00000956")
    other = Pages.carrier(sending, accounts.issue_carrier_key(sending.ctx, SYSTEM, "other").token)
    assert "ACME00000956" not in other.text(f"/carrier/collections/{sending.shop_id}")
    refused = other.post(f"/carrier/collections/{sending.shop_id}",
                         {"tracking_number": "ACME00000956"}, follow_redirects=True)
    assert "n'est pas sur votre liste ici" in unescape(refused.get_data(as_text=True))


def test_a_forged_receipt_is_a_not_found_page(marie: Pages) -> None:
    response = marie.get("/envoi/forged")
    assert response.status_code == 404
    assert "Introuvable" in unescape(response.get_data(as_text=True))


def test_the_driver_s_refusal_and_the_hand_back_from_the_page(
    marie: Pages, sending: World
) -> None:
    _drop(marie, sending, "ACME00000960", phone="06 98 76 54 32")
    _drop(marie, sending, "ACME00000961")
    ids = {p["tracking_number"]: p["id"] for p in pickup_lists.pickup_list(
        sending.ctx, SYSTEM, sending.shop_id)["items"]}
    refused = marie.post(f"/shop/{sending.shop_id}/send/{ids['ACME00000960']}/refusal",
                         {"reason": "mal emballé"}, follow_redirects=True)
    page = unescape(refused.get_data(as_text=True))
    assert "ACME00000960 refusé par le transporteur" in page
    waiting = re.search(r'<table id="waiting">(.*?)</table>', page, re.S)
    to_return = re.search(r'<table id="refused">(.*?)</table>', page, re.S)
    assert waiting and "ACME00000960" not in waiting.group(1)
    assert to_return and "ACME00000960" in to_return.group(1)
    assert "Refusés par le transporteur, à rendre (1)" in page
    events = [e["action"] for e in sending.operator.get(
        f"/parcels/{ids['ACME00000960']}/events").json["items"]]
    assert events[-1] == "refuse"
    # The sender comes back for it; the other one the sender takes back before any refusal.
    for number in ("ACME00000960", "ACME00000961"):
        back = marie.post(f"/shop/{sending.shop_id}/send/{ids[number]}/hand-back",
                          follow_redirects=True)
        assert f"{number} rendu à son expéditeur." in unescape(back.get_data(as_text=True))
        assert outbound_state(sending, ids[number]) == "returned"
    page = unescape(marie.text(f"/shop/{sending.shop_id}/send"))
    assert "Aucun colis refusé." in page and "Aucun colis en attente d'envoi." in page


def test_a_refusal_needs_a_reason_and_a_parcel_of_this_shop(
    marie: Pages, sending: World
) -> None:
    _drop(marie, sending, "ACME00000962")
    sent = pickup_lists.pickup_list(sending.ctx, SYSTEM, sending.shop_id)["items"][0]["id"]
    blank = marie.post(f"/shop/{sending.shop_id}/send/{sent}/refusal", {"reason": " "},
                       follow_redirects=True)
    assert outbound_state(sending, sent) == "awaiting_collection"
    assert "✖ Dites pourquoi le chauffeur le refuse." in unescape(blank.get_data(as_text=True))
    received = sending.ready("ACME00000963")["id"]  # a received parcel is not this page's
    assert marie.post(f"/shop/{sending.shop_id}/send/{received}/hand-back").status_code == 404
    paul = Pages.signed_in(sending, "paul")  # the shop next door
    assert paul.post(f"/shop/{sending.other_shop_id}/send/{sent}/hand-back"
                     ).status_code == 404
    assert paul.post(f"/shop/{sending.shop_id}/send/{sent}/hand-back").status_code == 404
    assert outbound_state(sending, sent) == "awaiting_collection"


def outbound_state(world: World, parcel_id: int) -> str:
    return str(world.operator.get(f"/parcels/{parcel_id}").json["state"])
