"""Credentials presented at a locker: a QR code or a PIN the locker forwards for the
backend to decide (online), and the pickups it decided alone (offline, protocol 9.1).

Called by `locker_events` (one handler per event type), in its transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import LockerLink, Parcel, PickupCredential, Site
from relay_ops.domain import pickup_token
from relay_ops.domain.errors import TooManyAttempts
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, locker_commands, locker_keys, locker_sync, numbers, throttle
from relay_ops.services.context import Ctx
from relay_ops.services.locker_alerts import raise_alert
from relay_ops.services.locker_door_parcels import credential_by_ref, locker_actor

# Online keypad guessing: a locker holds a few dozen parcels, a guesser tries thousands.
LOCKER_PINS = throttle.Limit("locker-pin", 10, timedelta(minutes=10),
                             "wait before typing another code")


# Refused QR codes naming one parcel (used, revoked, wrong locker): someone replays a photo.
LOCKER_PARCEL = throttle.Limit("locker-parcel", 5, timedelta(minutes=10),
                               "ask the operator")


# A forwarded credential older than this was decided by the locker itself (it waits 5 s).
FORWARD_ANSWER_USEFUL_S = 30


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
        locker_commands.queue_command(ctx, session, site, "reject_credential",
                              {"presentation_id": presentation, "reason": decision[:200]}, now)
        return
    parcel, credential, credential_id = decision
    assert parcel.compartment is not None
    locker_commands.open_door(ctx, session, site, parcel.compartment, "pickup", parcel, now,
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
    credential = credential_by_ref(session, claims.jti)
    # Numbers are unique per carrier: the parcel here that the token's credential covers
    parcel = numbers.for_locker(session, site.id, str(claims.parcel_id),
                                covered=lambda: _covered(credential))
    if parcel is None or parcel.site_id != site.id:
        return "unknown_parcel"
    key = str(parcel.id)
    if _over(session, LOCKER_PARCEL, key, now):
        return "locked_out"
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
    for parcel, credential in locker_sync.ready_with_codes(session, site):
        if credential.id in checked:
            continue
        checked.add(credential.id)
        if locker_keys.locker_pin_hash(ctx, site, credential) == code_hash:
            refusal = _refusal(parcel, credential)
            return refusal or (parcel, credential, locker_sync.pin_credential_id(credential))
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
    credential = credential_by_ref(session, body["credential_id"])
    parcel = numbers.for_locker(session, site.id, body["parcel_ref"],
                                covered=lambda: _covered(credential))
    if parcel is None or parcel.site_id != site.id:
        raise_alert(session, site, "unknown_offline_pickup", f"{body['parcel_ref']} is not known "
               "at this locker", compartment=body["compartment"])
        return
    if credential is not None and credential.used_at is not None:
        raise_alert(session, site, "credential_used_twice", f"{body['credential_id']} was already "
               "used", compartment=body["compartment"], parcel=parcel)  # protocol 9.3
    history.record(session, parcel, "offline_pickup_verified", parcel.state, locker_actor(site),
                   now, data={"verified_at": body["verified_at"], "kind": body["credential_kind"],
                              "credential": body["credential_id"]})


def _covered(credential: PickupCredential | None) -> set[int]:
    return {p.id for p in credential.parcels} if credential is not None else set()
