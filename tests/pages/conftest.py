"""Page tests run on SQLite only: the services under the pages are tested on both databases,
and the pages add no SQL of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from relay_ops.services.context import Ctx
from tests.pages.support import Pages
from tests.support import World, make_world


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
