"""The check-in's statements, each built once on first use (bound values, not literals): a
check-in neither builds them nor compiles them again, SQLAlchemy's compiled cache serving
them (issue 15: building statements was a third of a request's CPU)."""

from __future__ import annotations

import functools
from datetime import date

from sqlalchemy import Date, Integer, Select, String, bindparam, or_, select
from sqlalchemy.orm import contains_eager, joinedload

from relay_ops.db.direct import Prebuilt
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


@functools.cache
def shop() -> Select[Site, float, date, int]:
    """The shop row-locked, with its closing days, today's stored forecast ratio, the first
    day at risk and the places held today; its shelves by a second statement after the lock
    (:func:`shelves`; ``checkin._shop_for_check_in`` says why). Bound: ``site_id``,
    ``today``, ``yesterday``, ``until``, ``reserved_since``."""
    today = bindparam("today", type_=Date)
    return (
        select(Site, stored_ratio(today), first_risk_day(today, bindparam("until", type_=Date)),
               reservations.reserved_here(bindparam("reserved_since", type_=Date), today))
        .where(Site.id == bindparam("site_id"))
        .options(joinedload(Site.closing_days.and_(
                     ClosingDay.day >= bindparam("yesterday", type_=Date))))
        .with_for_update(of=Site)
    )


@functools.cache
def shelves() -> Select[Location]:
    """The shop's locations in the relationship's order (bound: ``site_id``): what
    ``selectinload(Site.locations)`` would read, without its per-request loader work."""
    return (select(Location).where(Location.site_id == bindparam("site_id", type_=Integer))
            .order_by(Location.label))


@functools.lru_cache(maxsize=2)
def parcel(carrier_named: bool) -> Select[Parcel, bool, date]:
    """The parcels of a tracking number, row-locked, with their carrier and producer's order,
    whether the shop's counter lists the number as scanned unannounced, and the day of the
    place held for each at the shop (bound: ``number``, ``site_id``, and ``carrier_code``
    when ``carrier_named``: that carrier's parcels and those of no carrier)."""
    site_id = bindparam("site_id", type_=Integer)
    number = bindparam("number", type_=String)
    scanned = select(UnannouncedScan.site_id).where(
        UnannouncedScan.site_id == site_id, UnannouncedScan.tracking_number == number
    ).exists()
    query = (
        select(Parcel, scanned, reservations.reservation_day(site_id))
        .where(Parcel.tracking_number == number)
        .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        .options(joinedload(Parcel.carrier), contains_eager(Parcel.producer_order))
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
    driver's cursor (db/direct.py). The usual answer is no row; the grouping reads no more."""
    same = [col == bindparam(name, type_=String) for col, name, wanted in (
        (Parcel.recipient_phone_key, "phone_key", by_phone),
        (Parcel.recipient_email_key, "email_key", by_email)) if wanted]
    return Prebuilt(lambda: (
        select(Parcel.id, Parcel.location_id, Parcel.tracking_number,
               Parcel.recipient_phone_key, Parcel.recipient_email_key,
               PickupCredential.id, PickupCredential.locked_at)
        .join(CredentialParcel, CredentialParcel.parcel_id == Parcel.id)
        .join(PickupCredential, PickupCredential.id == CredentialParcel.credential_id)
        .where(Parcel.site_id == bindparam("site_id", type_=Integer), Parcel.state == READY,
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
