"""The pickup's statements, built and compiled once and run on the driver's cursor
(db/direct.py, issue 15); rows become objects through ``db/loaders``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.attributes import set_committed_value

from relay_ops.db.direct import Prebuilt, split
from relay_ops.db.few_ids import in_few_ids
from relay_ops.db.loaders import CARRIERS, CREDENTIALS, LOCATIONS, PARCELS
from relay_ops.db.models import Carrier, CredentialParcel, Location, Parcel, PickupCredential

# A code's own row, locked (bound: ``credential_id``), on the driver's cursor (db/direct.py).
LOCK_CODE = Prebuilt(lambda: select(PickupCredential.id)
                     .where(PickupCredential.id == bindparam("credential_id"))
                     .with_for_update())


def _code_parcels() -> Select[Any]:
    """A code's parcels row-locked in id order (bound: ``credential_id``), whole rows, each
    with its carrier's and shelf location's rows and one row per code it has (NULLs: none),
    so building the answer reads nothing more, and its codes are read under the same lock
    (the hand-over releases them). The code's parcels are found first, then read by their
    ids (``db/few_ids.py``: as a join, a stale histogram made it a walk of the whole table)."""
    ids = select(CredentialParcel.parcel_id).where(
        CredentialParcel.credential_id == bindparam("credential_id")
    )
    links = aliased(CredentialParcel)
    return (
        select(*PARCELS.columns, *CARRIERS.columns, *LOCATIONS.columns, *CREDENTIALS.columns)
        .outerjoin(Carrier, Carrier.id == Parcel.carrier_id)
        .outerjoin(Location, Location.id == Parcel.location_id)
        # the same few ids bound the codes' links too: joined by parcel alone, the planner
        # may hash the whole link table against the handful of parcels
        .outerjoin(links, and_(links.parcel_id == Parcel.id, in_few_ids(links.parcel_id, ids)))
        .outerjoin(PickupCredential, PickupCredential.id == links.credential_id)
        .where(in_few_ids(Parcel.id, ids)).order_by(Parcel.id, PickupCredential.id)
        .with_for_update(of=Parcel)
    )


CODE_PARCELS = Prebuilt(_code_parcels)


def code_parcels(session: Session, credential_id: int) -> list[Parcel]:
    """:data:`CODE_PARCELS`' parcels, as objects with their carrier, location and codes set;
    their values as read under the lock, even for objects the session held already."""
    parcels: dict[int, Parcel] = {}
    codes: dict[int, list[PickupCredential]] = {}
    for row in CODE_PARCELS.rows(session, {"credential_id": credential_id}):
        parcel_row, carrier_row, location_row, code_row = split(
            row, PARCELS, CARRIERS, LOCATIONS, CREDENTIALS)
        parcel_id = PARCELS.id_of(parcel_row)
        if parcel_id not in parcels:  # a parcel's row comes once per code it has
            parcel = PARCELS.one(session, parcel_row, fresh=True)
            parcels[parcel_id], codes[parcel_id] = parcel, []
            set_committed_value(parcel, "carrier", CARRIERS.maybe(session, carrier_row,
                                                                  fresh=True))
            set_committed_value(parcel, "location", LOCATIONS.maybe(session, location_row,
                                                                    fresh=True))
        code = CREDENTIALS.maybe(session, code_row, fresh=True)
        if code is not None:
            codes[parcel_id].append(code)
    for parcel_id, parcel in parcels.items():
        set_committed_value(parcel, "credentials", codes[parcel_id])
    return list(parcels.values())
