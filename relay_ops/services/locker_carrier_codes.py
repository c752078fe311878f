"""A carrier's offline code at a locker: shown to the carrier, rotated when it leaked (the
locker gets the carrier's reservations hashed with the new code in the same transaction)."""

from __future__ import annotations

from typing import Any

from relay_ops.db.models import CarrierCode, Site
from relay_ops.domain.errors import NotFound
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import link_of
from relay_ops.services.locker_keys import CODE_GENERATIONS, carrier_code
from relay_ops.services.locker_sync import queue_sync
from relay_ops.services.principal import Principal, Role, require_role


def _carrier_code_answer(ctx: Ctx, site: Site, carrier_id: int) -> dict[str, Any]:
    return {"site_id": site.id, "locker": site.code, "code": carrier_code(ctx, site, carrier_id),
            "use": "type it on the locker's keypad as a carrier code: the doors reserved "
                   "for you open, expired parcels one after the other, and each parcel "
                   "you scan next opens its reserved door"}


def carrier_code_view(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """The calling carrier's own offline code for one locker (never another carrier's)."""
    require_role(actor, Role.CARRIER)
    assert actor.carrier_id is not None
    with ctx.db.read() as session:
        site = session.get(Site, site_id)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        return _carrier_code_answer(ctx, site, actor.carrier_id)


def rotate_carrier_code(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """A new offline code for the calling carrier at this locker (the old one leaked: a
    driver left, a code was seen typed). The locker gets the carrier's reservations hashed
    with the new code in the same transaction, as a full credential sync: from the moment it
    applies it, online or not, the old code opens nothing there."""
    require_role(actor, Role.CARRIER)
    assert actor.carrier_id is not None
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id, with_for_update=True)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        row = session.get(CarrierCode, (site.id, actor.carrier_id))
        if row is None:
            row = CarrierCode(site_id=site.id, carrier_id=actor.carrier_id, generation=0)
            session.add(row)
        row.generation, row.rotated_at = row.generation + 1, ctx.now()
        session.flush()
        session.info.pop(CODE_GENERATIONS, None)  # read again: the sync below uses the new one
        queue_sync(ctx, session, site, link_of(session, site), force_full=True)
        return _carrier_code_answer(ctx, site, actor.carrier_id)
