from __future__ import annotations

from pathlib import Path

from flask import Flask

from relay_ops import create_app
from relay_ops.db import migrate
from relay_ops.services import accounts, staff_sign_in
from relay_ops.services.context import Ctx
from relay_ops.services.principal import SYSTEM
from tests.conftest import Clock
from tests.pages.support import Pages
from tests.support import World, row_counts


def test_anonymous_visitor_is_sent_to_sign_in(world: World) -> None:
    response = world.client.get("/")
    assert response.status_code == 302 and response.location.endswith("/login")
    page = world.client.get("/shop/1/scan")
    assert page.status_code == 302 and "/login?next=/shop/1/scan" in page.location


def test_shopkeeper_with_one_shop_lands_on_its_scan_station(world: World) -> None:
    pages = Pages(world.client, world)
    response = pages.sign_in("marie", "correct horse battery")
    assert response.status_code == 303
    assert world.client.get("/").location.endswith(f"/shop/{world.shop_id}/scan")


def test_wrong_password_is_refused_in_french(world: World) -> None:
    response = Pages(world.client, world).sign_in("marie", "not the password")
    assert response.status_code == 401
    assert "Identifiant ou mot de passe incorrect." in response.get_data(as_text=True)


def test_sign_in_is_rate_limited(world: World, app: Flask) -> None:
    app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    pages = Pages(world.client, world)
    codes = [pages.sign_in("marie", "wrong password").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # Even the right password waits: the limit counts attempts, not failures.
    assert pages.sign_in("marie", "correct horse battery").status_code == 429


def test_sign_out_revokes_the_session_on_the_server(marie: Pages, world: World) -> None:
    with marie.client.session_transaction() as session:
        stolen = session["token"]
    assert marie.post("/logout").status_code == 303
    with marie.client.session_transaction() as session:
        assert "token" not in session
        session["token"] = stolen  # a copy of the old cookie is worth nothing now
    response = marie.get(f"/shop/{world.shop_id}/scan")
    assert response.status_code == 302 and "/login" in response.location


def test_next_parameter_never_leaves_the_site(world: World) -> None:
    pages = Pages(world.client, world)
    pages.refresh_csrf("/login")
    response = pages.post("/login", {"username": "marie", "password": "correct horse battery",
                                     "next": "//evil.example/steal"})
    assert response.status_code == 303 and response.location == "/"


def test_forms_without_their_csrf_token_are_refused(marie: Pages, world: World) -> None:
    world.announce("RR123456785FR")
    before = row_counts(world.ctx)
    response = marie.post(f"/shop/{world.shop_id}/scan", {"tracking_number": "RR123456785FR"},
                          csrf=False)
    assert response.status_code == 400
    assert "Ce formulaire a expiré" in response.get_data(as_text=True)
    forged = marie.post(f"/shop/{world.shop_id}/scan",
                        {"tracking_number": "RR123456785FR", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert row_counts(world.ctx) == before


def test_sign_in_form_itself_needs_the_token(world: World) -> None:
    response = world.client.post("/login", data={"username": "marie",
                                                 "password": "correct horse battery"})
    assert response.status_code == 400


def test_carrier_signs_in_with_its_key_and_the_cookie_never_holds_it(world: World) -> None:
    key = accounts.issue_carrier_key(world.ctx, SYSTEM, "acme").token
    pages = Pages.carrier(world, key)
    with pages.client.session_transaction() as session:
        assert key not in str(dict(session))
    assert "Manifestes" in pages.text("/carrier")
    assert pages.get(f"/shop/{world.shop_id}/scan").status_code == 403


def test_wrong_carrier_key_and_staff_token_are_refused(world: World) -> None:
    pages = Pages(world.client, world)
    pages.refresh_csrf("/carrier/login")
    assert pages.post("/carrier/login", {"api_key": "ck_x.nope"}).status_code == 401
    staff_token = staff_sign_in.log_in(world.ctx, "marie", "correct horse battery").token
    assert pages.post("/carrier/login", {"api_key": staff_token}).status_code == 401


def test_roles_only_open_their_pages(marie: Pages, operator: Pages, world: World) -> None:
    assert marie.get("/ops").status_code == 403
    assert marie.get("/carrier").status_code == 403
    assert marie.get(f"/shop/{world.other_shop_id}/scan").status_code == 404
    assert operator.get(f"/shop/{world.other_shop_id}/scan").status_code == 200
    assert operator.get("/ops").status_code == 200


def test_the_session_cookie_stays_on_this_site_and_out_of_scripts(world: World) -> None:
    pages = Pages(world.client, world)
    response = pages.sign_in("marie", "correct horse battery")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_the_scan_stations_script_is_told_when_the_session_has_ended(world: World) -> None:
    pages = Pages(world.client, world)
    pages.refresh_csrf("/login")  # a browser with a session but nobody signed in
    response = pages.post(f"/shop/{world.shop_id}/scan", {"tracking_number": "RR123456785FR"},
                          json=True)
    assert response.status_code == 401 and response.get_json() == {"error": "signed-out"}


def test_a_guesser_at_the_sign_in_page_never_locks_the_owner_out(world: World) -> None:
    guesser = Pages(world.client.application.test_client(), world)
    guesser.client.environ_base["REMOTE_ADDR"] = "203.0.113.9"
    codes = [guesser.sign_in("marie", "wrong password").status_code for _ in range(5)]
    assert codes == [401] * 5
    waiting = guesser.sign_in("marie", "wrong password")
    assert waiting.status_code == 429
    assert "attendez 1 s avant de réessayer" in waiting.get_data(as_text=True)
    owner = Pages(world.client.application.test_client(), world)
    owner.client.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert owner.sign_in("marie", "correct horse battery").status_code == 303


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(
    tmp_path: Path, clock: Clock
) -> None:
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'proxy.sqlite3'}",
                      "TRUSTED_PROXIES": 1, "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})
    plain: Ctx = app.extensions["relay_ops"]
    # A clock that stands still: the sixth guess comes within the first wait, whatever the pace.
    ctx = app.extensions["relay_ops"] = Ctx(db=plain.db, settings=plain.settings, clock=clock)
    migrate.upgrade(ctx.db.engine)
    accounts.create_user(ctx, SYSTEM, username="marie", password="correct horse battery",
                         role="operator")
    client = app.test_client()

    def sign_in(password: str, forwarded: str) -> int:
        return client.post("/api/v1/auth/token",
                           json={"username": "marie", "password": password},
                           headers={"X-Forwarded-For": forwarded}).status_code

    assert [sign_in("guess", "203.0.113.9") for _ in range(6)] == [401] * 5 + [429]
    # Same proxy, another client behind it: not slowed down.
    assert sign_in("correct horse battery", "198.51.100.7") == 201
