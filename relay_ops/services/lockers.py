"""Lockers as sites: registration, compartments in and out of service, carriers' drop-off
sessions, collections, credentials for residents, and the commands owed to each locker.

Every command is a row of the outbox (kind ``locker_command``) written in the transaction of
the state change that needs it; the MQTT bridge publishes it and reports the locker's answers
back through :mod:`relay_ops.services.locker_events`. Nothing here knows MQTT.

Serialisation: every use case that changes a locker's compartments first locks the locker's
site row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write transaction is
``BEGIN IMMEDIATE``), so two carriers, or a carrier and a resident, never get the same door.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload, object_session

from firmware_bridge.protocol import raw_public_key
from relay_ops import outbox
from relay_ops.db.models import (
    CarrierCode,
    Compartment,
    CredentialParcel,
    LockerAlert,
    LockerEventCursor,
    LockerLink,
    LockerSession,
    OutboxMessage,
    Parcel,
    PickupCredential,
    Site,
)
from relay_ops.domain import grouping, pickup_token, sizing, tracking
from relay_ops.domain.errors import DomainError, InvalidTransition, NotFound, ValidationFailed
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, reroute, sites
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role

OPERATOR_ROLES = (Role.OPERATOR, Role.SYSTEM)
PIN_KEY_ID = "p1"
COMMAND_OPEN = "open_compartment"
FULL = "no free compartment"  # how a refusal for a full locker (not a too-big parcel) begins
COMMAND_SYNC = "sync_credentials"
CARRIER_CODE_DIGITS = 8
# A collection reservation outlives any sensible return window; collecting revokes it.
COLLECTION_RESERVATION_LIFE = timedelta(days=30)
# Outbox statuses of locker commands: pending -> sent -> accepted -> done | failed;
# expired (never executed), superseded (a newer credential sync replaced it).
# session.info key: this transaction wrote a locker command (the bridge publishes at once)
COMMANDS_QUEUED = "relay_ops.locker_commands_queued"
# session.info key: the credential changes of a batch of locker events, synced once at its end
SYNC_BATCH = "relay_ops.locker_sync_batch"
# session.info key: carrier code generations read in this transaction (`_code_generation`)
CODE_GENERATIONS = "relay_ops.carrier_code_generations"


class ParcelDoesNotFit(DomainError):
    slug = "parcel-does-not-fit"
    title = "No free compartment of this locker takes the parcel"


class SessionClosed(DomainError):
    slug = "session-closed"
    title = "The drop-off session is over; open a new one"


# ---------------------------------------------------------------- registration


def register_locker(ctx: Ctx, actor: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """A locker site with its compartments from ``data['locker_model']`` (configuration)."""
    require_role(actor, *OPERATOR_ROLES)
    model = data.get("locker_model")
    slots = ctx.settings.locker.models.get(model or "")
    if slots is None:
        known = ", ".join(sorted(ctx.settings.locker.models))
        raise ValidationFailed(f"unknown locker model {model!r}; configured: {known}")
    view = sites.create_site(ctx, actor, {**data, "kind": "locker", "locations": []})
    with ctx.db.transaction() as session:
        site = _locked_locker(session, view["id"])
        for slot in slots:
            h, w, d = slot.dims
            session.add(Compartment(
                site_id=site.id, number=slot.number, size_class=slot.size_class,
                height_mm=h, width_mm=w, depth_mm=d, state="free",
            ))
        link = LockerLink(site_id=site.id, online=False)
        session.add(link)
        session.flush()
        # The first sync gives the locker the public key and its PIN key: it can then verify
        # residents' codes offline from the very first parcel.
        queue_sync(ctx, session, site, link)
        return locker_view_in(ctx, session, site)


def _locked_locker(session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id, with_for_update=True)
    if site is None or site.kind != "locker":
        raise NotFound(f"no locker {site_id}")
    return site


def locker_by_code(session: Session, code: str, *, lock: bool = False) -> Site:
    query = select(Site).where(Site.code == code, Site.kind == "locker")
    if lock:
        query = query.with_for_update()
    site = session.scalar(query)
    if site is None:
        raise NotFound(f"no locker {code!r}")
    return site


def compartments_of(session: Session, site_id: int) -> list[Compartment]:
    return list(session.scalars(
        select(Compartment).where(Compartment.site_id == site_id).order_by(Compartment.number)
    ))


def compartment(session: Session, site_id: int, number: int) -> Compartment | None:
    return session.scalar(
        select(Compartment).where(Compartment.site_id == site_id, Compartment.number == number)
    )


def set_compartment_service(
    ctx: Ctx, actor: Principal, site_id: int, number: int, *, in_service: bool,
    reason: str | None = None,
) -> dict[str, Any]:
    """Take a door out of service (the locker refuses to open it, allocation skips it) or put
    it back. The locker is told by a command written with the change."""
    require_role(actor, *OPERATOR_ROLES)
    if not in_service and not (reason or "").strip():
        raise ValidationFailed("say why the compartment goes out of service")
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = _locked_locker(session, site_id)
        box = compartment(session, site.id, number)
        if box is None:
            raise NotFound(f"no compartment {number} at {site.code}")
        if in_service:
            box.fault_reason = None
            box.state = "occupied" if _parcel_in(session, box) else "free"
            queue_command(ctx, session, site, "set_in_service", {"compartment": number}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)
        else:
            box.state, box.fault_reason = "out_of_service", reason.strip()[:200]  # type: ignore[union-attr]
            queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": number, "reason": box.fault_reason}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)
        return compartment_view(session, box)


HELD_IN_BOX = (State.READY_FOR_PICKUP.value, State.EXPIRED.value, State.DAMAGED.value)


def _parcel_in(session: Session, box: Compartment) -> Parcel | None:
    return next(iter(parcels_in(session, box)), None)


def parcels_in(session: Session, box: Compartment) -> list[Parcel]:
    """Everything the door holds: one parcel, or several for one recipient sharing it."""
    return list(session.scalars(
        select(Parcel).where(Parcel.compartment_id == box.id, Parcel.state.in_(HELD_IN_BOX))
        .order_by(Parcel.id)
    ))


def _reserved_parcel(session: Session, box: Compartment) -> Parcel | None:
    return next(iter(reserved_parcels(session, box)), None)


def reserved_parcels(session: Session, box: Compartment) -> list[Parcel]:
    """The parcels on their way to this door: one, or a recipient's several reserved ahead."""
    return list(session.scalars(
        select(Parcel).where(Parcel.compartment_id == box.id,
                             Parcel.state == State.ANNOUNCED.value).order_by(Parcel.id)
    ))


