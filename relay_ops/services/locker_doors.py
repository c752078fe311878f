"""Doors opening and closing (protocol 8): a deposit, a pickup or a collection is recorded
when its door closes, with what the door held.

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Compartment,
    LockerLink,
    LockerSession,
    OutboxMessage,
    Parcel,
    ParcelEvent,
    PickupCredential,
    Site,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import (
    history,
    locker_collection,
    locker_commands,
    locker_compartments,
    locker_sending,
    locker_sync,
    locker_take_back,
    locker_tokens,
    notify,
)
from relay_ops.services.checkin_grouping import Group, join_group
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import UNEXPECTED_OPENING, door_alerts, raise_alert, resolve
from relay_ops.services.principal import Principal, Role


def locker_actor(site: Site) -> Principal:
    return Principal(Role.LOCKER, name=f"locker:{site.code}")


def box_of(session: Session, site: Site, number: int) -> Compartment | None:
    return locker_compartments.compartment(session, site.id, number)


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


def door_opened(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = box_of(session, site, body["compartment"])
    if box is None:
        return
    purpose = body.get("purpose")
    if purpose is None and body.get("credential_id") is None:
        _unexpected_opening(session, site, box)
        purpose = "maintenance"
    if box.state != "out_of_service":
        box.state = "door_open"
    box.opened_for, box.door_opened_at = purpose, ts


def _unexpected_opening(session: Session, site: Site, box: Compartment) -> None:
    """A door the locker opened for no command and no credential (forced, a manual key, a
    board obeying someone else): an alarm at once, naming what was inside. Offline, it comes
    with the first batch the locker replays."""
    inside = locker_compartments.parcels_in(session, box)
    names = ", ".join(p.tracking_number for p in inside) or "nothing"
    raise_alert(session, site, UNEXPECTED_OPENING,
           f"door {box.number} opened with no command or credential; inside: {names}",
           compartment=box.number, parcel=inside[0] if inside else None)


def door_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = box_of(session, site, body["compartment"])
    if box is None:
        return
    purpose = body.get("opened_for") or box.opened_for
    occupied: bool | None = body.get("occupied")
    box.opened_for, box.door_opened_at = None, None
    if purpose == "deposit":
        _deposit_closed(ctx, session, site, link, box, occupied, body.get("credential_id"), now,
                        body.get("corr_id"))
    elif purpose == "pickup":
        _pickup_closed(ctx, session, site, link, box, occupied, body.get("credential_id"), now)
    elif purpose == "collection":
        _collection_closed(ctx, session, site, link, box, occupied, body.get("credential_id"),
                           now)
    else:
        locker_compartments.settle(session, box)
        if occupied is True and held_in(session, box) is None:
            raise_alert(session, site, "unexpected_item", "a door closed on something the backend "
                   "does not know of", compartment=box.number)


def held_in(session: Session, box: Compartment) -> Parcel | None:
    return locker_compartments.parcel_in(session, box)


def session_actor(session: Session, box: Compartment, site: Site,
                   parcel: Parcel | None = None) -> Principal:
    """The carrier whose session holds the door; for a door reserved in advance, the
    parcel's carrier (who typed its code, or scanned in its app)."""
    row = session.get(LockerSession, box.reserved_session_id) if box.reserved_session_id else None
    if row is not None:
        return Principal(Role.CARRIER, carrier_id=row.carrier_id)
    if parcel is not None and parcel.carrier_id is not None:
        return Principal(Role.CARRIER, carrier_id=parcel.carrier_id)
    return locker_actor(site)


def _opened_for_parcel(session: Session, box: Compartment, corr_id: str | None,
                       credential_id: str | None) -> Parcel | None:
    """The parcel a deposit opening was for: named by the open command the door answers
    (online), or by the reservation the locker used (offline, ``dep-<parcel id>-...``); a door
    reserved ahead for several of a recipient's parcels needs to know which went in. Without
    either (an older agent), the first parcel on its way to the door."""
    waiting = locker_compartments.reserved_parcels(session, box)
    ref: str | int | None = None
    if corr_id:
        row = session.scalar(select(OutboxMessage).where(OutboxMessage.corr_id == corr_id))
        ref = row.payload["body"].get("parcel_ref") if row is not None else None
    elif credential_id and credential_id.startswith("dep-"):
        ref = int(credential_id.split("-")[1]) if credential_id.split("-")[1].isdigit() else None
    named = next((p for p in waiting if ref in (p.tracking_number, p.id)), None)
    return named or (waiting[0] if waiting else None)


