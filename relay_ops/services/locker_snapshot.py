"""A locker's state snapshot after a (re)boot or a reconnect, reconciled with what the
backend holds, and the credential version it reports.

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerEventCursor, LockerLink, OutboxMessage, Site
from relay_ops.services import locker_commands, locker_sync
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import box_of, held_in
from relay_ops.services.locker_doors import door_closed

# set by locker_events for the batch being applied: its boot, and where the cursor stands
# for the event being applied (the cursor row is written once per batch)
BOOT = "locker_events.boot_id"
APPLIED_SEQ = "locker_events.applied_seq"  # the cursor as the event being applied sees it


def state_snapshot(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """After a (re)boot or reconnect: the doors as the locker sees them, reconciled. Not while
    the locker still held entries of earlier boots when it made the snapshot: the bridge
    applies each boot apart, and those entries (offline pickups, doors opened and closed)
    happened before it. Reconciled first, a snapshot of empty doors would raise
    `parcel_not_sensed` for every parcel taken offline. The backend waits for them, then asks
    for a fresh snapshot (`ask_fresh_snapshot`) and reconciles that one."""
    reported = int(body.get("unacked_events", 0))
    boot_id: str = session.info[BOOT]
    earlier = _earlier_entries(reported, int(body.get("acked_seq", 0)),
                               session.info[APPLIED_SEQ])
    link.unacked_events = earlier
    if earlier:
        link.snapshot_waiting_boot = boot_id
        link.snapshot_waiting_until = other_boots_applied(session, site, boot_id) + earlier
    else:
        link.snapshot_waiting_boot = link.snapshot_waiting_until = None  # this one is newer
        for state in body.get("compartments", []):
            box = box_of(session, site, state["number"])
            if box is not None:
                _reconcile(ctx, session, site, link, box, state, now)
    note_credential_version(ctx, session, site, link, body.get("credential_version"))


def _earlier_entries(reported: int, acked_seq: int, cursor_seq: int) -> int:
    """Entries of earlier boots the locker still held when it made its snapshot. It counted
    every unacknowledged entry: this boot's seqs acked_seq+1 .. seq-1 (the cursor stands at
    seq-1 while the snapshot is applied: a boot's events apply in seq order) and the rest."""
    return max(0, reported - max(0, cursor_seq - acked_seq))


def other_boots_applied(session: Session, site: Site, boot_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(LockerEventCursor.applied_seq), 0))
                              .where(LockerEventCursor.site_id == site.id,
                                     LockerEventCursor.boot_id != boot_id)) or 0)


def holds_no_earlier_entries(unacked: int, seq: int, cursor: LockerEventCursor) -> bool:
    """From a heartbeat of the waiting snapshot's boot. The cursors cannot always tell that
    the earlier boots are applied (an entry applied before the snapshot was made, whose ack had
    not reached the locker yet, was counted by the snapshot and never moves a cursor again);
    the locker's own count can: `unacked` is this boot's seq - acked entries (acked <= the
    cursor) plus what is left of earlier boots."""
    return unacked - max(0, seq - cursor.applied_seq) <= 0


def ask_fresh_snapshot(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                        now: datetime) -> None:
    """The earlier boots are applied: the waiting snapshot is stale (doors used since), a new
    one tells the truth. It is resent until the locker answers (6 h); a locker that reconnects
    meanwhile sends one anyway."""
    link.snapshot_waiting_boot = link.snapshot_waiting_until = None
    locker_commands.queue_command(ctx, session, site, "request_snapshot", {}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)


def _reconcile(ctx: Ctx, session: Session, site: Site, link: LockerLink, box: Compartment,
               state: dict[str, Any], now: datetime) -> None:
    if state["door"] == "closed" and box.state == "door_open":
        # the door closed while the agent was down: what it held decides
        door_closed(ctx, session, site, link, {"compartment": box.number,
                                               "occupied": state.get("occupied")}, now, now)
        return
    if state["door"] == "open" and box.state != "door_open":
        box.opened_for = box.opened_for or "maintenance"
        if box.state != "out_of_service":
            box.state = "door_open"
        raise_alert(session, site, "door_found_open", "the locker reports this door open",
               compartment=box.number)
        return
    held = held_in(session, box)
    if state.get("occupied") is False and held is not None:
        raise_alert(session, site, "parcel_not_sensed", f"{held.tracking_number} should be inside",
               compartment=box.number, parcel=held)
    elif state.get("occupied") is True and held is None and box.state == "free":
        raise_alert(session, site, "unexpected_item", "the sensor sees something in a free door",
               compartment=box.number)


def note_credential_version(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                             held: int | None) -> None:
    link.credential_version_held = held
    if held != link.credential_version_sent and not _sync_in_flight(session, site):
        locker_sync.queue_sync(ctx, session, site, link, force_full=True)


def _sync_in_flight(session: Session, site: Site) -> bool:
    return session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.target == site.code, OutboxMessage.name == locker_sync.COMMAND_SYNC,
        OutboxMessage.status.in_(("pending", "sent", "accepted"))).limit(1)) is not None
