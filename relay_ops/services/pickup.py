"""Pickup at the counter: a code (alone, or with what names the parcel), or an identity check
when the code is locked, hands over every ready parcel the code covers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Parcel,
    PickupCredential,
    Site,
)
from relay_ops.domain import credentials as creds
from relay_ops.domain import grouping, tracking
from relay_ops.domain.errors import (
    CredentialLocked,
    DomainError,
    IdentityCheckRequired,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    WrongPickupCode,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import history, notify, numbers, throttle
from relay_ops.services import pickup_queries as queries
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import (
    LOCKED_CODE_ROWS,
    live_credential_by_hash,
    live_credentials,
    release_credentials,
    spend,
)
from relay_ops.services.parcel_views import (
    READY,
    STAFF,
    left_view,
    parcel_view,
    site_for_staff,
)
from relay_ops.services.principal import (
    Principal,
    Role,
    require_role,
    require_site,
)

IDENTITY_FIELDS = ("document_type", "document_last4", "name")


@dataclass(frozen=True)
class IdentityCheck:
    document_type: str
    document_last4: str
    name: str

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> IdentityCheck | None:
        if not data:
            return None
        missing = [f for f in IDENTITY_FIELDS if not str(data.get(f, "")).strip()]
        if missing:
            raise ValidationFailed(f"identity check needs {', '.join(missing)}")
        last4 = str(data["document_last4"]).strip()
        if len(last4) != 4:
            raise ValidationFailed("document_last4 is the last 4 characters of the document")
        return cls(str(data["document_type"]).strip(), last4, str(data["name"]).strip())

    def as_record(self) -> dict[str, str]:
        # The audit log keeps that a document was checked, not whose: no name here.
        return {"document_type": self.document_type, "document_last4": self.document_last4}


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


def pick_up(
    ctx: Ctx,
    actor: Principal,
    site_id: int,
    *,
    code: str | None = None,
    tracking_number: str | None = None,
    recipient_name: str | None = None,
    identity: IdentityCheck | None = None,
    override_lock: bool = False,
) -> dict[str, Any]:
    """Hand parcels over at the counter against their code (or, when locked, an identity
    check): every parcel the code covers that is still ready, one event each, together.

    ``parcel`` is the first handed over (as before grouping), ``parcels`` all of them, and
    ``not_handed_over`` the parcels the code covered that left the shelf meanwhile (expired,
    returned, declared missing...), with their state.
    """
    now = ctx.now()
    claim = PickupClaim(code or "", tracking_number, recipient_name)
    failure: DomainError | None = None
    with ctx.db.transaction() as session:
        site = _site_for_pickup(session, actor, site_id, claim)
        parcel, credential, failure, live = _match_credential(
            ctx, session, site, claim, identity, override_lock, actor, now
        )
        if failure is None:
            assert parcel is not None
            covered = _covered(session, parcel, credential)
            split = grouping.split_for_pickup({p.id: p.state for p in covered}, READY)
            handed = [p for p in covered if p.id in split.handed_over]
            for each in handed:
                _hand_over(session, each, credential, identity, override_lock, actor, now,
                           live if each is parcel else None)
            return {
                "status": "picked_up",
                "parcel": parcel_view(parcel, actor),
                "parcels": [parcel_view(p, actor) for p in handed],
                "not_handed_over": [left_view(p) for p in covered if p not in handed],
            }
    # The wrong attempt was committed above; only now is the refusal reported.
    raise failure


def _site_for_pickup(
    session: Session, actor: Principal, site_id: int, claim: PickupClaim
) -> Site:
    """The counter's site; for a code alone, with the lock its guesses take (one statement)."""
    if claim.names_the_parcel or not claim.digits:
        return site_for_staff(session, actor, site_id, lock=False)
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    site = throttle.site_for_code_guess(session, site_id)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


