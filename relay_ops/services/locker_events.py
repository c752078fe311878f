"""What the backend does with each event a locker reports (protocol v1, sections 6, 8 and 9).

The bridge calls :func:`apply_events` for what arrived together from one ``(locker, boot_id)``:
one transaction that checks each event's place in its sequence, applies its effect and moves
the cursor; also :func:`skip_gap`. A heartbeat and the online/offline status keep the link
in ``locker_link_status``.
A duplicate (``seq`` not above the cursor) has no effect; an event beyond ``cursor + 1`` is
not applied (the caller keeps it aside or asks for the missing range). Bodies arrive as plain
dicts already validated against the protocol by the bridge.

Each event type's effect lives with its use case (``HANDLERS`` at the end):
``locker_doors`` (doors opened and closed: deposit, pickup, collection), ``locker_credentials``
(a QR code or PIN presented, an offline pickup), ``locker_offline`` (offline deposits and
collections), ``locker_snapshot`` (a state snapshot reconciled), ``locker_reports`` (faults,
command results); ``locker_alerts`` raises what an operator must see.

Actors: the locker acting on its own is ``Principal(Role.LOCKER, name="locker:<code>")``; a
door opened for a carrier's session acts for that carrier.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from relay_ops.db.models import LockerEventCursor, LockerLink, Site
from relay_ops.services import locker_commands, locker_compartments, locker_sync
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import OPEN_ALERTS, raise_alert
from relay_ops.services.locker_credentials import credential_presented, offline_pickup
from relay_ops.services.locker_doors import door_closed, door_opened
from relay_ops.services.locker_offline import offline_collection, offline_deposit
from relay_ops.services.locker_reports import (
    cmd_result,
    door_failed_to_open,
    door_left_open,
    fault,
    sync_ack,
)
from relay_ops.services.locker_snapshot import (
    APPLIED_SEQ,
    BOOT,
    ask_fresh_snapshot,
    other_boots_applied,
    state_snapshot,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Applied:
    status: Literal["applied", "duplicate", "gap", "unknown_locker"]
    applied_seq: int
    gap: tuple[int, int] | None = None
    came_online: bool = False  # a heartbeat from a locker the backend had as offline


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
    commands: tuple[locker_commands.CommandToSend, ...] = ()


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
    arrived together: one commit for many events).

    The batch runs without savepoints: the effects, then one UPDATE of the cursor and one of
    the link (a savepoint per event was most of the bridge's cost, issue 15). When an effect
    fails on a bug or on its own data, the transaction is rolled back and the batch applied
    again one event at a time, each in a savepoint: the poisoned event is rolled back alone,
    recorded as an operator alert and passed (so one bad event cannot block a locker forever),
    its neighbours are applied once. A database failure fails the whole batch (nothing is
    acknowledged, the locker resends)."""
    try:
        return _apply_batch(ctx, locker, boot_id, events, claim_commands, isolate=False)
    except _EffectFailed as failed:
        log.warning("%s: a batch of %d events failed at seq %s (%s); applied again one event "
                    "at a time", locker, len(events), failed.seq, failed.__cause__)
        return _apply_batch(ctx, locker, boot_id, events, claim_commands, isolate=True)


class _EffectFailed(Exception):
    """An event's effect failed in a batch applied without savepoints (the batch is retried
    with them)."""

    def __init__(self, seq: int | None) -> None:
        super().__init__(f"seq {seq}")
        self.seq = seq


def _is_poison(error: Exception) -> bool:
    """A failure of the event itself (a bug, data a constraint refuses), which a savepoint
    isolates; not a failure of the database (connection lost, deadlock): that one fails the
    batch and the locker resends it."""
    return not isinstance(error, SQLAlchemyError) or isinstance(error, IntegrityError | DataError)


@dataclass(frozen=True)
class _Plan:
    seen: list[LockerEvent]  # every event up to the first beyond a gap (the link notes them)
    runnable: list[LockerEvent]  # cursor + 1, + 2, ...: applied now
    held_back: tuple[LockerEvent, ...] = ()
    gap: tuple[int, int] | None = None


def _plan(events: list[LockerEvent], cursor_seq: int) -> _Plan:
    ordered = sorted(events, key=lambda e: e.seq)
    runnable: list[LockerEvent] = []
    expected = cursor_seq + 1
    for index, event in enumerate(ordered):
        if event.seq < expected:
            continue  # a duplicate: redelivery is normal
        if event.seq > expected:
            return _Plan(ordered[:index + 1], runnable,
                         tuple(e for e in ordered[index:] if e.seq >= expected),
                         (expected, event.seq - 1))
        runnable.append(event)
        expected += 1
    return _Plan(ordered, runnable)


def _apply_batch(ctx: Ctx, locker: str, boot_id: str, events: list[LockerEvent],
                 claim_commands: bool, *, isolate: bool) -> BatchApplied:
    now = ctx.now()
    applying: LockerEvent | None = None
    try:
        with ctx.db.transaction() as session:
            site = locker_for_events(session, locker)
            if site is None:
                return BatchApplied("unknown_locker", 0, 0)
            link = locker_compartments.link_of(session, site)
            cursor = event_cursor(session, site, boot_id)
            plan = _plan(events, cursor.applied_seq)
            session.info[BOOT] = boot_id  # for the handlers that need the cursor
            with locker_sync.one_sync_per_batch(ctx, session, site, link):
                for applying in plan.runnable:
                    # where the cursor stands for this event, without writing it per event
                    session.info[APPLIED_SEQ] = applying.seq - 1
                    if isolate:
                        _apply_isolated(ctx, session, site, link, applying, now)
                    else:
                        _apply_one(ctx, session, site, link, applying, now)
                applying = None
            _seen(link, boot_id, plan.seen, now)
            if plan.runnable:
                cursor.applied_seq, cursor.updated_at = plan.runnable[-1].seq, now
                _after_replayed(ctx, session, site, link, boot_id, now)
            result = BatchApplied("applied", cursor.applied_seq, len(plan.runnable),
                                  plan.held_back, plan.gap,
                                  _claimed(session, site, now, claim_commands))
    except Exception as error:
        if isolate or not _is_poison(error):
            raise
        # the effect that failed, or (failing at the commit's flush) one of the batch's
        raise _EffectFailed(applying.seq if applying else None) from error
    return result
