"""What the backend does with each event a locker reports (protocol v1, sections 6, 8 and 9).

The bridge calls :func:`apply_event` once per received event: one transaction that checks the
event's place in its ``(locker, boot_id)`` sequence, applies its effect and moves the cursor.
A duplicate (``seq`` not above the cursor) has no effect; an event beyond ``cursor + 1`` is
not applied (the caller keeps it aside or asks for the missing range). Bodies arrive as plain
dicts already validated against the protocol by the bridge.

Actors: the locker acting on its own is ``Principal(Role.LOCKER, name="locker:<code>")``; a
door opened for a carrier's session acts for that carrier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from firmware_bridge.protocol import STALE_COUNTER
from relay_ops.db.database import session_now
from relay_ops.db.models import (
    Compartment,
    LockerAlert,
    LockerEventCursor,
    LockerLink,
    LockerSession,
    OutboxMessage,
    Parcel,
    ParcelEvent,
    PickupCredential,
    Site,
)
from relay_ops.domain import pickup_token
from relay_ops.domain.errors import TooManyAttempts
from relay_ops.domain.holding import deadline_after
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import history, lockers, notify, throttle
from relay_ops.services.checkin import Group, holding_period, join_group
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role
from relay_ops.services.sites import closed_on

log = logging.getLogger(__name__)

# Online keypad guessing: a locker holds a few dozen parcels, a guesser tries thousands.
LOCKER_PINS = throttle.Limit("locker-pin", 10, timedelta(minutes=10),
                             "wait before typing another code")
# Refused QR codes naming one parcel (used, revoked, wrong locker): someone replays a photo.
LOCKER_PARCEL = throttle.Limit("locker-parcel", 5, timedelta(minutes=10),
                               "ask the operator")
# A forwarded credential older than this was decided by the locker itself (it waits 5 s).
FORWARD_ANSWER_USEFUL_S = 30
CLOCK_DRIFT_ALERT_S = 30


@dataclass(frozen=True)
class Applied:
    status: Literal["applied", "duplicate", "gap", "unknown_locker"]
    applied_seq: int
    gap: tuple[int, int] | None = None
    came_online: bool = False  # a heartbeat from a locker the backend had as offline


def locker_actor(site: Site) -> Principal:
    return Principal(Role.LOCKER, name=f"locker:{site.code}")


# ---------------------------------------------------------------- entry points


@dataclass(frozen=True)
class LockerEvent:
    seq: int
    type: str
    body: dict[str, Any]
    ts: datetime


@dataclass(frozen=True)
class BatchApplied:
    status: Literal["applied", "unknown_locker"]
    applied_seq: int
    applied: int  # events whose effect was applied now
    held_back: tuple[LockerEvent, ...] = ()  # beyond a gap: keep them aside, ask for the hole
    gap: tuple[int, int] | None = None
    # commands these events produced, claimed (marked sent) in the same transaction: the
    # caller publishes them after the commit (if it dies first, they are resent later)
    commands: tuple[lockers.CommandToSend, ...] = ()


def apply_event(
    ctx: Ctx, locker: str, boot_id: str, seq: int, type_: str, body: dict[str, Any],
    ts: datetime,
) -> Applied:
    """One event: applied, a duplicate (no effect), or past a gap (not applied)."""
    result = apply_events(ctx, locker, boot_id, [LockerEvent(seq, type_, body, ts)])
    if result.status == "unknown_locker":
        return Applied("unknown_locker", 0)
    if result.held_back:
        return Applied("gap", result.applied_seq, result.gap)
    return Applied("applied" if result.applied else "duplicate", result.applied_seq)


def apply_events(ctx: Ctx, locker: str, boot_id: str, events: list[LockerEvent], *,
                 claim_commands: bool = False) -> BatchApplied:
    """Events of one (locker, boot) in one transaction, in seq order (the bridge batches what
    arrived together: one commit for many events). Each effect runs in a savepoint: an event
    whose handler fails on a bug is recorded as an operator alert and passed, so one bad
    event cannot block a locker forever; a database failure fails the whole batch (nothing is
    acknowledged, the locker resends)."""
    now = ctx.now()
    applied = 0
    with ctx.db.transaction() as session:
        site = _site(session, locker)
        if site is None:
            return BatchApplied("unknown_locker", 0, 0)
        link = lockers.link_of(session, site)
        cursor = _cursor(session, site, boot_id)
        session.info[_BOOT] = boot_id  # for the handlers that need the cursor
        ordered = sorted(events, key=lambda e: e.seq)
        held_back: tuple[LockerEvent, ...] = ()
        gap: tuple[int, int] | None = None
        with lockers.one_sync_per_batch(ctx, session, site, link):
            for index, event in enumerate(ordered):
                _seen(link, boot_id, event.seq, event.ts, now)
                if event.seq <= cursor.applied_seq:
                    continue  # a duplicate: redelivery is normal
                if event.seq > cursor.applied_seq + 1:
                    held_back = tuple(e for e in ordered[index:] if e.seq > cursor.applied_seq)
                    gap = (cursor.applied_seq + 1, event.seq - 1)
                    break
                _apply_one(ctx, session, site, link, event, now)
                cursor.applied_seq, cursor.updated_at = event.seq, now
                applied += 1
        if applied:
            _after_replayed(ctx, session, site, link, boot_id, now)
        return BatchApplied("applied", cursor.applied_seq, applied, held_back, gap,
                            _claimed(session, site, now, claim_commands))


def _after_replayed(ctx: Ctx, session: Session, site: Site, link: LockerLink, boot_id: str,
                    now: datetime) -> None:
    """Once per applied batch: a snapshot that waited for these events may be asked again."""
    if (link.snapshot_waiting_boot not in (None, boot_id)
            and _other_boots_applied(session, site, link.snapshot_waiting_boot)
            >= (link.snapshot_waiting_until or 0)):
        _ask_fresh_snapshot(ctx, session, site, link, now)


def _claimed(session: Session, site: Site, now: datetime, claim: bool
             ) -> tuple[lockers.CommandToSend, ...]:
    if not claim or not session.info.get(lockers.COMMANDS_QUEUED):
        return ()
    return tuple(lockers.claim_commands(session, now, locker=site.code))


def _apply_one(ctx: Ctx, session: Session, site: Site, link: LockerLink, event: LockerEvent,
               now: datetime) -> None:
    handler = HANDLERS.get(event.type)
    if handler is None:
        log.info("%s: event %s has no backend effect", site.code, event.type)
        return
    batch = lockers.pending_sync(session)
    before = batch.copy() if batch is not None else None
    savepoint = session.begin_nested()
    try:
        handler(ctx, session, site, link, event.body, event.ts, now)
        savepoint.commit()
    except SQLAlchemyError:
        raise
    except Exception as error:
        savepoint.rollback()
        if batch is not None and before is not None:
            batch.restore(before)  # the credential changes it noted were rolled back too
        log.exception("%s: event %s seq %s not applied", site.code, event.type, event.seq)
        _alert(session, site, "event_not_applied",
               f"{event.type} seq {event.seq}: {type(error).__name__}: {error}")


def heartbeat(ctx: Ctx, locker: str, boot_id: str, seq: int, body: dict[str, Any],
              ts: datetime) -> Applied:
    """Not journaled: it refreshes the link and reveals a lost tail (seq above the cursor)."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = _site(session, locker)
        if site is None:
            return Applied("unknown_locker", 0)
        link = lockers.link_of(session, site)
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
        _note_credential_version(ctx, session, site, link, body.get("credential_version"))
        cursor = _cursor(session, site, boot_id)
        if link.snapshot_waiting_boot == boot_id and _holds_no_earlier_entries(
                int(body.get("unacked_events", 0)), seq, cursor):
            _ask_fresh_snapshot(ctx, session, site, link, now)
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
        _alert(session, site, "clock_drift", f"locker clock is {-skew:+.0f} s off")


