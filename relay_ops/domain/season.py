"""Season capacity: temporary shelves a shop (or a storage site) declares for a period, the
extra places the forecast says a shop needs, per day and per period, and the places the
area's overflow storage needs for what the shops cannot take (docs/forecast.md, "Season
capacity").

Pure: dates and numbers in, dates and numbers out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Generic, TypeVar

from relay_ops.domain.errors import PeriodOver, ValidationFailed

MAX_PERIOD_DAYS = 120  # a season, not a permanent shelf: that one is an ordinary location
MAX_PLACES = 500  # per temporary shelf: more is a typing slip, not a back room


def in_service(valid_from: date | None, valid_until: date | None, day: date) -> bool:
    """A location counts on ``day``: a permanent one (no dates) always, a temporary one from
    its first day to its last, both included."""
    return (valid_from is None or valid_from <= day) and (valid_until is None
                                                          or day <= valid_until)


def check_temporary_shelf(
    valid_from: date, valid_until: date, capacity: int, today: date
) -> None:
    """Refuse a period that is reversed, over, longer than a season, or a capacity out of
    bounds, with a sentence the shopkeeper can act on."""
    if valid_until < valid_from:
        raise ValidationFailed(
            f"the period ends ({valid_until.isoformat()}) before it starts "
            f"({valid_from.isoformat()})", valid_from=valid_from.isoformat(),
            valid_until=valid_until.isoformat(),
        )
    if valid_until < today:
        # Today's date is state the document cannot state (as for a closing day in the
        # past): a business rule refusing a valid request, 409, not an invalid one.
        raise PeriodOver(f"the period ended on {valid_until.isoformat()}",
                         valid_until=valid_until.isoformat())
    if (valid_until - valid_from).days + 1 > MAX_PERIOD_DAYS:
        raise ValidationFailed(
            f"a temporary shelf lasts at most {MAX_PERIOD_DAYS} days; a lasting one is an "
            "ordinary location", max_days=MAX_PERIOD_DAYS,
        )
    if not 1 <= capacity <= MAX_PLACES:
        raise ValidationFailed(f"a temporary shelf holds 1 to {MAX_PLACES} parcels",
                               max_places=MAX_PLACES)


@dataclass(frozen=True)
class DayNeed:
    """One forecast day: its upper bound (``high``, the 90 % band's top) and the places it
    has (``capacity``, temporary shelves of that day included)."""

    day: date
    high: int
    capacity: int

    @property
    def missing(self) -> int:
        return max(0, self.high - self.capacity)


@dataclass(frozen=True)
class ExtraPlaces:
    """Places to add from ``first`` to ``last`` (both included) so that no day of the period
    is at risk: the largest shortfall of its days."""

    first: date
    last: date
    places: int
    per_day: tuple[tuple[date, int], ...]


def extra_places(days: Sequence[DayNeed]) -> list[ExtraPlaces]:
    """The periods of consecutive days whose forecast upper bound exceeds the places, each
    with the places that would take every one of its days out of risk (a shelf set up for a
    period serves each of its days, so the period needs its worst day's shortfall)."""
    periods: list[ExtraPlaces] = []
    run: list[DayNeed] = []
    for need in sorted(days, key=lambda d: d.day):
        if need.missing > 0 and run and need.day == run[-1].day + timedelta(days=1):
            run.append(need)
            continue
        if run:
            periods.append(_period(run))
        run = [need] if need.missing > 0 else []
    if run:
        periods.append(_period(run))
    return periods


def _period(run: Sequence[DayNeed]) -> ExtraPlaces:
    return ExtraPlaces(
        first=run[0].day, last=run[-1].day, places=max(d.missing for d in run),
        per_day=tuple((d.day, d.missing) for d in run),
    )


Shop = TypeVar("Shop", bound=Hashable)
Storage = TypeVar("Storage", bound=Hashable)


@dataclass(frozen=True)
class OverflowShares(Generic[Shop, Storage]):
    """The shops' shortfall per day, sent to the storage sites they reach (``to_storage``:
    per storage site and day, the parcels it would have to take) or, where a shop reaches
    none that day, left with the shop (``unserved``)."""

    to_storage: dict[Storage, dict[date, float]]
    unserved: dict[Shop, dict[date, int]]


def share_overflow(
    missing: Mapping[Shop, Mapping[date, int]],
    reaches: Callable[[Shop, date], Sequence[Storage]],
) -> OverflowShares[Shop, Storage]:
    """Each shop's shortfall of a day (its forecast upper bound beyond its places) goes to
    the storage sites it can send parcels to that day (``reaches``: within its reach and in
    season), split evenly between them: the reroute planner fills the cheapest first, and
    when the whole area is full every one of them fills, so none is sized for all of it."""
    to_storage: dict[Storage, dict[date, float]] = {}
    unserved: dict[Shop, dict[date, int]] = {}
    for shop, days in missing.items():
        for day, count in days.items():
            if count <= 0:
                continue
            storages = reaches(shop, day)
            if not storages:
                unserved.setdefault(shop, {})[day] = count
                continue
            for storage in storages:
                per_day = to_storage.setdefault(storage, {})
                per_day[day] = per_day.get(day, 0.0) + count / len(storages)
    return OverflowShares(to_storage, unserved)


def storage_needs(own: Sequence[DayNeed], overflow: Mapping[date, float]) -> list[DayNeed]:
    """A storage site's days as they would be with the shops' overflow sent to it: its own
    upper bound (the parcels already sent there) plus its share, in whole parcels."""
    return [DayNeed(d.day, d.high + math.ceil(overflow.get(d.day, 0.0) - 1e-9), d.capacity)
            for d in own]
