"""What happens to a parcel when its site is expected full and no site within reach has room
(docs/overflow.md): the operator's policy, per carrier and territory, is an ordered list of
steps; the first step that can take the parcel decides.

- ``storage``: the nearest overflow storage site within reach, open (and in season) that day,
  with room by its forecast;
- ``hold``: the carrier keeps the parcel at its depot until the first day the original
  site's forecast has room (within the forecast's horizon);
- ``home``: the carrier delivers it to the resident's home on its own round, when its
  contract allows it for this parcel (``home_size_classes``: empty for every parcel).

Pure rules: which policy applies, whether its steps are well formed, whether a parcel may go
home, which day a held parcel is expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol, TypeVar

from relay_ops.domain.errors import ValidationFailed

STORAGE, HOLD, HOME = "storage", "hold", "home"
STEPS: tuple[str, ...] = (STORAGE, HOLD, HOME)
AREAS: tuple[str, ...] = ("town", "countryside")


@dataclass(frozen=True)
class Scope:
    """Whom and where a policy covers: a carrier (None: every carrier) and a territory, one
    site, or every site of an area (town or countryside), or everywhere (both None)."""

    carrier_id: int | None
    site_id: int | None
    area: str | None

    def key(self) -> str:
        """One policy per scope: the unique key its row is stored under."""
        carrier = "*" if self.carrier_id is None else str(self.carrier_id)
        where = (f"site:{self.site_id}" if self.site_id is not None
                 else f"area:{self.area}" if self.area is not None else "*")
        return f"{carrier}|{where}"

    def covers(self, carrier_id: int | None, site_id: int, area: str) -> bool:
        return (self.carrier_id in (None, carrier_id)
                and self.site_id in (None, site_id)
                and self.area in (None, area))

    def rank(self) -> tuple[int, int]:
        """Lower is more specific: a carrier's own policy first (its contract says what it can
        do: keep parcels at its depot, deliver at home), then a site before an area before
        everywhere."""
        where = 0 if self.site_id is not None else 1 if self.area is not None else 2
        return (0 if self.carrier_id is not None else 1, where)


def checked_scope(scope: Scope) -> Scope:
    if scope.site_id is not None and scope.area is not None:
        raise ValidationFailed("a policy covers one site or one area, not both")
    if scope.area is not None and scope.area not in AREAS:
        raise ValidationFailed(f"area is one of {', '.join(AREAS)}")
    return scope


def checked_steps(steps: Sequence[str]) -> list[str]:
    """At least one step, each known and once, in the operator's order."""
    if not steps:
        raise ValidationFailed(f"give at least one step among {', '.join(STEPS)}")
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        raise ValidationFailed(
            f"unknown step {', '.join(unknown)}: the steps are {', '.join(STEPS)}")
    if len(set(steps)) != len(steps):
        raise ValidationFailed("each step appears once")
    return list(steps)


class Scoped(Protocol):
    @property
    def scope(self) -> Scope: ...


P = TypeVar("P", bound=Scoped)


def applicable(
    policies: Iterable[P], carrier_id: int | None, site_id: int, area: str
) -> P | None:
    """The most specific policy covering this carrier and site (see :meth:`Scope.rank`)."""
    covering = [p for p in policies if p.scope.covers(carrier_id, site_id, area)]
    return min(covering, key=lambda p: p.scope.rank(), default=None)


def home_allowed(allowed_size_classes: Sequence[str], size_class: str | None) -> bool:
    """The carrier's contract delivers this parcel at home: every parcel when no size class is
    listed; otherwise only a parcel of a listed class (an unknown size is not assumed small)."""
    return not allowed_size_classes or size_class in allowed_size_classes


class Day(Protocol):
    @property
    def day(self) -> date: ...
    @property
    def closed(self) -> bool: ...
    @property
    def at_risk(self) -> bool: ...


def first_day_with_room(days: Iterable[Day | None], after: date) -> date | None:
    """The first day after ``after`` the site opens and is not at risk with the parcel added
    (``days``: its forecast for each day, with the parcel counted; None past the horizon)."""
    for outlook in days:
        if outlook is not None and outlook.day > after and not outlook.closed \
                and not outlook.at_risk:
            return outlook.day
    return None
