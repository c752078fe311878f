"""Parcels sent from a site: a sender's deposit at the counter, the carrier's pickup list and
collection, the overdue alert, and the sender's receipt (docs/outbound.md). Which carriers
collect at which sites is ``carrier_sites.py``; a carrier's pickup list per round,
``pickup_lists.py``.

The rules are in ``domain/outbound.py`` (lifecycle, which carrier takes a label); each
function here is one use case in one transaction, like ``services/checkin.py``. A sent parcel
is a ``parcels`` row with ``direction = 'outbound'``: it takes a shelf place like any parcel
held at the site (``lifecycle.HELD_STATES``), so the check-in's occupancy and the forecast
count it, and its events go to the same history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from relay_ops.db.models import Carrier, CarrierSite, OutboundParcel, Parcel, ParcelEvent, Site
from relay_ops.domain import outbound, site_services, tracking
from relay_ops.domain.errors import (
    Conflict,
    DomainError,
    InvalidTransition,
    NoShelves,
    NotFound,
    OnBehalfOf,
    ShopsOnly,
    ValidationFailed,
)
from relay_ops.domain.lifecycle import Action, State
from relay_ops.notifications.errors import InvalidRecipient
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import normalize_recipient
from relay_ops.services import history, notify, numbers
from relay_ops.services.carrier_sites import (
    TO_COLLECT,
    carrier_or_404,
    serving_carriers,
    site_or_404,
)
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.shelves import allocate_shelf

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
RECEIPT_SALT = "relay-ops-sending-receipt"
REASONS = ("send", "return")


# ---------------------------------------------------------------- the deposit


@dataclass(frozen=True)
class Sender:
    """Where the sender's receipt and departure messages go (both optional)."""

    phone: str | None = None
    email: str | None = None
    locale: str = "fr"


