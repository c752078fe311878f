"""A parcel's record made at the counter: one nobody announced, registered by the check-in that
accepts it (with its carrier, size and recipient, to reconcile with the carrier), and a
parcel's size class set from a class or its dimensions (manifests and producers' orders too)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Carrier, Parcel, Site
from relay_ops.domain import sizing
from relay_ops.domain.errors import FitsNoSizeClass, NotFound, ValidationFailed
from relay_ops.domain.lifecycle import State
from relay_ops.services import history
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal


@dataclass(frozen=True)
class Recipient:
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str = "fr"


def register_unannounced(
    ctx: Ctx,
    session: Session,
    site: Site,
    number: str,
    size_class: str | None,
    dims: sizing.Dims | None,
    recipient: Recipient | None,
    carrier_code: str | None,
    actor: Principal,
) -> Parcel:
    carrier = None
    if carrier_code:
        carrier = session.scalar(select(Carrier).where(Carrier.code == carrier_code))
        if carrier is None:
            # A well-formed code of no carrier is a missing thing, as for a manifest: 404.
            raise NotFound(f"unknown carrier {carrier_code!r}")
    rec = recipient or Recipient()
    parcel = Parcel(
        tracking_number=number,
        carrier_id=carrier.id if carrier else None,
        site_id=site.id,
        state=State.ANNOUNCED.value,
        unannounced=True,
        recipient_name=rec.name,
        recipient_phone=rec.phone,
        recipient_email=rec.email,
        recipient_locale=rec.locale,
    )
    set_size(ctx, parcel, size_class, dims)
    session.add(parcel)
    session.flush()
    history.record(
        session, parcel, "registered_unannounced", None, actor, ctx.now(),
        reason="checked in without a manifest; to reconcile with the carrier",
    )
    return parcel


def set_size(
    ctx: Ctx, parcel: Parcel, size_class: str | None, dims: sizing.Dims | None
) -> None:
    classes = ctx.settings.size_classes
    if dims is not None:
        fitting = sizing.smallest_class_for(classes, dims)
        if fitting is None:
            raise FitsNoSizeClass(f"a parcel of {dims} mm fits no size class")
        parcel.height_mm, parcel.width_mm, parcel.depth_mm = dims
        parcel.size_class = fitting
    elif size_class is not None:
        if size_class not in classes:
            raise ValidationFailed(f"size class {size_class!r} unknown; use {', '.join(classes)}")
        parcel.size_class = size_class
