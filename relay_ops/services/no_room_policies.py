"""The operator's no-room policies (per carrier and territory) and the decisions they led to,
as the operator and the carriers read them (docs/overflow.md).

The decisions themselves are taken in ``services/no_room.py``, at announce time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from relay_ops.db.models import Carrier, NoRoomDecision, NoRoomPolicy, Parcel, Site
from relay_ops.domain import no_room as rules
from relay_ops.domain.errors import Conflict, NotFound, ValidationFailed
from relay_ops.services.carrier_sites import carrier_or_404
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role


def scope_of(policy: NoRoomPolicy) -> rules.Scope:
    return rules.Scope(policy.carrier_id, policy.site_id, policy.area)


class _Scoped:
    """A stored policy as the domain's :func:`rules.applicable` reads it."""

    def __init__(self, policy: NoRoomPolicy) -> None:
        self.policy, self.scope = policy, scope_of(policy)


def policy_for(session: Session, carrier_id: int | None, site: Site) -> NoRoomPolicy | None:
    """The most specific policy for this carrier at this site (``rules.Scope.rank``)."""
    rows = session.scalars(select(NoRoomPolicy).where(
        (NoRoomPolicy.carrier_id.is_(None)) | (NoRoomPolicy.carrier_id == carrier_id)))
    chosen = rules.applicable([_Scoped(p) for p in rows], carrier_id, site.id, site.area)
    return chosen.policy if chosen is not None else None


# ---------------------------------------------------------------- the operator sets them


