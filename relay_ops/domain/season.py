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
class Shortfall:
    """Parcels beyond a site's places on a day (or a count of parcels), as a mean and a
    variance: what adds up across sites whose errors are their own."""

    mean: float = 0.0
    var: float = 0.0

    def __add__(self, other: Shortfall) -> Shortfall:
        return Shortfall(self.mean + other.mean, self.var + other.var)

    def split(self, ways: int) -> Shortfall:
        """One of ``ways`` equal parts (a parcel goes to one of them)."""
        return Shortfall(self.mean / ways, self.var / (ways * ways))

    def places(self, z: float) -> int:
        """The whole places nearest its mean plus ``z`` standard deviations (0: the mean
        alone): a sum of shortfalls has no quantile of its own to round up to."""
        return max(0, math.floor(self.mean + z * math.sqrt(self.var) + 0.5))


NONE = Shortfall()
NEGLIGIBLE = 0.005  # parcels beyond the places: under one parcel in 200 such days


def shortfall(predicted: float, high: float, capacity: int, z: float) -> Shortfall:
    """The parcels beyond ``capacity`` on a forecast day, ``max(0, X − capacity)``, for ``X``
    normal with the forecast's mean and the band's standard deviation (``(high − predicted)
    / z``): its mean and variance, the moments of a normal's tail (a day whose mean fits
    may still overflow, one far over overflows by its mean)."""
    sd = max(0.0, high - predicted) / z if z > 0 else 0.0
    gap = predicted - capacity
    if sd <= 0.0:
        return Shortfall(max(0.0, gap), 0.0)
    k = -gap / sd
    beyond = 0.5 * math.erfc(k / math.sqrt(2.0))  # P(X > capacity)
    density = math.exp(-k * k / 2.0) / math.sqrt(2.0 * math.pi)
    mean = sd * density + gap * beyond
    if mean < NEGLIGIBLE:
        return NONE
    second = (gap * gap + sd * sd) * beyond + gap * sd * density
    return Shortfall(mean, max(0.0, second - mean * mean))


@dataclass(frozen=True)
class OverflowShares(Generic[Shop, Storage]):
    """The shops' shortfall per day, sent to the storage sites they reach (``to_storage``:
    per storage site and day, the parcels it would have to take) or, where a shop reaches
    none that day, left with the shop (``unserved``)."""

    to_storage: dict[Storage, dict[date, Shortfall]]
    unserved: dict[Shop, dict[date, Shortfall]]


def share_overflow(
    missing: Mapping[Shop, Mapping[date, Shortfall]],
    reaches: Callable[[Shop, date], Sequence[Storage]],
) -> OverflowShares[Shop, Storage]:
    """Each shop's shortfall of a day goes to the storage sites it can send parcels to that
    day (``reaches``: within its reach and in season), split evenly between them: the
    reroute planner fills the cheapest first, and when the whole area is full every one of
    them fills, so none is sized for all of it. The shops' shortfalls add up as independent
    counts (means and variances)."""
    to_storage: dict[Storage, dict[date, Shortfall]] = {}
    unserved: dict[Shop, dict[date, Shortfall]] = {}
    for shop, days in missing.items():
        for day, short in days.items():
            if short.mean <= 0.0 and short.var <= 0.0:
                continue
            storages = reaches(shop, day)
            if not storages:
                unserved.setdefault(shop, {})[day] = short
                continue
            part = short.split(len(storages))
            for storage in storages:
                per_day = to_storage.setdefault(storage, {})
                per_day[day] = per_day.get(day, NONE) + part
    return OverflowShares(to_storage, unserved)


@dataclass(frozen=True)
class Outlook:
    """A site's forecast day as the storage rule reads it."""

    day: date
    predicted: float
    high: int
    capacity: int


def storage_needs(own: Sequence[Outlook], overflow: Mapping[date, Shortfall],
                  z: float) -> list[DayNeed]:
    """A storage site's days as they would be with the shops' overflow sent to it: its own
    parcels (the forecast's mean, its band's spread) plus its share, read at the mean plus
    ``z`` standard deviations (0: the expected count)."""
    needs = []
    for day in own:
        mean = max(0.0, day.predicted)
        own_count = Shortfall(mean, (max(0.0, day.high - mean) / z) ** 2 if z > 0 else 0.0)
        total = own_count + overflow.get(day.day, NONE)
        needs.append(DayNeed(day.day, total.places(z), day.capacity))
    return needs