def pickup_preview(
    ctx: Ctx, actor: Principal, site_id: int, code: str, *, tracking_number: str | None = None,
    recipient_name: str | None = None,
) -> dict[str, Any]:
    """What a code would hand over, before the shopkeeper confirms; the parcel is untouched.

    The preview is no free oracle: a wrong code counts exactly as in :func:`pick_up` (against
    the site's code-only guesses, or against the parcel named by its tracking number or its
    recipient, which locks after 5).
    """
    claim = PickupClaim(code, tracking_number, recipient_name)
    if not claim.digits:
        raise ValidationFailed("type the pickup code or scan the resident's QR code")
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = site_for_staff(session, actor, site_id, lock=False)
        found, failure = _find_code(ctx, session, site, claim, actor, now)
        if found is not None:
            return _preview(session, actor, found)
    # The wrong attempt was committed above; only now is the refusal reported.
    assert failure is not None
    raise failure


def _find_code(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim, actor: Principal, now: datetime,
) -> tuple[PickupCredential | None, DomainError | None]:
    """The live code the claim gives, or why not (the wrong try already counted)."""
    if not claim.names_the_parcel:
        return _code_alone(ctx, session, site, claim.digits, now)
    parcel, failure = _named_parcel(ctx, session, site, claim, actor, now)
    if parcel is None:
        return None, failure
    _require_ready(parcel)
    live = live_credentials(session, parcel.id)
    found = _matching(ctx, site, claim.digits, live)
    if found is not None:
        return found, None
    if any(c.locked_at for c in live):
        raise CredentialLocked("too many wrong codes: check an identity document and override",
                               tracking_number=parcel.tracking_number)
    return None, _count_wrong_attempt(session, parcel, live, actor, now)


def _code_alone(
    ctx: Ctx, session: Session, site: Site, digits: str, now: datetime
) -> tuple[PickupCredential | None, DomainError | None]:
    """The live code at the site with these digits; a miss counts against the site."""
    throttle.code_only_allowed(ctx, session, site)
    found = live_credential_by_hash(
        session, site.id, creds.hash_code(ctx.settings.pickup_code_pepper, site.id, digits),
        lock=True,
    )
    if found is None:
        throttle.record_failure(session, throttle.CODE_ONLY_GUESSES, str(site.id), now)
        return None, WrongPickupCode("no parcel here has this code", attempts_left=None)
    return found, None


def _named_parcel(
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
                  if _matching(ctx, site, claim.digits, live_credentials(session, p.id))), None)
    if found is not None or len(named) == 1:
        return found or named[0], None
    failures = []
    for parcel in named:
        live = live_credentials(session, parcel.id)
        if not any(c.locked_at for c in live):
            failures.append(_count_wrong_attempt(session, parcel, live, actor, now))
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
    found = _matching(ctx, parcel.site, digits, live)
    if found is not None:
        return found, None
    return None, _count_wrong_attempt(session, parcel, live, actor, now)


def _matching(
    ctx: Ctx, site: Site, digits: str, live: list[PickupCredential]
) -> PickupCredential | None:
    pepper = ctx.settings.pickup_code_pepper
    return next(
        (c for c in live if digits and creds.code_matches(pepper, site.id, digits, c.code_hash)),
        None,
    )


def _preview(session: Session, actor: Principal, found: PickupCredential) -> dict[str, Any]:
    covered = list(found.parcels)
    parcel = _first_ready(covered)
    ready = [p for p in covered if p.state == READY]
    locked = any(c.locked_at for c in live_credentials(session, parcel.id))
    return {
        "parcel": parcel_view(parcel, actor),
        "parcels": [parcel_view(p, actor) for p in ready],
        "not_handed_over": [left_view(p) for p in covered if p not in ready],
        "holder": found.holder,
        "holder_name": found.holder_name,
        "locked": locked,
        "identity_required": locked or found.holder == "proxy",
    }


