"""Parcels at a site: check-in, pickup, extension, expiry, collection, declarations, reading."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from relay_ops.db.models import (
    Carrier,
    ClosingDay,
    CredentialParcel,
    FailedAttempt,
    Location,
    Notification,
    Parcel,
    ParcelEvent,
    PickupCredential,
    Site,
    UnannouncedScan,
)
from relay_ops.domain import credentials as creds
from relay_ops.domain import grouping, sizing, tracking
from relay_ops.domain.errors import (
    CodeNeedsMore,
    CredentialLocked,
    DomainError,
    IdentityCheckRequired,
    InvalidTransition,
    NotFound,
    SiteAtCapacity,
    UnannouncedParcel,
    ValidationFailed,
    WrongPickupCode,
    WrongSite,
)
from relay_ops.domain.holding import (
    ClosedOn,
    HoldingDecision,
    deadline_after,
    extended_deadline,
    holding_days,
)
from relay_ops.domain.lifecycle import HELD_STATES, Action, State
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import history, notify, throttle
from relay_ops.services.context import Ctx
from relay_ops.services.forecast import load_ratio
from relay_ops.services.principal import (
    SYSTEM,
    Principal,
    Role,
    can_see_parcel,
    require_parcel,
    require_role,
    require_site,
)
from relay_ops.services.sites import (
    closed_given,
    closed_on,
    nearest_with_room,
    occupancy_of,
)

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
HELD = [s.value for s in HELD_STATES]
READY = State.READY_FOR_PICKUP.value
IDENTITY_FIELDS = ("document_type", "document_last4", "name")


# ---------------------------------------------------------------- views


def parcel_view(parcel: Parcel, viewer: Principal) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": parcel.id,
        "tracking_number": parcel.tracking_number,
        "state": parcel.state,
        "direction": parcel.direction,
        "unannounced": parcel.unannounced,
        "carrier": parcel.carrier.code if parcel.carrier else None,
        "site": parcel.site.code,
        "location": parcel.location.label if parcel.location else None,
        "compartment": parcel.compartment.number if parcel.compartment else None,
        "size_class": parcel.size_class,
        "expected_date": parcel.expected_date.isoformat() if parcel.expected_date else None,
        "holding_deadline": _iso(parcel.holding_deadline),
        "extended": parcel.extended,
        "checked_in_at": _iso(parcel.checked_in_at),
        "closed_at": _iso(parcel.closed_at),
        # A carrier sees its own parcels only: another carrier's parcel in the group is not
        # its business, nor is the recipient's other mail.
        "group": None if viewer.role is Role.CARRIER else group_view(parcel),
    }
    if viewer.role in (Role.OPERATOR, Role.CARRIER, Role.SHOPKEEPER, Role.RESIDENT):
        view["recipient"] = {"name": parcel.recipient_name}
    if viewer.role in (Role.OPERATOR, Role.CARRIER):
        view["recipient"].update(
            phone=parcel.recipient_phone, email=parcel.recipient_email,
            locale=parcel.recipient_locale,
        )
    return view


def group_view(parcel: Parcel) -> dict[str, Any] | None:
    """The parcels a ready parcel's recipient code also hands over ("2 parcels, same code"),
    or None when the code covers this parcel alone."""
    if parcel.state != READY:
        return None
    for credential in parcel.credentials:
        if credential.live and credential.holder == "recipient":
            together = [p for p in credential.parcels if p.state == READY]
            if len(together) > 1:
                return {
                    "size": len(together),
                    "same_code": True,
                    "parcels": [_shelf_ref(p) for p in together],
                }
    return None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_view(event: ParcelEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "action": event.action,
        "from_state": event.from_state,
        "to_state": event.to_state,
        "actor": {"kind": event.actor_kind, "id": event.actor_id},
        "site_id": event.site_id,
        "reason": event.reason,
        "data": event.data,
    }


# ---------------------------------------------------------------- lookups


def by_tracking(session: Session, number: str, *, lock: bool = False) -> Parcel | None:
    query = select(Parcel).where(Parcel.tracking_number == number)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def _locked_parcel(session: Session, parcel_id: int) -> Parcel | None:
    return session.get(Parcel, parcel_id, with_for_update=True)


def _site_for_staff(session: Session, actor: Principal, site_id: int, *, lock: bool) -> Site:
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    site = session.get(Site, site_id, with_for_update=lock)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


# ---------------------------------------------------------------- check-in


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
    day); a parcel registered unannounced by this very check-in is not kept.
    """
    number = tracking.validate(tracking_number)
    now = ctx.now()
    refusal: SiteAtCapacity | None = None
    with ctx.db.transaction() as session:
        # The site row lock serialises check-ins at one site, so two never take the last place.
        site, closed = _shop_for_check_in(ctx, session, actor, site_id, now)
        parcel, scanned = _parcel_for_check_in(session, site, number)
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
            )
        group = _group_to_join(ctx, session, site, parcel)
        try:
            location = _allocate_shelf(ctx, session, site, parcel, group)
        except SiteAtCapacity as full:
            if registered_now or parcel.state != State.ANNOUNCED.value:
                raise  # nothing kept: the parcel was never announced here, or is not coming
            history.record(session, parcel, history.CHECK_IN_REFUSED, parcel.state, actor, now,
                           reason=str(full)[:300])
            refusal = full
        else:
            _place(ctx, session, site, parcel, location, now, actor, group, closed)
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
) -> tuple[Site, ClosedOn]:
    """The shop, row-locked, with its closing days from yesterday on (all a deadline from now
    can meet), then its shelf locations (their counters are the shelf policy's input); and
    the days it does not open.

    The locations come in a statement of their own, after the lock: PostgreSQL re-reads a
    row it waited to lock, but not the rows joined to it, which would be the counters as
    they were before the check-in that held the lock."""
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    since = now.astimezone(ctx.settings.timezone).date() - timedelta(days=1)
    site = session.scalars(
        select(Site).where(Site.id == site_id)
        .options(joinedload(Site.closing_days.and_(ClosingDay.day >= since)),
                 selectinload(Site.locations))
        .with_for_update(of=Site)
    ).unique().one_or_none()
    if site is None:
        raise NotFound(f"no site {site_id}")
    if site.kind != "shop":
        raise ValidationFailed("lockers take parcels through a drop-off session")
    return site, closed_given(site, {c.day for c in site.closing_days})