def _deposit_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                    box: Compartment, occupied: bool | None, credential_id: str | None,
                    now: datetime, corr_id: str | None = None) -> None:
    parcel = _opened_for_parcel(session, box, corr_id, credential_id)
    actor = session_actor(session, box, site, parcel)
    if parcel is None:
        locker_compartments.settle(session, box)
        return
    sharing = locker_compartments.parcels_in(session, box)  # the recipient's parcels already inside
    if occupied is False:
        # The door closed on nothing: the deposit did not happen, the parcel is still in the
        # carrier's hands. The door stays reserved for it while the session lasts.
        history.record(session, parcel, "deposit_not_made", parcel.state, actor, now,
                       reason="the door closed with the compartment empty",
                       data={"compartment": box.number})
        box.state = "reserved"
        for gone in sharing:
            raise_alert(session, site, "parcel_not_sensed", f"{gone.tracking_number} should be "
                   "inside", compartment=box.number, parcel=gone)
        return
    # Protocol 9.5: a deposit the locker decided alone happened at its `verified_at`.
    verified_at = offline_verification(session, parcel, credential_id,
                                        "offline_deposit_verified")
    at = verified_at or now
    offline = {"offline": True, "received_at": now.isoformat()} if verified_at else {}
    if parcel.direction == "outbound":  # a sender's parcel, in with its drop-off code
        locker_sending.sent_parcel_deposited(
            ctx, session, site, link, parcel, box, locker_actor(site), at,
            {"locker": site.code, "compartment": box.number, **offline})
        return
    # The season's and the load's rule, as at a counter (docs/forecast.md), or a producer's
    # perishable order's hours.
    parcel.checked_in_at = at
    parcel.holding_deadline, rule = locker_sending.locker_deadline(ctx, session, site, parcel, at)
    data: dict[str, Any] = {
        "locker": site.code, "compartment": box.number,
        "deadline": parcel.holding_deadline.isoformat(), **rule,
        # a door already holding parcels is sensed occupied whether this one went in or not
        "occupancy_sensed": occupied is not None and not sharing,
    }
    if sharing:
        data["shared_with"] = [p.tracking_number for p in sharing]
    data.update(offline)
    history.apply(session, parcel, Action.CHECK_IN, actor, at, data=data)
    # the locker forgets the advance reservation the deposit used (the door is taken)
    released = ([locker_sync.deposit_reservation_id(parcel, box)]
                if locker_compartments.is_advance_reservation(box) else [])
    if locker_compartments.reserved_parcels(session, box):
        box.state = "reserved"  # another of the recipient's parcels is still on its way here
    else:
        box.state, box.reserved_until, box.reserved_session_id = "occupied", None, None
    keys = locker_compartments.recipient_keys_of(ctx, parcel)
    parcel.recipient_phone_key, parcel.recipient_email_key = keys.phone, keys.email
    credential = _join_door_code(ctx, session, parcel, sharing, actor, at) \
        or locker_tokens.issue_locker_credential(ctx, session, parcel)
    notify.queue(session, parcel, "ready")  # sent now, at reconciliation, once
    locker_sync.queue_sync(ctx, session, site, link, added=[credential], released=released)


def _join_door_code(ctx: Ctx, session: Session, parcel: Parcel, sharing: list[Parcel],
                    actor: Principal, at: datetime) -> PickupCredential | None:
    """A parcel laid on the recipient's parcels in a door joins their code, and the door's
    parcels keep one deadline, the latest: they leave together, by the resident's hand or the
    carrier's, and no parcel's deadline is ever shortened (docs/forecast.md). None when the
    code they had is gone (used, revoked, locked): the parcel gets one of its own."""
    codes = {c.id: c for p in sharing for c in live_credentials_of(session, p)
             if c.holder == "recipient" and c.locked_at is None and c.token_jti}
    if not codes:
        return None
    credential = codes[min(codes)]
    ready = [p for p in sharing if p.state == State.READY_FOR_PICKUP.value]
    join_group(session, Group(credential, ready), parcel, at)
    together = [*sharing, parcel]
    deadline = max(p.holding_deadline for p in together if p.holding_deadline is not None)
    for other in together:
        if other.holding_deadline is not None and other.holding_deadline < deadline:
            history.record(session, other, "deadline_extended", other.state, actor, at,
                           reason=f"shares its locker door with {parcel.tracking_number}",
                           data={"from": other.holding_deadline.isoformat(),
                                 "to": deadline.isoformat()})
            other.holding_deadline = deadline
    return credential


