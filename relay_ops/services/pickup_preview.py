"""What a code would hand over at the counter, before the shopkeeper confirms: the parcel is
untouched, but a wrong code counts exactly as at a pickup (pickup_claims.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import PickupCredential, Site
from relay_ops.domain.errors import CredentialLocked, DomainError, ValidationFailed
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import live_credentials
from relay_ops.services.parcel_views import READY, left_view, parcel_view, site_for_staff
from relay_ops.services.pickup import first_ready
from relay_ops.services.pickup_claims import (
    PickupClaim,
    code_alone,
    count_wrong_attempt,
    matching_code,
    named_parcel,
    require_ready,
)
from relay_ops.services.principal import Principal


def pickup_preview(
    ctx: Ctx, actor: Principal, site_id: int, code: str, *, tracking_number: str | None = None,
    recipient_name: str | None = None,
) -> dict[str, Any]:
    """What a code would hand over, before the shopkeeper confirms; the parcel is untouched.

    The preview is no free oracle: a wrong code counts exactly as in ``pickup.pick_up`` (against
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
        found_id, failure = code_alone(ctx, session, site, claim.digits, now)
        return (None if found_id is None else session.get(PickupCredential, found_id)), failure
    parcel, failure = named_parcel(ctx, session, site, claim, actor, now)
    if parcel is None:
        return None, failure
    require_ready(parcel)
    live = live_credentials(session, parcel.id)
    found = matching_code(ctx, site, claim.digits, live)
    if found is not None:
        return found, None
    if any(c.locked_at for c in live):
        raise CredentialLocked("too many wrong codes: check an identity document and override",
                               tracking_number=parcel.tracking_number)
    return None, count_wrong_attempt(session, parcel, live, actor, now)


def _preview(session: Session, actor: Principal, found: PickupCredential) -> dict[str, Any]:
    covered = list(found.parcels)
    parcel = first_ready(covered)
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
