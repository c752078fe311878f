"""The kinds of site, and what each kind implies.

A ``shop`` and a ``storage`` site keep parcels on shelf locations handed over at a counter by
its staff (check-in, pickup, the shelf policy, grouping: one rule for both); a ``locker`` keeps
them behind doors. A storage site is overflow room opened when shops are full (a town hall
room, a container, a shop's back room opened for the season: docs/overflow.md); it may open
for a season only (``season_from`` .. ``season_to``, both days included).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from relay_ops.domain.errors import ValidationFailed

SHOP, LOCKER, STORAGE = "shop", "locker", "storage"
SITE_KINDS: tuple[str, ...] = (SHOP, LOCKER, STORAGE)
SHELF_KINDS: frozenset[str] = frozenset({SHOP, STORAGE})


def has_shelves(kind: str) -> bool:
    """Parcels sit on shelf locations and go over a counter (not through a locker's doors)."""
    return kind in SHELF_KINDS


def in_season(season_from: date | None, season_to: date | None, day: date) -> bool:
    """Whether a site with this season takes parcels on ``day`` (no bound: no limit)."""
    return (season_from is None or season_from <= day) and (season_to is None or day <= season_to)


def checked_season(kind: str, season_from: date | None, season_to: date | None) -> None:
    """A season belongs to storage sites, and ends on or after it starts."""
    if season_from is None and season_to is None:
        return
    if kind != STORAGE:
        raise ValidationFailed("only a storage site has a season (open from/to)")
    if season_from is not None and season_to is not None and season_to < season_from:
        raise ValidationFailed("the season ends before it starts")


def season_of(kind: str, season: Mapping[str, date | str | None] | None
              ) -> tuple[date | None, date | None]:
    """A site's season as given at creation (``{"from": ..., "to": ...}``, days or ISO
    texts), checked."""
    given = season or {}
    first, last = _day(given.get("from")), _day(given.get("to"))
    checked_season(kind, first, last)
    return first, last


def _day(value: date | str | None) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed(f"{value!r} is not a day (YYYY-MM-DD)") from None
