"""A locker's door closed after a deposit (protocol 8): the parcel it was opened for is checked
in (its deadline by the counter's rules, its code, its message) or, closed empty, still in the
carrier's hands; a recipient's parcels sharing a door share one code and one deadline; a
sender's parcel goes to locker_sending."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Compartment,
    LockerLink,
    OutboxMessage,
    Parcel,
    PickupCredential,
    Site,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import (
    history,
    locker_compartments,
    locker_sending,
    locker_sync,
    locker_tokens,
    notify,
)
from relay_ops.services.checkin_grouping import Group, join_group
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import (
    live_credentials_of,
    locker_actor,
    offline_verification,
    session_actor,
)
from relay_ops.services.principal import Principal


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


def deposit_closed(ctx: Ctx, session: Session, site: Site, link: LockerLink,
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