def _parcel_for_check_in(session: Session, site: Site, number: str) -> tuple[Parcel | None, bool]:
    """The parcel, row-locked, with its carrier (the answer names it), and whether the shop's
    counter lists it as scanned unannounced, in one statement."""
    scanned = select(UnannouncedScan.site_id).where(
        UnannouncedScan.site_id == site.id, UnannouncedScan.tracking_number == number
    ).exists()
    row = session.execute(
        select(Parcel, scanned).where(Parcel.tracking_number == number)
        .options(joinedload(Parcel.carrier)).with_for_update(of=Parcel)
    ).first()
    return (row[0], bool(row[1])) if row is not None else (None, False)


# ---------------------------------------------------------------- parcels nobody announced


def hold_unannounced(ctx: Ctx, actor: Principal, site_id: int, tracking_number: str) -> None:
    """A parcel nobody announced was scanned at the counter: it waits on the shop's list
    until the shopkeeper accepts it (a check-in) or sets it aside. Scanning it again keeps
    one entry."""
    number = tracking.validate(tracking_number)
    with ctx.db.transaction() as session:
        site = _site_for_staff(session, actor, site_id, lock=True)  # serialises two scans
        if session.get(UnannouncedScan, (site.id, number)) is None:
            session.add(UnannouncedScan(site_id=site.id, tracking_number=number,
                                        scanned_by=actor.user_id))


def unannounced_waiting(ctx: Ctx, actor: Principal, site_id: int) -> list[dict[str, Any]]:
    """The shop's parcels nobody announced that wait for a decision, oldest first. One a
    carrier has announced since (or that was checked in through the API) is no longer
    waiting: scanning it again checks it in."""
    with ctx.db.read() as session:
        site = _site_for_staff(session, actor, site_id, lock=False)
        rows = session.execute(
            select(UnannouncedScan.tracking_number, UnannouncedScan.scanned_at)
            .where(UnannouncedScan.site_id == site.id,
                   ~select(Parcel.id).where(
                       Parcel.tracking_number == UnannouncedScan.tracking_number).exists())
            .order_by(UnannouncedScan.scanned_at, UnannouncedScan.tracking_number)
        ).all()
    return [{"tracking_number": n, "scanned_at": at.isoformat()} for n, at in rows]


def set_aside_unannounced(ctx: Ctx, actor: Principal, site_id: int, tracking_number: str) -> None:
    """The shopkeeper does not take it (the driver takes it back): off the list."""
    number = tracking.validate(tracking_number)
    with ctx.db.transaction() as session:
        site = _site_for_staff(session, actor, site_id, lock=False)
        session.execute(delete(UnannouncedScan).where(
            UnannouncedScan.site_id == site.id, UnannouncedScan.tracking_number == number))


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


# ---------------------------------------------------------------- grouping


@dataclass(frozen=True)
class Group:
    """A live recipient code at the site that a new parcel joins, and its parcels still ready."""

    credential: PickupCredential
    ready: list[Parcel]


