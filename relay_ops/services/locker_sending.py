"""Parcels put into a locker by someone other than a carrier: a sender's parcel to be sent
(docs/outbound.md, "At a locker") and a producer's order (docs/producers.md, "At a locker").

Both follow the carriers' offline path (protocol section 7, "Carriers"): a door of the
parcel's size is reserved ahead and synced to the locker as a `deposit` reservation whose
`code_hash` is the keyed hash of the code that opens it (the sender's drop-off code, the
producer's code: ``locker_sync.opener_code``). The locker decides it alone, online or not,
journals the use and reports it; the deposit is recorded when the door closes
(``locker_doors.door_closed``), here for a sent parcel, by the check-in path for an order.
The carrier's code then opens the sent parcels' doors as it opens expired parcels' doors
(``locker_collection``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from firmware_bridge.protocol import drop_off_qr_text
from relay_ops.db.models import (
    Carrier,
    CarrierSite,
    Compartment,
    LockerLink,
    OutboundParcel,
    Parcel,
    ParcelEvent,
    Site,
)
from relay_ops.domain import outbound, tracking
from relay_ops.domain.errors import Conflict, NoColdPlace, NotFound, OnBehalfOf, ValidationFailed
from relay_ops.domain.holding import Perishable, deadline_after, perishable_deadline
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import history, notify, numbers, throttle
from relay_ops.services.carrier_sites import serving_carriers
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of, issue_credential
from relay_ops.services.holding import holding_facts, holding_period, keep_holding
from relay_ops.services.locker_compartments import (
    ParcelDoesNotFit,
    allocate,
    compartments_of,
    link_of,
    locked_locker,
)
from relay_ops.services.locker_keys import producer_code
from relay_ops.services.locker_sync import (
    SENDER,
    collection_reservation,
    deposit_reservation,
    deposit_reservation_id,
    queue_sync,
    sender_credential,
)
from relay_ops.services.outbound import (
    REASONS,
    Sender,
    checked_sender,
    receipt_parcel_id,
    receipt_url,
    returned_parcel,
)
from relay_ops.services.principal import Principal, Role, require_role
from relay_ops.services.site_calendar import closed_on

# How long a drop-off code holds its door: the sender has this long to come.
DROP_OFF_VALIDITY = timedelta(days=3)
# Drop-offs announced online and not yet made hold at most this share of a locker's doors:
# anyone may announce one, and the residents' parcels need the doors too.
DROP_OFF_SHARE = 3
# How long a producer's order holds its door at most (the sell-by time comes first).
ORDER_DOOR_DAYS = timedelta(days=2)
# Without an agreement for this locker (the carrier stopped serving it meanwhile), the
# collection deadline of a sent parcel.
DEFAULT_COLLECTION_HOURS = 72
# Announcing needs no key, so it is rate limited (docs/outbound.md, "At a locker"): per
# client address (a sender with a few parcels stays far below) and per locker (what anyone
# together may ask of one locker); a carrier's platform, with its key, is not.
DROP_OFFS_PER_CLIENT = throttle.Limit("drop-off-client", 10, timedelta(hours=1),
                                      "announce again later, or ask your carrier")
DROP_OFFS_PER_LOCKER = throttle.Limit("drop-off-locker", 60, timedelta(hours=1),
                                      "this locker takes no more announcements for now")
DROP_OFF_SALT = "relay-ops-locker-drop-off"
KEYPAD_USE = ("at the locker: press the carrier key (*), type the code and Enter, then scan "
              "the parcel's label; or show the QR code to the scanner")


# ---------------------------------------------------------------- a sender's drop-off


@dataclass(frozen=True)
class DropOff:
    """A parcel to send from a locker, as the sender or its carrier's platform announces it."""

    tracking_number: str
    size_class: str
    sender: Sender
    carrier: str | None = None
    # A resident's return of a parcel they picked up at this locker (refusal, wrong item):
    # its own return label, and the number of the parcel returned.
    reason: str = "send"
    return_of: str | None = None


