"""Carriers' drop-off sessions at a locker: opened, a parcel scanned into the smallest free
door that takes it (or rerouted when the locker is full), closed or timed out; and the sweep
that times sessions out and keeps the reservations made ahead up to date."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Compartment, LockerSession, Parcel, Site
from relay_ops.domain import tracking
from relay_ops.domain.errors import (
    DomainError,
    InvalidTransition,
    NotFound,
    WrongSite,
)
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, numbers, reroute_at_site
from relay_ops.services.context import Ctx
from relay_ops.services.locker_commands import open_door
from relay_ops.services.locker_compartments import (
    FULL,
    ParcelDoesNotFit,
    allocate,
    has_room,
    link_of,
    locked_locker,
    reserved_parcel,
    settle,
    shares_with,
)
from relay_ops.services.locker_reservations import (
    lockers_with_advance_work,
    release_lapsed_reservations,
    reserve_ahead,
)
from relay_ops.services.locker_sync import queue_sync
from relay_ops.services.principal import SYSTEM, Principal, Role, require_role


class SessionClosed(DomainError):
    slug = "session-closed"
    title = "The drop-off session is over; open a new one"


def session_view(row: LockerSession) -> dict[str, Any]:
    return {"id": row.id, "site_id": row.site_id, "status": row.status,
            "opened_at": row.opened_at.isoformat(), "expires_at": row.expires_at.isoformat(),
            "closed_at": row.closed_at.isoformat() if row.closed_at else None,
            "collect_queue": list(row.collect_queue or [])}


def open_session(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """A carrier starts working at a locker."""
    require_role(actor, Role.CARRIER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = locked_locker(session, site_id)
        row = LockerSession(site_id=site.id, carrier_id=actor.carrier_id, status="open",
                            opened_at=now, expires_at=_session_deadline(ctx, now),
                            collect_queue=[])
        session.add(row)
        session.flush()
        return session_view(row)


def _session_deadline(ctx: Ctx, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.locker.session_timeout_s)


def open_session_for(
    ctx: Ctx, session: Session, actor: Principal, session_id: int, now: datetime
) -> tuple[LockerSession, Site]:
    require_role(actor, Role.CARRIER)
    row = session.get(LockerSession, session_id)
    if row is None or row.carrier_id != actor.carrier_id:
        raise NotFound(f"no drop-off session {session_id}")
    site = locked_locker(session, row.site_id)
    session.refresh(row)  # re-read under the locker's lock
    if row.status != "open" or row.expires_at <= now:
        state = row.status if row.status != "open" else "timed out"
        raise SessionClosed(f"drop-off session {session_id} is {state}")
    row.expires_at = _session_deadline(ctx, now)  # activity keeps it alive
    return row, site


def deposit(ctx: Ctx, actor: Principal, session_id: int, tracking_number: str
            ) -> dict[str, Any]:
    """The carrier scans a parcel at the locker: the smallest free fitting compartment is
    reserved and its door opened. When the locker is full (for this parcel), the parcel is
    rerouted to the nearest locker with room, else the nearest shop with a free place
    (:func:`reroute_at_site.full_at_drop_off`), and the answer names it; when there is none, or the
    parcel fits no compartment of this locker at all, it is refused and stays with the
    carrier."""
    number = tracking.validate(tracking_number)
    now = ctx.now()
    refusal: DomainError | None = None
    with ctx.db.transaction() as session:
        row, site = open_session_for(ctx, session, actor, session_id, now)
        # The session's carrier's own number only: another carrier's is never read.
        parcel = numbers.carriers_parcel(session, row.carrier_id, number, lock=True)
        if parcel is None or parcel.carrier_id != actor.carrier_id \
                or parcel.direction == "outbound":  # a sender's: its drop-off code opens it
            raise NotFound(f"no parcel {number} announced by you")
        if parcel.site_id != site.id:
            # the parcel's address, not the request, refuses it: as at a counter (409)
            raise WrongSite(f"{number} is addressed to {parcel.site.code}, not {site.code}",
                            destination=parcel.site.code, destination_name=parcel.site.name)
        if parcel.state != State.ANNOUNCED.value:
            raise InvalidTransition(f"{number} is {parcel.state}", state=parcel.state)
        if parcel.compartment_id is not None:  # scanned twice: the same door, opened again
            box = session.get(Compartment, parcel.compartment_id)
            assert box is not None
            open_door(ctx, session, site, box, "deposit", parcel, now)
            return _deposit_answer(row, parcel, box, "door_opening")
        box, reason = allocate(ctx, session, site, parcel)
        if box is None and reason.startswith(FULL):
            moved = reroute_at_site.full_at_drop_off(
                ctx, session, parcel, site, actor,
                lambda other: has_room(ctx, session, other, parcel),
            )
            if moved is not None:
                return {"status": "rerouted", "session_id": row.id,
                        "tracking_number": parcel.tracking_number, "reason": reason,
                        "rerouted_to": moved}
        if box is None:
            # Full: the same fact as a full counter's refusal, and the forecast counts the
            # parcel back on the next round (`forecast._announced`); a parcel that fits no
            # door of this locker will not come back here.
            action = history.CHECK_IN_REFUSED if reason.startswith(FULL) else "locker_refused"
            history.record(session, parcel, action, parcel.state, actor, now,
                           reason=reason, data={"locker": site.code})
            refusal = ParcelDoesNotFit(reason, tracking_number=number)
        else:
            data: dict[str, Any] = {"locker": site.code, "compartment": box.number}
            if shared := shares_with(session, box):
                data["shared_with"] = shared
            box.state, box.reserved_until = "reserved", row.expires_at
            box.reserved_session_id = row.id
            parcel.compartment_id = box.id
            history.record(session, parcel, "compartment_reserved", parcel.state, actor, now,
                           data=data)
            open_door(ctx, session, site, box, "deposit", parcel, now)
            return _deposit_answer(row, parcel, box, "door_opening")
    # the refusal's event is committed; only now is it reported
    assert refusal is not None
    raise refusal


def _deposit_answer(row: LockerSession, parcel: Parcel, box: Compartment, status: str
                    ) -> dict[str, Any]:
    return {"status": status, "session_id": row.id, "tracking_number": parcel.tracking_number,
            "compartment": box.number, "size_class": box.size_class}


def close_session(ctx: Ctx, actor: Principal, session_id: int) -> dict[str, Any]:
    """The carrier is done: reservations whose door was never opened go back to the pool."""
    require_role(actor, Role.CARRIER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        row = session.get(LockerSession, session_id)
        if row is None or row.carrier_id != actor.carrier_id:
            raise NotFound(f"no drop-off session {session_id}")
        locked_locker(session, row.site_id)
        if row.status == "open":
            _end_session(session, row, "closed", actor, now)
        return session_view(row)


def _end_session(session: Session, row: LockerSession, status: str, actor: Principal,
                 now: datetime) -> int:
    row.status, row.closed_at, row.collect_queue = status, now, []
    released = 0
    for box in session.scalars(select(Compartment).where(
            Compartment.reserved_session_id == row.id, Compartment.state == "reserved")):
        parcel = reserved_parcel(session, box)
        if parcel is not None:
            parcel.compartment_id = None
            history.record(session, parcel, "reservation_released", parcel.state, actor, now,
                           reason=f"drop-off session {status}", data={"compartment": box.number})
        box.reserved_until, box.reserved_session_id = None, None
        settle(session, box)  # free, or back to holding the parcels it shares
        released += 1
    return released


def expire_stale_reservations(ctx: Ctx) -> int:
    """Time out idle drop-off sessions and free what they held; release advance reservations
    past their time and reserve for parcels whose expected day came near. Safe to run
    anywhere, often (the jobs runner schedules it). Returns how many compartments were
    released."""
    now = ctx.now()
    with ctx.db.read() as session:
        stale = list(session.scalars(select(LockerSession.id).where(
            LockerSession.status == "open", LockerSession.expires_at <= now)))
        ahead = lockers_with_advance_work(ctx, session, now)
    released = 0
    for session_id in stale:
        with ctx.db.transaction() as session:
            row = session.get(LockerSession, session_id)
            assert row is not None
            locked_locker(session, row.site_id)
            session.refresh(row)
            if row.status == "open" and row.expires_at <= now:  # re-checked under the lock
                released += _end_session(session, row, "timed_out", SYSTEM, now)
    for site_id in ahead:
        with ctx.db.transaction() as session:
            site = locked_locker(session, site_id)
            lapsed = release_lapsed_reservations(session, site, now)
            added = reserve_ahead(ctx, session, site, now)
            if lapsed or added:
                queue_sync(ctx, session, site, link_of(session, site), reservations=added,
                           released=lapsed)
            released += len(lapsed)
    return released
