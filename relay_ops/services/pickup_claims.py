"""What a pickup claim proves: the live code a code alone finds at the site (a miss counts against
the site), the parcel a tracking number or a recipient's name names, the code of a known parcel
(a home delivery's courier asks it), and a wrong code counted against the parcel (5 lock it).
The counter's pickup (pickup.py) and its preview (pickup_preview.py) ask it the same way."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, PickupCredential, Site
from relay_ops.domain import credentials as creds
from relay_ops.domain import tracking
from relay_ops.domain.errors import (
    CredentialLocked,
    DomainError,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    WrongPickupCode,
)
from relay_ops.domain.lifecycle import State
from relay_ops.services import history, numbers, throttle
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import live_credentials, lock_live_code
from relay_ops.services.parcel_views import READY
from relay_ops.services.principal import Principal


@dataclass(frozen=True)
class PickupClaim:
    """What the person at the counter gives: the code, and perhaps what proves it is theirs
    (the tracking number, or the recipient's name), which a code alone needs once the site
    has seen a wrong guess (docs/decisions/0004)."""

    code: str = ""
    tracking_number: str | None = None
    recipient_name: str | None = None

    @property
    def digits(self) -> str:
        return creds.normalise_code(self.code)

    @property
    def names_the_parcel(self) -> bool:
        return bool(self.tracking_number or (self.recipient_name or "").strip())


def code_alone(
    ctx: Ctx, session: Session, site: Site, digits: str, now: datetime
) -> tuple[int | None, DomainError | None]:
    """The id of the live code at the site with these digits, its row locked; a miss counts
    against the site."""
    throttle.code_only_allowed(ctx, session, site)
    found = lock_live_code(
        session, site.id, creds.hash_code(ctx.settings.pickup_code_pepper, site.id, digits))
    if found is None:
        throttle.record_failure(session, throttle.CODE_ONLY_GUESSES, str(site.id), now)
        return None, WrongPickupCode("no parcel here has this code", attempts_left=None)
    return found, None


def named_parcel(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim, actor: Principal, now: datetime,
) -> tuple[Parcel | None, DomainError | None]:
    """The parcel the claim names: by tracking number, or the recipient's parcel whose code
    this is. Several parcels for one name and none with this code: each takes a wrong try."""
    if claim.tracking_number:
        named = _numbered_here(session, site, tracking.validate(claim.tracking_number))
        if len(named) == 1:
            return named[0], None
    else:
        named = _parcels_for_recipient(session, site, claim.recipient_name or "")
    found = next((p for p in named
                  if matching_code(ctx, site, claim.digits, live_credentials(session, p.id))), None)
    if found is not None or len(named) == 1:
        return found or named[0], None
    failures = []
    for parcel in named:
        live = live_credentials(session, parcel.id)
        if not any(c.locked_at for c in live):
            failures.append(count_wrong_attempt(session, parcel, live, actor, now))
    return None, failures[0] if failures else CredentialLocked(
        "too many wrong codes: check an identity document and give the tracking number")


def _numbered_here(session: Session, site: Site, number: str) -> list[Parcel]:
    """The parcels at the site under this number, row-locked in id order. Numbers are unique
    per carrier: when two carriers' parcels here share one, the ready ones are the claim's,
    and the code tells them apart as it tells a recipient's parcels apart."""
    here = list(session.scalars(
        numbers.numbered(number).where(Parcel.site_id == site.id).with_for_update()))
    if not here:
        raise NotFound(f"no parcel {number} at {site.code}")
    ready = [p for p in here if p.state == READY]
    return ready if len(here) > 1 and ready else here


def _parcels_for_recipient(session: Session, site: Site, name: str) -> list[Parcel]:
    """The ready parcels at the site for the recipient named, row-locked in id order."""
    ids = [
        pid for pid, recipient in session.execute(
            select(Parcel.id, Parcel.recipient_name)
            .where(Parcel.site_id == site.id, Parcel.state == READY,
                   Parcel.recipient_name.is_not(None))
        )
        if creds.is_recipient_named(name, recipient)
    ]
    if not ids:
        raise NotFound(f"no parcel waiting at {site.code} for this name")
    return list(session.scalars(
        select(Parcel).where(Parcel.id.in_(ids)).order_by(Parcel.id)
        .with_for_update().execution_options(populate_existing=True)
    ))


def code_for_parcel(
    ctx: Ctx, session: Session, parcel: Parcel, code: str, actor: Principal, now: datetime,
) -> tuple[PickupCredential | None, DomainError | None]:
    """The live code of a known parcel (row-locked by the caller) that ``code`` matches, or
    why not: a wrong code counts against the parcel exactly as at the counter with its
    tracking number (5 lock it), and a locked code stays locked (an identity document is
    checked at the counter). The home delivery's courier page confirms a delivery with it."""
    digits = creds.normalise_code(code)
    if not digits:
        raise ValidationFailed("type the resident's pickup code")
    live = live_credentials(session, parcel.id)
    if any(c.locked_at for c in live):
        raise CredentialLocked(
            "too many wrong codes: the code is locked until an identity document is checked "
            "at the shop", tracking_number=parcel.tracking_number)
    found = matching_code(ctx, parcel.site, digits, live)
    if found is not None:
        return found, None
    return None, count_wrong_attempt(session, parcel, live, actor, now)


def matching_code(
    ctx: Ctx, site: Site, digits: str, live: list[PickupCredential]
) -> PickupCredential | None:
    pepper = ctx.settings.pickup_code_pepper
    return next(
        (c for c in live if digits and creds.code_matches(pepper, site.id, digits, c.code_hash)),
        None,
    )


def require_ready(parcel: Parcel) -> None:
    if parcel.state != State.READY_FOR_PICKUP.value:
        raise InvalidTransition(
            f"{parcel.tracking_number} is {parcel.state}, not ready for pickup",
            state=parcel.state,
        )


def count_wrong_attempt(
    session: Session, parcel: Parcel, live: list[PickupCredential], actor: Principal,
    now: datetime,
) -> DomainError:
    outcome = creds.after_wrong_attempt(max((c.failed_attempts for c in live), default=0))
    for credential in live:
        credential.failed_attempts += 1
        if outcome.locked:
            credential.locked_at = now
    history.record(
        session, parcel, "wrong_code", parcel.state, actor, now,
        data={"locked": outcome.locked, "attempts_left": outcome.attempts_left},
    )
    if outcome.locked:
        return CredentialLocked(
            "5 wrong codes: the code is locked until an identity document is checked",
            tracking_number=parcel.tracking_number,
        )
    return WrongPickupCode("wrong code", attempts_left=outcome.attempts_left)