def announce_drop_off(ctx: Ctx, actor: Principal, site_id: int, drop: DropOff,
                      client: str = "unknown") -> tuple[int, dict[str, Any]]:
    """A door of the parcel's size held at the locker for ``DROP_OFF_VALIDITY``, opened by
    the drop-off code returned (and its QR code). Anyone may announce (the sender online,
    from ``client``'s address: rate limited); a carrier's platform announces its own labels
    only, and gets the same drop-off again when it retries (200). The label must be one a
    carrier serving the locker collects."""
    require_role(actor, Role.PUBLIC, Role.RESIDENT, Role.CARRIER, Role.OPERATOR)
    if actor.role in (Role.PUBLIC, Role.RESIDENT):
        _count_announcement(ctx, site_id, client)
    number = tracking.validate(drop.tracking_number)
    contact = checked_sender(drop.sender)
    if not (contact.phone or contact.email):
        raise ValidationFailed("the sender's phone or e-mail is required: the receipt goes "
                               "there")
    if drop.size_class not in ctx.settings.size_classes:
        raise ValidationFailed(f"size class {drop.size_class!r} unknown; use "
                               f"{', '.join(ctx.settings.size_classes)}")
    if drop.reason not in REASONS or (drop.reason == "return") != (drop.return_of is not None):
        raise ValidationFailed("a return names the parcel returned ('return_of') with "
                               "reason 'return'; a parcel sent, neither")
    now = ctx.now()
    with ctx.db.transaction() as session:
        # the locker's row lock first, as every locker use case: one door, one parcel
        site = locked_locker(session, site_id)
        carrier = _carrier_for(session, actor, site, number, drop.carrier)
        # Numbers are unique per carrier: only the carrier's own parcel under this number is
        # met (a carrier's platform learns nothing of another carrier's numbers).
        existing = numbers.carriers_parcel(session, carrier.id, number, lock=True)
        if existing is not None and not _lapsed(existing, site):
            return 200, _announced_again(ctx, session, actor, site, existing)
        returned = returned_parcel(session, site, drop.return_of) if drop.return_of else None
        _check_share(session, site)
        parcel = existing or Parcel(tracking_number=number, site_id=site.id,
                                    state=State.ANNOUNCED.value, direction=outbound.DIRECTION)
        parcel.carrier_id, parcel.size_class = carrier.id, drop.size_class
        parcel.recipient_phone, parcel.recipient_email = contact.phone, contact.email
        parcel.recipient_locale = contact.locale
        session.add(parcel)
        try:
            session.flush()
        except IntegrityError:  # the same label announced at another locker at this moment
            raise Conflict(f"{number} was registered at the same moment; a sent parcel needs "
                           "a label of its own", tracking_number=number) from None
        history.record(session, parcel, "drop_off_announced", None, actor, now,
                       data={"locker": site.code, "carrier": carrier.code,
                             "again": existing is not None, "reason": drop.reason,
                             "return_of": returned.id if returned else None})
        box = _reserve(ctx, session, site, parcel, now + DROP_OFF_VALIDITY, actor, now)
        issue_credential(ctx, session, parcel, holder=SENDER)
        queue_sync(ctx, session, site, link_of(session, site),
                   reservations=[deposit_reservation(ctx, site, parcel, box)])
        # The code and QR code by message too (a door held anew is a new message).
        assert box.reserved_until is not None
        notify.queue(session, parcel, "drop_off_code", str(int(box.reserved_until.timestamp())))
        return 201, drop_off_view(ctx, session, parcel)


