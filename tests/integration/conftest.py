from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from relay_ops.services.context import Ctx
from tests.support import World, make_world


@pytest.fixture
def world(ctx: Ctx, client: FlaskClient) -> World:
    return make_world(ctx, client)
