"""Places held for rerouted parcels (room promised is room held): the counter's rule.

Pure: the service layer (``relay_ops/services/reservations.py``) counts the places and the
reservations and asks here.
"""

from __future__ import annotations


def keeps_room_for_others(free_places: int, reserved_for_others: int) -> bool:
    """A parcel without a reservation may take a place only if one is left once every place
    held for a rerouted parcel still expected is set aside: the reroute sent that parcel
    here because room was promised, and the counter keeps the promise."""
    return free_places - max(reserved_for_others, 0) >= 1

