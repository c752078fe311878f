"""Credential syncs: what a locker must know to decide offline (residents' PINs, carriers'
deposit and collection reservations, revoked credentials), sent as numbered versions,
incremental when the locker holds the last one, and one per batch of locker events.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, joinedload, object_session

from relay_ops import outbox
from relay_ops.db.models import (
    Compartment,
    CredentialParcel,
    LockerLink,
    OutboxMessage,
    Parcel,
    PickupCredential,
    Site,
)
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of
from relay_ops.services.locker_commands import queue_command
from relay_ops.services.locker_compartments import is_advance_reservation
from relay_ops.services.locker_keys import (
    PIN_KEY_ID,
    carrier_code,
    command_keys,
    keyed_hash,
    locker_pin_hash,
    producer_code,
    public_key_text,
)

COMMAND_SYNC = "sync_credentials"
# session.info key: the credential changes of a batch of locker events, synced once at its end
SYNC_BATCH = "relay_ops.locker_sync_batch"
# A collection reservation outlives any sensible return window; collecting revokes it.
COLLECTION_RESERVATION_LIFE = timedelta(days=30)
# Who holds a parcel sent from a locker's drop-off code (`locker_sending`): one use, the door.
SENDER = "sender"
# States in which a locker parcel waits for its carrier's code (expired or damaged received
# parcels going back, parcels sent from the locker going out), or for its producer's code (an
# order nobody collected, `locker_take_back`).
TO_COLLECT = (State.EXPIRED.value, State.DAMAGED.value, State.AWAITING_COLLECTION.value)
# A sent parcel its carrier refused waits in its door for its sender's new code.
TO_HAND_BACK = State.REFUSED.value


def deposit_reservation_id(parcel: Parcel, box: Compartment) -> str:
    """Unique per reservation (a parcel reserved again later gets a new id: the locker keeps
    revoked ids for good); rebuilt from the rows, nothing stored."""
    assert box.reserved_until is not None
    return f"dep-{parcel.id}-{box.number}-{int(box.reserved_until.timestamp())}"


def collection_reservation_id(parcel: Parcel) -> str:
    """A parcel expires (or is damaged) once; a sent parcel is refused once, and its sender's
    reservation needs an id of its own (the locker forgets nothing it revoked)."""
    if is_refused_sent(parcel):
        return f"back-{parcel.id}"
    return f"col-{parcel.id}"


def is_refused_sent(parcel: Parcel) -> bool:
    return parcel.direction == "outbound" and parcel.state == TO_HAND_BACK


def _reservation_entry(ctx: Ctx, site: Site, purpose: str, reservation_id: str,
                       parcel: Parcel, box: Compartment, expires_at: datetime
                       ) -> dict[str, Any]:
    return {"reservation_id": reservation_id, "purpose": purpose, "compartment": box.number,
            "parcel_ref": parcel.tracking_number,
            "code_hash": keyed_hash(ctx, site, opener_code(ctx, site, parcel, purpose)),
            "expires_at": expires_at.isoformat()}


def opener_code(ctx: Ctx, site: Site, parcel: Parcel, purpose: str) -> str:
    """The code typed at the locker (with its carrier key) that opens a parcel's door: its
    carrier's for a collection and for a carrier's deposit; for a parcel sent from the
    locker, the sender's drop-off code (and, refused by its carrier, the sender's code to take
    it back); for a producer's order, the producer's code."""
    session = object_session(parcel)
    assert session is not None, "a parcel read in a session"
    if parcel.direction == "outbound" and (purpose == "deposit" or is_refused_sent(parcel)):
        credential = sender_credential(session, parcel)
        assert credential is not None, "a drop-off reservation has its sender's code"
        return code_of(ctx, credential)
    if parcel.carrier_id is None:
        order = parcel.producer_order
        assert order is not None, "a parcel without a carrier is a producer's order"
        return producer_code(ctx, site, order.producer_id)
    return carrier_code(ctx, site, parcel.carrier_id)


def sender_credential(session: Session, parcel: Parcel) -> PickupCredential | None:
    """The live drop-off code of a parcel to be sent from a locker."""
    return session.scalar(select(PickupCredential).where(
        PickupCredential.parcel_id == parcel.id, PickupCredential.holder == SENDER,
        PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None)))


def deposit_reservation(ctx: Ctx, site: Site, parcel: Parcel, box: Compartment
                        ) -> dict[str, Any]:
    assert box.reserved_until is not None
    return _reservation_entry(ctx, site, "deposit", deposit_reservation_id(parcel, box),
                              parcel, box, box.reserved_until)


def collection_reservation(ctx: Ctx, site: Site, parcel: Parcel, box: Compartment
                           ) -> dict[str, Any]:
    # a sent parcel has no holding deadline: its deposit dates the reservation
    base = parcel.holding_deadline or parcel.checked_in_at or ctx.now()
    return _reservation_entry(ctx, site, "collection", collection_reservation_id(parcel),
                              parcel, box, base + COLLECTION_RESERVATION_LIFE)


def _live_reservations(ctx: Ctx, session: Session, site: Site, now: datetime
                       ) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Parcel, Compartment).join(Compartment, Parcel.compartment_id == Compartment.id)
        # producers' orders (no carrier) are deposited and taken back with the producer's
        # code (`opener_code`); refused sent parcels taken back with their sender's
        .where(Compartment.site_id == site.id,
               or_(Parcel.carrier_id.is_not(None), Parcel.producer_order.has()),
               Parcel.state.in_((State.ANNOUNCED.value, *TO_COLLECT, TO_HAND_BACK)))
        .order_by(Compartment.number, Parcel.id)
    ).all()
    entries, collected = [], set()
    for parcel, box in rows:
        if parcel.state != State.ANNOUNCED.value:
            if box.id not in collected:  # one per door (`held_for_collection`)
                collected.add(box.id)
                entries.append(collection_reservation(ctx, site, parcel, box))
        elif box.state == "reserved" and is_advance_reservation(box) \
                and box.reserved_until is not None and box.reserved_until > now:
            entries.append(deposit_reservation(ctx, site, parcel, box))
    return entries


def pin_credential_id(credential: PickupCredential) -> str:
    return f"pin-{credential.id}"


def _pin_entry(ctx: Ctx, site: Site, parcel: Parcel, credential: PickupCredential
               ) -> dict[str, Any]:
    assert parcel.compartment and parcel.checked_in_at and parcel.holding_deadline
    return {
        "credential_id": pin_credential_id(credential),
        "parcel_ref": parcel.tracking_number,
        "compartment": parcel.compartment.number,
        "pin_hash": locker_pin_hash(ctx, site, credential),
        "not_before": parcel.checked_in_at.isoformat(),
        "expires_at": parcel.holding_deadline.isoformat(),
    }


def ready_with_codes(session: Session, site: Site) -> Any:
    """(parcel, live code) for every ready parcel of the locker, in code then parcel order: a
    code shared by a door's parcels comes once per parcel; its first ready one stands for it
    (the first parcel may have been declared damaged beside a ready one)."""
    return session.execute(
        select(Parcel, PickupCredential)
        .join(CredentialParcel, CredentialParcel.parcel_id == Parcel.id)
        .join(PickupCredential, PickupCredential.id == CredentialParcel.credential_id)
        .where(Parcel.site_id == site.id, Parcel.state == State.READY_FOR_PICKUP.value,
               PickupCredential.used_at.is_(None), PickupCredential.revoked_at.is_(None))
        .order_by(PickupCredential.id, Parcel.id)
        # each entry names its compartment: one query, not one more per PIN (a replayed day
        # queues a full sync per pickup, bench/offline.py)
        .options(joinedload(Parcel.compartment))
    ).all()


def _live_pins(ctx: Ctx, session: Session, site: Site) -> list[dict[str, Any]]:
    entries: dict[int, dict[str, Any]] = {}
    for parcel, credential in ready_with_codes(session, site):
        if credential.id not in entries:
            entries[credential.id] = _pin_entry(ctx, site, parcel, credential)
    return list(entries.values())


def _recently_dead_jtis(session: Session, site: Site, limit: int = 1000) -> list[str]:
    rows = session.scalars(
        select(PickupCredential.token_jti)
        .where(PickupCredential.site_id == site.id, PickupCredential.token_jti.is_not(None),
               (PickupCredential.used_at.is_not(None))
               | (PickupCredential.revoked_at.is_not(None)))
        .order_by(PickupCredential.id.desc()).limit(limit)
    )
    return [r for r in rows if r]


@dataclass
class SyncBatch:
    """Credential changes noted while a batch of locker events is applied, in order: a later
    change of the same credential or reservation wins."""

    added: dict[int, PickupCredential] = field(default_factory=dict)
    removed: dict[int, PickupCredential] = field(default_factory=dict)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: dict[str, None] = field(default_factory=dict)  # an ordered set
    force_full: bool = False

    def note(self, added: list[PickupCredential], removed: list[PickupCredential],
             reservations: list[dict[str, Any]], released: list[str], force_full: bool) -> None:
        for credential in added:
            self.removed.pop(credential.id, None)
            self.added[credential.id] = credential
        for credential in removed:
            self.added.pop(credential.id, None)
            self.removed[credential.id] = credential
        for entry in reservations:
            self.released.pop(entry["reservation_id"], None)
            self.reservations[entry["reservation_id"]] = entry
        for reservation_id in released:
            self.reservations.pop(reservation_id, None)
            self.released[reservation_id] = None
        self.force_full = self.force_full or force_full

    def copy(self) -> SyncBatch:
        return replace(self, added=dict(self.added), removed=dict(self.removed),
                       reservations=dict(self.reservations), released=dict(self.released))

    def restore(self, saved: SyncBatch) -> None:
        self.added, self.removed = saved.added, saved.removed
        self.reservations, self.released = saved.reservations, saved.released
        self.force_full = saved.force_full

    @property
    def changed(self) -> bool:
        return bool(self.force_full or self.added or self.removed or self.reservations
                    or self.released)


def pending_sync(session: Session) -> SyncBatch | None:
    batch = session.info.get(SYNC_BATCH)
    return batch if isinstance(batch, SyncBatch) else None


@contextmanager
def one_sync_per_batch(ctx: Ctx, session: Session, site: Site, link: LockerLink
                       ) -> Iterator[SyncBatch]:
    """Inside, `queue_sync` only notes the change; on the way out (in the same transaction,
    so the locker is never left with a stale set) one sync carries them all. A replayed day
    made one full sync per pickup, each superseding the last: O(pickups x parcels)."""
    batch = session.info[SYNC_BATCH] = SyncBatch()
    try:
        yield batch
    finally:
        del session.info[SYNC_BATCH]
    if batch.changed:
        _queue_sync_now(ctx, session, site, link, added=list(batch.added.values()),
                        removed=list(batch.removed.values()),
                        reservations=list(batch.reservations.values()),
                        released=list(batch.released), force_full=batch.force_full)


def queue_sync(
    ctx: Ctx, session: Session, site: Site, link: LockerLink, *,
    added: list[PickupCredential] | None = None, removed: list[PickupCredential] | None = None,
    reservations: list[dict[str, Any]] | None = None, released: list[str] | None = None,
    force_full: bool = False,
) -> OutboxMessage | None:
    """A new credential version for the locker. Incremental (only ``added``/``removed``) when
    the locker is known to hold the latest version; full otherwise. Older unfinished syncs are
    superseded: the new one carries everything they did. Within `one_sync_per_batch`, the
    change is noted and synced at the end of the batch (None is returned)."""
    batch = pending_sync(session)
    if batch is not None:
        batch.note(added or [], removed or [], reservations or [], released or [], force_full)
        return None
    return _queue_sync_now(ctx, session, site, link, added=added, removed=removed,
                           reservations=reservations, released=released, force_full=force_full)


def _queue_sync_now(
    ctx: Ctx, session: Session, site: Site, link: LockerLink, *,
    added: list[PickupCredential] | None = None, removed: list[PickupCredential] | None = None,
    reservations: list[dict[str, Any]] | None = None, released: list[str] | None = None,
    force_full: bool = False,
) -> OutboxMessage:
    now = ctx.now()
    base = link.credential_version_sent
    version = base + 1
    incremental = (not force_full and base > 0 and link.credential_version_held == base)
    body: dict[str, Any] = {"version": version, "site_id": site.code}
    if incremental:
        body.update(full=False, base_version=base, pins=[
            _pin_entry(ctx, site, parcel_of(session, c), c) for c in (added or [])
            if c.used_at is None and c.revoked_at is None  # a batch may have spent it since
        ])
        dead = [pin_credential_id(c) for c in removed or []]
        dead += [c.token_jti for c in removed or [] if c.token_jti]
        if reservations:
            body["reservations"] = list(reservations)
        body["revoked_credentials"] = dead + list(released or [])
    else:
        body.update(
            full=True,
            public_keys=[{"kid": ctx.settings.locker.token_kid, "key": public_key_text(ctx)}],
            command_keys=command_keys(ctx),
            pin_key={"key_id": PIN_KEY_ID},
            pins=_live_pins(ctx, session, site),
            reservations=_live_reservations(ctx, session, site, now),
            revoked_credentials=_recently_dead_jtis(session, site),
        )
    if not incremental:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.kind == outbox.LOCKER_COMMAND,
                   OutboxMessage.name == COMMAND_SYNC, OutboxMessage.target == site.code,
                   OutboxMessage.status.in_(("pending", "sent")))
            .values(status="superseded")
        )
    link.credential_version_sent = version
    return queue_command(ctx, session, site, COMMAND_SYNC, body, now,
                         ttl_s=ctx.settings.locker.sync_ttl_s,
                         dedupe=f"sync:{site.code}:{version}")


def parcel_of(session: Session, credential: PickupCredential) -> Parcel:
    parcel = session.get(Parcel, credential.parcel_id)
    assert parcel is not None
    return parcel