def _count_announcement(ctx: Ctx, site_id: int, client: str) -> None:
    """Counted in a transaction of its own, before anything is checked: an announcement
    refused (a label probed, a door size tried) counts as much as one accepted."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        throttle.take(session, DROP_OFFS_PER_CLIENT, client, now)
        throttle.take(session, DROP_OFFS_PER_LOCKER, str(site_id), now)


def _lapsed(parcel: Parcel, site: Site) -> bool:
    """A drop-off announced here whose door went back to everyone (its time ran out): it
    may be announced again, with a new door and a new code."""
    return (parcel.direction == outbound.DIRECTION and parcel.site_id == site.id
            and parcel.state == State.ANNOUNCED.value and parcel.compartment_id is None)


def _announced_again(ctx: Ctx, session: Session, actor: Principal, site: Site,
                     parcel: Parcel) -> dict[str, Any]:
    """A retry by the carrier that announced it gets the same drop-off; anyone else learns
    nothing of it (its code is the sender's)."""
    mine = actor.role is Role.CARRIER and parcel.carrier_id == actor.carrier_id
    if mine and parcel.site_id == site.id and parcel.direction == outbound.DIRECTION \
            and parcel.state == State.ANNOUNCED.value:
        return drop_off_view(ctx, session, parcel)
    raise Conflict(f"{parcel.tracking_number} is already registered; a sent parcel needs a "
                   "label of its own", tracking_number=parcel.tracking_number)


def _carrier_for(session: Session, actor: Principal, site: Site, number: str,
                 named: str | None) -> Carrier:
    serving = {c.code: c for c, _link in serving_carriers(session, site.id)}
    if actor.role is Role.CARRIER:
        own = session.get(Carrier, actor.carrier_id)
        assert own is not None
        if named is not None and named != own.code:
            raise OnBehalfOf("a carrier announces its own labels: leave 'carrier' out")
        named = own.code
    code = outbound.choose_carrier(
        number, {k: list(c.label_networks or []) for k, c in serving.items()}, named)
    return serving[code]


def _check_share(session: Session, site: Site) -> None:
    doors = len(compartments_of(session, site.id))
    waiting = session.scalar(select(func.count()).select_from(Parcel).where(
        Parcel.site_id == site.id, Parcel.direction == outbound.DIRECTION,
        Parcel.state == State.ANNOUNCED.value, Parcel.compartment_id.is_not(None))) or 0
    if waiting >= max(1, doors // DROP_OFF_SHARE):
        raise ParcelDoesNotFit(f"{site.code} holds as many doors for drop-offs as it can: "
                               "try again later or another site")


def _reserve(ctx: Ctx, session: Session, site: Site, parcel: Parcel, until: datetime,
             actor: Principal, now: datetime, *, keep_cold: bool = False) -> Compartment:
    """The smallest free door of the parcel's size, held until ``until`` as a reservation
    made ahead (no drop-off session: the locker opens it on the code alone)."""
    box, reason = allocate(ctx, session, site, parcel, until, keep_cold=keep_cold)
    if box is None:
        if keep_cold:
            raise NoColdPlace(f"{site.name} has no free refrigerated door for this order: "
                              "bring it to a site with one", reference=parcel.tracking_number)
        raise ParcelDoesNotFit(reason, tracking_number=parcel.tracking_number)
    box.state, box.reserved_until, box.reserved_session_id = "reserved", until, None
    parcel.compartment_id = box.id
    history.record(session, parcel, "compartment_reserved", parcel.state, actor, now,
                   data={"locker": site.code, "compartment": box.number, "advance": True,
                         "until": until.isoformat(), "refrigerated": box.refrigerated})
    return box


def _serializer(ctx: Ctx) -> URLSafeSerializer:
    return URLSafeSerializer(ctx.settings.secret_key, salt=DROP_OFF_SALT)


def drop_off_view(ctx: Ctx, session: Session, parcel: Parcel) -> dict[str, Any]:
    """What the sender needs at the locker: its code, its QR code, the door's size, until
    when; and the link to the QR image and to the receipt."""
    credential = sender_credential(session, parcel)
    box = session.get(Compartment, parcel.compartment_id) if parcel.compartment_id else None
    code = code_of(ctx, credential) if credential is not None else None
    return {
        "status": parcel.state, "tracking_number": parcel.tracking_number,
        "locker": {"id": parcel.site.id, "code": parcel.site.code, "name": parcel.site.name,
                   "address": parcel.site.address, "city": parcel.site.city},
        "carrier": parcel.carrier.code if parcel.carrier else None,
        "size_class": box.size_class if box else parcel.size_class,
        "valid_until": box.reserved_until.isoformat() if box and box.reserved_until else None,
        "code": code,
        "qr": drop_off_qr_text(code, parcel.tracking_number) if code else None,
        "qr_svg_url": drop_off_qr_url(ctx, parcel.id),
        "use": KEYPAD_USE,
        "receipt_url": receipt_url(ctx, parcel.id),
    }


def sender_code(ctx: Ctx, receipt_token: str) -> dict[str, Any] | None:
    """The code the sender types at the locker, on its receipt page (the link its messages
    give): the drop-off code and QR code while the door waits for the parcel, or the code
    that takes a refused parcel back; None when there is none (at a shop, deposited...)."""
    parcel_id = receipt_parcel_id(ctx, receipt_token)
    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        credential = sender_credential(session, parcel) if parcel is not None else None
        if parcel is None or credential is None or parcel.compartment is None:
            return None
        drop_off = parcel.state == State.ANNOUNCED.value
        box = parcel.compartment
        return {"purpose": "drop_off" if drop_off else "take_back",
                "code": code_of(ctx, credential), "compartment": box.number,
                "valid_until": box.reserved_until.isoformat()
                if drop_off and box.reserved_until else None,
                "qr_svg_url": drop_off_qr_url(ctx, parcel.id) if drop_off else None}


def drop_off_qr_url(ctx: Ctx, parcel_id: int) -> str:
    """The QR code's image of a drop-off, a signed link (it answers while the drop-off lasts)."""
    token = _serializer(ctx).dumps({"p": parcel_id})
    return f"{ctx.settings.public_base_url}/api/v1/outbound/drop-offs/{token}/qr.svg"


def drop_off_qr(ctx: Ctx, token: str) -> str:
    """The QR code's text of a live drop-off, from the link given to its sender."""
    try:
        parcel_id = int(_serializer(ctx).loads(token)["p"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound("this drop-off link is not valid") from None
    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        credential = sender_credential(session, parcel) if parcel is not None else None
        if parcel is None or credential is None or parcel.compartment_id is None \
                or parcel.state != State.ANNOUNCED.value:
            raise NotFound("this drop-off is over (deposited, or its time ran out)")
        return drop_off_qr_text(code_of(ctx, credential), parcel.tracking_number)


def sent_parcel_deposited(ctx: Ctx, session: Session, site: Site, link: LockerLink,
                          parcel: Parcel, box: Compartment, actor: Principal, at: datetime,
                          data: dict[str, Any]) -> None:
    """The sender's door closed with the parcel in (``locker_doors``): the deposit and the
    acceptance at once, as at a counter; the drop-off code is spent, the sender gets the
    receipt, and the carrier's code will open this door (a collection reservation)."""
    released = deposit_reservation_id(parcel, box)
    parcel.state, parcel.checked_in_at = State.DROPPED_OFF.value, at
    history.record(session, parcel, outbound.DROP_OFF, State.ANNOUNCED.value, actor, at,
                   data={**data, "carrier": parcel.carrier.code if parcel.carrier else None})
    credential = sender_credential(session, parcel)
    if credential is not None:
        credential.used_at = at
    agreement = session.get(CarrierSite, (site.id, parcel.carrier_id))
    due = outbound.collect_by(at, agreement.collection_delay_hours if agreement
                              else DEFAULT_COLLECTION_HOURS)
    reason, returned_id = _announced_as(session, parcel)
    session.add(OutboundParcel(parcel_id=parcel.id, reason=reason, collect_by=due,
                               return_of_parcel_id=returned_id))
    history.apply(session, parcel, Action.ACCEPT_OUTBOUND, actor, at, data={
        "locker": site.code, "compartment": box.number, "collect_by": due.isoformat()})
    box.state, box.reserved_until, box.reserved_session_id = "occupied", None, None
    notify.queue(session, parcel, "dropped_off")
    queue_sync(ctx, session, site, link, released=[released],
               reservations=[collection_reservation(ctx, site, parcel, box)])


def _announced_as(session: Session, parcel: Parcel) -> tuple[str, int | None]:
    """Why the parcel is sent, as its (latest) announcement said: sent, or a return."""
    data = session.scalar(select(ParcelEvent.data).where(
        ParcelEvent.parcel_id == parcel.id, ParcelEvent.action == "drop_off_announced")
        .order_by(ParcelEvent.id.desc()).limit(1)) or {}
    return data.get("reason") or "send", data.get("return_of")


# ---------------------------------------------------------------- producers' orders


def reserve_for_order(ctx: Ctx, session: Session, site: Site, parcel: Parcel,
                      actor: Principal, *, keep_cold: bool, sell_by: datetime | None) -> None:
    """A producer's order announced for a locker: its door is reserved now (a refrigerated
    one for a "keep cold" order, or the order is refused with ``no-cold-place``), and the
    locker learns that the producer's code opens it. The caller locked the locker's row."""
    now = ctx.now()
    until = min(now + ORDER_DOOR_DAYS, sell_by) if sell_by else now + ORDER_DOOR_DAYS
    box = _reserve(ctx, session, site, parcel, until, actor, now, keep_cold=keep_cold)
    queue_sync(ctx, session, site, link_of(session, site),
               reservations=[deposit_reservation(ctx, site, parcel, box)])


def locker_deadline(ctx: Ctx, session: Session, site: Site, parcel: Parcel, at: datetime
                    ) -> tuple[datetime, dict[str, Any]]:
    """A parcel's holding deadline in a locker, from its deposit at ``at``: a perishable
    order's hours (bounded by its sell-by time), else the locker's period of the season."""
    order = parcel.producer_order
    item = Perishable(order.holding_hours, order.sell_by) if order is not None else None
    if item is not None and item.bounded:
        deadline = perishable_deadline(at, item, site.opening_hours, ctx.settings.timezone,
                                       closed_on(session, site))
        parcel.holding_rule = "perishable"
        return deadline, {"holding_hours": item.hours, "holding_rule": "perishable"}
    holding = holding_period(ctx, session, site, at)
    keep_holding(parcel, holding)
    deadline = deadline_after(at, holding.days, ctx.settings.timezone, closed_on(session, site))
    return deadline, holding_facts(holding)


def producer_code_view(ctx: Ctx, actor: Principal, site_id: int) -> dict[str, Any]:
    """The calling producer's code for one locker's keypad (never another's)."""
    require_role(actor, Role.PRODUCER)
    assert actor.producer_id is not None
    with ctx.db.read() as session:
        site = session.get(Site, site_id)
        if site is None or site.kind != "locker":
            raise NotFound(f"no locker {site_id}")
        return {"site_id": site.id, "locker": site.code,
                "code": producer_code(ctx, site, actor.producer_id),
                "use": "at the locker: press the carrier key (*), type this code and Enter, "
                       "then scan each order's label: its door opens"}
