"""What a resident sees through the signed link in their message: no account needed.

The link names one parcel and works while the parcel is on its way or waiting; once the parcel
is picked up, returned or cancelled the link is dead.
"""

from __future__ import annotations

from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from relay_ops.db.models import Parcel, PickupCredential
from relay_ops.domain.errors import DomainError, NotFound
from relay_ops.domain.lifecycle import FINAL_STATES
from relay_ops.services import locker_tokens
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of, live_credentials
from relay_ops.services.parcel_views import parcel_view
from relay_ops.services.principal import Principal, Role
from relay_ops.services.sites import site_view

SALT = "relay-ops-tracking-link"


class LinkExpired(DomainError):
    slug = "link-expired"
    title = "This tracking link has expired"
    status = 410


def _serializer(ctx: Ctx) -> URLSafeSerializer:
    return URLSafeSerializer(ctx.settings.secret_key, salt=SALT)


def tracking_token(ctx: Ctx, parcel_id: int) -> str:
    return str(_serializer(ctx).dumps({"p": parcel_id}))


def tracking_url(ctx: Ctx, parcel_id: int) -> str:
    return f"{ctx.settings.public_base_url}/t/{tracking_token(ctx, parcel_id)}"


def qr_url(ctx: Ctx, parcel_id: int) -> str:
    return f"{ctx.settings.public_base_url}/api/v1/track/{tracking_token(ctx, parcel_id)}/qr.png"


def principal_for(ctx: Ctx, token: str) -> Principal:
    try:
        data = _serializer(ctx).loads(token)
    except BadSignature:
        raise NotFound("this tracking link is not valid") from None
    parcel_id = int(data["p"])
    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        if parcel is None:
            raise NotFound("this tracking link is not valid")
        if parcel.state in {s.value for s in FINAL_STATES}:
            raise LinkExpired(f"the parcel is {parcel.state}; this link no longer works")
    return Principal(Role.RESIDENT, parcel_id=parcel_id)


def resident_view(ctx: Ctx, principal: Principal) -> dict[str, Any]:
    assert principal.parcel_id is not None
    with ctx.db.read() as session:
        parcel = session.get(Parcel, principal.parcel_id)
        assert parcel is not None
        view = parcel_view(parcel, principal)
        view["site"] = site_view(parcel.site)
        live = live_credentials(session, parcel.id)
        recipient = _recipient_credential(live)
        view["pickup_code"] = code_of(ctx, recipient) if recipient else None
        view["qr_url"] = qr_url(ctx, parcel.id) if recipient else None
        view["can_extend"] = parcel.state == "ready_for_pickup" and not parcel.extended
        proxy = next((c for c in live if c.holder == "proxy"), None)
        view["proxy"] = {"name": proxy.holder_name} if proxy else None
        return view


def named_proxy(ctx: Ctx, principal: Principal) -> dict[str, Any] | None:
    """The proxy the recipient named and their live code (the answer page after naming one),
    or None when no proxy holds a live code."""
    assert principal.parcel_id is not None
    with ctx.db.read() as session:
        proxy = next((c for c in live_credentials(session, principal.parcel_id)
                      if c.holder == "proxy"), None)
        if proxy is None:
            return None
        return {"proxy_name": proxy.holder_name, "proxy_code": code_of(ctx, proxy)}


def _recipient_credential(live: list[PickupCredential]) -> PickupCredential | None:
    return next((c for c in live if c.holder == "recipient"), None)


def qr_payload(ctx: Ctx, principal: Principal) -> str:
    """What the resident's QR code encodes: at a locker, the signed token the locker verifies
    (even offline); at a shop, the pickup code, typed by a counter scanner."""
    assert principal.parcel_id is not None
    token = locker_tokens.qr_token(ctx, principal.parcel_id)
    if token is not None:
        return token
    with ctx.db.read() as session:
        recipient = _recipient_credential(live_credentials(session, principal.parcel_id))
        if recipient is None:
            raise NotFound("no pickup code yet: the parcel has not arrived")
        return code_of(ctx, recipient)
