"""The box of coordinates around a point (``geo.box_around``): it must hold every point within
its distance, else a site within reach would never be asked."""

from __future__ import annotations

import random
from math import asin, atan2, cos, degrees, radians, sin

import pytest

from relay_ops.domain.geo import EARTH_RADIUS_KM, box_around, distance_km


def destination(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point ``km`` away from (lat, lon) on ``bearing`` (degrees from north)."""
    phi, lam, theta, d = radians(lat), radians(lon), radians(bearing), km / EARTH_RADIUS_KM
    phi2 = asin(sin(phi) * cos(d) + cos(phi) * sin(d) * cos(theta))
    lam2 = lam + atan2(sin(theta) * sin(d) * cos(phi), cos(d) - sin(phi) * sin(phi2))
    return degrees(phi2), (degrees(lam2) + 540) % 360 - 180


@pytest.mark.parametrize(("lat", "lon", "km"), [
    (47.5167, -1.2917, 25.0),  # a village of the Loire
    (47.5167, -1.2917, 0.5),
    (-33.9, 18.4, 400.0),      # south of the equator
    (78.2, 15.6, 300.0),       # near the pole: the longitudes widen a lot
    (0.0, 179.9, 50.0),        # across the antimeridian
])
def test_every_point_within_the_distance_is_in_the_box(lat: float, lon: float,
                                                       km: float) -> None:
    box = box_around(lat, lon, km)
    chance = random.Random(16)
    for _ in range(2000):
        point = destination(lat, lon, chance.uniform(0, 360), km * chance.uniform(0.0, 1.0))
        assert distance_km(lat, lon, *point) <= km + 1e-6
        assert box.lat_min <= point[0] <= box.lat_max
        assert box.lon_min <= point[1] <= box.lon_max


def test_the_box_is_tight_where_it_can_be() -> None:
    box = box_around(47.5167, -1.2917, 25.0)
    # 25 km is 0.225° of latitude; at 47.5° north a degree of longitude is 75 km.
    assert box.lat_max - 47.5167 == pytest.approx(0.2248, abs=1e-3)
    assert box.lon_max - -1.2917 == pytest.approx(0.333, abs=2e-3)
    # On the point's own latitude, the box's last longitude is about 25 km away.
    assert distance_km(47.5167, -1.2917, 47.5167, box.lon_max) == pytest.approx(25.0, abs=0.01)
    assert box_around(89.9, 0.0, 30.0).lon_min == -180.0  # a pole in reach: every longitude
