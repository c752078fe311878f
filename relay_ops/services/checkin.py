"""Check-in at a shop: a scanned parcel gets a shelf, a deadline, a code (or joins its
recipient's) and a message, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, contains_eager, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from relay_ops.db.models import (
    Carrier,
    CredentialParcel,
    Location,
    Notification,
    Parcel,
    ParcelEvent,
    PickupCredential,
    ProducerOrder,
    Site,
    UnannouncedScan,
)
from relay_ops.domain import grouping, sizing, tracking
from relay_ops.domain.errors import (
    NoShelves,
    NotFound,
    SiteAtCapacity,
    UnannouncedParcel,
    ValidationFailed,
    WrongSite,
)
from relay_ops.domain.holding import (
    ClosedOn,
    Perishable,
    deadline_after,
    perishable_deadline,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import checkin_queries as queries
from relay_ops.services import history, notify, numbers, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import issue_credential, recipient_keys
from relay_ops.services.forecast import Stored
from relay_ops.services.holding import holding_facts, holding_period, keep_holding
from relay_ops.services.parcel_views import HELD, READY, STAFF, iso, parcel_view
from relay_ops.services.principal import (
    Principal,
    Role,
    require_role,
    require_site,
)
from relay_ops.services.shelves import allocate_shelf, class_of
from relay_ops.services.sites import (
    closed_given,
    closed_on,
)


@dataclass(frozen=True)
class Recipient:
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    locale: str = "fr"


def check_in(
    ctx: Ctx,
    actor: Principal,
    site_id: int,
    tracking_number: str,
    *,
    accept_unannounced: bool = False,
    size_class: str | None = None,
    dims: sizing.Dims | None = None,
    recipient: Recipient | None = None,
    carrier_code: str | None = None,
) -> dict[str, Any]:
    """A shopkeeper scans a parcel in: it gets a shelf, a deadline, a code and a message.

    A shop with no free place for it refuses it: the parcel stays announced, with the carrier,
    and a ``check_in_refused`` event says so (the forecast counts it back on the next open
    day); a parcel registered unannounced by this very check-in is not kept. So does a shop
    whose last free places are held for rerouted parcels expected today, to a parcel without
    such a reservation; a reserved parcel's check-in uses its reservation
    (services/reservations.py).
    """
    number = tracking.validate(tracking_number)
    now = ctx.now()
    refusal: SiteAtCapacity | None = None
    with ctx.db.transaction() as session:
        # The site row lock serialises check-ins at one site, so two never take the last place.
        site, closed, stored, reserved = _shop_for_check_in(ctx, session, actor, site_id, now)
        parcel, scanned, reserved_day = _parcel_for_check_in(session, site, number,
                                                             carrier_code)
        if parcel is not None and parcel.site_id == site.id and parcel.state in HELD:
            return _check_in_answer(parcel, actor, "already_checked_in")
        registered_now = parcel is None
        if parcel is None:
            if not accept_unannounced:
                raise UnannouncedParcel(
                    f"{number} was not announced by any carrier; check it in only if the label "
                    "is readable and addressed to this shop", tracking_number=number,
                )
            parcel = _register_unannounced(
                ctx, session, site, number, size_class, dims, recipient, carrier_code, actor
            )
        elif parcel.site_id != site.id:
            raise WrongSite(
                f"{number} is addressed to {parcel.site.name} ({parcel.site.code})",
                destination=parcel.site.code, destination_name=parcel.site.name,
                # another carrier's label under the same number: scan it naming its carrier
                carrier=parcel.carrier.code if parcel.carrier else None,
            )
        # A producer's order is checked in like any parcel; its own rules are a cold place
        # and a holding period in hours (docs/producers.md).
        order = None if registered_now else parcel.producer_order
        group = _group_to_join(ctx, session, site, parcel)
        try:
            if reserved_day is None:  # places held for rerouted parcels are not its own
                reservations.keep_room(ctx, session, site, class_of(ctx, parcel), reserved)
            shelves = [p.location_id for p in group.ready] if group is not None else None
            location = allocate_shelf(ctx, session, site, parcel, shelves,
                                      keep_cold=order is not None and order.keep_cold)
        except SiteAtCapacity as full:
            if registered_now or parcel.state != State.ANNOUNCED.value:
                raise  # nothing kept: the parcel was never announced here, or is not coming
            history.record(session, parcel, history.CHECK_IN_REFUSED, parcel.state, actor, now,
                           reason=str(full)[:300])
            refusal = full
        else:
            _place(ctx, session, site, parcel, location, now, actor, group, closed,
                   _perishable(order), stored)
            if reserved_day is not None:
                reservations.use(ctx, session, parcel.id, site.id)
            if scanned or registered_now:
                # Decided: it leaves the counter's "not announced" list in this transaction.
                session.execute(delete(UnannouncedScan).where(
                    UnannouncedScan.site_id == site.id, UnannouncedScan.tracking_number == number))
            return _check_in_answer(parcel, actor, "checked_in")
    # The refusal's event is committed above; only now is the refusal reported.
    assert refusal is not None
    raise refusal


def _shop_for_check_in(
    ctx: Ctx, session: Session, actor: Principal, site_id: int, now: datetime
) -> tuple[Site, ClosedOn, Stored, int]:
    """The shop, row-locked, with its closing days from yesterday on (all a deadline from now
    can meet) and today's stored forecast ratio (the holding period's input), then its shelf
    locations (their counters are the shelf policy's input); and the days it does not open.

    The locations come in a statement of their own, after the lock: PostgreSQL re-reads a
    row it waited to lock, but not the rows joined to it, which would be the counters as
    they were before the check-in that held the lock. The places held for rerouted parcels
    expected today come as a column of the same statement."""
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    today = now.astimezone(ctx.settings.timezone).date()
    row = session.execute(queries.shop(), {
        "site_id": site_id, "today": today, "yesterday": today - timedelta(days=1),
        # The look-ahead holding rule's input: a day at risk within a shop's standard period.
        "until": today + timedelta(days=ctx.settings.holding["shop"].days),
        "reserved_since": reservations.reserved_since(ctx, today),
    }).unique().one_or_none()
    if row is None:
        raise NotFound(f"no site {site_id}")
    site, ratio, risk, reserved = row
    if not has_shelves(site.kind):
        raise NoShelves("lockers take parcels through a drop-off session")
    closed = closed_given(site, {c.day for c in site.closing_days})
    return site, closed, Stored(ratio, risk), int(reserved or 0)


def _parcel_for_check_in(
    session: Session, site: Site, number: str, carrier_code: str | None
) -> tuple[Parcel | None, bool, date | None]:
    """The parcel, row-locked, with its carrier (the answer names it), whether the shop's
    counter lists it as scanned unannounced, and the day of the place held for it here (a
    reroute's), in one statement.

    Numbers are unique per carrier, so a number may name several parcels (a carrier named at
    the counter keeps its own and those of no carrier): the one here is the parcel scanned;
    none here, the one elsewhere is a parcel at the wrong shop; two carriers' here (or, none
    here, elsewhere) and no carrier named, the shopkeeper is asked which carrier's label this
    is (``ambiguous-tracking-number``, docs/decisions/0007-tracking-numbers-per-carrier.md)."""
    scanned = select(UnannouncedScan.site_id).where(
        UnannouncedScan.site_id == site.id, UnannouncedScan.tracking_number == number
    ).exists()
    # A producer's order comes with its parcel, in the same statement.
    query = (
        select(Parcel, scanned, reservations.reservation_day(site.id))
        .where(Parcel.tracking_number == number)
        .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        .options(joinedload(Parcel.carrier), contains_eager(Parcel.producer_order))
        .order_by(Parcel.id)
        .with_for_update(of=Parcel)
    )
    if carrier_code is not None:
        named = select(Carrier.id).where(Carrier.code == carrier_code).scalar_subquery()
        query = query.where(or_(Parcel.carrier_id == named, Parcel.carrier_id.is_(None)))
    rows = session.execute(query).unique().all()
    here = [row for row in rows if row[0].site_id == site.id]
    if len(here) > 1 and carrier_code is not None:
        # the named carrier's own, before a parcel of no carrier registered here
        here = [row for row in here if row[0].carrier_id is not None]
    # The carriers of parcels at this shop are its staff's to see; of parcels elsewhere, not.
    row = _only_row(here or rows, number, disclose=bool(here))
    return (row[0], bool(row[1]), row[2]) if row is not None else (None, False, None)


def _only_row(rows: Sequence[Any], number: str, *, disclose: bool) -> Any:
    # two or more: ambiguous, refused
    numbers.only_one([row[0] for row in rows], number, disclose=disclose)
    return rows[0] if rows else None


def _check_in_answer(parcel: Parcel, actor: Principal, status: str) -> dict[str, Any]:
    return {"status": status, "parcel": parcel_view(parcel, actor)}


def _register_unannounced(
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
            raise ValidationFailed(f"unknown carrier {carrier_code!r}")
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
            raise ValidationFailed(f"a parcel of {dims} mm fits no size class")
        parcel.height_mm, parcel.width_mm, parcel.depth_mm = dims
        parcel.size_class = fitting
    elif size_class is not None:
        if size_class not in classes:
            raise ValidationFailed(f"size class {size_class!r} unknown; use {', '.join(classes)}")
        parcel.size_class = size_class


@dataclass(frozen=True)
class Group:
    """A live recipient code at the site that a new parcel joins, and its parcels still ready."""

    credential: PickupCredential
    ready: list[Parcel]


def _group_to_join(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> Group | None:
    """The live code of a ready parcel here for the same recipient, if any (shops only)."""
    # The keys set below go out with the check-in's one UPDATE of the parcel, not an UPDATE
    # of their own forced by these queries' autoflush.
    with session.no_autoflush:
        return _group_of(ctx, session, site, parcel)


def _group_of(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> Group | None:
    keys = recipient_keys(ctx, parcel.recipient_phone, parcel.recipient_email)
    # Kept on the parcel: a later parcel matches it even once its plain address is gone.
    parcel.recipient_phone_key, parcel.recipient_email_key = keys.phone, keys.email
    if not keys or not has_shelves(site.kind):
        return None
    rows = session.execute(queries.group(bool(keys.phone), bool(keys.email)), {
        "site_id": site.id, "parcel_id": parcel.id, "phone_key": keys.phone,
        "email_key": keys.email,
    }).all()
    held = [
        grouping.HeldParcel(
            p.id, c.id, p.location_id,
            grouping.RecipientKeys(p.recipient_phone_key, p.recipient_email_key),
            code_locked=c.locked_at is not None,
        )
        for p, c in rows
    ]
    chosen = grouping.group_to_join(keys, held)
    if chosen is None:
        return None
    # Locked, so a pickup cannot spend the code between this check and the commit and leave
    # the new parcel behind a used code. A code a pickup holds right now is skipped, not
    # waited for: the pickup waits for this check-in's site lock (its events' foreign key),
    # so waiting here would deadlock. The parcel then gets a code of its own.
    credential = session.scalar(queries.group_code(), {"credential_id": chosen})
    if credential is None or not credential.live:
        return None
    return Group(credential, [p for p, c in rows if c.id == chosen])


def join_group(session: Session, group: Group, parcel: Parcel, now: datetime) -> None:
    session.add(CredentialParcel(credential_id=group.credential.id, parcel_id=parcel.id,
                                 added_at=now))
    session.flush()
    # The viewonly relationships were read before the new row: read them again.
    session.expire(group.credential, ["parcels"])
    session.expire(parcel, ["credentials"])


def _perishable(order: ProducerOrder | None) -> Perishable | None:
    if order is None:
        return None
    item = Perishable(order.holding_hours, order.sell_by)
    return item if item.bounded else None


def _place(
    ctx: Ctx, session: Session, site: Site, parcel: Parcel, location: Location, now: datetime,
    actor: Principal, group: Group | None, closed: ClosedOn, perishable: Perishable | None,
    stored: Stored,
) -> None:
    data: dict[str, Any] = {"location": location.label}
    with session.no_autoflush:  # one UPDATE of the parcel, not one per attribute change
        if perishable is not None:
            # Hours, bounded by the sell-by time and the shop's opening hours.
            deadline = perishable_deadline(now, perishable, site.opening_hours,
                                           ctx.settings.timezone, closed)
            data.update(holding_hours=perishable.hours, holding_rule="perishable")
            parcel.holding_rule = "perishable"
        else:
            holding = holding_period(ctx, session, site, now, stored)
            deadline = deadline_after(now, holding.days, ctx.settings.timezone, closed)
            data.update(holding_facts(holding))
            keep_holding(parcel, holding)
        _assign(parcel, location, now, deadline)
    data["deadline"] = iso(parcel.holding_deadline)
    if group is not None:
        # Tracking numbers, not the recipient: the audit log says what was grouped, not whose.
        data["grouped_with"] = [p.tracking_number for p in group.ready]
    history.apply(session, parcel, Action.CHECK_IN, actor, now, data=data)
    if group is not None:
        # Each parcel keeps its own deadline: the earlier ones were announced with theirs.
        join_group(session, group, parcel, now)
    else:
        credential = issue_credential(ctx, session, parcel, holder="recipient")
        # The answer's group view reads these: the new code covers this parcel alone, which
        # is all the view looks for (a ready parcel's live recipient code), without a query.
        set_committed_value(credential, "parcels", [parcel])
        set_committed_value(parcel, "credentials", [credential])
    notify.queue(session, parcel, "ready")


def _assign(parcel: Parcel, location: Location, now: datetime, deadline: datetime) -> None:
    parcel.location_id = location.id
    parcel.location = location
    parcel.checked_in_at = now
    parcel.holding_deadline = deadline


def resend_ready_after_hours_set(
    ctx: Ctx, session: Session, site: Site, actor: Principal
) -> list[int]:
    """A shop got its first opening hours: each parcel waiting there whose ready message
    failed for want of them gets a deadline counted from now under the new hours (nobody was
    told the old one) and is owed its ready message again. The parcels' ids."""
    now = ctx.now()
    failed = select(Notification.parcel_id).where(
        Notification.kind == "ready", Notification.status == "failed",
        Notification.error.startswith(notify.NO_OPENING_HOURS),
    )
    waiting = list(session.scalars(
        select(Parcel).where(Parcel.site_id == site.id, Parcel.state == READY,
                             Parcel.id.in_(failed))
        .order_by(Parcel.id).with_for_update()
    ))
    for parcel in waiting:
        days = _holding_days_given(session, parcel) or ctx.settings.holding[site.kind].days
        parcel.holding_deadline = deadline_after(
            now, days, ctx.settings.timezone, closed_on(session, site)
        )
        history.record(session, parcel, "deadline_reset", parcel.state, actor, now,
                       reason="the site's opening hours were set",
                       data={"deadline": iso(parcel.holding_deadline), "holding_days": days})
        # A new occurrence: the failed message stays in the record as it was.
        notify.queue(session, parcel, "ready", f"hours-set:{now.isoformat()}")
    return [p.id for p in waiting]


def _holding_days_given(session: Session, parcel: Parcel) -> int | None:
    """The holding period decided at check-in (its event says it): kept, only re-dated."""
    event = session.scalar(
        select(ParcelEvent)
        .where(ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == Action.CHECK_IN.value)
        .order_by(ParcelEvent.id.desc())
    )
    days = (event.data or {}).get("holding_days") if event is not None else None
    return int(days) if days else None