def drop_off(
    ctx: Ctx,
    actor: Principal,
    site_id: int,
    tracking_number: str,
    *,
    carrier_code: str | None = None,
    sender: Sender | None = None,
    size_class: str | None = None,
    reason: str = "send",
    return_of: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """The shopkeeper scans a sender's parcel in: a carrier serving the site must collect its
    label; it gets a shelf place, a collection deadline and a receipt. A second scan of the
    same parcel answers the first deposit (200) and changes nothing."""
    number = tracking.validate(tracking_number)
    contact = checked_sender(sender or Sender())
    if reason not in REASONS:
        raise ValidationFailed(f"reason is one of {', '.join(REASONS)}")
    if size_class is not None and size_class not in ctx.settings.size_classes:
        raise ValidationFailed(f"size class {size_class!r} unknown; use "
                               f"{', '.join(ctx.settings.size_classes)}")
    now = ctx.now()
    with ctx.db.transaction() as session:
        # The site row lock serialises deposits and check-ins here: one takes the last place.
        site = _counter_site(session, actor, site_id)
        again = _sent_from_here(session, site, number, carrier_code)
        if again is not None:
            return 200, _again(ctx, session, site, again)
        returned = returned_parcel(session, site, return_of) if return_of else None
        serving = {c.code: (c, link) for c, link in serving_carriers(session, site.id)}
        code = outbound.choose_carrier(
            number, {k: list(c.label_networks or []) for k, (c, _) in serving.items()},
            carrier_code,
        )
        carrier, link = serving[code]
        # Numbers are unique per carrier: only the chosen carrier's own parcel under this
        # number is a duplicate label (another carrier's is another parcel).
        existing = numbers.carriers_parcel(session, carrier.id, number, lock=True)
        if existing is not None:
            return 200, _again(ctx, session, site, existing)
        try:
            parcel = _new_parcel(session, site, carrier, number, contact, size_class, now)
        except IntegrityError:  # the same label scanned at two counters at once
            raise Conflict(f"{number} was registered at the same moment; scan it again") from None
        history.record(session, parcel, outbound.DROP_OFF, None, actor, now,
                       reason="returned by its recipient" if returned else None,
                       data={"carrier": carrier.code, "reason": reason})
        _shelve(ctx, session, site, parcel, carrier, link, actor, now, reason, returned)
        notify.queue(session, parcel, "dropped_off")
        return 201, _deposit_answer(ctx, session, parcel, "dropped_off")


def checked_sender(sender: Sender) -> Sender:
    """The sender is at the counter: a mistyped address is refused now, not found later."""
    try:
        phone = normalize_recipient(Channel.SMS, sender.phone) if sender.phone else None
        email = normalize_recipient(Channel.EMAIL, sender.email) if sender.email else None
    except InvalidRecipient as err:
        raise ValidationFailed(f"the sender's contact: {err}") from None
    return Sender(phone=phone, email=email, locale=sender.locale)


def _counter_site(session: Session, actor: Principal, site_id: int) -> Site:
    require_role(actor, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    site = site_or_404(session, site_id, lock=True)
    if site.kind == "locker":
        raise NoShelves("at a locker the sender announces the parcel online and "
                        "deposits it with a drop-off code (POST /lockers/{id}/drop-offs)")
    if site.kind != "shop":
        raise ShopsOnly("parcels to send are dropped off at a shop")
    site_services.require(site.services or [], "send", site.name, site.code)
    return site


def _again(ctx: Ctx, session: Session, site: Site, parcel: Parcel) -> dict[str, Any]:
    """A label already known: the same deposit scanned again, or a refusal that says why."""
    if (parcel.direction == outbound.DIRECTION and parcel.site_id == site.id
            and State(parcel.state) in outbound.HELD):
        return _deposit_answer(ctx, session, parcel, "already_dropped_off")
    # Nothing about the other parcel is told (its site, its state): it may be another shop's.
    raise Conflict(f"{parcel.tracking_number} is already registered; a sent parcel needs a "
                   "label of its own (a return: the return label)",
                   tracking_number=parcel.tracking_number)


def _sent_from_here(session: Session, site: Site, number: str, carrier_code: str | None
                    ) -> Parcel | None:
    """The sent parcel held here under this number (the same deposit scanned again), before
    any carrier is chosen: a second scan is answered as the first was."""
    query = numbers.of_carrier(numbers.numbered(number).where(
        Parcel.site_id == site.id, Parcel.direction == outbound.DIRECTION,
        Parcel.state.in_([s.value for s in outbound.HELD])), carrier_code)
    return numbers.only_one(list(session.scalars(query.with_for_update(of=Parcel))), number)


def returned_parcel(session: Session, site: Site, return_of: str) -> Parcel:
    """A resident returns a parcel they received here (refusal, wrong item), at the counter
    or at a locker (``locker_sending``); two carriers' parcels picked up here under the
    number: ambiguous (the return's label names it)."""
    number = tracking.validate(return_of)
    received = numbers.only_one(list(session.scalars(numbers.numbered(number).where(
        Parcel.site_id == site.id, Parcel.direction == "inbound",
        Parcel.state == State.PICKED_UP.value))), number)
    if received is None:
        raise NotFound(f"no parcel {number} was picked up at {site.code}")
    return received


def _new_parcel(
    session: Session, site: Site, carrier: Carrier, number: str, contact: Sender,
    size_class: str | None, now: datetime,
) -> Parcel:
    parcel = Parcel(
        tracking_number=number, carrier_id=carrier.id, site_id=site.id,
        state=State.DROPPED_OFF.value, direction=outbound.DIRECTION,
        recipient_phone=contact.phone, recipient_email=contact.email,
        recipient_locale=contact.locale, size_class=size_class, checked_in_at=now,
    )
    session.add(parcel)
    session.flush()
    return parcel


def _shelve(
    ctx: Ctx, session: Session, site: Site, parcel: Parcel, carrier: Carrier, link: CarrierSite,
    actor: Principal, now: datetime, reason: str, returned: Parcel | None,
) -> None:
    # The check-in's own shelf policy (and its refusal naming the nearest site with room):
    # sent and received parcels share the shelves. A full shop keeps nothing of the deposit.
    location = allocate_shelf(ctx, session, site, parcel)
    parcel.location_id = location.id
    parcel.location = location
    # Registered dropped_off (held) before it had a place: no transition counts it there, so
    # it is counted now, or the shelf policy would see the place free.
    history.count_on_shelf(session, location.id, 1)
    due = outbound.collect_by(now, link.collection_delay_hours)
    session.add(OutboundParcel(
        parcel_id=parcel.id, reason=reason, collect_by=due,
        return_of_parcel_id=returned.id if returned else None,
    ))
    history.apply(session, parcel, Action.ACCEPT_OUTBOUND, actor, now, data={
        "location": location.label, "carrier": carrier.code, "collect_by": due.isoformat(),
    })


def _deposit_answer(ctx: Ctx, session: Session, parcel: Parcel, status: str) -> dict[str, Any]:
    return {"status": status, "parcel": outbound_view(session, parcel),
            "receipt_url": receipt_url(ctx, parcel.id)}


def outbound_view(
    session: Session, parcel: Parcel, now: datetime | None = None
) -> dict[str, Any]:
    """A sent parcel as staff and its carrier see it (no sender contact); with ``now``, whether
    its carrier is late."""
    extra = session.get(OutboundParcel, parcel.id)
    view = {
        "id": parcel.id,
        "tracking_number": parcel.tracking_number,
        "direction": parcel.direction,
        "state": parcel.state,
        "site": parcel.site.code,
        "carrier": parcel.carrier.code if parcel.carrier else None,
        "location": parcel.location.label if parcel.location else None,
        "size_class": parcel.size_class,
        "dropped_off_at": _iso(parcel.checked_in_at),
        "collect_by": _iso(extra.collect_by) if extra else None,
        "overdue_since": _iso(extra.overdue_since) if extra else None,
        "reason": extra.reason if extra else None,
        "closed_at": _iso(parcel.closed_at),
    }
    if now is not None:
        view["overdue"] = extra is not None and extra.collect_by < now
    return view


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# ---------------------------------------------------------------- the carrier's round
# (its pickup list is ``pickup_lists.py``)


def with_views(query: Select[Parcel]) -> Select[Any]:
    """A list's parcels with what their views read, in a few queries rather than a few per
    parcel: the outbound rows (in the session, so ``outbound_view`` finds them), shelves,
    carriers and sites."""
    return query.add_columns(OutboundParcel).options(
        selectinload(Parcel.location), selectinload(Parcel.carrier), selectinload(Parcel.site))


def collect(
    ctx: Ctx,
    actor: Principal,
    site_id: int,
    taken: list[str],
    not_found: list[str],
    carrier_code: str | None = None,
) -> list[dict[str, Any]]:
    """The carrier's scan at the counter: each parcel ``taken`` is ``collected`` (by whom,
    when: its event), each one on its list it could not find is ``lost``; the sender is told
    their parcel has left. A carrier acts for itself; staff name the carrier they hand to.
    Each number gets its answer; a refused one changes nothing."""
    require_role(actor, Role.CARRIER, *STAFF, Role.SYSTEM)
    require_site(actor, site_id)
    if not taken and not not_found:
        raise ValidationFailed("name the parcels taken (and those not found)")
    now = ctx.now()
    results = []
    with ctx.db.transaction() as session:
        site = site_or_404(session, site_id)
        if site.kind == "locker":  # its door must open, and its closing says it is gone
            raise NoShelves("at a locker the carrier's code (or its drop-off session) "
                            "opens the doors of the parcels to collect")
        carrier = _acting_carrier(session, actor, carrier_code)
        for raw in taken:
            results.append(_one(session, actor, site, carrier, raw, now, found=True))
        for raw in not_found:
            results.append(_one(session, actor, site, carrier, raw, now, found=False))
    return results


def _acting_carrier(session: Session, actor: Principal, carrier_code: str | None) -> Carrier:
    if actor.role is Role.CARRIER:
        carrier = session.get(Carrier, actor.carrier_id)
        if carrier is None:
            raise NotFound("no such carrier")
        if carrier_code is not None and carrier_code != carrier.code:
            raise OnBehalfOf("a carrier collects for itself: leave 'carrier' out")
        return carrier
    if carrier_code is None:
        raise OnBehalfOf("name the carrier the parcels are handed to ('carrier')")
    return carrier_or_404(session, carrier_code)


def _one(
    session: Session, actor: Principal, site: Site, carrier: Carrier, raw: str, now: datetime,
    *, found: bool,
) -> dict[str, Any]:
    try:
        number = tracking.validate(raw)
        # The carrier's own number only: another carrier's is never read. One answer for a
        # number that is nowhere, elsewhere, inbound or another carrier's.
        parcel = numbers.carriers_parcel(session, carrier.id, number, lock=True)
        if (parcel is None or parcel.site_id != site.id
                or parcel.direction != outbound.DIRECTION):
            raise NotFound(f"no parcel {number} for {carrier.code} at {site.code}")
        if parcel.state not in TO_COLLECT:
            raise InvalidTransition(f"{number} is {parcel.state}, not on the pickup list",
                                    state=parcel.state)
        if found:
            history.apply(session, parcel, Action.COLLECT, actor, now,
                          data={"carrier": carrier.code})
            notify.queue(session, parcel, "collected")
        else:
            history.apply(session, parcel, Action.DECLARE_MISSING, actor, now,
                          reason="on the carrier's pickup list, not found at the counter",
                          data={"carrier": carrier.code})
    except DomainError as err:
        return {"tracking_number": raw, "status": "refused", "reason": err.slug,
                "detail": err.detail}
    return {"tracking_number": number, "status": parcel.state, "parcel_id": parcel.id}


# ---------------------------------------------------------------- the sender's receipt


def _serializer(ctx: Ctx) -> URLSafeSerializer:
    return URLSafeSerializer(ctx.settings.secret_key, salt=RECEIPT_SALT)


def receipt_url(ctx: Ctx, parcel_id: int) -> str:
    return f"{ctx.settings.public_base_url}/envoi/{_serializer(ctx).dumps({'p': parcel_id})}"


def receipt_parcel_id(ctx: Ctx, token: str) -> int:
    try:
        return int(_serializer(ctx).loads(token)["p"])
    except (BadSignature, KeyError, TypeError, ValueError):
        raise NotFound("this receipt link is not valid") from None


def receipt(ctx: Ctx, token: str) -> dict[str, Any]:
    """The sender's proof of deposit: which parcel, which shop, when, and whether it has
    left. It stays valid after the collection (it is a receipt); it names nobody."""
    parcel_id = receipt_parcel_id(ctx, token)
    with ctx.db.read() as session:
        parcel = session.get(Parcel, parcel_id)
        if parcel is None or parcel.direction != outbound.DIRECTION:
            raise NotFound("this receipt link is not valid")
        site = parcel.site
        collected = session.scalar(
            select(ParcelEvent.at).where(ParcelEvent.parcel_id == parcel.id,
                                         ParcelEvent.to_state == State.COLLECTED.value)
        )
        return {
            "tracking_number": parcel.tracking_number,
            "state": parcel.state,
            "carrier": parcel.carrier.name if parcel.carrier else None,
            "dropped_off_at": _iso(parcel.checked_in_at),
            "collected_at": _iso(collected),
            "site": {"code": site.code, "name": site.name, "address": site.address,
                     "postcode": site.postcode, "city": site.city},
        }
