"""The pages in a real browser: keyboard scanning, sounds and focus, pickup, the resident's
page, the dashboard's charts, both languages and CSRF. Screenshots go to docs/screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from relay_ops.db.models import ParcelEvent
from relay_ops.services import accounts, parcel_views, resident, site_locations
from relay_ops.services.principal import SYSTEM, Principal, Role
from tests.browser.conftest import Live, shot, sign_in
from tests.browser.test_accessibility import axe_violations

pytestmark = pytest.mark.browser
OPERATOR = Principal(Role.OPERATOR, user_id=1)


def _focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def _check_ins(live: Live, number: str) -> int:
    parcel = parcel_views.find_parcel(live.ctx, OPERATOR, number)
    with live.ctx.db.read() as session:
        return session.scalar(select(func.count()).where(
            ParcelEvent.parcel_id == parcel["id"], ParcelEvent.action == "check_in")) or 0


def expect_sound(page: Page, tone: str) -> None:
    """The counter's beep for the answer on screen. The page's script plays it once it runs,
    which may be a moment after the answer's text shows (an answer page loaded afresh)."""
    expect(page.locator("html")).to_have_attribute("data-last-sound", tone)


def _scan(page: Page, text: str) -> None:
    """What a USB scanner does: type the characters into the focused field, then Enter."""
    page.keyboard.type(text, delay=5)
    page.keyboard.press("Enter")


def test_shopkeeper_scans_three_parcels_then_hands_one_over(page: Page, live: Live) -> None:
    numbers = ["BRWSCAN000001", "BRWSCAN000002", "BRWSCAN000003"]
    assert live.world.announce(*numbers).status_code == 201
    sign_in(page, live, "marie")
    expect(page.get_by_role("heading", name="Dépôt")).to_be_visible()
    expect(page.locator("#scan-field")).to_be_focused()
    for number in numbers:  # faster than the answers come back: the page queues them
        _scan(page, number)
        expect(page.locator("#scan-field")).to_be_focused()
    expect(page.locator("#log li")).to_have_count(3)
    expect(page.locator("#result")).to_have_class("result tone-ok")
    expect(page.locator("#result-location")).to_have_text("A1")
    expect_sound(page, "ok")
    expect(page.locator("#scan-field")).to_be_focused()
    assert [_check_ins(live, n) for n in numbers] == [1, 1, 1]
    shot(page, "scan-station")

    # The same barcode scanned again, twice in a row: "already here", nothing doubled.
    _scan(page, numbers[0])
    _scan(page, numbers[0])
    expect(page.locator("#log li")).to_have_count(5)
    expect(page.locator("#result-title")).to_contain_text("Déjà là")
    assert _check_ins(live, numbers[0]) == 1

    parcel = parcel_views.find_parcel(live.ctx, OPERATOR, numbers[1])
    code = live.world.code_of(parcel["id"])
    page.get_by_role("link", name="Retrait").click()
    expect(page.locator("#code-field")).to_be_focused()
    _scan(page, code)  # the resident's QR code carries the code digits
    expect(page.locator("#result-title")).to_contain_text("Colis trouvé")
    expect(page.locator("#result-location")).to_contain_text("A1")
    shot(page, "pickup-found")
    page.get_by_role("button", name="Remettre le colis").click()
    expect(page.locator("#result-title")).to_contain_text("Colis remis")
    assert parcel_views.get_parcel(live.ctx, OPERATOR, parcel["id"])["state"] == "picked_up"
    expect(page.locator("#code-field")).to_be_focused()
    shot(page, "pickup-done")