def recipient_keys(ctx: Ctx, phone: str | None, email: str | None) -> grouping.RecipientKeys:
    pepper = ctx.settings.pickup_code_pepper
    return grouping.RecipientKeys(
        phone=_recipient_key(pepper, Channel.SMS, "phone", phone),
        email=_recipient_key(pepper, Channel.EMAIL, "email", email),
    )


def _recipient_key(pepper: bytes, channel: Channel, kind: str, raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        # Normalised as the message sender does, so "06 12.." and "+336.." are one person.
        address = normalize_recipient(channel, raw)
    except InvalidRecipient:
        return None  # no message can reach it, so no shared code could be announced
    return creds.recipient_key(pepper, kind, address)


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
    if not keys or site.kind != "shop":
        return None
    same = [col == key for col, key in ((Parcel.recipient_phone_key, keys.phone),
                                        (Parcel.recipient_email_key, keys.email)) if key]
    rows = session.execute(
        select(Parcel, PickupCredential)
        .join(CredentialParcel, CredentialParcel.parcel_id == Parcel.id)
        .join(PickupCredential, PickupCredential.id == CredentialParcel.credential_id)
        .where(Parcel.site_id == site.id, Parcel.state == READY, Parcel.id != parcel.id,
               PickupCredential.holder == "recipient", PickupCredential.used_at.is_(None),
               PickupCredential.revoked_at.is_(None), or_(*same))
    ).all()
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
    credential = session.scalar(
        select(PickupCredential).where(PickupCredential.id == chosen)
        .with_for_update(skip_locked=True).execution_options(populate_existing=True)
    )
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


def _allocate_shelf(
    ctx: Ctx, session: Session, site: Site, parcel: Parcel, group: Group | None = None
) -> Location:
    classes = ctx.settings.size_classes
    locations = {loc.id: loc for loc in site.locations if loc.active}
    slots = _shelf_slots(session, site)
    parcel_class = _class_of(ctx, parcel)
    chosen = None
    if group is not None:
        chosen = grouping.shelf_in_group(
            classes, slots, [p.location_id for p in group.ready], parcel_class
        )
    chosen = chosen or sizing.choose_shelf(classes, slots, parcel_class)
    if chosen is None:
        raise _no_room(ctx, session, site, parcel_class)
    return locations[chosen.id]


def _shelf_slots(session: Session, site: Site) -> list[sizing.ShelfSlot]:
    # Each location's counter (history.apply keeps it), not a count of the held parcels.
    return [sizing.ShelfSlot(loc.id, loc.label, loc.size_class, loc.capacity, loc.held)
            for loc in site.locations if loc.active]


def _class_of(ctx: Ctx, parcel: Parcel) -> str:
    classes = ctx.settings.size_classes
    return parcel.size_class or min(classes, key=lambda c: sizing.class_rank(classes, c))


def shelf_takes(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> bool:
    """A shelf of the shop has a free place for the parcel's size class now (the check-in's
    own rule, asked before a parcel is sent there)."""
    slots = _shelf_slots(session, site)
    return sizing.choose_shelf(ctx.settings.size_classes, slots, _class_of(ctx, parcel)) is not None


def _no_room(ctx: Ctx, session: Session, site: Site, parcel_class: str) -> SiteAtCapacity:
    nearest = nearest_with_room(ctx, session, site.latitude, site.longitude, exclude=site.id)
    occ = occupancy_of(session, site)
    if nearest:
        other, km, _ = nearest[0]
        where = f"; the nearest site with room is {other.name} ({other.code}), {km:.1f} km away"
        suggestion: dict[str, Any] | None = {
            "code": other.code, "name": other.name, "address": other.address,
            "city": other.city, "distance_km": round(km, 2),
        }
    else:
        where, suggestion = "; no other site has room", None
    return SiteAtCapacity(
        f"{site.name} has no free {parcel_class} place ({occ.held}/{occ.capacity} held){where}",
        nearest_site=suggestion,
    )


def _place(
    ctx: Ctx, session: Session, site: Site, parcel: Parcel, location: Location, now: datetime,
    actor: Principal, group: Group | None, closed: ClosedOn,
) -> None:
    with session.no_autoflush:  # one UPDATE of the parcel, not one per attribute change
        holding = holding_period(ctx, session, site, now)
        _assign(ctx, parcel, location, now, holding.days, closed)
    data: dict[str, Any] = {
        "location": location.label, "deadline": _iso(parcel.holding_deadline),
        "holding_days": holding.days, "holding_rule": holding.rule,
    }
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


def _assign(
    ctx: Ctx, parcel: Parcel, location: Location, now: datetime, days: int, closed: ClosedOn,
) -> None:
    parcel.location_id = location.id
    parcel.location = location
    parcel.checked_in_at = now
    parcel.holding_deadline = deadline_after(now, days, ctx.settings.timezone, closed)


def holding_period(ctx: Ctx, session: Session, site: Site, now: datetime) -> HoldingDecision:
    """The season's and the load's rule (docs/forecast.md), decided once, before the ready
    message states the deadline; later changes never shorten it."""
    today = now.astimezone(ctx.settings.timezone).date()
    return holding_days(
        site.kind, ctx.settings.holding[site.kind].days, today,
        load_ratio(ctx, session, site, today), ctx.settings.adaptive_holding,
    )


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
                       data={"deadline": _iso(parcel.holding_deadline), "holding_days": days})
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


# ---------------------------------------------------------------- credentials


def issue_credential(
    ctx: Ctx, session: Session, parcel: Parcel, *, holder: str, holder_name: str | None = None
) -> PickupCredential:
    """A new code, unique among the site's live codes so a code alone finds its parcel."""
    pepper, key = ctx.settings.pickup_code_pepper, ctx.settings.pickup_code_derivation_key
    digits = ctx.settings.pickup_code_digits
    for _ in range(20):
        nonce = creds.new_nonce()
        code_hash = creds.hash_code(pepper, parcel.site_id, creds.derive_code(key, nonce, digits))
        if not _live_credential_by_hash(session, parcel.site_id, code_hash):
            break
    else:  # pragma: no cover - needs a site holding most of the code space
        raise DomainError("could not draw a unique pickup code; add digits to PICKUP_CODE_DIGITS")
    credential = PickupCredential(
        parcel_id=parcel.id, site_id=parcel.site_id, holder=holder, holder_name=holder_name,
        nonce=nonce, code_hash=code_hash,
    )
    session.add(credential)
    session.flush()
    session.add(CredentialParcel(credential_id=credential.id, parcel_id=parcel.id))
    session.flush()
    return credential


def code_of(ctx: Ctx, credential: PickupCredential) -> str:
    """The code to show its holder (the resident's page, the message)."""
    return creds.derive_code(
        ctx.settings.pickup_code_derivation_key, credential.nonce, ctx.settings.pickup_code_digits
    )


def _live_credential_by_hash(
    session: Session, site_id: int, code_hash: str, *, lock: bool = False
) -> PickupCredential | None:
    query = select(PickupCredential).where(
        PickupCredential.site_id == site_id,
        PickupCredential.code_hash == code_hash,
        PickupCredential.used_at.is_(None),
        PickupCredential.revoked_at.is_(None),
    )
    if lock:
        query = query.with_for_update()
    found = session.scalar(query)
    if lock and found is not None:
        session.info.setdefault(LOCKED_CODE_ROWS, set()).add(found.id)
    return found


def live_credentials(session: Session, parcel_id: int) -> list[PickupCredential]:
    """The live codes that hand this parcel over (its own, or a code it shares)."""
    return list(
        session.scalars(
            select(PickupCredential)
            .join(CredentialParcel, CredentialParcel.credential_id == PickupCredential.id)
            .where(
                CredentialParcel.parcel_id == parcel_id,
                PickupCredential.used_at.is_(None),
                PickupCredential.revoked_at.is_(None),
            )
            .order_by(PickupCredential.id)
        )
    )


def release_credentials(
    session: Session, parcel: Parcel, now: datetime,
    live: list[PickupCredential] | None = None,
) -> list[PickupCredential]:
    """A parcel left the ready state (expired, declared...): its codes die, except a code
    shared with a parcel still ready, which its recipient still needs. The revoked ones.

    ``live``: the parcel's live codes as this transaction read them under the parcel's row
    lock (nobody else can add one meanwhile), which saves reading them again."""
    if live is None:
        live = live_credentials(session, parcel.id)
    dead = [
        c for c in live
        if c.used_at is None and c.revoked_at is None
        and not any(p.id != parcel.id and p.state == READY for p in c.parcels)
    ]
    for credential in dead:
        credential.revoked_at = now
    return dead


# ---------------------------------------------------------------- pickup


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


@dataclass(frozen=True)
class PickupClaim:
    """What the person at the counter gives: the code, and perhaps what proves it is theirs
    (the tracking number, or the recipient's name), which a code alone needs once the site
    has seen a wrong guess (docs/decisions/0004)."""

    code: str = ""
    tracking_number: str | None = None
    recipient_name: str | None = None

    @property
    def digits(self) -> str:
        return creds.normalise_code(self.code)

    @property
    def names_the_parcel(self) -> bool:
        return bool(self.tracking_number or (self.recipient_name or "").strip())


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
        site = _site_for_staff(session, actor, site_id, lock=False)
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
                "not_handed_over": [_left_view(p) for p in covered if p not in handed],
            }
    # The wrong attempt was committed above; only now is the refusal reported.
    raise failure


