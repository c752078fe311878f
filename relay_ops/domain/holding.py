"""Holding periods: how long a site keeps a parcel, and the one extension.

Deadlines fall at the end of a local day (residents understand "until Tuesday" better than a
time), and never on a day the site is closed (a closing day, or a day its hours skip): a
deadline the resident cannot meet is no deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from relay_ops.domain.errors import ExtensionRefused, SellByOutOfReach
from relay_ops.domain.hours import OpeningHours, last_open_moment


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


# ---------------------------------------------------------------- perishables


@dataclass(frozen=True)
class Perishable:
    """A producer's order held for hours, not days: its holding period and its sell-by time
    (either may be absent; an order with neither is held like any parcel)."""

    hours: int | None
    sell_by: datetime | None

    @property
    def bounded(self) -> bool:
        return self.hours is not None or self.sell_by is not None


def perishable_deadline(
    start: datetime, item: Perishable, hours: OpeningHours | None, tz: ZoneInfo,
    closed_on: ClosedOn = never_closed,
) -> datetime:
    """When a perishable checked in at ``start`` must have been collected: its holding period
    in hours, never after its sell-by time; a moment when the shop is closed moves back to
    the closing time before it (the resident cannot come later, and the product must not be
    kept longer), never before ``start``. A shop without hours, or closed all the way from
    ``start``, keeps the bound as it is: the sweep then takes the order off the shelf."""
    if item.sell_by is not None and item.sell_by <= start:
        raise SellByOutOfReach(
            f"this order's sell-by time ({item.sell_by.isoformat()}) has passed: it cannot "
            "be handed to a resident", sell_by=item.sell_by.isoformat(),
        )
    bounds = [b for b in (
        start + timedelta(hours=item.hours) if item.hours is not None else None, item.sell_by,
    ) if b is not None]
    latest = min(bounds)
    if hours is None:
        return latest
    return last_open_moment(hours, closed_on, latest, start, tz) or latest


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
    for the check-in day must reach for ``load_days`` (per kind) to apply; ``look_ahead``: the
    same shorter period when the site's forecast shows a day at risk of overflow within the
    standard period (the parcel would sit on the shelf that day); ``reminder_before_hours``
    (per kind): the earlier reminder those two rules give; ``floor_days`` (per kind): no rule
    ever holds a parcel for less (the resident's fair chance; 1 when unset).
    """

    seasons: Mapping[str, tuple[Season, ...]] = field(default_factory=dict)
    load_threshold: float | None = None
    load_days: Mapping[str, int] = field(default_factory=dict)
    look_ahead: bool = False
    reminder_before_hours: Mapping[str, int] = field(default_factory=dict)
    floor_days: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, seasons: Mapping[str, Any], load: Mapping[str, Any],
        floor: Mapping[str, Any] | None = None,
    ) -> AdaptiveHolding:
        threshold = load.get("threshold")
        rules = cls(
            seasons={k: tuple(Season.from_mapping(s) for s in v) for k, v in seasons.items()},
            load_threshold=float(threshold) if threshold is not None else None,
            load_days={k: int(v) for k, v in (load.get("days") or {}).items()},
            look_ahead=bool(load.get("look_ahead", False)),
            reminder_before_hours={
                k: int(v) for k, v in (load.get("reminder_before_hours") or {}).items()},
            floor_days={k: int(v) for k, v in (floor or {}).items()},
        )
        if any(v < 1 for v in rules.floor_days.values()):
            raise ValueError("HOLDING_FLOOR_DAYS: a parcel is held at least one day")
        return rules

    def floor(self, kind: str) -> int:
        return max(1, self.floor_days.get(kind, 1))


# The rules that shorten a period because the site overflows: they bring the reminder forward.
OVERFLOW_RULES = ("load", "forecast")
# Every rule that gives less than the standard period (the ready e-mail says so).
SHORTENED_RULES = ("season", *OVERFLOW_RULES)


@dataclass(frozen=True)
class HoldingDecision:
    days: int
    rule: str  # standard | season | load | forecast
    # None: the site kind's usual reminder; else this many hours before the deadline.
    reminder_before_hours: int | None = None
    # The forecast day at risk that the ``forecast`` rule saw.
    risk_day: date | None = None

    @property
    def shortened(self) -> bool:
        return self.rule != "standard"


def holding_days(
    kind: str, standard: int, day: date, load_ratio: float | None, rules: AdaptiveHolding,
    risk_day: date | None = None,
) -> HoldingDecision:
    """The holding period of a parcel checked in on ``day``: the shortest rule that applies,
    never longer than the standard period nor shorter than the kind's floor.

    ``risk_day``: the first day of the site's forecast at risk of overflow from ``day`` on
    (None: none known). Decided once, at check-in, and stated in the ready message: a parcel
    already notified keeps its deadline whatever the season or the load does afterwards.
    """
    best = HoldingDecision(standard, "standard")
    for season in rules.seasons.get(kind, ()):
        if season.covers(day) and season.days < best.days:
            best = HoldingDecision(season.days, "season")
    overflow = _overflow_rule(kind, standard, day, load_ratio, rules, risk_day)
    if overflow is not None and overflow.days < best.days:
        best = overflow
    days = min(standard, max(rules.floor(kind), best.days))
    if best.rule in OVERFLOW_RULES:
        return replace(best, days=days,
                       reminder_before_hours=reminder_hours(kind, days, rules))
    return replace(best, days=days)


def _overflow_rule(
    kind: str, standard: int, day: date, load_ratio: float | None, rules: AdaptiveHolding,
    risk_day: date | None,
) -> HoldingDecision | None:
    """The load rule (the check-in day's forecast is full enough), else the look-ahead rule
    (a day at risk falls within the standard period, the parcel's days on the shelf)."""
    days = rules.load_days.get(kind)
    if days is None:
        return None
    threshold = rules.load_threshold
    if threshold is not None and load_ratio is not None and load_ratio >= threshold:
        return HoldingDecision(days, "load")
    if (rules.look_ahead and risk_day is not None
            and day <= risk_day <= day + timedelta(days=standard)):
        return HoldingDecision(days, "forecast", risk_day=risk_day)
    return None


def reminder_hours(kind: str, days: int, rules: AdaptiveHolding) -> int | None:
    """The earlier reminder of a period shortened for overflow, at most ``days - 1`` days
    before the deadline: a deadline falls at the end of a local day at least ``days`` days
    after check-in, so the reminder still comes a day after the ready message (a reminder
    due at check-in would never be sent). None: the kind's usual reminder."""
    hours = rules.reminder_before_hours.get(kind)
    if hours is None:
        return None
    capped = min(hours, (days - 1) * 24)
    return capped if capped > 0 else None
