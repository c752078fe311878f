"""Page tests run on SQLite only: the services under the pages are tested on both databases,
and the pages add no SQL of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient

from relay_ops.services import accounts
from relay_ops.services.context import Ctx
from tests.pages.support import Pages
from tests.support import World, make_world


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its production cost takes 0.2 s a hash; the pages' tests are not about that."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("relay-ops-dummy-password"))


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "relay_ops.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def world(ctx: Ctx, client: FlaskClient) -> World:
    return make_world(ctx, client)


@pytest.fixture
def marie(world: World, app: object) -> Pages:
    """The shopkeeper of shop 'bourg', signed in to the pages."""
    return Pages.signed_in(world, "marie")


@pytest.fixture
def operator(world: World) -> Pages:
    return Pages.signed_in(world, "op")