def pickup_preview(
    ctx: Ctx, actor: Principal, site_id: int, code: str, *, tracking_number: str | None = None,
    recipient_name: str | None = None,
) -> dict[str, Any]:
    """What a code would hand over, before the shopkeeper confirms; the parcel is untouched.

    The preview is no free oracle: a wrong code counts exactly as in :func:`pick_up` (against
    the site's code-only guesses, or against the parcel named by its tracking number or its
    recipient, which locks after 5).
    """
    claim = PickupClaim(code, tracking_number, recipient_name)
    if not claim.digits:
        raise ValidationFailed("type the pickup code or scan the resident's QR code")
    now = ctx.now()
    with ctx.db.transaction() as session:
        site = _site_for_staff(session, actor, site_id, lock=False)
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
        return _code_alone(ctx, session, site, claim.digits, now)
    parcel, failure = _named_parcel(ctx, session, site, claim, actor, now)
    if parcel is None:
        return None, failure
    if parcel.state != READY:
        raise InvalidTransition(
            f"{parcel.tracking_number} is {parcel.state}, not ready for pickup",
            state=parcel.state,
        )
    live = live_credentials(session, parcel.id)
    found = _matching(ctx, site, claim.digits, live)
    if found is not None:
        return found, None
    if any(c.locked_at for c in live):
        raise CredentialLocked("too many wrong codes: check an identity document and override",
                               tracking_number=parcel.tracking_number)
    return None, _count_wrong_attempt(session, parcel, live, actor, now)


