"""Holding periods: how long a site keeps a parcel, and the one extension.

Deadlines fall at the end of a local day (residents understand "until Tuesday" better than a
time), and never on a day the site is closed (a closing day, or a day its hours skip): a
deadline the resident cannot meet is no deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay_ops.domain.errors import ExtensionRefused


@dataclass(frozen=True)
class HoldingPolicy:
    days: int
    extension_days: int
    reminder_before_hours: int


def end_of_local_day(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


ClosedOn = Callable[[date], bool]
MAX_CLOSED_RUN = 31  # a site closed for longer is not taking parcels anyway


def never_closed(_day: date) -> bool:
    return False


def deadline_after(
    start: datetime, days: int, tz: ZoneInfo, closed_on: ClosedOn = never_closed
) -> datetime:
    day = start.astimezone(tz).date() + timedelta(days=days)
    for _ in range(MAX_CLOSED_RUN):
        if not closed_on(day):
            break
        day += timedelta(days=1)
    return end_of_local_day(day, tz)


def extended_deadline(
    deadline: datetime,
    already_extended: bool,
    now: datetime,
    policy: HoldingPolicy,
    tz: ZoneInfo,
    closed_on: ClosedOn = never_closed,
) -> datetime:
    if already_extended:
        raise ExtensionRefused("this parcel was already extended once")
    if now >= deadline:
        raise ExtensionRefused("the holding period is over; ask before the deadline")
    return deadline_after(deadline, policy.extension_days, tz, closed_on)
