"""What a locker reports going wrong (a door left open, a door that did not open, a fault)
and its answers to commands (`cmd_result`, `sync_ack`).

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from firmware_bridge.protocol import STALE_COUNTER
from relay_ops.db.models import LockerLink, OutboxMessage, Site
from relay_ops.services import history, locker_commands, locker_compartments, locker_sync
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import board_alerts, board_offline, raise_alert, resolve
from relay_ops.services.locker_board_recovery import (
    BOARD_OFFLINE,
    back_in_service_after_board,
    silent_board_reason,
)
from relay_ops.services.locker_door_parcels import box_of, held_in, locker_actor, session_actor


def door_left_open(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   body: dict[str, Any], ts: datetime, now: datetime) -> None:
    raise_alert(session, site, "door_left_open",
           f"open for {body['open_seconds']} s (opened for {body.get('opened_for') or '?'})",
           compartment=body["compartment"])


def door_failed_to_open(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                        body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """The parcel stays where it is (ready stays ready); the door goes out of service and no
    other door is opened in its place: a person decides what happens next."""
    box = box_of(session, site, body["compartment"])
    if box is None:
        return
    reason = (silent_board_reason(body.get("board")) if body.get("reason") == BOARD_OFFLINE
              else f"door_failed_to_open: {body.get('reason', '')}"[:200])
    box.state, box.fault_reason, box.opened_for = "out_of_service", reason, None
    raise_alert(session, site, "door_failed_to_open", reason, compartment=box.number,
           parcel=held_in(session, box) or locker_compartments.reserved_parcel(session, box))
    waiting = locker_compartments.reserved_parcels(session, box)
    if waiting and locker_compartments.is_advance_reservation(box):
        locker_sync.queue_sync(ctx, session, site, link, released=[
            locker_sync.deposit_reservation_id(reserved, box) for reserved in waiting])
    for reserved in waiting:  # a deposit that could not happen: the carrier keeps the parcel
        reserved.compartment_id = None
        history.record(session, reserved, "deposit_not_made", reserved.state,
                       session_actor(session, box, site), now,
                       reason="the door did not open", data={"compartment": box.number})
    if waiting:
        box.reserved_session_id, box.reserved_until = None, None
    held = held_in(session, box)
    if held is not None:
        history.record(session, held, "door_failed_to_open", held.state, locker_actor(site),
                       now, data={"compartment": box.number})
    locker_commands.queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": box.number, "reason": reason}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)


def fault(ctx: Ctx, session: Session, site: Site, link: LockerLink, body: dict[str, Any],
          ts: datetime, now: datetime) -> None:
    code = body["code"]
    if code == "door_jammed":  # follows door_failed_to_open, which already raised its alert
        return
    if code == BOARD_OFFLINE:
        board_offline(session, site, body.get("board"), body.get("detail") or code)
    elif code == "board_recovered":
        _board_recovered(ctx, session, site, body.get("board"), body.get("detail") or code, now)
    else:
        raise_alert(session, site, f"fault_{code}"[:40], body.get("detail") or code,
               compartment=body.get("compartment"))


def _board_recovered(ctx: Ctx, session: Session, site: Site, board: int | None, detail: str,
                     now: datetime) -> None:
    """Not an alert of its own: the end of the board's `fault_board_offline` alert, and of the
    doors it put out of service (`locker_board_recovery.back_in_service_after_board`)."""
    resolve(board_alerts(session, site, board), detail, now)
    back_in_service_after_board(ctx, session, site, board, now)


def cmd_result(ctx: Ctx, session: Session, site: Site, link: LockerLink, body: dict[str, Any],
               ts: datetime, now: datetime) -> None:
    row = session.scalar(select(OutboxMessage).where(OutboxMessage.corr_id == body["corr_id"]))
    if row is None or row.status in ("done", "failed", "superseded"):
        return
    status = body["status"]
    if status == "accepted":
        row.status = "accepted"
        return
    if status == "failed" and body.get("reason") == STALE_COUNTER:
        # The locker had passed its counter (published out of order): not handled, so it goes
        # out again under a new counter.
        row.status = "pending"
        return
    row.status = "done" if status == "done" else "failed"
    row.last_error = body.get("reason")
    if status == "failed" and row.name == locker_commands.COMMAND_OPEN:
        _open_failed(session, site, row, body.get("reason") or "", now)
    if status == "failed" and row.name == locker_sync.COMMAND_SYNC:
        locker_sync.queue_sync(ctx, session, site, link, force_full=True)


def _open_failed(session: Session, site: Site, row: OutboxMessage, reason: str,
                 now: datetime) -> None:
    """An opening refused before acting (expired, out of service...): a deposit did not
    happen, the reservation goes back to the pool while the session lasts."""
    command = row.payload["body"]
    if command.get("purpose") != "deposit" or reason == "door_failed_to_open":
        return
    box = box_of(session, site, command["compartment"])
    if box is None or box.state != "reserved" or locker_compartments.is_advance_reservation(box):
        return  # a door reserved in advance stays so: the carrier may come back, or offline
    parcel = locker_compartments.reserved_parcel(session, box)
    if parcel is not None:
        parcel.compartment_id = None
        history.record(session, parcel, "deposit_not_made", parcel.state,
                       session_actor(session, box, site), now,
                       reason=f"the locker did not open: {reason}",
                       data={"compartment": box.number})
    box.reserved_until, box.reserved_session_id = None, None
    locker_compartments.settle(session, box)  # free, or back to holding the recipient's parcels


def sync_ack(ctx: Ctx, session: Session, site: Site, link: LockerLink, body: dict[str, Any],
             ts: datetime, now: datetime) -> None:
    link.credential_version_held = body.get("version")