def settle(session: Session, box: Compartment) -> None:
    """The compartment's state from what it waits for and what it holds (out of service
    stays so). A door shared by a recipient's parcels may hold some and wait for another:
    it is then `reserved`, not free to anyone else."""
    if box.state == "out_of_service":
        return
    if _reserved_parcel(session, box) is not None:  # a session's or in advance
        box.state = "reserved"
    elif _parcel_in(session, box) is not None:
        box.state, box.reserved_until, box.reserved_session_id = "occupied", None, None
    else:
        box.state, box.reserved_until, box.reserved_session_id = "free", None, None


# ---------------------------------------------------------------- doors shared by a recipient


def recipient_keys_of(ctx: Ctx, parcel: Parcel) -> grouping.RecipientKeys:
    """Stored at check-in; read from the plain address for a parcel stored before that."""
    from relay_ops.services.credentials import recipient_keys

    if parcel.recipient_phone_key or parcel.recipient_email_key:
        return grouping.RecipientKeys(parcel.recipient_phone_key, parcel.recipient_email_key)
    return recipient_keys(ctx, parcel.recipient_phone, parcel.recipient_email)


def _shared_box(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
                until: datetime | None = None) -> Compartment | None:
    """A door of this recipient's parcels, brought by the same carrier, that takes this one
    laid on them (docs/forecast.md, "Parcels grouped at a locker"): a closed door holding
    their ready parcels, or, for a reservation made ahead that ends by ``until``, a door
    reserved ahead for their parcels on the way."""
    keys = recipient_keys_of(ctx, parcel)
    if not keys or parcel.carrier_id is None:
        return None
    states = ("occupied", "reserved") if until is not None else ("occupied",)
    boxes = {box.id: box for box in session.scalars(select(Compartment).where(
        Compartment.site_id == site.id, Compartment.state.in_(states)))
        if box.state == "occupied" or (
            is_advance_reservation(box) and until is not None
            and box.reserved_until is not None and until <= box.reserved_until)}
    if not boxes:
        return None
    inside: dict[int, list[Parcel]] = {box_id: [] for box_id in boxes}
    for other in session.scalars(select(Parcel).where(
            Parcel.compartment_id.in_(boxes), Parcel.id != parcel.id,
            Parcel.state.in_((*HELD_IN_BOX, State.ANNOUNCED.value))).order_by(Parcel.id)):
        inside[other.compartment_id].append(other)  # type: ignore[index]
    doors = [_door(ctx, session, box_id, parcels) for box_id, parcels in inside.items()
             if parcels and all(p.state in (State.READY_FOR_PICKUP.value, State.ANNOUNCED.value)
                                for p in parcels)]
    dims = parcel_dims(ctx, parcel)

    def room_for(box_id: int) -> bool:
        box = boxes[box_id]
        stack = [parcel_dims(ctx, p) for p in inside[box_id]]
        return sizing.fit_together([*stack, dims], (box.height_mm, box.width_mm, box.depth_mm))

    chosen = grouping.door_to_share(keys, parcel.carrier_id, doors, room_for)
    return boxes[chosen] if chosen is not None else None


def _door(ctx: Ctx, session: Session, box_id: int, parcels: list[Parcel]) -> grouping.Door:
    from relay_ops.services.credentials import live_credentials

    locked = any(c.locked_at is not None for p in parcels
                 if p.state == State.READY_FOR_PICKUP.value
                 for c in live_credentials(session, p.id))
    return grouping.Door(box_id, tuple(recipient_keys_of(ctx, p) for p in parcels),
                         tuple(p.carrier_id for p in parcels), code_locked=locked)


def shares_with(session: Session, box: Compartment) -> list[str]:
    """The tracking numbers a door already holds (for the events of a shared reservation)."""
    return [p.tracking_number for p in parcels_in(session, box)]


# ---------------------------------------------------------------- commands