def _after_replayed(ctx: Ctx, session: Session, site: Site, link: LockerLink, boot_id: str,
                    now: datetime) -> None:
    """Once per applied batch: a snapshot that waited for these events may be asked again."""
    if (link.snapshot_waiting_boot not in (None, boot_id)
            and other_boots_applied(session, site, link.snapshot_waiting_boot)
            >= (link.snapshot_waiting_until or 0)):
        ask_fresh_snapshot(ctx, session, site, link, now)


def _claimed(session: Session, site: Site, now: datetime, claim: bool
             ) -> tuple[locker_commands.CommandToSend, ...]:
    """The commands these events produced, claimed with their counters in the events' own
    transaction: between a scan and its door, no second transaction (issue 14's cost)."""
    if not claim or not session.info.get(locker_commands.COMMANDS_QUEUED):
        return ()
    claimed = locker_commands.claim_commands(session, now, locker=site.code)
    first = locker_commands.reserve_counters(session, site.code, len(claimed)) if claimed else None
    if first is None:
        return ()
    return tuple(replace(command, ctr=first + offset) for offset, command in enumerate(claimed))


def _apply_one(ctx: Ctx, session: Session, site: Site, link: LockerLink, event: LockerEvent,
               now: datetime) -> None:
    handler = HANDLERS.get(event.type)
    if handler is None:
        log.info("%s: event %s has no backend effect", site.code, event.type)
        return
    handler(ctx, session, site, link, event.body, event.ts, now)


def _apply_isolated(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                    event: LockerEvent, now: datetime) -> None:
    """The retry path: the event in a savepoint; if it fails, it alone is rolled back, an
    operator alert and the log say why, and the batch goes on."""
    batch = locker_sync.pending_sync(session)
    before = batch.copy() if batch is not None else None
    savepoint = session.begin_nested()
    try:
        _apply_one(ctx, session, site, link, event, now)
        savepoint.commit()  # flushes: a constraint refusing this event's rows fails here
    except Exception as error:
        if not _is_poison(error):
            raise
        savepoint.rollback()
        session.info.pop(OPEN_ALERTS, None)  # alerts it raised or counted are rolled back
        if batch is not None and before is not None:
            batch.restore(before)  # the credential changes it noted were rolled back too
        log.exception("%s: event %s seq %s not applied", site.code, event.type, event.seq)
        raise_alert(session, site, "event_not_applied",
               f"{event.type} seq {event.seq}: {type(error).__name__}: {error}")


def skip_gap(ctx: Ctx, locker: str, boot_id: str, to_seq: int) -> int:
    """Give up on events the locker no longer holds (asked for again and again in vain: a
    backend restored from an old backup, a journal replaced): the cursor jumps to ``to_seq``
    and an operator alert says what was lost. Returns the cursor."""
    with ctx.db.transaction() as session:
        site = locker_for_events(session, locker)
        if site is None:
            return 0
        cursor = event_cursor(session, site, boot_id)
        if to_seq > cursor.applied_seq:
            raise_alert(session, site, "journal_gap_skipped",
                   f"events {cursor.applied_seq + 1}..{to_seq} of boot {boot_id} never came")
            cursor.applied_seq, cursor.updated_at = to_seq, ctx.now()
        return cursor.applied_seq


def applied_seqs(ctx: Ctx, boots: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """How far each ``(locker code, boot id)`` is applied, for those with a cursor, in one
    read: a bridge holding events past a gap learns that another bridge filled it (a shared
    subscription gives one locker's events to several bridges)."""
    wanted = set(boots)
    if not wanted:
        return {}
    with ctx.db.read() as session:
        rows = session.execute(
            select(Site.code, LockerEventCursor.boot_id, LockerEventCursor.applied_seq)
            .join(Site, Site.id == LockerEventCursor.site_id)
            .where(Site.code.in_({code for code, _ in wanted}),
                   LockerEventCursor.boot_id.in_({boot for _, boot in wanted})))
        return {(code, boot): seq for code, boot, seq in rows if (code, boot) in wanted}


def locker_for_events(session: Session, code: str) -> Site | None:
    # The locker's row lock serialises its events with reservations and pickups.
    return session.scalar(
        select(Site).where(Site.code == code, Site.kind == "locker").with_for_update()
    )


def event_cursor(session: Session, site: Site, boot_id: str) -> LockerEventCursor:
    cursor = session.scalar(select(LockerEventCursor).where(
        LockerEventCursor.site_id == site.id, LockerEventCursor.boot_id == boot_id))
    if cursor is None:
        cursor = LockerEventCursor(site_id=site.id, boot_id=boot_id, applied_seq=0)
        session.add(cursor)
        session.flush()
    return cursor


def _seen(link: LockerLink, boot_id: str, events: list[LockerEvent], now: datetime) -> None:
    """The link notes the batch once: when it was heard, and its latest event by time."""
    link.last_seen_at = now
    latest = link.last_event_at
    for event in events:
        if latest is None or event.ts >= latest:
            link.last_event_boot, link.last_event_seq, latest = boot_id, event.seq, event.ts
    link.last_event_at = latest


# ---------------------------------------------------------------- what each event does


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
