"""Opening hours: ``{"mon": [["09:00", "12:30"], ["14:00", "19:00"]], ...}``; lockers "24/7"."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from relay_ops.domain.errors import ValidationFailed

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = "24/7"

OpeningHours = Mapping[str, Sequence[Sequence[str]]] | str


def validate_hours(hours: object) -> OpeningHours:
    if hours == ALWAYS_OPEN:
        return ALWAYS_OPEN
    if not isinstance(hours, Mapping):
        raise ValidationFailed('opening hours are "24/7" or a mapping of day to time ranges')
    for day, ranges in hours.items():
        if day not in DAYS:
            raise ValidationFailed(f"unknown day {day!r}; use {', '.join(DAYS)}")
        for rng in ranges:
            if len(rng) != 2 or not all(_is_hhmm(t) for t in rng) or rng[0] >= rng[1]:
                raise ValidationFailed(f"bad time range {rng!r} on {day}; use ['09:00','12:30']")
    return hours


def validate_site_hours(hours: object) -> OpeningHours:
    """Hours a site may have: valid, and open at least once a week. A site that never opens
    can hand nothing over, its deadlines run to the closed-run cap and its ready messages
    have no hours to state, so such hours are refused rather than stored."""
    checked = validate_hours(hours)
    if not opens_some_day(checked):
        raise ValidationFailed(
            'opening hours must open at least one day a week, e.g. {"mon": [["09:00", "19:00"]]}'
        )
    return checked


def opens_some_day(hours: OpeningHours) -> bool:
    if hours == ALWAYS_OPEN:
        return True
    assert not isinstance(hours, str)
    return any(bool(ranges) for ranges in hours.values())


HHMM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")


def _is_hhmm(value: object) -> bool:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    return isinstance(value, str) and HHMM.fullmatch(value) is not None


def opens_on(hours: OpeningHours, closing_days: Collection[date], day: date) -> bool:
    """Whether the site opens at all on ``day``."""
    if day in closing_days:
        return False
    if hours == ALWAYS_OPEN:
        return True
    assert not isinstance(hours, str)
    return bool(hours.get(DAYS[day.weekday()]))


def is_open(
    hours: OpeningHours, closing_days: Collection[date], when: datetime, tz: ZoneInfo
) -> bool:
    local = when.astimezone(tz)
    if local.date() in closing_days:
        return False
    if hours == ALWAYS_OPEN:
        return True
    assert not isinstance(hours, str)
    now = local.strftime("%H:%M")
    return any(start <= now < end for start, end in hours.get(DAYS[local.weekday()], []))


def last_open_moment(
    hours: OpeningHours, closed_on: Callable[[date], bool], when: datetime, after: datetime,
    tz: ZoneInfo,
) -> datetime | None:
    """The latest moment at or before ``when`` (and after ``after``) at which the site is
    open: ``when`` itself if the site is open then, else the closing time before it; None if
    the site does not open at all in between. ``closed_on`` says which days it does not open
    (closing days, days its hours skip)."""
    day, first = when.astimezone(tz).date(), after.astimezone(tz).date()
    while day >= first:
        if not closed_on(day):
            for start, end in sorted(_ranges_on(hours, day, tz), key=lambda r: r[1],
                                     reverse=True):
                if start >= when:
                    continue  # the range opens after the moment asked about
                latest = min(end, when)
                if latest > after:
                    return latest
        day -= timedelta(days=1)
    return None


def _ranges_on(hours: OpeningHours, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The day's opening ranges as aware datetimes (24/7: the whole day)."""
    if hours == ALWAYS_OPEN:
        return [(datetime.combine(day, time(0), tz),
                 datetime.combine(day + timedelta(days=1), time(0), tz))]
    assert not isinstance(hours, str)
    return [(datetime.combine(day, _hhmm(start), tz), datetime.combine(day, _hhmm(end), tz))
            for start, end in hours.get(DAYS[day.weekday()], [])]


def _hhmm(text: str) -> time:
    return time(int(text[:2]), int(text[3:]))
