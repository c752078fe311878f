"""Who acts at a locker's door and what it held, as every door's handler reads them: the locker's
own actor and the carrier's session, a door by its number and the parcel in it, what left with
one opening, when the locker decided an opening alone (protocol 9.1, 9.5), a parcel's live
credentials and a credential by its protocol id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Compartment,
    LockerSession,
    Parcel,
    ParcelEvent,
    PickupCredential,
    Site,
)
from relay_ops.services import locker_compartments
from relay_ops.services.principal import Principal, Role


def locker_actor(site: Site) -> Principal:
    return Principal(Role.LOCKER, name=f"locker:{site.code}")


def box_of(session: Session, site: Site, number: int) -> Compartment | None:
    return locker_compartments.compartment(session, site.id, number)


def held_in(session: Session, box: Compartment) -> Parcel | None:
    return locker_compartments.parcel_in(session, box)


def session_actor(session: Session, box: Compartment, site: Site,
                   parcel: Parcel | None = None) -> Principal:
    """The carrier whose session holds the door; for a door reserved in advance, the
    parcel's carrier (who typed its code, or scanned in its app)."""
    row = session.get(LockerSession, box.reserved_session_id) if box.reserved_session_id else None
    if row is not None:
        return Principal(Role.CARRIER, carrier_id=row.carrier_id)
    if parcel is not None and parcel.carrier_id is not None:
        return Principal(Role.CARRIER, carrier_id=parcel.carrier_id)
    return locker_actor(site)


def taken_by_opening(
    inside: list[Parcel], meant: list[Parcel], occupied: bool | None
) -> list[Parcel]:
    """What left a door with one opening (pickup or collection). Closed empty, or without a
    sensor: everything it held. Still occupied: the parcels the opening was ``meant`` for,
    when others stayed behind them (a door shared by a ready parcel and one due back);
    otherwise nothing, they were left behind."""
    if occupied is not True:
        return inside
    return meant if len(meant) < len(inside) else []


def opening_verified_at(session: Session, inside: list[Parcel], credential_id: str | None,
                        action: str) -> datetime | None:
    """When the locker decided an opening alone: its use was journaled on the one parcel
    its credential names, and dates the opening for every parcel the door held."""
    return next((v for p in inside
                 if (v := offline_verification(session, p, credential_id, action))), None)


def offline_verification(session: Session, parcel: Parcel, credential_id: str | None,
                          action: str = "offline_pickup_verified") -> datetime | None:
    """When the locker decided this use alone: it happened at `verified_at`, the locker's
    time (protocol 9.1, 9.5), not when the backend heard of it."""
    if credential_id is None:
        return None
    for event in session.scalars(select(ParcelEvent).where(
            ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == action
    ).order_by(ParcelEvent.id.desc())):
        if event.data.get("credential") == credential_id:
            return datetime.fromisoformat(event.data["verified_at"])
    return None


def live_credentials_of(session: Session, parcel: Parcel) -> list[PickupCredential]:
    from relay_ops.services.credentials import live_credentials

    return live_credentials(session, parcel.id)


def credential_by_ref(session: Session, ref: str) -> PickupCredential | None:
    """A protocol credential id: ``pin-<id>`` for a PIN, the token's jti for a QR code."""
    if ref.startswith("pin-") and ref[4:].isdigit():
        return session.get(PickupCredential, int(ref[4:]))
    return session.scalar(select(PickupCredential).where(PickupCredential.token_jti == ref))