def skip_gap(ctx: Ctx, locker: str, boot_id: str, to_seq: int) -> int:
    """Give up on events the locker no longer holds (asked for again and again in vain: a
    backend restored from an old backup, a journal replaced): the cursor jumps to ``to_seq``
    and an operator alert says what was lost. Returns the cursor."""
    with ctx.db.transaction() as session:
        site = _site(session, locker)
        if site is None:
            return 0
        cursor = _cursor(session, site, boot_id)
        if to_seq > cursor.applied_seq:
            _alert(session, site, "journal_gap_skipped",
                   f"events {cursor.applied_seq + 1}..{to_seq} of boot {boot_id} never came")
            cursor.applied_seq, cursor.updated_at = to_seq, ctx.now()
        return cursor.applied_seq


def status_changed(ctx: Ctx, locker: str, state: str, ts: datetime) -> bool:
    """Retained online/offline status (the last will says offline), applied in the order the
    broker delivers them (one topic: in order). Not by `ts`: a will's `ts` is the time its
    connection was made, older than the "online" it overrides."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = _site(session, locker)
        if site is None:
            return False
        link = lockers.link_of(session, site)
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
        lockers.queue_sync(ctx, session, site, link, force_full=True)


_BOOT = "locker_events.boot_id"


def _site(session: Session, code: str) -> Site | None:
    # The locker's row lock serialises its events with reservations and pickups.
    return session.scalar(
        select(Site).where(Site.code == code, Site.kind == "locker").with_for_update()
    )


def _cursor(session: Session, site: Site, boot_id: str) -> LockerEventCursor:
    cursor = session.scalar(select(LockerEventCursor).where(
        LockerEventCursor.site_id == site.id, LockerEventCursor.boot_id == boot_id))
    if cursor is None:
        cursor = LockerEventCursor(site_id=site.id, boot_id=boot_id, applied_seq=0)
        session.add(cursor)
        session.flush()
    return cursor


def _seen(link: LockerLink, boot_id: str, seq: int, ts: datetime, now: datetime) -> None:
    link.last_seen_at = now
    if link.last_event_at is None or ts >= link.last_event_at:
        link.last_event_boot, link.last_event_seq, link.last_event_at = boot_id, seq, ts


UNEXPECTED_OPENING = "unexpected_door_opening"


def _alert(session: Session, site: Site, kind: str, detail: str, *,
           compartment: int | None = None, parcel: Parcel | None = None) -> LockerAlert:
    """One open alert per (locker, kind, door, parcel): a repeat while it is open (a snapshot
    every few minutes seeing the same parcel missing) counts on it instead of adding one."""
    parcel_id = parcel.id if parcel else None
    now = session_now(session)
    open_alert = session.scalar(select(LockerAlert).where(
        LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None),
        LockerAlert.kind == kind, _is(LockerAlert.compartment, compartment),
        _is(LockerAlert.parcel_id, parcel_id),
    ).limit(1))
    if open_alert is not None:
        open_alert.occurrences += 1
        open_alert.last_seen_at, open_alert.detail = now, detail[:300]
        return open_alert
    alert = LockerAlert(site_id=site.id, kind=kind, detail=detail[:300], compartment=compartment,
                        parcel_id=parcel_id, last_seen_at=now)
    session.add(alert)
    return alert


def alert_on(session: Session, site: Site, kind: str, detail: str) -> LockerAlert:
    """A locker-wide alert (no door, no parcel), counted on the open one of its kind."""
    return _alert(session, site, kind, detail)


def _is(column: Any, value: int | None) -> Any:
    return column.is_(None) if value is None else column == value


# ---------------------------------------------------------------- doors


def _box(session: Session, site: Site, number: int) -> Compartment | None:
    return lockers.compartment(session, site.id, number)


def door_opened(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = _box(session, site, body["compartment"])
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
    inside = lockers.parcels_in(session, box)
    names = ", ".join(p.tracking_number for p in inside) or "nothing"
    _alert(session, site, UNEXPECTED_OPENING,
           f"door {box.number} opened with no command or credential; inside: {names}",
           compartment=box.number, parcel=inside[0] if inside else None)


def door_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                body: dict[str, Any], ts: datetime, now: datetime) -> None:
    box = _box(session, site, body["compartment"])
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
        lockers.settle(session, box)
        if occupied is True and _held(session, box) is None:
            _alert(session, site, "unexpected_item", "a door closed on something the backend "
                   "does not know of", compartment=box.number)


def _held(session: Session, box: Compartment) -> Parcel | None:
    return lockers._parcel_in(session, box)


def _session_actor(session: Session, box: Compartment, site: Site,
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
    waiting = lockers.reserved_parcels(session, box)
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
    actor = _session_actor(session, box, site, parcel)
    if parcel is None:
        lockers.settle(session, box)
        return
    sharing = lockers.parcels_in(session, box)  # the recipient's parcels already inside
    if occupied is False:
        # The door closed on nothing: the deposit did not happen, the parcel is still in the
        # carrier's hands. The door stays reserved for it while the session lasts.
        history.record(session, parcel, "deposit_not_made", parcel.state, actor, now,
                       reason="the door closed with the compartment empty",
                       data={"compartment": box.number})
        box.state = "reserved"
        for gone in sharing:
            _alert(session, site, "parcel_not_sensed", f"{gone.tracking_number} should be "
                   "inside", compartment=box.number, parcel=gone)
        return
    # Protocol 9.5: a deposit the locker decided alone happened at its `verified_at`.
    verified_at = _offline_verification(session, parcel, credential_id,
                                        "offline_deposit_verified")
    at = verified_at or now
    # The season's and the load's rule, as at a counter (docs/forecast.md).
    holding = holding_period(ctx, session, site, at)
    parcel.checked_in_at = at
    parcel.holding_deadline = deadline_after(at, holding.days, ctx.settings.timezone,
                                             closed_on(session, site))
    data: dict[str, Any] = {
        "locker": site.code, "compartment": box.number,
        "deadline": parcel.holding_deadline.isoformat(),
        "holding_days": holding.days, "holding_rule": holding.rule,
        # a door already holding parcels is sensed occupied whether this one went in or not
        "occupancy_sensed": occupied is not None and not sharing,
    }
    if sharing:
        data["shared_with"] = [p.tracking_number for p in sharing]
    if verified_at is not None:
        data.update(offline=True, received_at=now.isoformat())
    history.apply(session, parcel, Action.CHECK_IN, actor, at, data=data)
    # the locker forgets the advance reservation the deposit used (the door is taken)
    released = ([lockers.deposit_reservation_id(parcel, box)]
                if lockers.is_advance_reservation(box) else [])
    if lockers.reserved_parcels(session, box):
        box.state = "reserved"  # another of the recipient's parcels is still on its way here
    else:
        box.state, box.reserved_until, box.reserved_session_id = "occupied", None, None
    keys = lockers.recipient_keys_of(ctx, parcel)
    parcel.recipient_phone_key, parcel.recipient_email_key = keys.phone, keys.email
    credential = _join_door_code(ctx, session, parcel, sharing, actor, at) \
        or lockers.issue_locker_credential(ctx, session, parcel)
    notify.queue(session, parcel, "ready")  # sent now, at reconciliation, once
    lockers.queue_sync(ctx, session, site, link, added=[credential], released=released)


def _join_door_code(ctx: Ctx, session: Session, parcel: Parcel, sharing: list[Parcel],
                    actor: Principal, at: datetime) -> PickupCredential | None:
    """A parcel laid on the recipient's parcels in a door joins their code, and the door's
    parcels keep one deadline, the latest: they leave together, by the resident's hand or the
    carrier's, and no parcel's deadline is ever shortened (docs/forecast.md). None when the
    code they had is gone (used, revoked, locked): the parcel gets one of its own."""
    codes = {c.id: c for p in sharing for c in _live(session, p)
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
    inside = lockers.parcels_in(session, box)
    if not inside:
        lockers.settle(session, box)
        return
    ready = [p for p in inside if p.state == State.READY_FOR_PICKUP.value]
    # a door shared by one recipient's parcels is opened by their one code; the damaged one
    # beside a ready one waits for its carrier
    taken = _taken(inside, ready, occupied)
    if not taken:
        for parcel in inside:
            _alert(session, site, "parcel_left_behind", f"{parcel.tracking_number} is still "
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
    lockers.settle(session, box)
    if box.fault_reason:
        box.state = "out_of_service"
    lockers.queue_sync(ctx, session, site, link, removed=removed)


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
                 if (v := _offline_verification(session, p, credential_id, action))), None)


def _offline_verification(session: Session, parcel: Parcel, credential_id: str | None,
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
    live = _live(session, parcel)
    used = _credential_by_ref(session, credential_id) if credential_id else None
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number,
                            "credential": credential_id}
    if received_at is not None:
        data.update(offline=True, received_at=received_at.isoformat())
    if parcel.holding_deadline is not None and at > parcel.holding_deadline:
        data["late"] = True  # protocol 9.1: accepted, not expired retroactively
    if parcel.state != State.READY_FOR_PICKUP.value:
        # protocol 9.2: the parcel is physically gone whatever the backend thought
        _alert(session, site, "pickup_of_unavailable_parcel",
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


def _live(session: Session, parcel: Parcel) -> list[PickupCredential]:
    from relay_ops.services.credentials import live_credentials

    return live_credentials(session, parcel.id)


def _credential_by_ref(session: Session, ref: str) -> PickupCredential | None:
    """A protocol credential id: ``pin-<id>`` for a PIN, the token's jti for a QR code."""
    if ref.startswith("pin-") and ref[4:].isdigit():
        return session.get(PickupCredential, int(ref[4:]))
    return session.scalar(select(PickupCredential).where(PickupCredential.token_jti == ref))