def _pickup_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   box: Compartment, occupied: bool | None, credential_id: str | None,
                   now: datetime) -> None:
    inside = locker_compartments.parcels_in(session, box)
    if not inside:
        locker_compartments.settle(session, box)
        return
    ready = [p for p in inside if p.state == State.READY_FOR_PICKUP.value]
    # a door shared by one recipient's parcels is opened by their one code; the damaged one
    # beside a ready one waits for its carrier
    taken = _taken(inside, ready, occupied)
    if not taken:
        for parcel in inside:
            raise_alert(session, site, "parcel_left_behind", f"{parcel.tracking_number} is still "
                   "inside after a pickup", compartment=box.number, parcel=parcel)
            history.record(session, parcel, "left_behind", parcel.state, locker_actor(site),
                           now, data={"compartment": box.number})
        box.state = "occupied"
        return
    verified_at = _opening_verified_at(session, inside, credential_id,
                                       "offline_pickup_verified")
    removed: list[PickupCredential] = []
    for parcel in taken:
        removed += _record_pickup(ctx, session, site, link, parcel, box, credential_id,
                                  verified_at or now, received_at=now if verified_at else None)
    locker_compartments.settle(session, box)
    if box.fault_reason:
        box.state = "out_of_service"
    locker_sync.queue_sync(ctx, session, site, link, removed=removed)


def _taken(inside: list[Parcel], meant: list[Parcel], occupied: bool | None) -> list[Parcel]:
    """What left a door with one opening (pickup or collection). Closed empty, or without a
    sensor: everything it held. Still occupied: the parcels the opening was ``meant`` for,
    when others stayed behind them (a door shared by a ready parcel and one due back);
    otherwise nothing, they were left behind."""
    if occupied is not True:
        return inside
    return meant if len(meant) < len(inside) else []


def _opening_verified_at(session: Session, inside: list[Parcel], credential_id: str | None,
                         action: str) -> datetime | None:
    """When the locker decided an opening alone: its use was journaled on the one parcel
    its credential names, and dates the opening for every parcel the door held."""
    return next((v for p in inside
                 if (v := offline_verification(session, p, credential_id, action))), None)


def offline_verification(session: Session, parcel: Parcel, credential_id: str | None,
                          action: str = "offline_pickup_verified") -> datetime | None:
    """When the locker decided this use alone: it happened at `verified_at`, the locker's
    time (protocol 9.1, 9.5), not when the backend heard of it."""
    if credential_id is None:
        return None
    for event in session.scalars(select(ParcelEvent).where(
            ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == action
    ).order_by(ParcelEvent.id.desc())):
        if event.data.get("credential") == credential_id:
            return datetime.fromisoformat(event.data["verified_at"])
    return None


def _record_pickup(ctx: Ctx, session: Session, site: Site, link: LockerLink, parcel: Parcel,
                   box: Compartment, credential_id: str | None, at: datetime, *,
                   received_at: datetime | None = None) -> list[PickupCredential]:
    """The parcel left the door it was in; returns the credentials that died with it (the
    caller syncs them and settles the door)."""
    live = live_credentials_of(session, parcel)
    used = credential_by_ref(session, credential_id) if credential_id else None
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number,
                            "credential": credential_id}
    if received_at is not None:
        data.update(offline=True, received_at=received_at.isoformat())
    if parcel.holding_deadline is not None and at > parcel.holding_deadline:
        data["late"] = True  # protocol 9.1: accepted, not expired retroactively
    if parcel.state != State.READY_FOR_PICKUP.value:
        # protocol 9.2: the parcel is physically gone whatever the backend thought
        raise_alert(session, site, "pickup_of_unavailable_parcel",
               f"{parcel.tracking_number} was {parcel.state} when it was taken",
               compartment=box.number, parcel=parcel)
        history.record(session, parcel, "taken_while_" + parcel.state, parcel.state,
                       locker_actor(site), at, data=data)
    else:
        history.apply(session, parcel, Action.PICK_UP, locker_actor(site), at, data=data)
        notify.queue(session, parcel, "picked_up")
    for credential in live:
        if credential is used or (used is None and credential.holder == "recipient"):
            credential.used_at = at
        else:
            credential.revoked_at = at
    parcel.compartment_id = None
    return live