def set_policy(ctx: Ctx, actor: Principal, data: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """Create or replace the policy of one carrier (or every carrier) and one territory.
    ``(created, view)``."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    steps = rules.checked_steps(data["steps"])
    size_classes = list(dict.fromkeys(data.get("home_size_classes") or []))
    unknown = sorted(set(size_classes) - set(ctx.settings.size_classes))
    if unknown:
        raise ValidationFailed(f"unknown size class {', '.join(unknown)}; use "
                               f"{', '.join(ctx.settings.size_classes)}")
    if size_classes and rules.HOME not in steps:
        raise ValidationFailed("home_size_classes applies to the home step, which is not listed")
    with ctx.db.transaction() as session:
        carrier = _carrier(session, data.get("carrier"))
        site = _site(session, data.get("site"))
        scope = rules.checked_scope(rules.Scope(
            carrier.id if carrier else None, site.id if site else None, data.get("area")))
        policy = session.scalar(
            select(NoRoomPolicy).where(NoRoomPolicy.scope_key == scope.key()).with_for_update())
        created = policy is None
        if policy is None:
            policy = NoRoomPolicy(scope_key=scope.key(), carrier_id=scope.carrier_id,
                                  site_id=scope.site_id, area=scope.area)
            session.add(policy)
        policy.steps, policy.home_size_classes = steps, size_classes
        try:
            session.flush()
        except IntegrityError:  # the same scope created at the same instant
            raise Conflict("a policy for this carrier and territory was just created; "
                           "send it again to replace it") from None
        return created, policy_view(session, policy)


def _carrier(session: Session, code: str | None) -> Carrier | None:
    return None if code is None else carrier_or_404(session, code)


def _site(session: Session, code: str | None) -> Site | None:
    if code is None:
        return None
    site = session.scalar(select(Site).where(Site.code == code))
    if site is None:
        raise NotFound(f"no site {code!r}")
    return site


def policy_view(session: Session, policy: NoRoomPolicy) -> dict[str, Any]:
    carrier = session.get(Carrier, policy.carrier_id) if policy.carrier_id else None
    site = session.get(Site, policy.site_id) if policy.site_id else None
    return {
        "id": policy.id,
        "carrier": carrier.code if carrier else None,
        "site": site.code if site else None,
        "area": policy.area,
        "steps": list(policy.steps),
        "home_size_classes": list(policy.home_size_classes or []),
        "updated_at": policy.updated_at.isoformat(),
    }


def list_policies(ctx: Ctx, actor: Principal) -> list[dict[str, Any]]:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.read() as session:
        rows = session.scalars(select(NoRoomPolicy).order_by(NoRoomPolicy.id))
        return [policy_view(session, p) for p in rows]


def delete_policy(ctx: Ctx, actor: Principal, policy_id: int) -> None:
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.transaction() as session:
        policy = session.get(NoRoomPolicy, policy_id)
        if policy is None:
            raise NotFound(f"no policy {policy_id}")
        session.delete(policy)


# ---------------------------------------------------------------- the decisions, read


@dataclass
class WrittenDecision:
    """A decision written as a row with no ORM object (``no_room.record_batched``: a manifest
    for a full area writes thousands), as its event and its view read it."""

    id: int
    parcel_id: int
    parcel: Parcel
    carrier: Carrier | None
    site: Site
    day: date
    step: str
    to_site: Site | None
    hold_until: date | None
    policy_id: int | None
    tried: list[Any]
    created_at: datetime


def decision_view(decision: NoRoomDecision | WrittenDecision) -> dict[str, Any]:
    return {
        "id": decision.id,
        "parcel_id": decision.parcel_id,
        "tracking_number": decision.parcel.tracking_number,
        "carrier": decision.carrier.code if decision.carrier else None,
        "site": decision.site.code,
        "day": decision.day.isoformat(),
        "step": decision.step,
        "to_site": decision.to_site.code if decision.to_site else None,
        "hold_until": decision.hold_until.isoformat() if decision.hold_until else None,
        "policy_id": decision.policy_id,
        "tried": list(decision.tried or []),
        "created_at": decision.created_at.isoformat(),
    }


def list_decisions(
    ctx: Ctx, actor: Principal, *, day: date | None = None, site: str | None = None,
    step: str | None = None, carrier: str | None = None,
) -> list[dict[str, Any]]:
    """The decisions for parcels expected on ``day`` (the day the van would have brought
    them), at a site, of a step. An operator sees all of them (optionally one carrier's); a
    carrier its own only: with ``step=hold``, the parcels to keep at its depot, and until
    when."""
    require_role(actor, Role.OPERATOR, Role.CARRIER, Role.SYSTEM)
    if step is not None and step not in (*rules.STEPS, "none"):
        raise ValidationFailed(f"step is one of {', '.join((*rules.STEPS, 'none'))}")
    with ctx.db.read() as session:
        query = (select(NoRoomDecision)
                 .options(joinedload(NoRoomDecision.parcel), joinedload(NoRoomDecision.site),
                          joinedload(NoRoomDecision.to_site), joinedload(NoRoomDecision.carrier))
                 .order_by(NoRoomDecision.day, NoRoomDecision.id))
        if actor.role is Role.CARRIER:
            query = query.where(NoRoomDecision.carrier_id == actor.carrier_id)
        elif carrier is not None:
            found = _carrier(session, carrier)
            assert found is not None
            query = query.where(NoRoomDecision.carrier_id == found.id)
        if day is not None:
            query = query.where(NoRoomDecision.day == day)
        if site is not None:
            found_site = _site(session, site)
            assert found_site is not None
            query = query.where(NoRoomDecision.site_id == found_site.id)
        if step is not None:
            query = query.where(NoRoomDecision.step == step)
        return [decision_view(d) for d in session.scalars(query)]


def summary(ctx: Ctx, actor: Principal, first: date, last: date) -> list[dict[str, Any]]:
    """Per day the parcels were expected and per site, how many went to each step: the
    operator dashboard's table."""
    require_role(actor, Role.OPERATOR, Role.SYSTEM)
    with ctx.db.read() as session:
        rows = session.execute(
            select(NoRoomDecision.day, Site.code, NoRoomDecision.step, func.count())
            .join(Site, Site.id == NoRoomDecision.site_id)
            .where(NoRoomDecision.day >= first, NoRoomDecision.day <= last)
            .group_by(NoRoomDecision.day, Site.code, NoRoomDecision.step))
        table: dict[tuple[date, str], dict[str, Any]] = {}
        for day, code, step, count in rows:
            row = table.setdefault((day, code), {
                "day": day, "site": code, "storage": 0, "hold": 0, "home": 0, "none": 0})
            row[step] = int(count)
        return [table[key] for key in sorted(table)]
