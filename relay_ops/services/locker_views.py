"""What operators and carriers see of a locker: its doors, its link, the commands waiting and
the open alerts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relay_ops import outbox
from relay_ops.db.models import (
    Compartment,
    LockerAlert,
    LockerEventCursor,
    LockerLink,
    OutboxMessage,
    Site,
)
from relay_ops.domain.errors import NotFound
from relay_ops.services import sites
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import (
    compartments_of,
    link_of,
    parcels_in,
    reserved_parcels,
)
from relay_ops.services.principal import Principal, Role, require_role


def compartment_view(session: Session, box: Compartment) -> dict[str, Any]:
    held, coming = parcels_in(session, box), reserved_parcels(session, box)
    parcel = next(iter(held or coming), None)
    return {
        "number": box.number, "size_class": box.size_class,
        "dims_mm": [box.height_mm, box.width_mm, box.depth_mm], "state": box.state,
        "refrigerated": box.refrigerated,
        "fault_reason": box.fault_reason,
        "reserved_until": box.reserved_until.isoformat() if box.reserved_until else None,
        "parcel": parcel.tracking_number if parcel else None,
        # numbers are unique per carrier, not network-wide: the id names the parcel
        "parcel_id": parcel.id if parcel else None,
        # a door shared by a recipient's parcels: all it holds, then those on their way
        "parcels": [p.tracking_number for p in (*held, *coming)],
        "opened_for": box.opened_for,
    }


def locker_view_in(ctx: Ctx, session: Session, site: Site) -> dict[str, Any]:
    link = link_of(session, site)
    boxes = compartments_of(session, site.id)
    pending = session.scalar(select(func.count()).where(
        OutboxMessage.kind == outbox.LOCKER_COMMAND, OutboxMessage.target == site.code,
        OutboxMessage.status.in_(("pending", "sent", "accepted")))) or 0
    alerts = session.scalars(select(LockerAlert).where(
        LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None)
    ).order_by(LockerAlert.id))
    cursor = session.scalar(select(LockerEventCursor).where(
        LockerEventCursor.site_id == site.id).order_by(LockerEventCursor.updated_at.desc(),
                                                        LockerEventCursor.id.desc()).limit(1))
    return {
        **sites.site_view(site, sites.occupancy_of(session, site)),
        "locker_model": site.locker_model,
        "link": {
            "online": link.online,
            "since": link.status_since.isoformat() if link.status_since else None,
            "last_seen_at": link.last_seen_at.isoformat() if link.last_seen_at else None,
            "boot_id": link.boot_id,
            "credential_version_sent": link.credential_version_sent,
            "credential_version_held": link.credential_version_held,
            "entries_waiting": link.unacked_events,
            "last_journal_entry": {
                "boot_id": link.last_event_boot, "seq": link.last_event_seq,
                "at": link.last_event_at.isoformat() if link.last_event_at else None,
            } if link.last_event_seq is not None else None,
            "applied": {"boot_id": cursor.boot_id, "seq": cursor.applied_seq} if cursor else None,
            "clock_skew_s": link.clock_skew_s,
        },
        "commands_waiting": int(pending),
        "compartments": [compartment_view(session, b) for b in boxes],
        "alerts": [
            {"id": a.id, "kind": a.kind, "compartment": a.compartment, "detail": a.detail,
             "at": a.created_at.isoformat(), "occurrences": a.occurrences,
             "last_seen_at": (a.last_seen_at or a.created_at).isoformat()}
            for a in alerts
        ],
    }


def locker_view(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM, Role.CARRIER)
    with ctx.db.read() as session:
        site = session.get(Site, site_id)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        view = locker_view_in(ctx, session, site)
        if actor.role is Role.CARRIER:  # carriers see doors, not the operator's alerts
            view.pop("alerts")
        return view


def fleet(ctx: Ctx) -> tuple[dict[str, int], dict[str, int]]:
    """The whole network's lockers at a glance, for the metrics: how many links are online
    and offline, and the open alerts by kind (two grouped reads, whatever the fleet's size)."""
    with ctx.db.read() as session:
        links = dict(session.execute(
            select(LockerLink.online, func.count()).join(Site, Site.id == LockerLink.site_id)
            .where(Site.kind == "locker").group_by(LockerLink.online)).all())
        alerts = dict(session.execute(
            select(LockerAlert.kind, func.count()).where(LockerAlert.resolved_at.is_(None))
            .group_by(LockerAlert.kind)).all())
    return ({"online": int(links.get(True, 0)), "offline": int(links.get(False, 0))},
            {str(kind): int(count) for kind, count in alerts.items()})
