"""Parcels sent from a site (a sender's shipment, a resident's return): their lifecycle and
which carrier takes them.

The outbound state machine sits beside the inbound one (``domain/lifecycle.py`` names the
states and actions, which share the parcel's ``state`` column)::

    counter scan ─▶ dropped_off ─accept_outbound─▶ awaiting_collection ─collect─▶ collected
                                                    │ refuse        │ hand_back
                                                    ▼               ▼
                                                 refused ─hand_back─▶ returned (to the sender)
    any held state ─declare_missing─▶ lost; ─declare_damaged─▶ damaged (collect or hand_back)

At the counter one scan does both first steps in one transaction: the deposit (the sender's
receipt) and the shelf place. At a locker the parcel is ``announced`` (a door held for its
drop-off code) until its door closes on it, which does both steps the same way
(``services/locker_sending.py``).

A label is accepted at a site only if a carrier that serves the site collects that label's
network. A carrier states the networks it collects as a list of specs:

- ``upu-s10``: any valid UPU S10 number (postal operators),
- ``upu-s10:FR``: S10 numbers issued by one country (the two letters at the end),
- ``prefix:MR``: the carrier's own numbering, numbers that start with these characters.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from relay_ops.domain import tracking
from relay_ops.domain.errors import (
    CarrierChoiceNeeded,
    LabelNotCollectedHere,
    ValidationFailed,
)
from relay_ops.domain.hours import DAYS
from relay_ops.domain.lifecycle import Action, State, TransitionTable

DIRECTION = "outbound"
# Events that are facts, not transitions: the deposit that creates the parcel (it has no
# state before) and the alert raised when the carrier is late.
DROP_OFF = "drop_off"
COLLECTION_OVERDUE = "collection_overdue"

S, A = State, Action

# Where an outbound parcel physically sits at the site (on a shelf): it takes a place.
HELD: frozenset[State] = frozenset(
    {S.DROPPED_OFF, S.AWAITING_COLLECTION, S.REFUSED, S.DAMAGED}
)
FINAL: frozenset[State] = frozenset({S.COLLECTED, S.RETURNED, S.LOST})

_TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.DROPPED_OFF, A.ACCEPT_OUTBOUND): S.AWAITING_COLLECTION,
    (S.AWAITING_COLLECTION, A.COLLECT): S.COLLECTED,
    # The carrier would not take it (badly packed, too heavy...): its sender takes it back.
    (S.AWAITING_COLLECTION, A.REFUSE): S.REFUSED,
    (S.AWAITING_COLLECTION, A.HAND_BACK): S.RETURNED,
    (S.REFUSED, A.HAND_BACK): S.RETURNED,
    # A damaged parcel still goes with the carrier (the damage is on record for its claim),
    # unless its sender takes it back first.
    (S.DAMAGED, A.COLLECT): S.COLLECTED,
    (S.DAMAGED, A.HAND_BACK): S.RETURNED,
}
for _held in HELD:
    _TRANSITIONS[(_held, A.DECLARE_MISSING)] = S.LOST
    if _held is not S.DAMAGED:
        _TRANSITIONS[(_held, A.DECLARE_DAMAGED)] = S.DAMAGED


_TABLE = TransitionTable(_TRANSITIONS, "a sent parcel")
next_state = _TABLE.next_state
allowed_actions = _TABLE.allowed_actions
transitions = _TABLE.transitions


# ---------------------------------------------------------------- label networks

# What a spec is, the whole of it (ASCII, nothing around it): the API's document states the
# same pattern, so a spec the document allows is one this module reads, and no other.
NETWORK_SPEC = r"upu-s10(?::[A-Za-z]{2})?|prefix:[A-Za-z0-9]{1,12}"
S10 = "upu-s10"
PREFIX = "prefix"


@dataclass(frozen=True)
class Network:
    """One kind of label a carrier collects (see the module's docstring)."""

    kind: str  # upu-s10 | prefix
    value: str = ""  # the issuing country (S10) or the number's first characters

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.value}" if self.value else self.kind

    def takes(self, number: str) -> bool:
        """``number`` is a valid, normalised tracking number."""
        is_s10 = label_format(number) == S10
        if self.kind == S10:
            return is_s10 and (not self.value or number.endswith(self.value))
        return not is_s10 and number.startswith(self.value)


def parse_network(spec: str) -> Network:
    """A network from its spec, or :class:`ValidationFailed` saying what a spec is."""
    if re.fullmatch(NETWORK_SPEC, spec):
        kind, _, value = spec.partition(":")
        return Network(kind, value.upper())
    raise ValidationFailed(
        f"{spec!r} is not a label network: use 'upu-s10', 'upu-s10:FR' (issuing country) or "
        "'prefix:MR' (1 to 12 letters or digits the carrier's numbers start with)"
    )


def label_format(number: str) -> str:
    """The name of the tracking format a normalised number has (domain/tracking.FORMATS)."""
    return next((f.name for f in tracking.FORMATS if f.matches(number)), "unknown")


def collects(specs: Sequence[str], number: str) -> bool:
    return any(parse_network(spec).takes(number) for spec in specs)


