"""A lock board silent on the bus puts the doors it failed to open out of service, with a reason
written and recognised only here; when it answers again, the doors it alone put out of service
take parcels and open again (a jammed door, a door an operator closed stay so)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, Site
from relay_ops.services import history, locker_commands, locker_compartments
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import door_alerts, resolve
from relay_ops.services.locker_door_parcels import locker_actor

BOARD_OFFLINE = "board_offline"  # why a door failed to open: its lock board does not answer


_SILENT_BOARD = f"door_failed_to_open: {BOARD_OFFLINE}"


def silent_board_reason(board: int | None) -> str:
    """The fault written on a door that failed to open because its lock board was silent:
    written and recognised only here, so that the board's recovery finds the doors it put out
    of service, and only those (a jammed door, a door an operator closed stay so)."""
    return _SILENT_BOARD if board is None else f"{_SILENT_BOARD} (board {board})"


def _silenced_by(reason: str | None, board: int | None) -> bool:
    """Out of service because this board was silent. A door whose agent did not name its
    board goes back with any board's recovery: tried again, it fails again if still silent."""
    if reason is None or not reason.startswith(_SILENT_BOARD):
        return False
    return board is None or reason in (_SILENT_BOARD, silent_board_reason(board))


def back_in_service_after_board(ctx: Ctx, session: Session, site: Site, board: int | None,
                                now: datetime) -> list[Compartment]:
    """A lock board answers again: the doors it alone put out of service take parcels and
    open again, and the locker is told as when an operator does it. A parcel that could not be
    handed over is still ready and its code still works: the resident tries again."""
    doors = [box for box in session.scalars(select(Compartment).where(
        Compartment.site_id == site.id, Compartment.state == "out_of_service",
    ).order_by(Compartment.number)) if _silenced_by(box.fault_reason, board)]
    for box in doors:
        box.state, box.fault_reason = "free", None
        locker_compartments.settle(session, box)
        resolve(door_alerts(session, site, "door_failed_to_open", box.number),
                f"board {board if board is not None else '?'} answers again", now)
        for parcel in locker_compartments.parcels_in(session, box):
            history.record(session, parcel, "door_back_in_service", parcel.state,
                           locker_actor(site), now,
                           data={"compartment": box.number, "board": board})
        locker_commands.queue_command(ctx, session, site, "set_in_service",
                                      {"compartment": box.number}, now,
                                      ttl_s=ctx.settings.locker.sync_ttl_s)
    return doors
