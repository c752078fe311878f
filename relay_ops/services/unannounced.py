"""Parcels nobody announced, scanned at the counter: they wait on the shop's list until the
shopkeeper checks them in or sets them aside."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from relay_ops.db.models import (
    Parcel,
    UnannouncedScan,
)
from relay_ops.domain import tracking
from relay_ops.services.context import Ctx
from relay_ops.services.parcel_views import site_for_staff
from relay_ops.services.principal import (
    Principal,
)


def hold_unannounced(ctx: Ctx, actor: Principal, site_id: int, tracking_number: str) -> None:
    """A parcel nobody announced was scanned at the counter: it waits on the shop's list
    until the shopkeeper accepts it (a check-in) or sets it aside. Scanning it again keeps
    one entry."""
    number = tracking.validate(tracking_number)
    with ctx.db.transaction() as session:
        site = site_for_staff(session, actor, site_id, lock=True)  # serialises two scans
        if session.get(UnannouncedScan, (site.id, number)) is None:
            session.add(UnannouncedScan(site_id=site.id, tracking_number=number,
                                        scanned_by=actor.user_id))


def unannounced_waiting(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """The shop's parcels nobody announced that wait for a decision, oldest first. One a
    carrier has announced to this shop since (or that was checked in through the API) is no
    longer waiting: scanning it again checks it in. A parcel under the same number elsewhere
    does not count: numbers are unique per carrier, it may be another carrier's
    (docs/decisions/0007-tracking-numbers-per-carrier.md)."""
    with ctx.db.read() as session:
        site = site_for_staff(session, actor, site_id, lock=False)
        rows = session.execute(
            select(UnannouncedScan.tracking_number, UnannouncedScan.scanned_at)
            .where(UnannouncedScan.site_id == site.id,
                   ~select(Parcel.id).where(
                       Parcel.tracking_number == UnannouncedScan.tracking_number,
                       Parcel.site_id == UnannouncedScan.site_id).exists())
            .order_by(UnannouncedScan.scanned_at, UnannouncedScan.tracking_number)
        ).all()
    return [{"tracking_number": n, "scanned_at": at.isoformat()} for n, at in rows]


def set_aside_unannounced(ctx: Ctx, actor: Principal, site_id: int, tracking_number: str) -> None:
    """The shopkeeper does not take it (the driver takes it back): off the list."""
    number = tracking.validate(tracking_number)
    with ctx.db.transaction() as session:
        site = site_for_staff(session, actor, site_id, lock=False)
        session.execute(delete(UnannouncedScan).where(
            UnannouncedScan.site_id == site.id, UnannouncedScan.tracking_number == number))
