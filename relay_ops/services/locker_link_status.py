"""A locker's link as its own messages keep it (protocol v1, sections 6 and 9.6): a heartbeat
refreshes the link, notes the clock's skew and reveals a lost tail of events; the retained
online/offline status (the last will says offline) sets it online or offline; back online
after an outage, residents' deadlines move by the outage's length."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import LockerLink, Parcel, Site
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, locker_compartments, locker_sync
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import locker_actor
from relay_ops.services.locker_events import Applied, event_cursor, locker_for_events
from relay_ops.services.locker_snapshot import (
    ask_fresh_snapshot,
    holds_no_earlier_entries,
    note_credential_version,
)

log = logging.getLogger(__name__)

CLOCK_DRIFT_ALERT_S = 30


def heartbeat(ctx: Ctx, locker: str, boot_id: str, seq: int, body: dict[str, Any],
              ts: datetime) -> Applied:
    """Not journaled: it refreshes the link and reveals a lost tail (seq above the cursor)."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = locker_for_events(session, locker)
        if site is None:
            return Applied("unknown_locker", 0)
        link = locker_compartments.link_of(session, site)
        came_online = not link.online
        if came_online:
            # Its retained "online" never reached us (a broker drops what overflows a
            # subscriber's queue, as when a whole fleet reconnects at once), yet it speaks
            # now. Heartbeats come in the order statuses do: one sent before a will is
            # delivered before it, so this never revives a locker that died after it.
            log.warning("%s: heartbeat while marked offline; its online status was lost",
                        locker)
            _now_online(ctx, session, site, link, now)
        link.last_seen_at = now
        _note_clock_skew(session, site, link, ts, now)
        link.unacked_events = int(body.get("unacked_events", 0))
        note_credential_version(ctx, session, site, link, body.get("credential_version"))
        cursor = event_cursor(session, site, boot_id)
        if link.snapshot_waiting_boot == boot_id and holds_no_earlier_entries(
                int(body.get("unacked_events", 0)), seq, cursor):
            ask_fresh_snapshot(ctx, session, site, link, now)
        if seq > cursor.applied_seq:
            return Applied("gap", cursor.applied_seq, (cursor.applied_seq + 1, seq),
                           came_online=came_online)
        return Applied("duplicate", cursor.applied_seq, came_online=came_online)


def _note_clock_skew(session: Session, site: Site, link: LockerLink, sent: datetime,
                     received: datetime) -> None:
    """From a heartbeat: sent live, never replayed, its `ts` is the locker's clock at sending
    (a journaled event's `ts` is when it happened, maybe hours ago). Beyond the commands'
    tolerance the locker would refuse fresh commands as expired: an alert."""
    skew = (received - sent).total_seconds()
    link.clock_skew_s = round(skew, 3)
    if abs(skew) > CLOCK_DRIFT_ALERT_S:
        raise_alert(session, site, "clock_drift", f"locker clock is {-skew:+.0f} s off")


def status_changed(ctx: Ctx, locker: str, state: str, ts: datetime) -> bool:
    """Retained online/offline status (the last will says offline), applied in the order the
    broker delivers them (one topic: in order). Not by `ts`: a will's `ts` is the time its
    connection was made, older than the "online" it overrides."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = locker_for_events(session, locker)
        if site is None:
            return False
        link = locker_compartments.link_of(session, site)
        if state == "online":
            _now_online(ctx, session, site, link, now)
        elif link.online or link.status_since is None:
            link.online, link.status_since = False, now
        link.status_ts = ts
        return True


def _now_online(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                now: datetime) -> None:
    if not link.online and link.status_since is not None:
        _outage_credit(ctx, session, site, link, now - link.status_since, now)
    if not link.online or link.status_since is None:
        link.status_since = now
    link.online, link.last_seen_at = True, now


def _outage_credit(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   outage: timedelta, now: datetime) -> None:
    """Protocol 9.6: residents lose no pickup days to a locker's outage. The deadline moves by
    the outage's length; it is not the parcel's one extension."""
    minimum = ctx.settings.locker.outage_credit_min_s
    if minimum <= 0 or outage.total_seconds() < minimum:
        return
    credited = []
    for parcel in session.scalars(select(Parcel).where(
            Parcel.site_id == site.id, Parcel.state == State.READY_FOR_PICKUP.value,
            Parcel.holding_deadline.is_not(None)).with_for_update()):
        assert parcel.holding_deadline is not None
        before = parcel.holding_deadline
        parcel.holding_deadline = before + outage
        history.record(session, parcel, "outage_credit", parcel.state, locker_actor(site), now,
                       reason=f"locker offline for {int(outage.total_seconds())} s",
                       data={"from": before.isoformat(),
                             "to": parcel.holding_deadline.isoformat()})
        credited.append(parcel)
    if credited:  # the locker's PINs carry the deadline too
        locker_sync.queue_sync(ctx, session, site, link, force_full=True)