def live_credentials_of(session: Session, parcel: Parcel) -> list[PickupCredential]:
    from relay_ops.services.credentials import live_credentials

    return live_credentials(session, parcel.id)


def credential_by_ref(session: Session, ref: str) -> PickupCredential | None:
    """A protocol credential id: ``pin-<id>`` for a PIN, the token's jti for a QR code."""
    if ref.startswith("pin-") and ref[4:].isdigit():
        return session.get(PickupCredential, int(ref[4:]))
    return session.scalar(select(PickupCredential).where(PickupCredential.token_jti == ref))


def _collection_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       box: Compartment, occupied: bool | None, credential_id: str | None,
                       now: datetime) -> None:
    inside = locker_compartments.parcels_in(session, box)
    due = [p for p in inside
           if p.state in locker_sync.TO_COLLECT or locker_sync.is_refused_sent(p)]
    parcel = due[0] if due else (inside[0] if inside else None)
    row = session.scalar(select(LockerSession).where(
        LockerSession.site_id == site.id, LockerSession.status == "open"
    ).order_by(LockerSession.id.desc()).limit(1)) if parcel is None else _collecting(
        session, site, parcel)
    taken = _taken(inside, due, occupied)  # a ready parcel beside the due ones stays
    if parcel is not None and not taken:
        raise_alert(session, site, "collection_left_behind", f"{parcel.tracking_number} was not "
               "taken by the carrier", compartment=box.number, parcel=parcel)
    verified_at = _opening_verified_at(session, inside, credential_id,
                                       "offline_collection_verified")
    for gone in taken:
        _record_collection(ctx, session, site, link, gone, box, row, credential_id, now,
                           verified_at)
    locker_compartments.settle(session, box)
    if row is not None and row.status == "open":
        left = {p.id for p in taken}
        row.collect_queue = [pid for pid in (row.collect_queue or []) if pid not in left]
        locker_collection.open_next_collection(ctx, session, site, row, now)


def _record_collection(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       parcel: Parcel, box: Compartment, row: LockerSession | None,
                       credential_id: str | None, now: datetime,
                       verified_at: datetime | None) -> None:
    """The parcel left with its carrier (going back, or sent from the locker). Decided by
    the locker alone (a collection reservation), it happened at `verified_at`; a parcel no
    longer waiting for it is recorded as taken and raised to an operator (protocol 9.5)."""
    at = verified_at or now
    actor = (Principal(Role.CARRIER, carrier_id=row.carrier_id) if row
             else session_actor(session, box, site, parcel))
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number}
    if verified_at is not None:
        data.update(offline=True, received_at=now.isoformat(), reservation=credential_id)
    owner = locker_take_back.taker(parcel)  # a producer's order, a refused sent parcel
    if owner is not None:
        locker_take_back.record_taken_back(ctx, session, site, link, parcel, owner, at, data)
        return
    if parcel.state in locker_sync.TO_COLLECT:
        history.apply(session, parcel, Action.COLLECT, actor, at,
                      reason="collected from the locker", data=data)
        if parcel.direction == "outbound":
            notify.queue(session, parcel, "collected")  # the sender: it has left
    else:
        raise_alert(session, site, "collection_of_unavailable_parcel",
               f"{parcel.tracking_number} was {parcel.state} when its carrier took it",
               compartment=box.number, parcel=parcel)
        history.record(session, parcel, "taken_while_" + parcel.state, parcel.state, actor, at,
                       data=data)
        for credential in live_credentials_of(session, parcel):
            credential.revoked_at = at
    parcel.compartment_id = None
    if parcel.carrier_id is not None:  # the locker forgets the collection reservation
        locker_sync.queue_sync(ctx, session, site, link,
                           released=[locker_sync.collection_reservation_id(parcel)])


def _collecting(session: Session, site: Site, parcel: Parcel) -> LockerSession | None:
    for row in session.scalars(select(LockerSession).where(
            LockerSession.site_id == site.id, LockerSession.status == "open")):
        if parcel.id in (row.collect_queue or []):
            return row
    return None