def _collection_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       box: Compartment, occupied: bool | None, credential_id: str | None,
                       now: datetime) -> None:
    inside = lockers.parcels_in(session, box)
    due = [p for p in inside if p.state in (State.EXPIRED.value, State.DAMAGED.value)]
    parcel = due[0] if due else (inside[0] if inside else None)
    row = session.scalar(select(LockerSession).where(
        LockerSession.site_id == site.id, LockerSession.status == "open"
    ).order_by(LockerSession.id.desc()).limit(1)) if parcel is None else _collecting(
        session, site, parcel)
    taken = _taken(inside, due, occupied)  # a ready parcel beside the due ones stays
    if parcel is not None and not taken:
        _alert(session, site, "collection_left_behind", f"{parcel.tracking_number} was not "
               "taken by the carrier", compartment=box.number, parcel=parcel)
    verified_at = _opening_verified_at(session, inside, credential_id,
                                       "offline_collection_verified")
    for gone in taken:
        _record_collection(ctx, session, site, link, gone, box, row, credential_id, now,
                           verified_at)
    lockers.settle(session, box)
    if row is not None and row.status == "open":
        left = {p.id for p in taken}
        row.collect_queue = [pid for pid in (row.collect_queue or []) if pid not in left]
        lockers.open_next_collection(ctx, session, site, row, now)


