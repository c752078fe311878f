"""The operator's side of a locker: registration (a locker site with its compartments from
the configured model), doors taken out of service and put back, alerts resolved."""

from __future__ import annotations

from typing import Any

from relay_ops.db.models import Compartment, LockerAlert, LockerLink
from relay_ops.domain.errors import NotFound, ValidationFailed
from relay_ops.services import sites
from relay_ops.services.context import Ctx
from relay_ops.services.locker_commands import queue_command
from relay_ops.services.locker_compartments import compartment, locked_locker, parcel_in
from relay_ops.services.locker_sync import queue_sync
from relay_ops.services.locker_views import compartment_view, locker_view_in
from relay_ops.services.principal import Principal, Role, require_role

OPERATOR_ROLES = (Role.OPERATOR, Role.SYSTEM)


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
        site = locked_locker(session, view["id"])
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
        site = locked_locker(session, site_id)
        box = compartment(session, site.id, number)
        if box is None:
            raise NotFound(f"no compartment {number} at {site.code}")
        if in_service:
            box.fault_reason = None
            box.state = "occupied" if parcel_in(session, box) else "free"
            queue_command(ctx, session, site, "set_in_service", {"compartment": number}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)
        else:
            box.state, box.fault_reason = "out_of_service", reason.strip()[:200]  # type: ignore[union-attr]
            queue_command(ctx, session, site, "set_out_of_service",
                          {"compartment": number, "reason": box.fault_reason}, now,
                          ttl_s=ctx.settings.locker.sync_ttl_s)
        return compartment_view(session, box)


def set_compartment_refrigerated(
    ctx: Ctx, actor: Principal, site_id: int, number: int, refrigerated: bool
) -> dict[str, Any]:
    """Mark a door cold (a refrigerated compartment) or not: only cold doors take producers'
    "keep cold" orders, and the others go there last. Nothing to tell the locker: the
    backend alone chooses doors."""
    require_role(actor, *OPERATOR_ROLES)
    with ctx.db.transaction() as session:
        site = locked_locker(session, site_id)
        box = compartment(session, site.id, number)
        if box is None:
            raise NotFound(f"no compartment {number} at {site.code}")
        box.refrigerated = refrigerated
        return compartment_view(session, box)


def resolve_alert(ctx: Ctx, actor: Principal, alert_id: int) -> None:
    require_role(actor, *OPERATOR_ROLES)
    with ctx.db.transaction() as session:
        alert = session.get(LockerAlert, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        alert.resolved_at = alert.resolved_at or ctx.now()
