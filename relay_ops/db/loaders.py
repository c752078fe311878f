"""The ORM objects the hot paths make from whole rows read on the driver's cursor
(``db/direct.Loader``): one loader per mapped class, shared by every statement that reads it.
A statement selects ``*LOADER.columns`` (the table's columns in order) and hands each slice of
a row to ``LOADER.one`` (or ``maybe``, for an outer join)."""

from __future__ import annotations

from relay_ops.db.direct import Loader
from relay_ops.db.models import Carrier, Location, Parcel, PickupCredential, ProducerOrder, Site

SITES = Loader(Site)
LOCATIONS = Loader(Location)
PARCELS = Loader(Parcel)
CARRIERS = Loader(Carrier)
ORDERS = Loader(ProducerOrder)
CREDENTIALS = Loader(PickupCredential)
