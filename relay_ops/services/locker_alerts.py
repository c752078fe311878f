"""What an operator must look at, raised by a locker's events: one open alert per
(locker, kind, door, parcel), counted again while it is open.

Called by the handlers of `locker_events` and by `locker_identity`, in their transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.database import session_now
from relay_ops.db.models import LockerAlert, Parcel, Site

UNEXPECTED_OPENING = "unexpected_door_opening"
BOARD_OFFLINE = "fault_board_offline"
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


def board_offline(session: Session, site: Site, board: int | None, detail: str) -> LockerAlert:
    """One open alert per silent lock board of a locker. An alert has no board column: the
    board is the head of its detail (``board 1: ...``), written and matched only here. An agent
    that does not name the board gets one locker-wide alert, as any other fault."""
    if board is None:
        return raise_alert(session, site, BOARD_OFFLINE, detail)
    now = session_now(session)
    text = f"board {board}: {detail}"[:300]
    found = board_alerts(session, site, board)
    if found:
        found[0].occurrences += 1
        found[0].last_seen_at, found[0].detail = now, text
        return found[0]
    alert = LockerAlert(site_id=site.id, kind=BOARD_OFFLINE, detail=text, last_seen_at=now,
                        occurrences=1)
    session.add(alert)
    return alert


def board_alerts(session: Session, site: Site, board: int | None) -> list[LockerAlert]:
    """The open `fault_board_offline` alerts of one board (None: of every board)."""
    query = select(LockerAlert).where(
        LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None),
        LockerAlert.kind == BOARD_OFFLINE)
    if board is not None:  # the colon keeps board 1 from matching board 10
        query = query.where(LockerAlert.detail.startswith(f"board {board}:", autoescape=True))
    return list(session.scalars(query.order_by(LockerAlert.id)))


def door_alerts(session: Session, site: Site, kind: str, compartment: int) -> list[LockerAlert]:
    """The open alerts of one kind at one door (whatever parcel they name)."""
    return list(session.scalars(select(LockerAlert).where(
        LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None),
        LockerAlert.kind == kind, LockerAlert.compartment == compartment,
    ).order_by(LockerAlert.id)))


def resolve(alerts: list[LockerAlert], why: str, now: datetime) -> None:
    """Resolved by the locker itself (a board answers again): when, and why, on the alert."""
    for alert in alerts:
        alert.resolved_at = now
        alert.detail = f"{alert.detail} / resolved: {why}"[:300]


def _is(column: Any, value: int | None) -> Any:
    return column.is_(None) if value is None else column == value
