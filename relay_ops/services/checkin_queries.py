"""The check-in's statements, each built and compiled once and run on the driver's cursor
(db/direct.py, issue 15: building statements, then SQLAlchemy's per-statement work, were
much of a request's CPU). The rows that become ORM objects are read whole, in their tables'
column order, and turned into objects by ``db/loaders``, as a query would load them."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    literal_column,
    or_,
    select,
)

from relay_ops.db.direct import Prebuilt
from relay_ops.db.loaders import CARRIERS, LOCATIONS, ORDERS, PARCELS, SITES
from relay_ops.db.models import (
    Carrier,
    ClosingDay,
    CredentialParcel,
    Location,
    Parcel,
    PickupCredential,
    ProducerOrder,
    Site,
    UnannouncedScan,
)
from relay_ops.services import reservations
from relay_ops.services.forecast import first_risk_day, stored_ratio
from relay_ops.services.parcel_views import READY


def _shop() -> Select[Any]:
    """The shop row-locked (its whole row, for :data:`SITES`), with today's stored forecast
    ratio, the first day at risk and the places held today, and one row per closing day from
    yesterday on (NULL: none); its shelves by a second statement after the lock
    (:data:`SHELVES`; ``checkin._shop_for_check_in`` says why). Bound: ``site_id``,
    ``today``, ``yesterday``, ``until``, ``reserved_since``."""
    today = bindparam("today", type_=Date)
    return (
        select(*SITES.columns, stored_ratio(today),
               first_risk_day(today, bindparam("until", type_=Date)),
               reservations.reserved_here(bindparam("reserved_since", type_=Date), today),
               ClosingDay.day)
        .outerjoin(ClosingDay, and_(ClosingDay.site_id == Site.id,
                                    ClosingDay.day >= bindparam("yesterday", type_=Date)))
        .where(Site.id == bindparam("site_id", type_=Integer))
        .with_for_update(of=Site)
    )


SHOP = Prebuilt(_shop)
# The shop's locations in the relationship's order (bound: ``site_id``), whole rows for
# :data:`LOCATIONS`: what ``selectinload(Site.locations)`` would read.
SHELVES = Prebuilt(lambda: select(*LOCATIONS.columns)
                   .where(Location.site_id == bindparam("site_id", type_=Integer))
                   .order_by(Location.label))


@functools.lru_cache(maxsize=2)
def parcel(carrier_named: bool) -> Prebuilt:
    """The parcels of a tracking number, row-locked, whole rows (:data:`PARCELS`), with
    whether the shop's counter lists the number as scanned unannounced, the day of the place
    held for each at the shop, and their carrier's and producer's order's rows (NULLs: none;
    :data:`CARRIERS`, :data:`ORDERS`). Bound: ``number``, ``site_id``, and ``carrier_code``
    when ``carrier_named``: that carrier's parcels and those of no carrier."""
    return Prebuilt(lambda: _parcel(carrier_named))


def _parcel(carrier_named: bool) -> Select[Any]:
    site_id = bindparam("site_id", type_=Integer)
    number = bindparam("number", type_=String)
    scanned = select(UnannouncedScan.site_id).where(
        UnannouncedScan.site_id == site_id, UnannouncedScan.tracking_number == number
    ).exists()
    query = (
        select(*PARCELS.columns, scanned, reservations.reservation_day(site_id),
               *CARRIERS.columns, *ORDERS.columns)
        .where(Parcel.tracking_number == number)
        .outerjoin(Carrier, Carrier.id == Parcel.carrier_id)
        .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        .order_by(Parcel.id)
        .with_for_update(of=Parcel)
    )
    if carrier_named:
        named = select(Carrier.id).where(
            Carrier.code == bindparam("carrier_code", type_=String)).scalar_subquery()
        query = query.where(or_(Parcel.carrier_id == named, Parcel.carrier_id.is_(None)))
    return query


@functools.lru_cache(maxsize=4)
def group(by_phone: bool, by_email: bool) -> Prebuilt:
    """The ready parcels here with a live recipient code for the same recipient, by the keys
    the new parcel has (bound: ``site_id``, ``parcel_id``, ``phone_key``, ``email_key``): the
    parcel's id, shelf, number and keys, and the code's id and lock time, as tuples on the
    driver's cursor (db/direct.py). The usual answer is no row; the grouping reads no more.

    The state is written in the statement, not bound: PostgreSQL runs a prepared statement on
    a generic plan, which can use the partial indexes on the ready parcels' keys only if their
    ``state = 'ready_for_pickup'`` is in the query itself (bound, it planned the lookup afresh
    now and then: 86 + 25 µs of execution and planning against 63 + 5, docs/benchmarks.md)."""
    same = [col == bindparam(name, type_=String) for col, name, wanted in (
        (Parcel.recipient_phone_key, "phone_key", by_phone),
        (Parcel.recipient_email_key, "email_key", by_email)) if wanted]
    return Prebuilt(lambda: (
        select(Parcel.id, Parcel.location_id, Parcel.tracking_number,
               Parcel.recipient_phone_key, Parcel.recipient_email_key,
               PickupCredential.id, PickupCredential.locked_at)
        .join(CredentialParcel, CredentialParcel.parcel_id == Parcel.id)
        .join(PickupCredential, PickupCredential.id == CredentialParcel.credential_id)
        .where(Parcel.site_id == bindparam("site_id", type_=Integer),
               Parcel.state == literal_column(f"'{READY}'", String),
               Parcel.id != bindparam("parcel_id", type_=Integer),
               PickupCredential.holder == "recipient", PickupCredential.used_at.is_(None),
               PickupCredential.revoked_at.is_(None), or_(*same))
    ))


@functools.cache
def group_code() -> Select[PickupCredential]:
    """The code to join, row-locked unless a pickup holds it (bound: ``credential_id``)."""
    return (
        select(PickupCredential)
        .where(PickupCredential.id == bindparam("credential_id", type_=Integer))
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    )