def test_two_parcels_for_one_resident_are_handed_over_with_one_code(
        page: Page, live: Live) -> None:
    numbers = ["BRWGROUP00001", "BRWGROUP00002"]
    # A resident of her own: the live server's other tests leave parcels on the shelves.
    lucie = {"name": "Lucie Moreau", "phone": "+33655443322"}
    assert live.world.announce(*numbers, recipient=lucie).status_code == 201
    sign_in(page, live, "marie")
    for number in numbers:
        _scan(page, number)
        expect(page.locator("#log li")).to_have_count(numbers.index(number) + 1)
    expect(page.locator("#result-message")).to_contain_text(
        "2 colis pour ce destinataire, même code : aussi BRWGROUP00001 (A1)")

    first = parcel_views.find_parcel(live.ctx, OPERATOR, numbers[0])
    page.get_by_role("link", name="Retrait").click()
    expect(page.locator("#code-field")).to_be_focused()  # no digit typed before the page
    _scan(page, live.world.code_of(first["id"]))
    expect(page.locator("#result-title")).to_contain_text("2 colis, même code")
    expect(page.locator("#group-list li")).to_have_count(2)
    page.get_by_role("button", name="Remettre les 2 colis").click()
    expect(page.locator("#result-title")).to_contain_text("Colis remis")
    for number in numbers:
        expect(page.locator("#result")).to_contain_text(f"{number}, emplacement A1, est remis.")
        assert parcel_views.find_parcel(live.ctx, OPERATOR, number)["state"] == "picked_up"


def test_a_refused_scan_and_a_wrong_code(page: Page, live: Live) -> None:
    sign_in(page, live, "marie")
    _scan(page, "??12")
    expect(page.locator("#result")).to_have_class("result tone-error")
    expect(page.locator("#result-title")).to_contain_text("Format de code-barres inconnu")
    expect_sound(page, "error")
    expect(page.locator("#scan-field")).to_be_focused()
    shot(page, "scan-refused")

    # An unannounced parcel waits for a confirmation while scanning goes on.
    _scan(page, "BRWNOTANNOUNCED1")
    expect(page.locator("#pending li")).to_have_count(1)
    expect(page.locator("#scan-field")).to_be_focused()
    page.get_by_role("button", name="Accepter").click()
    expect(page.locator("#result")).to_have_class("result tone-ok")
    expect(page.locator("#pending li")).to_have_count(0)
    expect(page.locator("#scan-field")).to_be_focused()

    page.get_by_role("link", name="Retrait").click()
    _scan(page, "000000")
    expect(page.locator("#result-title")).to_contain_text("Code erroné")
    expect_sound(page, "error")
    expect(page.locator("#code-field")).to_be_focused()


def test_two_carriers_parcels_under_one_number_ask_which_carrier(
        page: Page, live: Live) -> None:
    """Numbers are unique per carrier (docs/decisions/0007): the station offers the carriers
    and the one chosen is scanned in through the queue, focus back in the field."""
    number = "BRWSHARED0001"
    assert live.world.announce(number).status_code == 201
    assert live.world.other_carrier.post("/manifests", json={"reference": "BRW-B", "parcels": [{
        "tracking_number": number, "site": "bourg",
        "recipient": {"phone": "+33698000001"}}]}).status_code == 201
    sign_in(page, live, "marie")
    _scan(page, number)
    expect(page.locator("#result-title")).to_contain_text("Quel transporteur ?")
    expect(page.locator("#result-choices button")).to_have_count(2)
    page.get_by_role("button", name="other").click()
    expect(page.locator("#result")).to_have_class("result tone-ok")
    expect(page.locator("#scan-field")).to_be_focused()
    chosen = parcel_views.find_parcel(live.ctx, OPERATOR, number, "other")
    assert chosen["state"] == "ready_for_pickup"
    acme = parcel_views.find_parcel(live.ctx, OPERATOR, number, "acme")
    assert acme["state"] == "announced"


def test_a_parcel_nobody_announced_is_not_forgotten(page: Page, live: Live) -> None:
    sign_in(page, live, "marie")
    _scan(page, "BRWWAITING0001")
    waiting = page.locator('#pending li[data-number="BRWWAITING0001"]')
    expect(waiting).to_have_count(1)
    page.get_by_role("link", name="Retrait").click()  # the counter serves a resident meanwhile
    # The pickup page says a parcel waits, and leads back to it.
    page.locator("#waiting-note a").click()
    expect(waiting).to_have_count(1)
    page.reload()
    expect(waiting).to_have_count(1)
    expect(page.locator("#scan-field")).to_be_focused()
    waiting.get_by_role("button", name="Mettre de côté").click()
    expect(waiting).to_have_count(0)
    expect(page.locator("#scan-field")).to_be_focused()
    page.wait_for_load_state("networkidle")
    page.reload()
    expect(page.get_by_role("heading", name="Dépôt")).to_be_visible()
    expect(waiting).to_have_count(0)