def _record_collection(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       parcel: Parcel, box: Compartment, row: LockerSession | None,
                       credential_id: str | None, now: datetime,
                       verified_at: datetime | None) -> None:
    """The parcel left with its carrier. Decided by the locker alone (a collection
    reservation), it happened at `verified_at`; a parcel no longer expired or damaged is
    recorded as taken and raised to an operator (protocol 9.5)."""
    at = verified_at or now
    actor = (Principal(Role.CARRIER, carrier_id=row.carrier_id) if row
             else _session_actor(session, box, site, parcel))
    data: dict[str, Any] = {"locker": site.code, "compartment": box.number}
    if verified_at is not None:
        data.update(offline=True, received_at=now.isoformat(), reservation=credential_id)
    if parcel.state in (State.EXPIRED.value, State.DAMAGED.value):
        history.apply(session, parcel, Action.COLLECT, actor, at,
                      reason="collected from the locker", data=data)
    else:
        _alert(session, site, "collection_of_unavailable_parcel",
               f"{parcel.tracking_number} was {parcel.state} when its carrier took it",
               compartment=box.number, parcel=parcel)
        history.record(session, parcel, "taken_while_" + parcel.state, parcel.state, actor, at,
                       data=data)
        for credential in _live(session, parcel):
            credential.revoked_at = at
    parcel.compartment_id = None
    if parcel.carrier_id is not None:  # the locker forgets the collection reservation
        lockers.queue_sync(ctx, session, site, link,
                           released=[lockers.collection_reservation_id(parcel)])


