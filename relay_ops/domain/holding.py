"""Holding periods: how long a site keeps a parcel, and the one extension.

Deadlines fall at the end of a local day (residents understand "until Tuesday" better than a
time), and never on a day the site is closed (a closing day, or a day its hours skip): a
deadline the resident cannot meet is no deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
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


# ---------------------------------------------------------------- adaptive holding periods


@dataclass(frozen=True)
class Season:
    """A yearly stretch of days (``start``/``end`` as (month, day), both inclusive) with a
    shorter holding period; it may run over New Year."""

    start: tuple[int, int]
    end: tuple[int, int]
    days: int

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Season:
        def month_day(text: str) -> tuple[int, int]:
            month, day = (int(x) for x in str(text).split("-"))
            date(2024, month, day)  # refuses 13-01 or 02-30 when the settings load
            return month, day

        return cls(month_day(data["from"]), month_day(data["to"]), int(data["days"]))

    def covers(self, day: date) -> bool:
        key = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= key <= self.end
        return key >= self.start or key <= self.end


@dataclass(frozen=True)
class AdaptiveHolding:
    """When a parcel gets less than its site kind's standard period.

    ``seasons`` per site kind; ``load_threshold``: the share of capacity the site's forecast
    for the check-in day must reach for ``load_days`` (per kind) to apply.
    """

    seasons: Mapping[str, tuple[Season, ...]] = field(default_factory=dict)
    load_threshold: float | None = None
    load_days: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, seasons: Mapping[str, Any], load: Mapping[str, Any]
    ) -> AdaptiveHolding:
        threshold = load.get("threshold")
        return cls(
            seasons={k: tuple(Season.from_mapping(s) for s in v) for k, v in seasons.items()},
            load_threshold=float(threshold) if threshold is not None else None,
            load_days={k: int(v) for k, v in (load.get("days") or {}).items()},
        )


@dataclass(frozen=True)
class HoldingDecision:
    days: int
    rule: str  # standard | season | load


def holding_days(
    kind: str, standard: int, day: date, load_ratio: float | None, rules: AdaptiveHolding
) -> HoldingDecision:
    """The holding period of a parcel checked in on ``day``: the shortest rule that applies,
    never longer than the standard period nor shorter than one day.

    Decided once, at check-in, and stated in the ready message: a parcel already notified
    keeps its deadline whatever the season or the load does afterwards.
    """
    best = HoldingDecision(standard, "standard")
    for season in rules.seasons.get(kind, ()):
        if season.covers(day) and season.days < best.days:
            best = HoldingDecision(season.days, "season")
    threshold = rules.load_threshold
    loaded_days = rules.load_days.get(kind)
    if (
        threshold is not None and loaded_days is not None and load_ratio is not None
        and load_ratio >= threshold and loaded_days < best.days
    ):
        best = HoldingDecision(loaded_days, "load")
    return HoldingDecision(max(1, best.days), best.rule)
