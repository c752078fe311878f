"""The one place RelayOps reads the wall clock.

Every timestamp the product writes or compares comes from a context's clock (``Ctx.clock``),
which is this function in production and a movable clock in tests; rows are stamped by the
clock of the ``Database`` that writes them. ``tests/unit/test_one_clock.py`` keeps every other
module from reading the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)