def _collecting(session: Session, site: Site, parcel: Parcel) -> LockerSession | None:
    for row in session.scalars(select(LockerSession).where(
            LockerSession.site_id == site.id, LockerSession.status == "open")):
        if parcel.id in (row.collect_queue or []):
            return row
    return None


def door_left_open(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   body: dict[str, Any], ts: datetime, now: datetime) -> None:
    _alert(session, site, "door_left_open",
           f"open for {body['open_seconds']} s (opened for {body.get('opened_for') or '?'})",
           compartment=body["compartment"])


def door_failed_to_open(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                        body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """The parcel stays where it is (ready stays ready); the door goes out of service and no
    other door is opened in its place: a person decides what happens next."""
    box = _box(session, site, body["compartment"])
    if box is None:
        return
    reason = f"door_failed_to_open: {body.get('reason', '')}"[:200]
    box.state, box.fault_reason, box.opened_for = "out_of_service", reason, None
    _alert(session, site, "door_failed_to_open", reason, compartment=box.number,
           parcel=_held(session, box) or lockers._reserved_parcel(session, box))
    waiting = lockers.reserved_parcels(session, box)
    if waiting and lockers.is_advance_reservation(box):
        lockers.queue_sync(ctx, session, site, link, released=[
            lockers.deposit_reservation_id(reserved, box) for reserved in waiting])
    for reserved in waiting:  # a deposit that could not happen: the carrier keeps the parcel
        reserved.compartment_id = None
        history.record(session, reserved, "deposit_not_made", reserved.state,
                       _session_actor(session, box, site), now,
                       reason="the door did not open", data={"compartment": box.number})
    if waiting:
        box.reserved_session_id, box.reserved_until = None, None
    held = _held(session, box)
    if held is not None:
        history.record(session, held, "door_failed_to_open", held.state, locker_actor(site),
                       now, data={"compartment": box.number})
    lockers.queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": box.number, "reason": reason}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)


# ---------------------------------------------------------------- credentials at the locker


def credential_presented(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                         body: dict[str, Any], ts: datetime, now: datetime) -> None:
    if body["result"] != "forwarded":
        return  # decided by the locker: its journal and later events tell the rest
    if (now - ts).total_seconds() > FORWARD_ANSWER_USEFUL_S:
        return  # the locker has decided alone long ago; an answer now would open nothing
    presentation = body["presentation_id"]
    if body["kind"] == "qr":
        decision = _decide_qr(ctx, session, site, body.get("token") or "", now)
    elif body["kind"] == "pin":
        decision = _decide_pin(ctx, session, site, body.get("code_hash") or "", now)
    else:
        decision = "carriers open a drop-off session from their app"
    if isinstance(decision, str):
        lockers.queue_command(ctx, session, site, "reject_credential",
                              {"presentation_id": presentation, "reason": decision[:200]}, now)
        return
    parcel, credential, credential_id = decision
    assert parcel.compartment is not None
    lockers._open(ctx, session, site, parcel.compartment, "pickup", parcel, now,
                  credential_id=credential_id, presentation_id=presentation)
    history.record(session, parcel, "locker_door_requested", parcel.state, locker_actor(site),
                   now, data={"compartment": parcel.compartment.number,
                              "credential": credential_id})


Decision = tuple[Parcel, PickupCredential, str] | str


def _decide_qr(ctx: Ctx, session: Session, site: Site, token: str, now: datetime) -> Decision:
    keys = {ctx.settings.locker.token_kid: ctx.settings.locker.signing_key.public_key()}
    try:
        claims = pickup_token.verify_token(token, keys, now.timestamp(), expected_site=site.code,
                                           leeway_s=300)
    except pickup_token.TokenError as error:
        return error.reason
    parcel = session.scalar(select(Parcel).where(Parcel.tracking_number == str(claims.parcel_id)))
    if parcel is None or parcel.site_id != site.id:
        return "unknown_parcel"
    key = str(parcel.id)
    if _over(session, LOCKER_PARCEL, key, now):
        return "locked_out"
    credential = _credential_by_ref(session, claims.jti)
    if credential is not None and parcel.state != State.READY_FOR_PICKUP.value:
        # the token names the door's first parcel; another one the code covers may be ready
        parcel = next((p for p in credential.parcels if p.site_id == site.id
                       and p.state == State.READY_FOR_PICKUP.value), parcel)
    refusal = _refusal(parcel, credential)
    if refusal:
        throttle.record_failure(session, LOCKER_PARCEL, key, now)
        return refusal
    assert credential is not None
    return parcel, credential, claims.jti


def _decide_pin(ctx: Ctx, session: Session, site: Site, code_hash: str, now: datetime
                ) -> Decision:
    key = str(site.id)
    if _over(session, LOCKER_PINS, key, now):
        return "locked_out"
    checked: set[int] = set()
    for parcel, credential in lockers.ready_with_codes(session, site):
        if credential.id in checked:
            continue
        checked.add(credential.id)
        if lockers.locker_pin_hash(ctx, site, credential) == code_hash:
            refusal = _refusal(parcel, credential)
            return refusal or (parcel, credential, lockers.pin_credential_id(credential))
    throttle.record_failure(session, LOCKER_PINS, key, now)
    return "unknown_code"


def _over(session: Session, limit: throttle.Limit, key: str, now: datetime) -> bool:
    try:
        throttle.check(session, limit, key, now)
    except TooManyAttempts:
        return True
    return False


def _refusal(parcel: Parcel, credential: PickupCredential | None) -> str | None:
    if credential is None or parcel not in credential.parcels:
        return "unknown_credential"
    if credential.used_at is not None:
        return "already_used"
    if credential.revoked_at is not None or parcel.state != State.READY_FOR_PICKUP.value:
        return "revoked"
    if parcel.compartment is None:
        return "no_compartment"
    if parcel.compartment.state == "out_of_service":
        return "out_of_service"
    return None


def offline_pickup(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """Journaled by the locker before its door opened (protocol 9.1): remembered on the parcel;
    the pickup itself is recorded when the door closes empty."""
    parcel = session.scalar(select(Parcel).where(Parcel.tracking_number == body["parcel_ref"]))
    if parcel is None or parcel.site_id != site.id:
        _alert(session, site, "unknown_offline_pickup", f"{body['parcel_ref']} is not known "
               "at this locker", compartment=body["compartment"])
        return
    credential = _credential_by_ref(session, body["credential_id"])
    if credential is not None and credential.used_at is not None:
        _alert(session, site, "credential_used_twice", f"{body['credential_id']} was already "
               "used", compartment=body["compartment"], parcel=parcel)  # protocol 9.3
    history.record(session, parcel, "offline_pickup_verified", parcel.state, locker_actor(site),
                   now, data={"verified_at": body["verified_at"], "kind": body["credential_kind"],
                              "credential": body["credential_id"]})


def fault(ctx: Ctx, session: Session, site: Site, link: LockerLink, body: dict[str, Any],
          ts: datetime, now: datetime) -> None:
    # door_jammed follows door_failed_to_open, which already raised its alert
    if body["code"] != "door_jammed":
        _alert(session, site, f"fault_{body['code']}"[:40], body.get("detail") or body["code"],
               compartment=body.get("compartment"))


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
    if status == "failed" and row.name == lockers.COMMAND_OPEN:
        _open_failed(session, site, row, body.get("reason") or "", now)
    if status == "failed" and row.name == lockers.COMMAND_SYNC:
        lockers.queue_sync(ctx, session, site, link, force_full=True)


def _open_failed(session: Session, site: Site, row: OutboxMessage, reason: str,
                 now: datetime) -> None:
    """An opening refused before acting (expired, out of service...): a deposit did not
    happen, the reservation goes back to the pool while the session lasts."""
    command = row.payload["body"]
    if command.get("purpose") != "deposit" or reason == "door_failed_to_open":
        return
    box = _box(session, site, command["compartment"])
    if box is None or box.state != "reserved" or lockers.is_advance_reservation(box):
        return  # a door reserved in advance stays so: the carrier may come back, or offline
    parcel = lockers._reserved_parcel(session, box)
    if parcel is not None:
        parcel.compartment_id = None
        history.record(session, parcel, "deposit_not_made", parcel.state,
                       _session_actor(session, box, site), now,
                       reason=f"the locker did not open: {reason}",
                       data={"compartment": box.number})
    box.reserved_until, box.reserved_session_id = None, None
    lockers.settle(session, box)  # free, or back to holding the recipient's parcels


def sync_ack(ctx: Ctx, session: Session, site: Site, link: LockerLink, body: dict[str, Any],
             ts: datetime, now: datetime) -> None:
    link.credential_version_held = body.get("version")


def state_snapshot(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                   body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """After a (re)boot or reconnect: the doors as the locker sees them, reconciled. Not while
    the locker still held entries of earlier boots when it made the snapshot: the bridge
    applies each boot apart, and those entries (offline pickups, doors opened and closed)
    happened before it. Reconciled first, a snapshot of empty doors would raise
    `parcel_not_sensed` for every parcel taken offline. The backend waits for them, then asks
    for a fresh snapshot (`_ask_fresh_snapshot`) and reconciles that one."""
    reported = int(body.get("unacked_events", 0))
    boot_id: str = session.info[_BOOT]
    earlier = _earlier_entries(reported, int(body.get("acked_seq", 0)),
                               _cursor(session, site, boot_id))
    link.unacked_events = earlier
    if earlier:
        link.snapshot_waiting_boot = boot_id
        link.snapshot_waiting_until = _other_boots_applied(session, site, boot_id) + earlier
    else:
        link.snapshot_waiting_boot = link.snapshot_waiting_until = None  # this one is newer
        for state in body.get("compartments", []):
            box = _box(session, site, state["number"])
            if box is not None:
                _reconcile(ctx, session, site, link, box, state, now)
    _note_credential_version(ctx, session, site, link, body.get("credential_version"))


def _earlier_entries(reported: int, acked_seq: int, cursor: LockerEventCursor) -> int:
    """Entries of earlier boots the locker still held when it made its snapshot. It counted
    every unacknowledged entry: this boot's seqs acked_seq+1 .. seq-1 (the cursor stands at
    seq-1 while the snapshot is applied: a boot's events apply in seq order) and the rest."""
    return max(0, reported - max(0, cursor.applied_seq - acked_seq))


def _other_boots_applied(session: Session, site: Site, boot_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(LockerEventCursor.applied_seq), 0))
                              .where(LockerEventCursor.site_id == site.id,
                                     LockerEventCursor.boot_id != boot_id)) or 0)


