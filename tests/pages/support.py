"""A browser-like test client for the pages: it keeps the session cookie and sends the CSRF
token that the pages put in their forms, the way a person's browser would."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support import PASSWORD, World

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(response: TestResponse) -> str:
    found = CSRF.search(response.get_data(as_text=True))
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class Pages:
    def __init__(self, client: FlaskClient, world: World) -> None:
        self.client, self.world = client, world
        self.token = ""

    @classmethod
    def signed_in(cls, world: World, username: str, password: str = PASSWORD) -> Pages:
        pages = cls(world.client.application.test_client(), world)
        response = pages.sign_in(username, password)
        assert response.status_code == 303, response.get_data(as_text=True)
        pages.token = ""  # signing in starts a new session, with a new CSRF token
        return pages

    @classmethod
    def carrier(cls, world: World, api_key: str) -> Pages:
        pages = cls(world.client.application.test_client(), world)
        pages.refresh_csrf("/carrier/login")
        response = pages.post("/carrier/login", {"api_key": api_key})
        assert response.status_code == 303, response.get_data(as_text=True)
        pages.token = ""
        return pages

    @classmethod
    def producer(cls, world: World, api_key: str) -> Pages:
        pages = cls(world.client.application.test_client(), world)
        pages.refresh_csrf("/producer/login")
        response = pages.post("/producer/login", {"api_key": api_key})
        assert response.status_code == 303, response.get_data(as_text=True)
        pages.token = ""
        return pages

    def sign_in(self, username: str, password: str) -> TestResponse:
        self.refresh_csrf("/login")
        return self.post("/login", {"username": username, "password": password})

    def refresh_csrf(self, path: str = "/login") -> None:
        self.token = csrf_of(self.client.get(path))

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def text(self, path: str, status: int = 200) -> str:
        response = self.client.get(path)
        assert response.status_code == status, (response.status_code, response.location)
        return response.get_data(as_text=True)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             json: bool = False, **kwargs: Any) -> TestResponse:
        if csrf and not self.token:
            self.refresh_csrf("/shop")
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.token)
        headers = {"Accept": "application/json"} if json else {}
        return self.client.post(path, data=form, headers=headers, **kwargs)

    def scan(self, site_id: int, number: str, *, accept: bool = False) -> dict[str, Any]:
        data = {"tracking_number": number}
        if accept:
            data["accept_unannounced"] = "1"
        response = self.post(f"/shop/{site_id}/scan", data, json=True)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()
