"""Opening hours: ``{"mon": [["09:00", "12:30"], ["14:00", "19:00"]], ...}``; lockers "24/7"."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
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


def _is_hhmm(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return False
    hh, mm = value[:2], value[3:]
    return hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60


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