def _code_alone(
    ctx: Ctx, session: Session, site: Site, digits: str, now: datetime
) -> tuple[PickupCredential | None, DomainError | None]:
    """The live code at the site with these digits; a miss counts against the site."""
    code_only_allowed(ctx, session, site)
    found = _live_credential_by_hash(
        session, site.id, creds.hash_code(ctx.settings.pickup_code_pepper, site.id, digits),
        lock=True,
    )
    if found is None:
        throttle.record_failure(session, throttle.CODE_ONLY_GUESSES, str(site.id), now)
        return None, WrongPickupCode("no parcel here has this code", attempts_left=None)
    return found, None


def code_only_allowed(ctx: Ctx, session: Session, site: Site) -> None:
    """Refuse a code alone (:class:`CodeNeedsMore`) once a live code here has met
    PICKUP_CODE_ONLY_MISSES wrong code-alone guesses since it was issued: the claim must then
    also name the parcel (tracking number or recipient), whose own wrong tries lock it after
    5. Decided before the code is read, so the refusal says nothing about the code
    (docs/decisions/0004)."""
    _one_code_guess_at_a_time(session, site)
    oldest_live = (
        select(func.min(PickupCredential.created_at))
        .where(PickupCredential.site_id == site.id, PickupCredential.used_at.is_(None),
               PickupCredential.revoked_at.is_(None))
        .scalar_subquery()
    )
    # One statement, one snapshot: a miss committed after the last live code was spent is
    # never set against a code that the same snapshot still sees live (two pickups racing).
    misses = session.scalar(
        select(func.count()).where(
            FailedAttempt.scope == throttle.CODE_ONLY_GUESSES,
            FailedAttempt.key == str(site.id), FailedAttempt.at >= oldest_live,
        )
    )
    if (misses or 0) >= ctx.settings.pickup_code_only_misses:
        raise CodeNeedsMore(
            "a wrong code was tried here: give the code with the tracking number or the "
            "recipient's name"
        )


# PostgreSQL advisory lock space of the code-alone guesses (the site id is the other key).
CODE_GUESS_LOCK_SPACE = 4004