def queue_command(
    ctx: Ctx, session: Session, site: Site, name: str, body: dict[str, Any], now: datetime,
    *, ttl_s: int | None = None, dedupe: str | None = None,
) -> OutboxMessage:
    """Owe the locker a command (published by the bridge after this transaction commits)."""
    corr_id = str(uuid.uuid4())
    ttl = ttl_s if ttl_s is not None else ctx.settings.locker.open_ttl_s
    message = outbox.enqueue_locker_command(
        session, site.code, name, {"body": body}, dedupe or f"{name}:{site.code}:{corr_id}",
        now + timedelta(seconds=ttl),
    )
    if message.corr_id is None:
        message.corr_id = corr_id
    session.info[COMMANDS_QUEUED] = True
    return message


@dataclass(frozen=True)
class CommandToSend:
    id: int
    locker: str
    name: str
    body: dict[str, Any]
    corr_id: str
    expires_at: datetime


def commands_to_send(
    ctx: Ctx, *, resend_after_s: float = 5.0, limit: int = 200, locker: str | None = None,
    online_only: bool = True,
) -> list[CommandToSend]:
    """Claim the locker commands due for (re)publication and mark them sent.

    Pending rows are due at once; sent rows that no locker answered (no ``accepted``) are due
    again after ``resend_after_s``, until they expire. A process that dies after this call and
    before publishing loses nothing: the rows come due again. Expired rows are closed here.
    Commands for a locker known offline wait in the outbox (protocol section 8): published
    into the broker's queue they could run late, when nobody stands at the door any more.
    """
    with ctx.db.transaction() as session:
        return claim_commands(session, ctx.now(), resend_after_s=resend_after_s, limit=limit,
                              locker=locker, online_only=online_only)


