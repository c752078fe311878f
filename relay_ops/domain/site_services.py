"""What a site offers the public (a multiservice space offers several): the directory filters
on it. Opening hours are the site's own attribute (``domain/hours.py``)."""

from __future__ import annotations

from collections.abc import Iterable

from relay_ops.domain.errors import ValidationFailed

# receive: parcels for residents; send: parcels residents send (docs/outbound.md); cold: a
# refrigerated place for fresh products; home_delivery: someone brings parcels to residents
# who cannot come; locker: a parcel locker on the site.
SERVICES: tuple[str, ...] = ("receive", "send", "cold", "home_delivery", "locker")


def default_for(kind: str) -> list[str]:
    """What a new site offers until it says otherwise: every site receives parcels, and a
    locker site is a locker."""
    return ["receive", "locker"] if kind == "locker" else ["receive"]


def checked(services: Iterable[str]) -> list[str]:
    """The services, each once, in the catalogue's order; unknown names are refused."""
    given = list(services)
    unknown = sorted(set(given) - set(SERVICES))
    if unknown:
        raise ValidationFailed(
            f"unknown service {', '.join(unknown)}: a site offers {', '.join(SERVICES)}")
    return [s for s in SERVICES if s in given]


def offers_all(offered: Iterable[str], wanted: Iterable[str]) -> bool:
    return set(wanted) <= set(offered)
