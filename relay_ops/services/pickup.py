"""Pickup at the counter: a code (alone, or with what names the parcel), or an identity check
when the code is locked, hands over every ready parcel the code covers.

What the claim proves is read in ``pickup_claims``; the preview before the hand-over is
``pickup_preview``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, PickupCredential, Site
from relay_ops.domain import grouping
from relay_ops.domain.errors import (
    CredentialLocked,
    DomainError,
    IdentityCheckRequired,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history, notify, throttle
from relay_ops.services import pickup_queries as queries
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import (
    LOCKED_CODE_ROWS,
    live_credentials,
    release_credentials,
    spend,
)
from relay_ops.services.parcel_views import READY, STAFF, left_view, parcel_view, site_for_staff
from relay_ops.services.pickup_claims import (
    PickupClaim,
    code_alone,
    count_wrong_attempt,
    matching_code,
    named_parcel,
    require_ready,
)
from relay_ops.services.principal import Principal, Role, require_role, require_site

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


def _match_credential(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim,
    identity: IdentityCheck | None, override_lock: bool, actor: Principal, now: datetime,
) -> tuple[Parcel | None, PickupCredential | None, DomainError | None, list[PickupCredential]]:
    """The parcel and the code that hands it over, or why not; and the parcel's live codes
    (read under its row lock, so the hand-over need not read them again)."""
    if claim.names_the_parcel:
        parcel, failure = named_parcel(ctx, session, site, claim, actor, now)
        if parcel is None:
            return None, None, failure, []
        require_ready(parcel)
        live = live_credentials(session, parcel.id)
    elif claim.digits:
        found, failure = code_alone(ctx, session, site, claim.digits, now)
        if found is None:
            return None, None, failure, []
        parcel = first_ready(_lock_parcels(session, found))
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
    matching = matching_code(ctx, site, claim.digits, live)
    if matching is None:
        return parcel, None, count_wrong_attempt(session, parcel, live, actor, now), live
    if matching.holder == "proxy" and identity is None:
        raise IdentityCheckRequired(
            "a proxy shows an identity document; record it with the pickup",
            holder_name=matching.holder_name,
        )
    return parcel, matching, None, live


# session.info keys: the parcels of each code this transaction locked (`_lock_parcels`), and
# the codes whose own row it already locked (`credentials.lock_live_code`)
LOCKED_CODES = "relay_ops.locked_codes"


def _lock_parcels(session: Session, credential_id: int) -> list[Parcel]:
    """The parcels a code covers, row-locked in id order (two pickups never deadlock).

    The code's row is locked first, as a check-in joining it does: a parcel is never
    attached to a code that a pickup is spending at the same moment. Once locked, the set
    cannot change before the commit, so a second call in the same transaction (finding the
    code, then what it hands over) reuses it: a session lives for one transaction."""
    locked: dict[int, list[Parcel]] = session.info.setdefault(LOCKED_CODES, {})
    if credential_id in locked:
        return locked[credential_id]
    params = {"credential_id": credential_id}
    if credential_id not in session.info.get(LOCKED_CODE_ROWS, ()):
        queries.LOCK_CODE.rows(session, params)
    locked[credential_id] = queries.code_parcels(session, credential_id)
    return locked[credential_id]


def first_ready(covered: list[Parcel]) -> Parcel:
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
    covered = {p.id: p for c in codes for p in _lock_parcels(session, c.id)}
    covered.setdefault(parcel.id, parcel)
    return [covered[pid] for pid in sorted(covered)]


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
