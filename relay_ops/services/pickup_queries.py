"""The pickup's statements, built once (bound values, not literals): a pickup by code
neither builds them nor compiles them again (issue 15)."""

from __future__ import annotations

import functools

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import joinedload

from relay_ops.db.direct import Prebuilt
from relay_ops.db.models import CredentialParcel, Parcel, PickupCredential

# A code's own row, locked (bound: ``credential_id``), on the driver's cursor (db/direct.py).
LOCK_CODE = Prebuilt(lambda: select(PickupCredential.id)
                     .where(PickupCredential.id == bindparam("credential_id"))
                     .with_for_update())


@functools.cache
def code_parcels() -> Select[Parcel]:
    """A code's parcels row-locked in id order (bound: ``credential_id``), built once on first
    use; with what the answer shows of them (carrier, shelf), so building it reads nothing
    more, and their codes (read under the same lock: the hand-over releases them)."""
    ids = select(CredentialParcel.parcel_id).where(
        CredentialParcel.credential_id == bindparam("credential_id")
    )
    return (
        select(Parcel).where(Parcel.id.in_(ids)).order_by(Parcel.id)
        .options(joinedload(Parcel.carrier), joinedload(Parcel.location),
                 joinedload(Parcel.credentials))
        .with_for_update(of=Parcel).execution_options(populate_existing=True)
    )