def choose_carrier(number: str, serving: Mapping[str, Sequence[str]], named: str | None) -> str:
    """Which carrier takes ``number`` from a site: ``serving`` maps the code of each carrier
    serving the site to the networks it collects; ``named`` is the carrier the sender or the
    shopkeeper chose, if any. Raises the refusal the counter shows otherwise."""
    takers = sorted(code for code, specs in serving.items() if collects(specs, number))
    if named is not None:
        if named not in serving:
            raise LabelNotCollectedHere(
                f"{named} does not collect at this site"
                + (f"; {', '.join(takers)} collects {number} here" if takers else ""),
                tracking_number=number, carriers=takers,
            )
        if named not in takers:
            raise LabelNotCollectedHere(
                f"{named} does not collect {label_format(number)} labels like {number}",
                tracking_number=number, carriers=takers,
            )
        return named
    if not takers:
        raise LabelNotCollectedHere(
            f"no carrier that collects at this site takes {label_format(number)} labels like "
            f"{number}: the sender must post it elsewhere or use another carrier's label",
            tracking_number=number, carriers=[],
        )
    if len(takers) > 1:
        raise CarrierChoiceNeeded(
            f"{', '.join(takers)} all collect labels like {number} here: say which carrier the "
            "label is for", tracking_number=number, carriers=takers,
        )
    return takers[0]


def collect_by(dropped_off_at: datetime, delay_hours: int) -> datetime:
    """When the carrier must have taken the parcel, by its agreement with the site."""
    return dropped_off_at + timedelta(hours=delay_hours)


# ---------------------------------------------------------------- the carrier's rounds

# A carrier passes at a site at fixed times (its rounds), like a post office's pickup times: a
# parcel deposited before a round's time is on that round's list (its cut-off); one deposited
# after it waits for the next round. A round is "HH:MM" (every day) or "<days> HH:MM" on some
# weekdays only, the days as in opening hours ("mon".."sun"), listed ("tue,thu 14:00") or as a
# range ("mon-fri 10:30", "fri-mon" wraps over the weekend): a van that serves a village on
# two days a week. At most this many rounds.
MAX_ROUNDS = 6
_DAY = "(?:mon|tue|wed|thu|fri|sat|sun)"
_DAYS_PART = f"{_DAY}(?:-{_DAY})?(?:,{_DAY}(?:-{_DAY})?)*"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
# The whole of a round (ASCII, nothing around it): the API's document states the same pattern.
ROUND_SPEC = f"(?:{_DAYS_PART} )?{_TIME}"
_ROUND = re.compile(f"(?:({_DAYS_PART}) )?({_TIME})")


@dataclass(frozen=True)
class Round:
    at: str  # "HH:MM", the site's time zone
    weekdays: frozenset[int]  # date.weekday() values; all seven for a daily round

    @property
    def spec(self) -> str:
        """The canonical text: days in week order, listed ("mon,tue,wed 10:30")."""
        if len(self.weekdays) == 7:
            return self.at
        return f"{','.join(DAYS[d] for d in sorted(self.weekdays))} {self.at}"

    def runs_on(self, day: date) -> bool:
        return day.weekday() in self.weekdays


def _weekdays(part: str | None) -> frozenset[int]:
    if part is None:
        return frozenset(range(7))
    days: set[int] = set()
    for item in part.split(","):
        first, _, last = item.partition("-")
        start = end = DAYS.index(first)
        if last:
            end = DAYS.index(last)
        days.update((start + k) % 7 for k in range((end - start) % 7 + 1))
    return frozenset(days)


# A pickup list asks each parcel's next round, over up to a week of days: the same few texts
# are read again and again, so each is parsed once.
@functools.lru_cache(maxsize=256)
def parse_round(value: str) -> Round:
    match = _ROUND.fullmatch(value) if value.isascii() else None
    if match is None:
        raise ValidationFailed(
            f"a round is HH:MM (00:00 to 23:59), every day, or days then HH:MM on those days "
            f"only ('tue,thu 14:00', 'mon-fri 10:30'), not {value!r}")
    return Round(at=match.group(2), weekdays=_weekdays(match.group(1)))


def parse_rounds(values: Sequence[str]) -> list[str]:
    """A carrier's rounds at a site in their canonical text, by time then days, no duplicates;
    or :class:`ValidationFailed` saying what a round is."""
    rounds = {r.spec: r for r in map(parse_round, values)}
    if len(rounds) > MAX_ROUNDS:
        raise ValidationFailed(f"at most {MAX_ROUNDS} rounds")
    return [spec for spec, _ in sorted(rounds.items(), key=lambda kv: (kv[1].at, kv[0]))]


def rounds_on(day: date, rounds: Sequence[str]) -> list[str]:
    """The times ("HH:MM", sorted, once each) of the rounds that run on ``day``."""
    return sorted({r.at for r in map(parse_round, rounds) if r.runs_on(day)})


def _clock(hhmm: str) -> time:
    return time(int(hhmm[:2]), int(hhmm[3:]))


def round_after(moment: datetime, rounds: Sequence[str], tz: tzinfo) -> datetime | None:
    """The first of the carrier's rounds strictly after ``moment`` (within a week: every round
    runs on one weekday at least), in ``tz``, the site's time zone; None when it declared no
    rounds."""
    if not rounds:
        return None
    local = moment.astimezone(tz)
    for ahead in range(8):
        day = local.date() + timedelta(days=ahead)
        for hhmm in rounds_on(day, rounds):
            when = cut_off(day, hhmm, tz)
            if when > moment:
                return when
    raise AssertionError("a round every week")  # pragma: no cover - rounds is not empty


def cut_off(day: date, hhmm: str, tz: tzinfo) -> datetime:
    """``hhmm`` on ``day`` in ``tz``: the parcels due at a round by then are that round's."""
    return datetime.combine(day, _clock(hhmm), tz)