def claim_commands(
    session: Session, now: datetime, *, resend_after_s: float = 5.0, limit: int = 200,
    locker: str | None = None, online_only: bool = True,
) -> list[CommandToSend]:
    """`commands_to_send` inside the caller's transaction (the bridge claims the commands an
    event produced in that event's transaction: one commit less between a scan and its door)."""
    expired = update(OutboxMessage).where(
        OutboxMessage.kind == outbox.LOCKER_COMMAND,
        OutboxMessage.status.in_(("pending", "sent")), OutboxMessage.expires_at < now)
    if locker is not None:
        expired = expired.where(OutboxMessage.target == locker)
    session.execute(expired.values(status="expired"))
    query = (
        select(OutboxMessage)
        .where(
            OutboxMessage.kind == outbox.LOCKER_COMMAND,
            (OutboxMessage.status == "pending")
            | ((OutboxMessage.status == "sent")
               & (OutboxMessage.dispatched_at < now - timedelta(seconds=resend_after_s))),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if locker is not None:
        query = query.where(OutboxMessage.target == locker)
    if online_only:
        query = query.where(OutboxMessage.target.in_(
            select(Site.code).join(LockerLink, LockerLink.site_id == Site.id)
            .where(LockerLink.online.is_(True))))
    due: list[CommandToSend] = []
    for row in session.scalars(query):
        row.status, row.dispatched_at, row.attempts = "sent", now, row.attempts + 1
        assert row.target and row.corr_id and row.expires_at
        due.append(CommandToSend(row.id, row.target, row.name, dict(row.payload["body"]),
                                 row.corr_id, row.expires_at))
    return due


# ---------------------------------------------------------------- credentials


def command_keys(ctx: Ctx) -> list[dict[str, str]]:
    """The public keys a locker trusts for commands: the signing key's, then any other key
    still or already trusted (a rotation: the next key is trusted before it signs)."""
    settings = ctx.settings.locker
    keys = [{"kid": settings.command_kid, "key": raw_public_key(settings.command_key)}]
    keys += [{"kid": kid, "key": key} for kid, key in settings.command_trusted_keys.items()
             if kid != settings.command_kid]
    return keys


def pin_key(ctx: Ctx, locker_code: str) -> str:
    """The locker's PIN hashing key (base64), derived so no secret sits in the database. It
    reaches the locker in its provisioning bundle, never in a sync (protocol section 12)."""
    raw = hmac.new(ctx.settings.locker.pin_key_secret,
                   f"locker-pin-key/{locker_code}/{PIN_KEY_ID}".encode(), hashlib.sha256).digest()
    return base64.b64encode(raw).decode()


def _keyed_hash(ctx: Ctx, site: Site, code: str) -> str:
    """What the locker's keypad hashes a typed code to (protocol section 7)."""
    key = base64.b64decode(pin_key(ctx, site.code))
    return hmac.new(key, b"relayops/pin/v1:" + code.encode(), hashlib.sha256).hexdigest()


def locker_pin_hash(ctx: Ctx, site: Site, credential: PickupCredential) -> str:
    """What the locker's keypad hashes this credential's PIN to (protocol section 7)."""
    from relay_ops.services.credentials import code_of

    return _keyed_hash(ctx, site, code_of(ctx, credential))


def carrier_code(ctx: Ctx, site: Site, carrier_id: int, generation: int | None = None) -> str:
    """A carrier's offline code at one locker: derived from the locker PIN secret, the locker,
    the carrier and the code's generation (rotated, `rotate_carrier_code`), so nothing secret
    is stored and no other locker or carrier shares it. It has more digits than a resident's
    PIN: it opens every compartment reserved for the carrier. ``generation`` None: the current
    one (read through the site's session)."""
    if generation is None:
        session = object_session(site)
        assert session is not None, "a site read in a session"
        generation = _code_generation(session, site.id, carrier_id)
    label = f"carrier-offline-code/{site.code}/{carrier_id}"
    if generation:  # generation 0 keeps the code every carrier had before rotation existed
        label += f"/{generation}"
    raw = hmac.new(ctx.settings.locker.pin_key_secret, label.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(raw[:8], 'big') % 10**CARRIER_CODE_DIGITS:0{CARRIER_CODE_DIGITS}d}"


def _code_generation(session: Session, site_id: int, carrier_id: int) -> int:
    """Read once per transaction (a full sync names the carrier in every reservation, and
    the identity map does not remember a row that is not there)."""
    known: dict[tuple[int, int], int] = session.info.setdefault(CODE_GENERATIONS, {})
    if (site_id, carrier_id) not in known:
        row = session.get(CarrierCode, (site_id, carrier_id))
        known[(site_id, carrier_id)] = row.generation if row is not None else 0
    return known[(site_id, carrier_id)]


def _carrier_code_answer(ctx: Ctx, site: Site, carrier_id: int) -> dict[str, Any]:
    return {"site_id": site.id, "locker": site.code, "code": carrier_code(ctx, site, carrier_id),
            "use": "type it on the locker's keypad as a carrier code: the doors reserved "
                   "for you open, expired parcels one after the other, and each parcel "
                   "you scan next opens its reserved door"}


def carrier_code_view(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """The calling carrier's own offline code for one locker (never another carrier's)."""
    require_role(actor, Role.CARRIER)
    assert actor.carrier_id is not None
    with ctx.db.read() as session:
        site = session.get(Site, site_id)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        return _carrier_code_answer(ctx, site, actor.carrier_id)


def rotate_carrier_code(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """A new offline code for the calling carrier at this locker (the old one leaked: a
    driver left, a code was seen typed). The locker gets the carrier's reservations hashed
    with the new code in the same transaction, as a full credential sync: from the moment it
    applies it, online or not, the old code opens nothing there."""
    require_role(actor, Role.CARRIER)
    assert actor.carrier_id is not None
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id, with_for_update=True)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        row = session.get(CarrierCode, (site.id, actor.carrier_id))
        if row is None:
            row = CarrierCode(site_id=site.id, carrier_id=actor.carrier_id, generation=0)
            session.add(row)
        row.generation, row.rotated_at = row.generation + 1, ctx.now()
        session.flush()
        session.info.pop(CODE_GENERATIONS, None)  # read again: the sync below uses the new one
        queue_sync(ctx, session, site, link_of(session, site), force_full=True)
        return _carrier_code_answer(ctx, site, actor.carrier_id)


# ---------------------------------------------------------------- reservations synced


def deposit_reservation_id(parcel: Parcel, box: Compartment) -> str:
    """Unique per reservation (a parcel reserved again later gets a new id: the locker keeps
    revoked ids for good); rebuilt from the rows, nothing stored."""
    assert box.reserved_until is not None
    return f"dep-{parcel.id}-{box.number}-{int(box.reserved_until.timestamp())}"


def collection_reservation_id(parcel: Parcel) -> str:
    return f"col-{parcel.id}"  # a parcel expires (or is damaged) once


def _reservation_entry(ctx: Ctx, site: Site, purpose: str, reservation_id: str,
                       parcel: Parcel, box: Compartment, expires_at: datetime
                       ) -> dict[str, Any]:
    assert parcel.carrier_id is not None
    return {"reservation_id": reservation_id, "purpose": purpose, "compartment": box.number,
            "parcel_ref": parcel.tracking_number,
            "code_hash": _keyed_hash(ctx, site, carrier_code(ctx, site, parcel.carrier_id)),
            "expires_at": expires_at.isoformat()}


def deposit_reservation(ctx: Ctx, site: Site, parcel: Parcel, box: Compartment
                        ) -> dict[str, Any]:
    assert box.reserved_until is not None
    return _reservation_entry(ctx, site, "deposit", deposit_reservation_id(parcel, box),
                              parcel, box, box.reserved_until)


def collection_reservation(ctx: Ctx, site: Site, parcel: Parcel, box: Compartment
                           ) -> dict[str, Any]:
    base = parcel.holding_deadline or ctx.now()
    return _reservation_entry(ctx, site, "collection", collection_reservation_id(parcel),
                              parcel, box, base + COLLECTION_RESERVATION_LIFE)


def is_advance_reservation(box: Compartment) -> bool:
    """Reserved ahead of the carrier's visit (no drop-off session holds it)."""
    return (box.state in ("reserved", "door_open") and box.reserved_session_id is None
            and box.reserved_until is not None)


def _live_reservations(ctx: Ctx, session: Session, site: Site, now: datetime
                       ) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Parcel, Compartment).join(Compartment, Parcel.compartment_id == Compartment.id)
        .where(Compartment.site_id == site.id, Parcel.carrier_id.is_not(None),
               Parcel.state.in_((State.ANNOUNCED.value, State.EXPIRED.value,
                                 State.DAMAGED.value)))
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


def public_key_text(ctx: Ctx) -> str:
    return pickup_token.public_key_to_text(ctx.settings.locker.signing_key.public_key())


def token_for(ctx: Ctx, site: Site, parcel: Parcel, credential: PickupCredential) -> str:
    """The signed QR token of a locker parcel. Deterministic (Ed25519 signatures are), so the
    resident's QR image is the same every time it is drawn."""
    assert credential.token_jti and parcel.checked_in_at and parcel.holding_deadline
    claims = pickup_token.TokenClaims(
        jti=credential.token_jti,
        parcel_id=parcel.tracking_number,
        site=site.code,
        compartment=parcel.compartment.number if parcel.compartment else None,
        not_before=int(parcel.checked_in_at.timestamp()),
        expires_at=int(parcel.holding_deadline.timestamp()),
    )
    return pickup_token.issue_token(ctx.settings.locker.signing_key,
                                    ctx.settings.locker.token_kid, claims)


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
            _pin_entry(ctx, site, _parcel_of(session, c), c) for c in (added or [])
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


def _parcel_of(session: Session, credential: PickupCredential) -> Parcel:
    parcel = session.get(Parcel, credential.parcel_id)
    assert parcel is not None
    return parcel


def link_of(session: Session, site: Site, *, lock: bool = False) -> LockerLink:
    link = session.get(LockerLink, site.id, with_for_update=lock)
    if link is None:  # a locker site created before it was registered as one
        link = LockerLink(site_id=site.id, online=False)
        session.add(link)
        session.flush()
    return link


# ---------------------------------------------------------------- drop-off sessions


def _session_view(row: LockerSession) -> dict[str, Any]:
    return {"id": row.id, "site_id": row.site_id, "status": row.status,
            "opened_at": row.opened_at.isoformat(), "expires_at": row.expires_at.isoformat(),
            "closed_at": row.closed_at.isoformat() if row.closed_at else None,
            "collect_queue": list(row.collect_queue or [])}


def open_session(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """A carrier starts working at a locker."""
    require_role(actor, Role.CARRIER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = _locked_locker(session, site_id)
        row = LockerSession(site_id=site.id, carrier_id=actor.carrier_id, status="open",
                            opened_at=now, expires_at=_session_deadline(ctx, now),
                            collect_queue=[])
        session.add(row)
        session.flush()
        return _session_view(row)


def _session_deadline(ctx: Ctx, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.settings.locker.session_timeout_s)


def _open_session_for(
    ctx: Ctx, session: Session, actor: Principal, session_id: int, now: datetime
) -> tuple[LockerSession, Site]:
    require_role(actor, Role.CARRIER)
    row = session.get(LockerSession, session_id)
    if row is None or row.carrier_id != actor.carrier_id:
        raise NotFound(f"no drop-off session {session_id}")
    site = _locked_locker(session, row.site_id)
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
    (:func:`reroute.full_at_drop_off`), and the answer names it; when there is none, or the
    parcel fits no compartment of this locker at all, it is refused and stays with the
    carrier."""
    number = tracking.validate(tracking_number)
    now = ctx.now()
    refusal: DomainError | None = None
    with ctx.db.transaction() as session:
        row, site = _open_session_for(ctx, session, actor, session_id, now)
        parcel = session.scalar(select(Parcel).where(Parcel.tracking_number == number)
                                .with_for_update())
        if parcel is None or parcel.carrier_id != actor.carrier_id:
            raise NotFound(f"no parcel {number} announced by you")
        if parcel.site_id != site.id:
            raise ValidationFailed(f"{number} is addressed to {parcel.site.code}, not {site.code}")
        if parcel.state != State.ANNOUNCED.value:
            raise InvalidTransition(f"{number} is {parcel.state}", state=parcel.state)
        if parcel.compartment_id is not None:  # scanned twice: the same door, opened again
            box = session.get(Compartment, parcel.compartment_id)
            assert box is not None
            _open(ctx, session, site, box, "deposit", parcel, now)
            return _deposit_answer(row, parcel, box, "door_opening")
        box, reason = _allocate(ctx, session, site, parcel)
        if box is None and reason.startswith(FULL):
            moved = reroute.full_at_drop_off(
                ctx, session, parcel, site, actor,
                lambda other: _has_room(ctx, session, other, parcel),
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
            _open(ctx, session, site, box, "deposit", parcel, now)
            return _deposit_answer(row, parcel, box, "door_opening")
    # the refusal's event is committed; only now is it reported
    assert refusal is not None
    raise refusal


def _deposit_answer(row: LockerSession, parcel: Parcel, box: Compartment, status: str
                    ) -> dict[str, Any]:
    return {"status": status, "session_id": row.id, "tracking_number": parcel.tracking_number,
            "compartment": box.number, "size_class": box.size_class}


def parcel_dims(ctx: Ctx, parcel: Parcel) -> sizing.Dims:
    if parcel.height_mm and parcel.width_mm and parcel.depth_mm:
        return (parcel.height_mm, parcel.width_mm, parcel.depth_mm)
    classes = ctx.settings.size_classes
    size_class = parcel.size_class or min(classes, key=lambda c: sizing.class_rank(classes, c))
    return classes[size_class]


def _allocate(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
              until: datetime | None = None) -> tuple[Compartment | None, str]:
    """The door for a parcel: one of its recipient's (`_shared_box`), else the smallest free
    door it fits; ``until``: the end of a reservation made ahead."""
    shared = _shared_box(ctx, session, site, parcel, until)
    if shared is not None:
        return shared, ""
    boxes = compartments_of(session, site.id)
    dims = parcel_dims(ctx, parcel)
    free = [sizing.Compartment(b.number, (b.height_mm, b.width_mm, b.depth_mm))
            for b in boxes if b.state == "free"]
    chosen = sizing.choose_compartment(free, dims)
    if chosen is not None:
        return next(b for b in boxes if b.number == chosen.number), ""
    every = [sizing.Compartment(b.number, (b.height_mm, b.width_mm, b.depth_mm)) for b in boxes]
    size = "x".join(str(d) for d in dims)
    if sizing.choose_compartment(every, dims) is None:
        return None, f"a parcel of {size} mm fits no compartment of {site.code}"
    return None, f"{FULL} of {site.code} takes a parcel of {size} mm"


def _has_room(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> bool:
    """A free compartment of ``site`` takes the parcel now (nothing is reserved)."""
    free = [sizing.Compartment(b.number, (b.height_mm, b.width_mm, b.depth_mm))
            for b in compartments_of(session, site.id) if b.state == "free"]
    return sizing.choose_compartment(free, parcel_dims(ctx, parcel)) is not None


def _open(ctx: Ctx, session: Session, site: Site, box: Compartment, purpose: str,
          parcel: Parcel | None, now: datetime, **extra: Any) -> OutboxMessage:
    body: dict[str, Any] = {"purpose": purpose, "compartment": box.number}
    if parcel is not None:
        body["parcel_ref"] = parcel.tracking_number
    body.update({k: v for k, v in extra.items() if v is not None})
    return queue_command(ctx, session, site, COMMAND_OPEN, body, now)


def close_session(ctx: Ctx, actor: Principal, session_id: int) -> dict[str, Any]:
    """The carrier is done: reservations whose door was never opened go back to the pool."""
    require_role(actor, Role.CARRIER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        row = session.get(LockerSession, session_id)
        if row is None or row.carrier_id != actor.carrier_id:
            raise NotFound(f"no drop-off session {session_id}")
        _locked_locker(session, row.site_id)
        if row.status == "open":
            _end_session(session, row, "closed", actor, now)
        return _session_view(row)


def _end_session(session: Session, row: LockerSession, status: str, actor: Principal,
                 now: datetime) -> int:
    row.status, row.closed_at, row.collect_queue = status, now, []
    released = 0
    for box in session.scalars(select(Compartment).where(
            Compartment.reserved_session_id == row.id, Compartment.state == "reserved")):
        parcel = _reserved_parcel(session, box)
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
    from relay_ops.services.principal import SYSTEM

    now = ctx.now()
    with ctx.db.read() as session:
        stale = list(session.scalars(select(LockerSession.id).where(
            LockerSession.status == "open", LockerSession.expires_at <= now)))
        ahead = _lockers_with_advance_work(ctx, session, now)
    released = 0
    for session_id in stale:
        with ctx.db.transaction() as session:
            row = session.get(LockerSession, session_id)
            assert row is not None
            _locked_locker(session, row.site_id)
            session.refresh(row)
            if row.status == "open" and row.expires_at <= now:  # re-checked under the lock
                released += _end_session(session, row, "timed_out", SYSTEM, now)
    for site_id in ahead:
        with ctx.db.transaction() as session:
            site = _locked_locker(session, site_id)
            lapsed = _release_lapsed_reservations(session, site, now)
            added = reserve_ahead(ctx, session, site, now)
            if lapsed or added:
                queue_sync(ctx, session, site, link_of(session, site), reservations=added,
                           released=lapsed)
            released += len(lapsed)
    return released


# ---------------------------------------------------------------- advance reservations


def _reservation_horizon(ctx: Ctx, now: datetime) -> date | None:
    days = ctx.settings.locker.advance_reservation_days
    if days < 0:
        return None
    return now.astimezone(ctx.settings.timezone).date() + timedelta(days=days)


def _advance_reservation_end(ctx: Ctx, parcel: Parcel, now: datetime) -> datetime:
    """Held until the end of the day after the expected day (local time): a van that is late
    by a day still finds its doors; after that they go back to everyone."""
    today = now.astimezone(ctx.settings.timezone).date()
    day = max(parcel.expected_date or today, today) + timedelta(days=2)
    return datetime.combine(day, time(0), ctx.settings.timezone).astimezone(now.tzinfo)


def _due_parcels(ctx: Ctx, session: Session, horizon: date, site_id: int | None = None
                 ) -> Any:
    """Announced parcels expected between yesterday and the horizon, without a door: older
    ones had their reservation and lost it (it lapsed), the app's drop-off serves them."""
    since = horizon - timedelta(days=ctx.settings.locker.advance_reservation_days + 1)
    query = select(Parcel).where(
        Parcel.state == State.ANNOUNCED.value, Parcel.compartment_id.is_(None),
        Parcel.expected_date.is_not(None), Parcel.expected_date <= horizon,
        Parcel.expected_date >= since, Parcel.carrier_id.is_not(None))
    if site_id is not None:
        query = query.where(Parcel.site_id == site_id)
    return query


def _lockers_with_advance_work(ctx: Ctx, session: Session, now: datetime) -> list[int]:
    lapsed = select(Compartment.site_id).where(
        Compartment.state == "reserved", Compartment.reserved_session_id.is_(None),
        Compartment.reserved_until.is_not(None), Compartment.reserved_until <= now)
    ids = set(session.scalars(lapsed))
    horizon = _reservation_horizon(ctx, now)
    if horizon is not None:
        due = _due_parcels(ctx, session, horizon).with_only_columns(Parcel.site_id).join(
            Site, Site.id == Parcel.site_id).where(Site.kind == "locker").distinct()
        ids |= set(session.scalars(due))
    return sorted(ids)


def reserve_ahead(ctx: Ctx, session: Session, site: Site, now: datetime
                  ) -> list[dict[str, Any]]:
    """Reserve, in advance, the smallest fitting free compartment for each parcel announced
    to this locker whose expected day is near (LOCKER_ADVANCE_RESERVATION_DAYS). The caller
    holds the locker's lock and syncs the returned reservations to the locker. A parcel that
    finds no room now is tried again by the next sweep; at the door the online drop-off
    (with its full-locker reroute) still works for it."""
    horizon = _reservation_horizon(ctx, now)
    if horizon is None:
        return []
    from relay_ops.services.principal import SYSTEM

    added = []
    for parcel in session.scalars(_due_parcels(ctx, session, horizon, site.id)
                                  .order_by(Parcel.expected_date, Parcel.id)):
        until = _advance_reservation_end(ctx, parcel, now)
        box, _reason = _allocate(ctx, session, site, parcel, until)
        if box is None:
            continue
        shared = shares_with(session, box)
        box.state, box.reserved_session_id = "reserved", None
        # a door already reserved ahead keeps its end: the locker knows its reservations by it
        box.reserved_until = box.reserved_until if box.reserved_until else until
        parcel.compartment_id = box.id
        data: dict[str, Any] = {"locker": site.code, "compartment": box.number,
                                "advance": True, "until": box.reserved_until.isoformat()}
        if shared:
            data["shared_with"] = shared
        history.record(session, parcel, "compartment_reserved", parcel.state, SYSTEM, now,
                       data=data)
        added.append(deposit_reservation(ctx, site, parcel, box))
    return added


def reserve_ahead_at(ctx: Ctx, session: Session, site_ids: set[int]) -> None:
    """After a manifest: the lockers it names reserve for their parcels due soon (one
    credential version per locker, not one per parcel)."""
    now = ctx.now()
    for site_id in sorted(site_ids):
        site = session.get(Site, site_id, with_for_update=True)
        if site is None or site.kind != "locker":
            continue
        added = reserve_ahead(ctx, session, site, now)
        if added:
            queue_sync(ctx, session, site, link_of(session, site), reservations=added)


def _release_lapsed_reservations(session: Session, site: Site, now: datetime) -> list[str]:
    from relay_ops.services.principal import SYSTEM

    released = []
    for box in session.scalars(select(Compartment).where(
            Compartment.site_id == site.id, Compartment.state == "reserved",
            Compartment.reserved_session_id.is_(None), Compartment.reserved_until.is_not(None),
            Compartment.reserved_until <= now)):
        for parcel in reserved_parcels(session, box):
            released.append(deposit_reservation_id(parcel, box))
            parcel.compartment_id = None
            history.record(session, parcel, "reservation_released", parcel.state, SYSTEM, now,
                           reason="advance reservation over", data={"compartment": box.number})
        box.reserved_until = None
        settle(session, box)
    return released


def release_advance_reservation(ctx: Ctx, session: Session, parcel: Parcel, site: Site,
                                actor: Principal, reason: str) -> None:
    """A parcel that will not come to this locker (rerouted...) gives its door back, and the
    locker forgets the reservation."""
    if parcel.compartment_id is None:
        return
    box = session.get(Compartment, parcel.compartment_id)
    if box is None or not is_advance_reservation(box) or box.site_id != site.id:
        return
    session.get(Site, site.id, with_for_update=True)  # credential versions are per locker
    reservation_id = deposit_reservation_id(parcel, box)
    parcel.compartment_id = None
    history.record(session, parcel, "reservation_released", parcel.state, actor, ctx.now(),
                   reason=reason, data={"compartment": box.number})
    if not reserved_parcels(session, box):  # another parcel of the recipient's still comes
        box.reserved_until = None
        if box.state == "reserved":
            settle(session, box)
    queue_sync(ctx, session, site, link_of(session, site), released=[reservation_id])


def start_collection(ctx: Ctx, actor: Principal, session_id: int) -> dict[str, Any]:
    """The carrier takes back this locker's expired parcels: doors open one at a time, the next
    when the previous one closes (a carrier has two hands)."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        row, site = _open_session_for(ctx, session, actor, session_id, now)
        waiting = list(session.scalars(
            select(Parcel).where(
                Parcel.site_id == site.id, Parcel.carrier_id == actor.carrier_id,
                Parcel.state.in_((State.EXPIRED.value, State.DAMAGED.value)),
                Parcel.compartment_id.is_not(None),
            ).order_by(Parcel.id)
        ))
        row.collect_queue = [p.id for p in waiting]
        if waiting:
            open_next_collection(ctx, session, site, row, now)
        return {**_session_view(row), "to_collect": [p.tracking_number for p in waiting]}


def open_next_collection(ctx: Ctx, session: Session, site: Site, row: LockerSession,
                         now: datetime) -> Parcel | None:
    queue = list(row.collect_queue or [])
    while queue:
        parcel = session.get(Parcel, queue[0])
        if parcel is not None and parcel.state in (State.EXPIRED.value, State.DAMAGED.value) \
                and parcel.compartment is not None:
            if parcel.compartment.state != "out_of_service":
                _open(ctx, session, site, parcel.compartment, "collection", parcel, now)
                return parcel
        queue.pop(0)
        row.collect_queue = queue
    return None


def held_for_collection(ctx: Ctx, session: Session, parcel: Parcel,
                        dead: list[PickupCredential]) -> None:
    """A parcel in a locker expired or was declared damaged: its PINs die at the locker and
    its carrier may collect it offline (a `collection` reservation). The caller locked the
    locker's row before the parcel's (the order every locker use case takes)."""
    box = parcel.compartment
    if box is None or parcel.site.kind != "locker":
        return
    site = parcel.site
    # One reservation per door: a door shared by a recipient's parcels (one carrier's, with
    # one deadline) opens once for the carrier, who takes them all.
    shared = any(p.id != parcel.id and p.state in (State.EXPIRED.value, State.DAMAGED.value)
                 for p in parcels_in(session, box))
    added = [collection_reservation(ctx, site, parcel, box)] \
        if parcel.carrier_id and not shared else []
    queue_sync(ctx, session, site, link_of(session, site), removed=dead, reservations=added)


def lock_locker_of(session: Session, parcel_id: int) -> None:
    """Take the locker's row lock before a parcel's (same order as the bridge: no deadlock)."""
    site_id = session.scalar(select(Parcel.site_id).where(Parcel.id == parcel_id))
    if site_id is not None:
        session.scalar(select(Site.id).where(Site.id == site_id, Site.kind == "locker")
                       .with_for_update())


# ---------------------------------------------------------------- resident credentials


def issue_locker_credential(ctx: Ctx, session: Session, parcel: Parcel) -> PickupCredential:
    from relay_ops.services.credentials import issue_credential

    credential = issue_credential(ctx, session, parcel, holder="recipient")
    credential.token_jti = str(uuid.uuid4())
    return credential


def qr_token(ctx: Ctx, parcel_id: int) -> str | None:
    """The signed token of a locker parcel's recipient credential (None for shop parcels)."""
    from relay_ops.services.credentials import live_credentials

    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        if parcel is None or parcel.site.kind != "locker":
            return None
        credential = next((c for c in live_credentials(session, parcel.id)
                           if c.holder == "recipient" and c.token_jti), None)
        if credential is None or parcel.state != State.READY_FOR_PICKUP.value:
            return None
        # a parcel sharing a door shares its first parcel's token: it opens that door
        return token_for(ctx, parcel.site, _parcel_of(session, credential), credential)


# ---------------------------------------------------------------- views


def compartment_view(session: Session, box: Compartment) -> dict[str, Any]:
    held, coming = parcels_in(session, box), reserved_parcels(session, box)
    parcel = next(iter(held or coming), None)
    return {
        "number": box.number, "size_class": box.size_class,
        "dims_mm": [box.height_mm, box.width_mm, box.depth_mm], "state": box.state,
        "fault_reason": box.fault_reason,
        "reserved_until": box.reserved_until.isoformat() if box.reserved_until else None,
        "parcel": parcel.tracking_number if parcel else None,
        # a door shared by a recipient's parcels: all it holds, then those on their way
        "parcels": [p.tracking_number for p in (*held, *coming)],
        "opened_for": box.opened_for,
    }


def locker_view_in(ctx: Ctx, session: Session, site: Site) -> dict[str, Any]:
    link = link_of(session, site)
    boxes = compartments_of(session, site.id)
    pending = session.scalar(select(func.count()).where(
        OutboxMessage.kind == outbox.LOCKER_COMMAND, OutboxMessage.target == site.code,
        OutboxMessage.status.in_(("pending", "sent", "accepted")))) or 0
    alerts = session.scalars(select(LockerAlert).where(
        LockerAlert.site_id == site.id, LockerAlert.resolved_at.is_(None)
    ).order_by(LockerAlert.id))
    cursor = session.scalar(select(LockerEventCursor).where(
        LockerEventCursor.site_id == site.id).order_by(LockerEventCursor.updated_at.desc(),
                                                        LockerEventCursor.id.desc()).limit(1))
    return {
        **sites.site_view(site, sites.occupancy_of(session, site)),
        "locker_model": site.locker_model,
        "link": {
            "online": link.online,
            "since": link.status_since.isoformat() if link.status_since else None,
            "last_seen_at": link.last_seen_at.isoformat() if link.last_seen_at else None,
            "boot_id": link.boot_id,
            "credential_version_sent": link.credential_version_sent,
            "credential_version_held": link.credential_version_held,
            "entries_waiting": link.unacked_events,
            "last_journal_entry": {
                "boot_id": link.last_event_boot, "seq": link.last_event_seq,
                "at": link.last_event_at.isoformat() if link.last_event_at else None,
            } if link.last_event_seq is not None else None,
            "applied": {"boot_id": cursor.boot_id, "seq": cursor.applied_seq} if cursor else None,
            "clock_skew_s": link.clock_skew_s,
        },
        "commands_waiting": int(pending),
        "compartments": [compartment_view(session, b) for b in boxes],
        "alerts": [
            {"id": a.id, "kind": a.kind, "compartment": a.compartment, "detail": a.detail,
             "at": a.created_at.isoformat(), "occurrences": a.occurrences,
             "last_seen_at": (a.last_seen_at or a.created_at).isoformat()}
            for a in alerts
        ],
    }


def locker_view(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM, Role.CARRIER)
    with ctx.db.read() as session:
        site = session.get(Site, site_id)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        view = locker_view_in(ctx, session, site)
        if actor.role is Role.CARRIER:  # carriers see doors, not the operator's alerts
            view.pop("alerts")
        return view


def resolve_alert(ctx: Ctx, actor: Principal, alert_id: int) -> None:
    require_role(actor, *OPERATOR_ROLES)
    with ctx.db.transaction() as session:
        alert = session.get(LockerAlert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        alert.resolved_at = alert.resolved_at or ctx.now()

