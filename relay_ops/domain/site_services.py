"""What a site offers the public (a multiservice space offers several): the directory filters
on it. Opening hours are the site's own attribute (``domain/hours.py``)."""

from __future__ import annotations

from collections.abc import Iterable

from relay_ops.domain.errors import ServiceNotOffered, ValidationFailed

# receive: parcels for residents; send: parcels residents send (docs/outbound.md); cold: a
# refrigerated place for fresh products; home_delivery: someone brings parcels to residents
# who cannot come; locker: a parcel locker on the site.
SERVICES: tuple[str, ...] = ("receive", "send", "cold", "home_delivery", "locker")
# What each refusal tells the person at the site (the API's problem detail).
_WHY_NOT = {
    "send": "it does not take parcels to send",
    "cold": "it keeps nothing cold",
    "home_delivery": "it does not deliver parcels home",
    "receive": "it does not receive parcels",
    "locker": "it has no parcel locker",
}


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


def require(offered: Iterable[str], service: str, site_name: str, site_code: str) -> None:
    """A site does what it declares and nothing else: what the public directory promises is
    what the counter accepts (docs/architecture.md, "Services a site offers")."""
    if service not in set(offered):
        raise ServiceNotOffered(
            f"{site_name} does not offer '{service}': {_WHY_NOT[service]} (its operator or "
            "shopkeeper declares its services)", service=service, site=site_code)
