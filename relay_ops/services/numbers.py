"""Parcels found by tracking number, within what the asker may see.

A number is unique per carrier, not network-wide (docs/decisions/0007-tracking-numbers-per-
carrier.md): every lookup by number names the carrier, or the site and the role that scope
it, so that nobody learns whether another carrier holds a number, and two carriers'
parcels that share one are never mixed up. Where staff see two such parcels at once, the
lookup refuses to guess (``ambiguous-tracking-number``) and names their carriers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from relay_ops.db.models import Carrier, Parcel, ProducerOrder
from relay_ops.domain.errors import AmbiguousTrackingNumber, NotFound
from relay_ops.services.principal import Principal, Role


def numbered(number: str) -> Select[Any]:
    """Every parcel under this number, oldest first (one per carrier at most)."""
    return select(Parcel).where(Parcel.tracking_number == number).order_by(Parcel.id)


def carriers_parcel(session: Session, carrier_id: int, number: str, *,
                    lock: bool = False) -> Parcel | None:
    """The carrier's parcel under this number: one at most (the unique constraint)."""
    query = select(Parcel).where(Parcel.tracking_number == number,
                                 Parcel.carrier_id == carrier_id)
    return session.scalar(query.with_for_update() if lock else query)


def at_site(session: Session, site_id: int, number: str, *, carrier_code: str | None = None,
            lock: bool = False) -> Parcel | None:
    """The parcel under this number at a site, for its staff (or its locker): the one there
    is, or the named carrier's; two carriers' there and none named is ambiguous."""
    query = numbered(number).where(Parcel.site_id == site_id)
    return only_one(_locked(session, of_carrier(query, carrier_code), lock), number)


def visible(session: Session, actor: Principal, number: str, *,
            carrier_code: str | None = None) -> Parcel | None:
    """The parcel under this number that the actor may see, or None: another carrier's, or
    another shop's, is not told apart from a number nobody holds."""
    query = of_carrier(numbered(number), carrier_code)
    match actor.role:
        case Role.OPERATOR | Role.SYSTEM:
            pass
        case Role.CARRIER:
            query = query.where(Parcel.carrier_id == actor.carrier_id)
        case Role.SHOPKEEPER:
            query = query.where(Parcel.site_id.in_(sorted(actor.site_ids)))
        case Role.PRODUCER:
            query = query.join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id).where(
                ProducerOrder.producer_id == actor.producer_id)
        case Role.RESIDENT | Role.COURIER:
            query = query.where(Parcel.id == actor.parcel_id)
        case _:
            return None
    return only_one(_locked(session, query, False), number)


def only_one(parcels: Sequence[Parcel], number: str, *, disclose: bool = True
             ) -> Parcel | None:
    """The one parcel, or None; two or more: ambiguous, refused. ``disclose``: the asker
    may see these parcels, and is told their carriers to choose from."""
    if len(parcels) > 1:
        carriers = sorted(p.carrier.code if p.carrier else "" for p in parcels)
        if not disclose:
            raise AmbiguousTrackingNumber(
                f"several carriers' parcels carry {number}: name the carrier on the label",
                tracking_number=number, carriers=[])
        raise AmbiguousTrackingNumber(
            f"{len(parcels)} parcels carry {number} (carriers: {', '.join(carriers)}); "
            "name the carrier", tracking_number=number, carriers=carriers)
    return parcels[0] if parcels else None


def require_visible(session: Session, actor: Principal, number: str, *,
                    carrier_code: str | None = None) -> Parcel:
    parcel = visible(session, actor, number, carrier_code=carrier_code)
    if parcel is None:
        raise NotFound(f"no parcel {number}")
    return parcel


def of_carrier(query: Select[Any], carrier_code: str | None) -> Select[Any]:
    """``query`` narrowed to the named carrier's parcels (None: unchanged)."""
    if carrier_code is None:
        return query
    return query.join(Carrier, Carrier.id == Parcel.carrier_id).where(
        Carrier.code == carrier_code)


def _locked(session: Session, query: Select[Any], lock: bool) -> list[Parcel]:
    query = query.options(joinedload(Parcel.carrier))
    if lock:
        query = query.with_for_update(of=Parcel)
    return list(session.scalars(query).unique().all())


def for_locker(session: Session, site_id: int, number: str, *, lock: bool = False,
               covered: Callable[[], Collection[int]] = frozenset) -> Parcel | None:
    """The parcel a locker's report names by number (a QR token, its offline journal): the
    locker has nobody to ask which carrier's, so the choice is fixed: a parcel at this site
    first, among several there one the report's credential covers (``covered``: its parcel
    ids, read only then), then the oldest; none here, the oldest elsewhere (the caller
    reports it as not here)."""
    query = numbered(number)
    parcels = list(session.scalars(query.with_for_update() if lock else query))
    here = [p for p in parcels if p.site_id == site_id]
    if len(here) > 1:
        ids = covered()
        return min(here, key=lambda p: (p.id not in ids, p.id))
    return here[0] if here else (parcels[0] if parcels else None)
