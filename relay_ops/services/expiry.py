"""A parcel leaving the shelf other than by pickup: extension, expiry, collection by the carrier,
declarations (missing, damaged)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import (
    Parcel,
    Site,
)
from relay_ops.domain import tracking
from relay_ops.domain.errors import (
    DomainError,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from relay_ops.domain.holding import (
    extended_deadline,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import history, locker_collection, locker_compartments, notify, numbers
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import release_credentials
from relay_ops.services.parcel_views import STAFF, locked_parcel, parcel_view
from relay_ops.services.principal import (
    SYSTEM,
    Principal,
    Role,
    can_see_parcel,
    require_parcel,
    require_role,
    require_site,
)
from relay_ops.services.site_calendar import closed_on


def extend(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    require_role(actor, Role.RESIDENT, Role.OPERATOR, Role.SHOPKEEPER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        if parcel.state != State.READY_FOR_PICKUP.value or parcel.holding_deadline is None:
            raise InvalidTransition(f"a parcel that is {parcel.state} cannot be extended")
        site = parcel.site
        new_deadline = extended_deadline(
            parcel.holding_deadline, parcel.extended, now, ctx.settings.holding[site.kind],
            ctx.settings.timezone, closed_on(session, site),
        )
        old = parcel.holding_deadline
        parcel.holding_deadline, parcel.extended = new_deadline, True
        history.apply(
            session, parcel, Action.EXTEND, actor, now,
            data={"from": old.isoformat(), "to": new_deadline.isoformat()},
        )
        return parcel_view(parcel, actor)


def expire_overdue(ctx: Ctx, limit: int = 1000) -> list[int]:
    """Move parcels past their deadline to ``expired``. Safe to run anywhere, any time."""
    now = ctx.now()
    with ctx.db.read() as session:
        ids = list(
            session.scalars(
                select(Parcel.id)
                .where(Parcel.state == State.READY_FOR_PICKUP.value, Parcel.holding_deadline < now)
                .order_by(Parcel.holding_deadline)
                .limit(limit)
            )
        )
    expired = []
    for parcel_id in ids:
        with ctx.db.transaction() as session:
            locker_compartments.lock_locker_of(session, parcel_id)
            parcel = locked_parcel(session, parcel_id)
            # Re-checked under the lock: a pickup or an extension may have won the race.
            if (
                parcel is None
                or parcel.state != State.READY_FOR_PICKUP.value
                or parcel.holding_deadline is None
                or parcel.holding_deadline >= now
            ):
                continue
            history.apply(session, parcel, Action.EXPIRE, SYSTEM, now, reason="holding period over")
            dead = release_credentials(session, parcel, now)
            locker_collection.held_for_collection(ctx, session, parcel, dead)
            notify.queue(session, parcel, "expired")
            expired.append(parcel_id)
    return expired


def refuse_delivery(ctx: Ctx, actor: Principal, parcel_id: int, reason: str) -> dict[str, Any]:
    """The recipient will not have a ready parcel (wrong item, damaged, unwanted): the shop's
    staff record it at the counter; at a locker the resident, having opened the door and
    left the parcel inside, says so from their tracking link. It goes back as an expired
    parcel does: its code dies, and its carrier (a producer's order: its producer) takes it
    back, at a locker with its own code (``locker_collection.held_for_collection``)."""
    require_role(actor, Role.RESIDENT, *STAFF)
    if not reason.strip():
        raise ValidationFailed("say why the parcel is refused")
    now = ctx.now()
    with ctx.db.transaction() as session:
        locker_compartments.lock_locker_of(session, parcel_id)  # the locker's row first
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        if parcel.direction != "inbound":
            raise NotFound(f"no parcel {parcel_id} to refuse")
        history.apply(session, parcel, Action.REFUSE, actor, now,
                      reason=f"refused by its recipient: {reason.strip()[:280]}")
        dead = release_credentials(session, parcel, now)
        locker_collection.held_for_collection(ctx, session, parcel, dead)
        return parcel_view(parcel, actor)


def collect(
    ctx: Ctx, actor: Principal, site_id: int, tracking_numbers: list[str]
) -> list[dict[str, Any]]:
    """A carrier takes back expired (or damaged) parcels: each becomes ``returned``."""
    require_role(actor, Role.CARRIER, *STAFF)
    if actor.role is not Role.CARRIER:
        require_site(actor, site_id)
    now = ctx.now()
    results = []
    with ctx.db.transaction() as session:
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        for raw in tracking_numbers:
            results.append(_collect_one(session, actor, site, raw, now))
    return results


def _collect_one(
    session: Session, actor: Principal, site: Site, raw: str, now: datetime
) -> dict[str, Any]:
    try:
        number = tracking.validate(raw)
        # A carrier's own number only (another carrier's is never read); staff, the one at
        # the site. One answer for a number that is nowhere, elsewhere or another carrier's:
        # a carrier learns nothing of the numbers it did not announce.
        parcel = (numbers.carriers_parcel(session, actor.carrier_id, number, lock=True)
                  if actor.carrier_id is not None
                  else numbers.at_site(session, site.id, number, lock=True))
        if (parcel is None or parcel.site_id != site.id or parcel.direction != "inbound"
                or parcel.producer_order is not None  # goes back to its producer
                or not can_see_parcel(actor, parcel)):
            raise NotFound(f"no parcel {number} at {site.code}")
        if parcel.state not in (State.EXPIRED.value, State.DAMAGED.value):
            raise InvalidTransition(f"{number} is {parcel.state}: only expired or damaged "
                                    "parcels go back to the carrier", state=parcel.state)
        history.apply(session, parcel, Action.COLLECT, actor, now, reason="collected by carrier")
    except DomainError as err:
        return {"tracking_number": raw, "status": "refused", "reason": err.slug,
                "detail": err.detail}
    return {"tracking_number": number, "status": "returned", "parcel_id": parcel.id}


def collection_list(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """What a carrier has to take back from a site."""
    require_role(actor, Role.CARRIER, *STAFF)
    if actor.role is not Role.CARRIER:
        require_site(actor, site_id)
    with ctx.db.read() as session:
        query = select(Parcel).where(
            Parcel.site_id == site_id,
            Parcel.state.in_([State.EXPIRED.value, State.DAMAGED.value]),
            Parcel.direction == "inbound",  # a sent parcel leaves by its own pickup list
            ~Parcel.producer_order.has(),  # a producer's order goes back to its producer
        )
        if actor.role is Role.CARRIER:
            query = query.where(Parcel.carrier_id == actor.carrier_id)
        return [parcel_view(p, actor) for p in session.scalars(query.order_by(Parcel.id))]


def declare(ctx: Ctx, actor: Principal, parcel_id: int, kind: str, note: str) -> dict[str, Any]:

    require_role(actor, *STAFF)
    actions = {"missing": Action.DECLARE_MISSING, "damaged": Action.DECLARE_DAMAGED}
    if kind not in actions:
        raise ValidationFailed("a declaration is 'missing' or 'damaged'")
    if not note.strip():
        raise ValidationFailed("say what happened in a note")
    now = ctx.now()
    with ctx.db.transaction() as session:
        locker_compartments.lock_locker_of(session, parcel_id)
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        history.apply(session, parcel, actions[kind], actor, now, reason=note.strip())
        dead = release_credentials(session, parcel, now)
        if kind == "damaged":
            locker_collection.held_for_collection(ctx, session, parcel, dead)
        return parcel_view(parcel, actor)
