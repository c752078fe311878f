"""Great-circle distances between sites."""

from __future__ import annotations

from dataclasses import dataclass
from math import asin, cos, degrees, radians, sin, sqrt

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = radians(lat1), radians(lat2)
    dphi, dlmb = phi2 - phi1, radians(lon2 - lon1)
    h = sin(dphi / 2) ** 2 + cos(phi1) * cos(phi2) * sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(sqrt(h))


@dataclass(frozen=True)
class Box:
    """Latitudes and longitudes in degrees; ``lon_min > lon_max`` never: a box that would
    cross the antimeridian or hold a pole takes every longitude."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


def box_around(lat: float, lon: float, km: float) -> Box:
    """The smallest box of coordinates that holds every point within ``km`` of (lat, lon),
    so a query can leave out by index the sites too far away before their exact distance is
    computed. Longitudes: the tangent meridians' (a great circle bulges towards the pole, so
    ``km / (R cos lat)`` would be too narrow)."""
    angle = km / EARTH_RADIUS_KM
    lat_min, lat_max = lat - degrees(angle), lat + degrees(angle)
    if lat_min <= -90 or lat_max >= 90 or sin(angle) >= cos(radians(lat)):
        return Box(max(lat_min, -90.0), min(lat_max, 90.0), -180.0, 180.0)
    spread = degrees(asin(sin(angle) / cos(radians(lat))))
    if lon - spread < -180 or lon + spread > 180:
        return Box(lat_min, lat_max, -180.0, 180.0)
    return Box(lat_min, lat_max, lon - spread, lon + spread)