def test_focus_comes_back_to_the_scan_field(page: Page, live: Live) -> None:
    sign_in(page, live, "marie")
    page.locator("h1").click()  # a click anywhere that is not a control
    expect(page.locator("#scan-field")).to_be_focused()
    page.get_by_role("link", name="Colis", exact=True).focus()
    page.keyboard.type("X")  # a scanner typing while a link has the focus
    expect(page.locator("#scan-field")).to_be_focused()


def test_resident_asks_for_the_extension(phone: Page, live: Live) -> None:
    live.world.announce("BRWRESIDENT001")
    live.world.check_in("BRWRESIDENT001")
    parcel = parcel_views.find_parcel(live.ctx, OPERATOR, "BRWRESIDENT001")
    phone.goto(live.url + f"/t/{resident.tracking_token(live.ctx, parcel['id'])}")
    expect(phone.locator("#pickup-code")).to_have_text(live.world.code_of(parcel["id"]))
    assert phone.locator("img.qr").evaluate("img => img.naturalWidth") > 0
    expect(phone.get_by_role("link", name="Voir sur la carte (OpenStreetMap)")).to_be_visible()
    shot(phone, "resident")
    phone.get_by_role("button", name="Garder mon colis quelques jours de plus").click()
    expect(phone.locator(".flash-ok")).to_contain_text("votre colis est gardé jusqu")
    expect(phone.locator("#extend-button")).to_have_count(0)
    assert parcel_views.get_parcel(live.ctx, OPERATOR, parcel["id"])["extended"] is True
    shot(phone, "resident-extended")


def test_resident_names_a_proxy_and_reloads_the_answer(phone: Page, live: Live) -> None:
    live.world.announce("BRWPROXY000001")
    live.world.check_in("BRWPROXY000001")
    parcel = parcel_views.find_parcel(live.ctx, OPERATOR, "BRWPROXY000001")
    phone.goto(live.url + f"/t/{resident.tracking_token(live.ctx, parcel['id'])}")
    phone.get_by_label("Son nom, tel que sur sa pièce d'identité").fill("Paul Voisin")
    phone.get_by_role("button", name="Désigner cette personne").click()
    given = phone.locator("#proxy-code").inner_text()
    assert given == live.world.code_of(parcel["id"], holder="proxy")
    phone.reload()  # a GET: nothing is posted again, the neighbour's code still works
    expect(phone.locator("#proxy-code")).to_have_text(given)
    assert live.world.code_of(parcel["id"], holder="proxy") == given


def test_operator_dashboard_renders_its_charts(page: Page, live: Live) -> None:
    live.world.announce("BRWDASH0000001")
    live.world.check_in("BRWDASH0000001")
    sign_in(page, live, "op")
    expect(page.get_by_role("heading", name="Tableau de bord", exact=True)).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(2)
    bars = page.locator("svg.chart rect.bar-in:has(title)")  # the legend's swatch has none
    assert bars.count() == 14
    assert float(bars.last.get_attribute("height") or 0) > 0  # today's check-in is drawn
    assert page.locator("svg.chart polyline.line-held").count() == 1
    box = page.locator("svg.chart").first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    shot(page, "dashboard")


def test_a_page_in_french_then_in_english(page: Page, live: Live) -> None:
    page.goto(live.url + "/login")
    expect(page.get_by_role("heading", name="Se connecter")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "fr"
    shot(page, "sign-in-fr")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_label("Username").fill("marie")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Scan or type the parcel's barcode, then Enter")).to_be_focused()
    shot(page, "scan-station-en")


def test_a_form_without_its_csrf_token_is_refused(page: Page, live: Live) -> None:
    page.goto(live.url + "/login")
    page.locator("form.stack input[name=csrf_token]").evaluate("input => input.remove()")
    page.get_by_label("Identifiant").fill("marie")
    page.get_by_label("Mot de passe").fill("correct horse battery")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="✖ Ce formulaire a expiré")).to_be_visible()
    assert page.evaluate("location.pathname") == "/login"


