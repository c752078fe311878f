"""Tracking-number formats: one validator per format, tried in order.

A carrier's barcode is what the shopkeeper scans, so the number is normalised the same way
everywhere (upper case, no spaces or dashes) before it is stored or looked up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from relay_ops.domain.errors import InvalidTrackingNumber

_S10 = re.compile(r"^([A-Z]{2})(\d{8})(\d)([A-Z]{2})$")
_GENERIC = re.compile(r"^[A-Z0-9]{8,35}$")
_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)


@dataclass(frozen=True)
class TrackingFormat:
    name: str
    matches: Callable[[str], bool]
    is_valid: Callable[[str], bool]


def normalise(raw: str) -> str:
    return re.sub(r"[\s\-]", "", raw).upper()


def s10_check_digit(serial: str) -> int:
    """UPU S10 check digit of the 8-digit serial number."""
    total = sum(int(d) * w for d, w in zip(serial, _S10_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check)


def _s10_valid(number: str) -> bool:
    match = _S10.match(number)
    return match is not None and s10_check_digit(match.group(2)) == int(match.group(3))


# Order matters: the first format whose shape matches decides; an S10-shaped number with a
# wrong check digit is a mistyped S10, not a generic number.
FORMATS: list[TrackingFormat] = [
    TrackingFormat("upu-s10", lambda n: bool(_S10.match(n)), _s10_valid),
    TrackingFormat("generic", lambda n: bool(_GENERIC.match(n)), lambda n: True),
]


def validate(raw: str) -> str:
    """The normalised tracking number, or :class:`InvalidTrackingNumber`."""
    number = normalise(raw)
    for fmt in FORMATS:
        if fmt.matches(number):
            if fmt.is_valid(number):
                return number
            raise InvalidTrackingNumber(
                f"{number} looks like a {fmt.name} number but its check digit is wrong",
                format=fmt.name,
            )
    raise InvalidTrackingNumber(
        f"{raw!r} is not a tracking number (UPU S10, or 8 to 35 letters and digits)"
    )
