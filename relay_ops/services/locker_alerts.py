"""What an operator must look at, raised by a locker's events: one open alert per
(locker, kind, door, parcel), counted again while it is open.

Called by the handlers of `locker_events` and by `locker_identity`, in their transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.database import session_now
from relay_ops.db.models import (
    LockerAlert,
    Parcel,
    Site,
)

UNEXPECTED_OPENING = "unexpected_door_opening"
OPEN_ALERTS = "locker_events.open_alerts"  # open alerts found or raised in this transaction


def raise_alert(session: Session, site: Site, kind: str, detail: str, *,
           compartment: int | None = None, parcel: Parcel | None = None) -> LockerAlert:
    """One open alert per (locker, kind, door, parcel): a repeat while it is open (a snapshot
    every few minutes seeing the same parcel missing) counts on it instead of adding one."""
    parcel_id = parcel.id if parcel else None
    now = session_now(session)
    # A batch of events often raises the same alert again (a fault repeated, a snapshot):
    # found once per transaction, then counted in memory and written with the commit.
    known: dict[tuple[Any, ...], LockerAlert] = session.info.setdefault(OPEN_ALERTS, {})
    key = (site.id, kind, compartment, parcel_id)
    open_alert = known.get(key)
    if open_alert is None or open_alert.resolved_at is not None:
        # No flush first: what this transaction raised is in `known` (every alert is raised
        # here), and the new ones of a batch go out together in one multi-row INSERT.
        with session.no_autoflush:
            open_alert = session.scalar(select(LockerAlert).where(
                LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None),
                LockerAlert.kind == kind, _is(LockerAlert.compartment, compartment),
                _is(LockerAlert.parcel_id, parcel_id),
            ).limit(1))
    if open_alert is not None and open_alert.resolved_at is None:
        open_alert.occurrences += 1
        open_alert.last_seen_at, open_alert.detail = now, detail[:300]
        known[key] = open_alert
        return open_alert
    alert = LockerAlert(site_id=site.id, kind=kind, detail=detail[:300], compartment=compartment,
                        parcel_id=parcel_id, last_seen_at=now, occurrences=1)
    session.add(alert)
    known[key] = alert
    return alert


def alert_on(session: Session, site: Site, kind: str, detail: str) -> LockerAlert:
    """A locker-wide alert (no door, no parcel), counted on the open one of its kind."""
    return raise_alert(session, site, kind, detail)


def _is(column: Any, value: int | None) -> Any:
    return column.is_(None) if value is None else column == value