def _match_credential(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim,
    identity: IdentityCheck | None, override_lock: bool, actor: Principal, now: datetime,
) -> tuple[Parcel | None, PickupCredential | None, DomainError | None, list[PickupCredential]]:
    """The parcel and the code that hands it over, or why not; and the parcel's live codes
    (read under its row lock, so the hand-over need not read them again)."""
    if claim.names_the_parcel:
        parcel, failure = _named_parcel(ctx, session, site, claim, actor, now)
        if parcel is None:
            return None, None, failure, []
        _require_ready(parcel)
        live = live_credentials(session, parcel.id)
    elif claim.digits:
        found, failure = _code_alone(ctx, session, site, claim.digits, now)
        if found is None:
            return None, None, failure, []
        parcel = _first_ready(_lock_parcels(session, found))
        # Its codes came with it, read under its row lock (_lock_parcels): no second look.
        live = [c for c in parcel.credentials if c.live]
    else:
        raise ValidationFailed("give the pickup code, or the tracking number with the code")
    if any(c.locked_at for c in live):
        if not (override_lock and identity):
            raise CredentialLocked(
                "too many wrong codes: check an identity document and override",
                tracking_number=parcel.tracking_number,
            )
        return parcel, None, None, live
    matching = _matching(ctx, site, claim.digits, live)
    if matching is None:
        return parcel, None, _count_wrong_attempt(session, parcel, live, actor, now), live
    if matching.holder == "proxy" and identity is None:
        raise IdentityCheckRequired(
            "a proxy shows an identity document; record it with the pickup",
            holder_name=matching.holder_name,
        )
    return parcel, matching, None, live


# session.info keys: the parcels of each code this transaction locked (`_lock_parcels`), and
# the codes whose own row it already locked (`live_credential_by_hash`)
LOCKED_CODES = "relay_ops.locked_codes"


def _require_ready(parcel: Parcel) -> None:
    if parcel.state != State.READY_FOR_PICKUP.value:
        raise InvalidTransition(
            f"{parcel.tracking_number} is {parcel.state}, not ready for pickup",
            state=parcel.state,
        )


def _lock_parcels(session: Session, credential: PickupCredential) -> list[Parcel]:
    """The parcels a code covers, row-locked in id order (two pickups never deadlock).

    The code's row is locked first, as a check-in joining it does: a parcel is never
    attached to a code that a pickup is spending at the same moment. Once locked, the set
    cannot change before the commit, so a second call in the same transaction (finding the
    code, then what it hands over) reuses it: a session lives for one transaction."""
    locked: dict[int, list[Parcel]] = session.info.setdefault(LOCKED_CODES, {})
    if credential.id in locked:
        return locked[credential.id]
    params = {"credential_id": credential.id}
    if credential.id not in session.info.get(LOCKED_CODE_ROWS, ()):
        session.scalar(queries.LOCK_CODE, params)
    locked[credential.id] = list(session.scalars(queries.code_parcels(), params).unique())
    return locked[credential.id]


def _first_ready(covered: list[Parcel]) -> Parcel:
    """The parcel a code stands for: its first still ready. None ready: the refusal names the
    first parcel's state, as before grouping."""
    ready = [p for p in covered if p.state == READY]
    if not ready:
        first = covered[0]
        raise InvalidTransition(
            f"{first.tracking_number} is {first.state}, not ready for pickup", state=first.state,
        )
    return ready[0]


def _covered(
    session: Session, parcel: Parcel, credential: PickupCredential | None
) -> list[Parcel]:
    """What this pickup hands over: the code's parcels; with an identity check instead of a
    (locked) code, the parcels of every code the parcel had, since the check proves the same
    recipient for all of them."""
    codes = [credential] if credential else live_credentials(session, parcel.id)
    covered = {p.id: p for c in codes for p in _lock_parcels(session, c)}
    covered.setdefault(parcel.id, parcel)
    return [covered[pid] for pid in sorted(covered)]


def _count_wrong_attempt(
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


def _hand_over(
    session: Session, parcel: Parcel, credential: PickupCredential | None,
    identity: IdentityCheck | None, override_lock: bool, actor: Principal, now: datetime,
    live: list[PickupCredential] | None = None,
) -> None:
    data: dict[str, Any] = {"holder": credential.holder if credential else "identity-override"}
    if identity:
        data["identity_check"] = identity.as_record()
    if override_lock:
        data["override_lock"] = True
    history.apply(session, parcel, Action.PICK_UP, actor, now, data=data)
    if credential is not None:
        spend(session, credential, now)
    # The parcel's other codes (a proxy's; a code it shared with parcels now all gone) die.
    release_credentials(session, parcel, now, live)
    notify.queue(session, parcel, "picked_up")
