"""A resident's credential for a locker parcel: issued at deposit with a token id, and its
signed QR token (the resident's page draws it; the locker verifies it offline)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, PickupCredential, Site
from relay_ops.domain import pickup_token
from relay_ops.domain.lifecycle import State
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import issue_credential, live_credentials
from relay_ops.services.locker_sync import parcel_of


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


def issue_locker_credential(ctx: Ctx, session: Session, parcel: Parcel) -> PickupCredential:
    credential = issue_credential(ctx, session, parcel, holder="recipient")
    credential.token_jti = str(uuid.uuid4())
    return credential


def qr_token(ctx: Ctx, parcel_id: int) -> str | None:
    """The signed token of a locker parcel's recipient credential (None for shop parcels)."""
    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        if parcel is None or parcel.site.kind != "locker":
            return None
        credential = next((c for c in live_credentials(session, parcel.id)
                           if c.holder == "recipient" and c.token_jti), None)
        if credential is None or parcel.state != State.READY_FOR_PICKUP.value:
            return None
        # a parcel sharing a door shares its first parcel's token: it opens that door
        return token_for(ctx, parcel.site, parcel_of(session, credential), credential)