def _holds_no_earlier_entries(unacked: int, seq: int, cursor: LockerEventCursor) -> bool:
    """From a heartbeat of the waiting snapshot's boot. The cursors cannot always tell that
    the earlier boots are applied (an entry applied before the snapshot was made, whose ack had
    not reached the locker yet, was counted by the snapshot and never moves a cursor again);
    the locker's own count can: `unacked` is this boot's seq - acked entries (acked <= the
    cursor) plus what is left of earlier boots."""
    return unacked - max(0, seq - cursor.applied_seq) <= 0


def _ask_fresh_snapshot(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                        now: datetime) -> None:
    """The earlier boots are applied: the waiting snapshot is stale (doors used since), a new
    one tells the truth. It is resent until the locker answers (6 h); a locker that reconnects
    meanwhile sends one anyway."""
    link.snapshot_waiting_boot = link.snapshot_waiting_until = None
    lockers.queue_command(ctx, session, site, "request_snapshot", {}, now,
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
        _alert(session, site, "door_found_open", "the locker reports this door open",
               compartment=box.number)
        return
    held = _held(session, box)
    if state.get("occupied") is False and held is not None:
        _alert(session, site, "parcel_not_sensed", f"{held.tracking_number} should be inside",
               compartment=box.number, parcel=held)
    elif state.get("occupied") is True and held is None and box.state == "free":
        _alert(session, site, "unexpected_item", "the sensor sees something in a free door",
               compartment=box.number)


def _note_credential_version(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                             held: int | None) -> None:
    link.credential_version_held = held
    if held != link.credential_version_sent and not _sync_in_flight(session, site):
        lockers.queue_sync(ctx, session, site, link, force_full=True)


def _sync_in_flight(session: Session, site: Site) -> bool:
    return session.scalar(select(OutboxMessage.id).where(
        OutboxMessage.target == site.code, OutboxMessage.name == lockers.COMMAND_SYNC,
        OutboxMessage.status.in_(("pending", "sent", "accepted"))).limit(1)) is not None


def offline_deposit(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                    body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """A carrier deposited with a reservation, the locker deciding alone (protocol 9.5).
    Journaled before the door opened: remembered on the parcel (its `verified_at`); the
    deposit itself is the `door_closed` that follows (ready, credential, message, sync).
    Conflicts follow what physically happened: the parcel is in that door now."""
    box = _box(session, site, body["compartment"])
    parcel = _parcel_by_ref(session, body.get("parcel_ref"))
    if box is None:
        _alert(session, site, "offline_deposit_conflict", f"reservation "
               f"{body['reservation_id']} names no compartment {body['compartment']}")
        return
    if parcel is None:
        _quarantine(ctx, session, site, box, f"holds {body.get('parcel_ref') or 'a parcel'} "
                    "deposited offline, unknown here", None)
        return
    actor = Principal(Role.CARRIER, carrier_id=parcel.carrier_id) if parcel.carrier_id \
        else locker_actor(site)
    history.record(session, parcel, "offline_deposit_verified", parcel.state, actor, now,
                   data={"verified_at": body["verified_at"], "compartment": box.number,
                         "credential": body["reservation_id"]})
    if parcel.state != State.ANNOUNCED.value or parcel.site_id != site.id:
        where = "" if parcel.site_id == site.id else f" for {parcel.site.code}"
        _quarantine(ctx, session, site, box, f"holds {parcel.tracking_number} deposited "
                    f"offline while {parcel.state}{where}", parcel)
        return
    if parcel.compartment_id != box.id:
        _move_reservation_to(ctx, session, site, link, parcel, box, actor, now)


def _parcel_by_ref(session: Session, ref: str | None) -> Parcel | None:
    if not ref:
        return None
    return session.scalar(select(Parcel).where(Parcel.tracking_number == ref).with_for_update())


def _quarantine(ctx: Ctx, session: Session, site: Site, box: Compartment, why: str,
                parcel: Parcel | None) -> None:
    """A door holds what the backend cannot account for: nobody else gets it until an
    operator has looked (the alert says what is inside)."""
    _alert(session, site, "offline_deposit_conflict", why, compartment=box.number,
           parcel=parcel)
    box.state, box.fault_reason = "out_of_service", why[:200]
    lockers.queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": box.number, "reason": box.fault_reason}, ctx.now(),
                          ttl_s=ctx.settings.locker.sync_ttl_s)


def _move_reservation_to(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                         parcel: Parcel, box: Compartment, actor: Principal,
                         now: datetime) -> None:
    """The reservation the locker used was released (or moved) by the backend meanwhile:
    the parcel is in `box` anyway, so the backend follows. Whoever held that door loses it
    (the next sweep or the carrier's app finds them another), and an operator is told."""
    if _held(session, box) is not None:
        _quarantine(ctx, session, site, box, f"holds {parcel.tracking_number} deposited "
                    f"offline next to {_held(session, box).tracking_number}", parcel)  # type: ignore[union-attr]
        return
    released = []
    other = lockers._reserved_parcel(session, box)
    if other is not None and other.id != parcel.id:
        if lockers.is_advance_reservation(box):
            released.append(lockers.deposit_reservation_id(other, box))
        other.compartment_id = None
        history.record(session, other, "reservation_released", other.state, actor, now,
                       reason="its door was used by an offline deposit",
                       data={"compartment": box.number})
    if parcel.compartment_id is not None:  # its own door, reserved again elsewhere
        old = session.get(Compartment, parcel.compartment_id)
        if old is not None and old.state == "reserved":
            if lockers.is_advance_reservation(old):
                released.append(lockers.deposit_reservation_id(parcel, old))
            old.state, old.reserved_until, old.reserved_session_id = "free", None, None
    parcel.compartment_id = box.id
    box.reserved_session_id = None
    if box.state not in ("door_open", "out_of_service"):
        box.state = "reserved"
    _alert(session, site, "offline_deposit_reconciled", f"{parcel.tracking_number} was "
           "deposited offline in a door no longer reserved for it; the backend follows",
           compartment=box.number, parcel=parcel)
    if released:
        lockers.queue_sync(ctx, session, site, link, released=released)


def offline_collection(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                       body: dict[str, Any], ts: datetime, now: datetime) -> None:
    """A carrier took a parcel back with a collection reservation, the locker deciding alone
    (protocol 9.5): remembered on the parcel; the collection itself is the `door_closed`
    (empty) that follows, recorded at `verified_at`."""
    parcel = _parcel_by_ref(session, body.get("parcel_ref"))
    if parcel is None or parcel.site_id != site.id:
        _alert(session, site, "offline_collection_conflict",
               f"{body.get('parcel_ref')} is not known at this locker",
               compartment=body["compartment"])
        return
    actor = Principal(Role.CARRIER, carrier_id=parcel.carrier_id) if parcel.carrier_id \
        else locker_actor(site)
    history.record(session, parcel, "offline_collection_verified", parcel.state, actor, now,
                   data={"verified_at": body["verified_at"], "compartment": body["compartment"],
                         "credential": body["reservation_id"]})
    held_there = parcel.compartment is not None \
        and parcel.compartment.number == body["compartment"]
    if not held_there:
        _alert(session, site, "offline_collection_conflict", f"{parcel.tracking_number} "
               f"was {parcel.state}, not in compartment {body['compartment']}, when its "
               "carrier opened it", compartment=body["compartment"], parcel=parcel)


HANDLERS = {
    "door_opened": door_opened,
    "door_closed": door_closed,
    "door_left_open": door_left_open,
    "door_failed_to_open": door_failed_to_open,
    "credential_presented": credential_presented,
    "offline_pickup": offline_pickup,
    "offline_deposit": offline_deposit,
    "offline_collection": offline_collection,
    "fault": fault,
    "state_snapshot": state_snapshot,
    "cmd_result": cmd_result,
    "sync_ack": sync_ack,
}