def test_carrier_uploads_a_manifest_and_reads_the_report(page: Page, live: Live) -> None:
    key = accounts.issue_carrier_key(live.ctx, SYSTEM, "acme").token
    page.goto(live.url + "/carrier/login")
    page.get_by_label("Clé d'API").fill(key)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_role("link", name="Envoyer un manifeste", exact=True).click()
    page.get_by_label("Référence de la tournée").fill("BRW-ROUND-1")
    csv = ("tracking_number,site,recipient_name,recipient_phone,recipient_email,size_class\n"
           "BRWCSV00000001,bourg,Anne Petit,+33611111111,,S\n"
           "NOT-A-NUMBER!,bourg,Louis Bernard,+33622222222,,S\n")
    page.get_by_label("Fichier CSV").set_input_files(
        {"name": "round.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    page.get_by_role("button", name="Envoyer").click()
    expect(page.locator("#line-report")).to_contain_text(
        "« NOT-A-NUMBER! » n'est pas un numéro de suivi : corrigez la colonne tracking_number")
    expect(page.locator("#line-report td").first).to_have_text("3")
    expect(page.locator("#next-step")).to_contain_text("nouvelle référence")
    assert axe_violations(page) == []  # the report the page's script put in
    shot(page, "carrier-upload")
    page.get_by_role("link", name="Ouvrir le manifeste et son rapprochement").click()
    expect(page.locator("#count-expected")).to_have_text("1")
    shot(page, "carrier-manifest")


def test_shop_pages_for_the_record(page: Page, live: Live) -> None:
    """The shop's other screens, each opened once and photographed for docs/pages.md."""
    live.world.announce("BRWSHOP0000001")
    live.world.check_in("BRWSHOP0000001")
    parcel = parcel_views.find_parcel(live.ctx, OPERATOR, "BRWSHOP0000001")
    sign_in(page, live, "marie")
    page.get_by_role("link", name="Colis", exact=True).click()
    expect(page.get_by_role("link", name="BRWSHOP0000001")).to_be_visible()
    shot(page, "inventory")
    page.get_by_role("link", name="BRWSHOP0000001").click()
    expect(page.get_by_role("heading", name="Historique")).to_be_visible()
    shot(page, "parcel")
    page.get_by_role("link", name="Boutique", exact=True).click()
    # Occupancy over time, parcels per day, and the 7-day forecast.
    expect(page.locator("svg.chart")).to_have_count(3)
    expect(page.get_by_text("Prévision des 7 prochains jours")).to_be_visible()
    shot(page, "shop")
    page.goto(live.url + f"/shop/{live.world.shop_id}/parcels/{parcel['id']}/label")
    expect(page.locator(".shelf")).to_have_text(parcel["location"])
    shot(page, "shelf-label")


def test_scans_made_after_the_session_ended_are_kept_and_sent(page: Page, live: Live) -> None:
    # A place of its own: the browser tests share one shop, which earlier tests may have
    # filled, and this test is about the queue, not about a full shop.
    site_locations.add_locations(live.ctx, SYSTEM, live.world.shop_id,
                                 [{"label": "LATE1", "size_class": "L", "capacity": 1}])
    assert live.world.announce("BRWLATE0000001").status_code == 201
    sign_in(page, live, "marie")
    page.context.clear_cookies()  # the session ends (expired, or signed out elsewhere)
    _scan(page, "BRWLATE0000001")
    signed_out = page.locator("#queue-status a")
    expect(signed_out).to_contain_text("Votre session est terminée")
    signed_out.click()
    page.get_by_label("Identifiant").fill("marie")
    page.get_by_label("Mot de passe").fill("correct horse battery")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.locator("#log li")).to_have_count(1)
    expect(page.locator("#result")).to_have_class("result tone-ok")
    assert _check_ins(live, "BRWLATE0000001") == 1


def test_the_api_document_works_under_the_content_security_policy(
        page: Page, live: Live) -> None:
    """Its start-up is a script file: with inline script forbidden, Swagger UI still starts
    (a refused script would be a console error, which the fixture fails on)."""
    response = page.goto(live.url + "/api/docs")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator("#ui .swagger-ui")).to_have_count(1)