def _one_code_guess_at_a_time(session: Session, site: Site) -> None:
    """Two guesses checked at once would both pass the count before either is recorded, and
    a code would meet more misses than allowed. SQLite already runs one writer at a time;
    PostgreSQL takes a transaction-scoped advisory lock per site, which nothing else takes,
    so it cannot close a lock-order cycle with check-ins or manifests."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:space, :site)"),
                        {"space": CODE_GUESS_LOCK_SPACE, "site": site.id})


def _named_parcel(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim, actor: Principal, now: datetime,
) -> tuple[Parcel | None, DomainError | None]:
    """The parcel the claim names: by tracking number, or the recipient's parcel whose code
    this is. Several parcels for one name and none with this code: each takes a wrong try."""
    if claim.tracking_number:
        parcel = by_tracking(session, tracking.validate(claim.tracking_number), lock=True)
        if parcel is None or parcel.site_id != site.id:
            raise NotFound(f"no parcel {claim.tracking_number} at {site.code}")
        return parcel, None
    named = _parcels_for_recipient(session, site, claim.recipient_name or "")
    found = next((p for p in named
                  if _matching(ctx, site, claim.digits, live_credentials(session, p.id))), None)
    if found is not None or len(named) == 1:
        return found or named[0], None
    failures = []
    for parcel in named:
        live = live_credentials(session, parcel.id)
        if not any(c.locked_at for c in live):
            failures.append(_count_wrong_attempt(session, parcel, live, actor, now))
    return None, failures[0] if failures else CredentialLocked(
        "too many wrong codes: check an identity document and give the tracking number")


def _parcels_for_recipient(session: Session, site: Site, name: str) -> list[Parcel]:
    """The ready parcels at the site for the recipient named, row-locked in id order."""
    ids = [
        pid for pid, recipient in session.execute(
            select(Parcel.id, Parcel.recipient_name)
            .where(Parcel.site_id == site.id, Parcel.state == READY,
                   Parcel.recipient_name.is_not(None))
        )
        if creds.is_recipient_named(name, recipient)
    ]
    if not ids:
        raise NotFound(f"no parcel waiting at {site.code} for this name")
    return list(session.scalars(
        select(Parcel).where(Parcel.id.in_(ids)).order_by(Parcel.id)
        .with_for_update().execution_options(populate_existing=True)
    ))


def _matching(
    ctx: Ctx, site: Site, digits: str, live: list[PickupCredential]
) -> PickupCredential | None:
    pepper = ctx.settings.pickup_code_pepper
    return next(
        (c for c in live if digits and creds.code_matches(pepper, site.id, digits, c.code_hash)),
        None,
    )


def _preview(session: Session, actor: Principal, found: PickupCredential) -> dict[str, Any]:
    covered = list(found.parcels)
    parcel = _first_ready(covered)
    ready = [p for p in covered if p.state == READY]
    locked = any(c.locked_at for c in live_credentials(session, parcel.id))
    return {
        "parcel": parcel_view(parcel, actor),
        "parcels": [parcel_view(p, actor) for p in ready],
        "not_handed_over": [_left_view(p) for p in covered if p not in ready],
        "holder": found.holder,
        "holder_name": found.holder_name,
        "locked": locked,
        "identity_required": locked or found.holder == "proxy",
    }


def _match_credential(
    ctx: Ctx, session: Session, site: Site, claim: PickupClaim,
    identity: IdentityCheck | None, override_lock: bool, actor: Principal, now: datetime,
) -> tuple[Parcel | None, PickupCredential | None, DomainError | None, list[PickupCredential]]:
    """The parcel and the code that hands it over, or why not; and the parcel's live codes
    (read under its row lock, so the hand-over need not read them again)."""
    if claim.names_the_parcel:
        parcel, failure = _named_parcel(ctx, session, site, claim, actor, now)
        if parcel is None:
            return None, None, failure, []
    elif claim.digits:
        found, failure = _code_alone(ctx, session, site, claim.digits, now)
        if found is None:
            return None, None, failure, []
        parcel = _first_ready(_lock_parcels(session, found))
    else:
        raise ValidationFailed("give the pickup code, or the tracking number with the code")
    if parcel.state != State.READY_FOR_PICKUP.value:
        raise InvalidTransition(
            f"{parcel.tracking_number} is {parcel.state}, not ready for pickup",
            state=parcel.state,
        )
    live = live_credentials(session, parcel.id)
    if any(c.locked_at for c in live):
        if not (override_lock and identity):
            raise CredentialLocked(
                "too many wrong codes: check an identity document and override",
                tracking_number=parcel.tracking_number,
            )
        return parcel, None, None, live
    matching = _matching(ctx, site, claim.digits, live)
    if matching is None:
        return parcel, None, _count_wrong_attempt(session, parcel, live, actor, now), live
    if matching.holder == "proxy" and identity is None:
        raise IdentityCheckRequired(
            "a proxy shows an identity document; record it with the pickup",
            holder_name=matching.holder_name,
        )
    return parcel, matching, None, live


# session.info keys: the parcels of each code this transaction locked (`_lock_parcels`), and
# the codes whose own row it already locked (`_live_credential_by_hash`)
LOCKED_CODES = "relay_ops.locked_codes"
LOCKED_CODE_ROWS = "relay_ops.locked_code_rows"


def _lock_parcels(session: Session, credential: PickupCredential) -> list[Parcel]:
    """The parcels a code covers, row-locked in id order (two pickups never deadlock).

    The code's row is locked first, as a check-in joining it does: a parcel is never
    attached to a code that a pickup is spending at the same moment. Once locked, the set
    cannot change before the commit, so a second call in the same transaction (finding the
    code, then what it hands over) reuses it: a session lives for one transaction."""
    locked: dict[int, list[Parcel]] = session.info.setdefault(LOCKED_CODES, {})
    if credential.id in locked:
        return locked[credential.id]
    if credential.id not in session.info.get(LOCKED_CODE_ROWS, ()):
        session.scalar(select(PickupCredential.id).where(PickupCredential.id == credential.id)
                       .with_for_update())
    ids = select(CredentialParcel.parcel_id).where(
        CredentialParcel.credential_id == credential.id
    )
    # With what the answer shows of them (carrier, shelf), so building it reads nothing more.
    locked[credential.id] = list(session.scalars(
        select(Parcel).where(Parcel.id.in_(ids)).order_by(Parcel.id)
        .options(joinedload(Parcel.carrier), joinedload(Parcel.location))
        .with_for_update(of=Parcel).execution_options(populate_existing=True)
    ))
    return locked[credential.id]


def _first_ready(covered: list[Parcel]) -> Parcel:
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
    covered = {p.id: p for c in codes for p in _lock_parcels(session, c)}
    covered.setdefault(parcel.id, parcel)
    return [covered[pid] for pid in sorted(covered)]


def _shelf_ref(parcel: Parcel) -> dict[str, Any]:
    return {"id": parcel.id, "tracking_number": parcel.tracking_number,
            "location": parcel.location.label if parcel.location else None}


def _left_view(parcel: Parcel) -> dict[str, Any]:
    return {**_shelf_ref(parcel), "state": parcel.state}


def _count_wrong_attempt(
    session: Session, parcel: Parcel, live: list[PickupCredential], actor: Principal,
    now: datetime,
) -> DomainError:
    outcome = creds.after_wrong_attempt(max((c.failed_attempts for c in live), default=0))
    for credential in live:
        credential.failed_attempts += 1
        if outcome.locked:
            credential.locked_at = now
    history.record(
        session, parcel, "wrong_code", parcel.state, actor, now,
        data={"locked": outcome.locked, "attempts_left": outcome.attempts_left},
    )
    if outcome.locked:
        return CredentialLocked(
            "5 wrong codes: the code is locked until an identity document is checked",
            tracking_number=parcel.tracking_number,
        )
    return WrongPickupCode("wrong code", attempts_left=outcome.attempts_left)


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
        credential.used_at = now
    # The parcel's other codes (a proxy's; a code it shared with parcels now all gone) die.
    release_credentials(session, parcel, now, live)
    notify.queue(session, parcel, "picked_up")


# ---------------------------------------------------------------- proxy, extension


def name_proxy(ctx: Ctx, actor: Principal, parcel_id: int, proxy_name: str) -> dict[str, Any]:
    """The recipient names someone to pick up; the proxy gets a code of their own.

    Naming the person already named is a no-op that answers their live code: a form sent
    twice (a reload, a double tap) must not kill the code the neighbour was already given."""
    require_role(actor, Role.RESIDENT, Role.OPERATOR)
    if not proxy_name.strip():
        raise ValidationFailed("give the proxy's name as on their identity document")
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, _locked_parcel(session, parcel_id), parcel_id)
        if parcel.state not in (State.ANNOUNCED.value, State.READY_FOR_PICKUP.value):
            raise InvalidTransition(f"a parcel that is {parcel.state} cannot get a proxy")
        for old in live_credentials(session, parcel.id):
            if old.holder != "proxy":
                continue
            if same_person(old.holder_name or "", proxy_name):
                return {"proxy_name": old.holder_name, "proxy_code": code_of(ctx, old)}
            old.revoked_at = now
        credential = issue_credential(
            ctx, session, parcel, holder="proxy", holder_name=proxy_name.strip()
        )
        history.record(session, parcel, "proxy_named", parcel.state, actor, now)
        return {"proxy_name": credential.holder_name, "proxy_code": code_of(ctx, credential)}


def same_person(a: str, b: str) -> bool:
    """Two spellings of one name as typed on a phone: case and spacing do not count."""
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def extend(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    require_role(actor, Role.RESIDENT, Role.OPERATOR, Role.SHOPKEEPER)
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, _locked_parcel(session, parcel_id), parcel_id)
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


# ---------------------------------------------------------------- expiry, collection


def expire_overdue(ctx: Ctx, limit: int = 1000) -> list[int]:
    """Move parcels past their deadline to ``expired``. Safe to run anywhere, any time."""
    from relay_ops.services import lockers  # lockers -> reroute -> parcels
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
            lockers.lock_locker_of(session, parcel_id)
            parcel = _locked_parcel(session, parcel_id)
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
            lockers.held_for_collection(ctx, session, parcel, dead)
            notify.queue(session, parcel, "expired")
            expired.append(parcel_id)
    return expired


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
        parcel = by_tracking(session, number, lock=True)
        # One answer for a number that is nowhere, elsewhere or another carrier's: a carrier
        # learns nothing of the numbers it did not announce.
        if parcel is None or parcel.site_id != site.id or not can_see_parcel(actor, parcel):
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
        )
        if actor.role is Role.CARRIER:
            query = query.where(Parcel.carrier_id == actor.carrier_id)
        return [parcel_view(p, actor) for p in session.scalars(query.order_by(Parcel.id))]


# ---------------------------------------------------------------- declarations


def declare(ctx: Ctx, actor: Principal, parcel_id: int, kind: str, note: str) -> dict[str, Any]:
    from relay_ops.services import lockers  # lockers -> reroute -> parcels

    require_role(actor, *STAFF)
    actions = {"missing": Action.DECLARE_MISSING, "damaged": Action.DECLARE_DAMAGED}
    if kind not in actions:
        raise ValidationFailed("a declaration is 'missing' or 'damaged'")
    if not note.strip():
        raise ValidationFailed("say what happened in a note")
    now = ctx.now()
    with ctx.db.transaction() as session:
        lockers.lock_locker_of(session, parcel_id)
        parcel = require_parcel(actor, _locked_parcel(session, parcel_id), parcel_id)
        history.apply(session, parcel, actions[kind], actor, now, reason=note.strip())
        dead = release_credentials(session, parcel, now)
        if kind == "damaged":
            lockers.held_for_collection(ctx, session, parcel, dead)
        return parcel_view(parcel, actor)


# ---------------------------------------------------------------- reading


def get_parcel(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    with ctx.db.read() as session:
        parcel = require_parcel(actor, session.get(Parcel, parcel_id), parcel_id)
        return parcel_view(parcel, actor)


def find_parcel(ctx: Ctx, actor: Principal, tracking_number: str) -> dict[str, Any]:
    number = tracking.validate(tracking_number)
    with ctx.db.read() as session:
        parcel = require_parcel(actor, by_tracking(session, number), number)
        return parcel_view(parcel, actor)


def parcel_history(ctx: Ctx, actor: Principal, parcel_id: int) -> list[dict[str, Any]]:
    with ctx.db.read() as session:
        require_parcel(actor, session.get(Parcel, parcel_id), parcel_id)
        events = session.scalars(
            select(ParcelEvent).where(ParcelEvent.parcel_id == parcel_id).order_by(ParcelEvent.id)
        )
        return [event_view(e) for e in events]


@dataclass(frozen=True)
class InventoryFilter:
    states: tuple[str, ...] = ()
    expiring_within_hours: int | None = None
    unannounced: bool | None = None
    carrier_code: str | None = None


def inventory(
    ctx: Ctx, actor: Principal, site_id: int, filters: InventoryFilter, page: int, per_page: int
) -> dict[str, Any]:
    """Parcels at a site (by default the ones on hand), oldest first, a page at a time."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    unknown = set(filters.states) - {s.value for s in State}
    if unknown:
        raise ValidationFailed(f"unknown states: {', '.join(sorted(unknown))}")
    query = select(Parcel).where(Parcel.site_id == site_id)
    query = query.where(Parcel.state.in_(filters.states or HELD))
    if filters.expiring_within_hours is not None:
        horizon = ctx.now() + timedelta(hours=filters.expiring_within_hours)
        query = query.where(
            Parcel.state == State.READY_FOR_PICKUP.value, Parcel.holding_deadline <= horizon
        )
    if filters.unannounced is not None:
        query = query.where(Parcel.unannounced.is_(filters.unannounced))
    if filters.carrier_code:
        query = query.join(Carrier, Parcel.carrier_id == Carrier.id).where(
            Carrier.code == filters.carrier_code
        )
    with ctx.db.read() as session:
        if session.get(Site, site_id) is None:
            raise NotFound(f"no site {site_id}")
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.scalars(
            query.order_by(Parcel.holding_deadline, Parcel.id)
            .offset((page - 1) * per_page)
            .limit(per_page)
            # group_view reads each parcel's codes and their parcels: load them in bulk.
            .options(selectinload(Parcel.credentials).selectinload(PickupCredential.parcels))
        )
        return {
            "items": [parcel_view(p, actor) for p in rows],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
