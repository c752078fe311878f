"""The one place the bridge and the locker agent read the wall clock.

A locker's clock is its own computer's; the agent, its journal and the protocol helpers take a
clock argument defaulting to these functions, so tests and simulations can move time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def wall_time() -> float:
    """Seconds since the epoch, as the locker's computer keeps them."""
    return time.time()


def now_utc() -> datetime:
    return datetime.now(UTC)
