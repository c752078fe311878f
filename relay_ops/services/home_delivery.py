"""Home delivery by a trusted person (docs/home-delivery.md): a site's offer, the resident's
request (or the shop's, at the resident's request), the courier's own link, the hand-over at
the shop, the delivery confirmed by the resident's code, the cancel, and the end-of-day
return to the shelf.

Lock order: the parcel's row first (``locked_parcel``), then the delivery's, as a pickup
locks the parcel: a cancel and a take racing for one delivery are serialised on the parcel,
and whichever comes second sees the first's outcome.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import HomeDelivery, HomeDeliveryOffer, Parcel, Site
from relay_ops.domain import credentials as creds
from relay_ops.domain import home_delivery as hd
from relay_ops.domain.errors import DomainError, HomeDeliveryRefused, NotFound
from relay_ops.domain.lifecycle import Action
from relay_ops.services import history, notify, pickup_claims
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import release_credentials
from relay_ops.services.parcel_views import iso, locked_parcel
from relay_ops.services.principal import (
    SYSTEM,
    Principal,
    Role,
    require_parcel,
    require_role,
    require_site,
)
from relay_ops.services.site_calendar import closed_on

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
OPEN = [s.value for s in hd.OPEN]
PLANNED, DELIVERED, RETURNED = ("home_planned", "home_delivered",
                                "home_returned")


# ---------------------------------------------------------------- the site's offer


def set_offer(ctx: Ctx, actor: Principal, site_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """The days a site delivers and the area it serves (its operator or its shopkeeper). A
    site offers the service to the public when it also lists ``home_delivery``."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    offer = hd.Offer.from_mapping(data)
    with ctx.db.transaction() as session:
        site = _site(session, site_id)
        if site.kind == "locker":
            raise HomeDeliveryRefused("a locker has nobody to hand parcels to a courier")
        row = session.get(HomeDeliveryOffer, site_id)
        if row is None:
            row = HomeDeliveryOffer(site_id=site_id, area=offer.area)
            session.add(row)
        row.days, row.area = list(offer.days), offer.area
        return _offer_view(site, offer)


def get_offer(ctx: Ctx, site_id: int) -> dict[str, Any]:
    """What a site offers (public: residents read it before asking)."""
    with ctx.db.read() as session:
        site = _site(session, site_id)
        return _offer_view(site, _offer(session, site))


def _offer(session: Session, site: Site) -> hd.Offer | None:
    row = session.get(HomeDeliveryOffer, site.id)
    return hd.Offer(tuple(row.days), row.area) if row is not None else None


def _offer_view(site: Site, offer: hd.Offer | None) -> dict[str, Any]:
    offered = offer is not None and hd.SERVICE in (site.services or [])
    return {"site": site.code, "offered": offered,
            **(offer.as_mapping() if offer else {"days": [], "area": None})}


def _site(session: Session, site_id: int) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"no site {site_id}")
    return site


# ---------------------------------------------------------------- the request


def request(
    ctx: Ctx, actor: Principal, parcel_id: int, *, day: date, courier_kind: str,
    courier_name: str = "", consent: bool, in_area: bool,
) -> dict[str, Any]:
    """The resident (their link) or the shop's staff at the resident's request asks for a
    ready parcel to be brought home on ``day`` by a named neighbour or volunteer, or by the
    shopkeeper. Consent is recorded with who gave it; the resident is told who and when."""
    require_role(actor, Role.RESIDENT, *STAFF)
    kind, name = hd.check_courier(courier_kind, courier_name)
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        site = parcel.site
        closed = closed_on(session, site)
        facts = hd.RequestFacts(
            services=tuple(site.services or []), offer=_offer(session, site),
            parcel_state=parcel.state, is_locker=site.kind == "locker",
            open_request=_open_for(session, parcel.id) is not None,
            today=ctx.local_day(now),
            deadline_day=(ctx.local_day(parcel.holding_deadline)
                          if parcel.holding_deadline else None),
        )
        hd.check_request(facts, day, closed, consent=consent, in_area=in_area)
        nonce = creds.new_nonce() if kind is not hd.CourierKind.SHOPKEEPER else None
        delivery = HomeDelivery(
            parcel_id=parcel.id, site_id=site.id, status=hd.Status.REQUESTED.value, day=day,
            requested_by=(hd.RequestedBy.RESIDENT if actor.role is Role.RESIDENT
                          else hd.RequestedBy.SHOP).value,
            requested_by_actor=actor.actor_id or actor.role.value, consent_at=now,
            courier_kind=kind.value, courier_name=name or None, link_nonce=nonce,
            link_hash=hd.courier_token_hash(ctx.settings.pickup_code_pepper,
                                            _token(ctx, nonce)) if nonce else None,
        )
        session.add(delivery)
        session.flush()
        # The history says what happened and who asked, not who the courier is (a name).
        history.record(session, parcel, "home_delivery_requested", parcel.state, actor, now,
                       data={"delivery_id": delivery.id, "day": day.isoformat(),
                             "courier_kind": kind.value,
                             "requested_by": delivery.requested_by, "consent": True})
        notify.queue(session, parcel, PLANNED, str(delivery.id))
        return delivery_view(ctx, delivery, with_link=True)


def cancel(ctx: Ctx, actor: Principal, parcel_id: int) -> dict[str, Any]:
    """The resident (or the shop for them) calls the delivery off, until the courier has
    taken the parcel; the parcel stays on its shelf."""
    require_role(actor, Role.RESIDENT, *STAFF)
    now = ctx.now()
    with ctx.db.transaction() as session:
        parcel = require_parcel(actor, locked_parcel(session, parcel_id), parcel_id)
        delivery = _open_for(session, parcel.id)
        if delivery is None:
            raise NotFound(f"no home delivery planned for parcel {parcel_id}")
        _step(delivery, hd.Step.CANCEL, now)
        history.record(session, parcel, "home_delivery_cancelled", parcel.state, actor, now,
                       data={"delivery_id": delivery.id})
        return delivery_view(ctx, delivery)


def _open_for(session: Session, parcel_id: int) -> HomeDelivery | None:
    return session.scalar(
        select(HomeDelivery).where(HomeDelivery.parcel_id == parcel_id,
                                   HomeDelivery.status.in_(OPEN))
        .execution_options(populate_existing=True))


def _step(delivery: HomeDelivery, step: hd.Step, now: datetime) -> None:
    delivery.status = hd.next_status(delivery.status, step).value
    if delivery.status not in OPEN:
        delivery.closed_at = now


# ---------------------------------------------------------------- the courier's link


def _token(ctx: Ctx, nonce: str) -> str:
    return hd.courier_token(ctx.settings.pickup_code_derivation_key, nonce)


def courier_url(ctx: Ctx, delivery: HomeDelivery) -> str | None:
    if delivery.link_nonce is None:
        return None
    return f"{ctx.settings.public_base_url}/livraison/{_token(ctx, delivery.link_nonce)}"


def courier_principal(ctx: Ctx, token: str) -> Principal:
    """The courier behind a link: that delivery's parcel and nothing else. A link is good
    for one delivery and dies with it (delivered, returned, cancelled)."""
    digest = hd.courier_token_hash(ctx.settings.pickup_code_pepper, token)
    with ctx.db.read() as session:
        delivery = session.scalar(select(HomeDelivery).where(HomeDelivery.link_hash == digest))
        if delivery is None or delivery.status not in OPEN:
            raise NotFound("this delivery link is not valid (or the delivery is over)")
        return Principal(Role.COURIER, parcel_id=delivery.parcel_id, delivery_id=delivery.id)


def courier_view(ctx: Ctx, courier: Principal) -> dict[str, Any]:
    with ctx.db.read() as session:
        return delivery_view(ctx, _delivery(session, courier, courier.delivery_id or 0))


def _delivery(session: Session, actor: Principal, delivery_id: int) -> HomeDelivery:
    """A delivery the actor may act on: a courier their own only, staff their shop's; any
    other is not found (nobody learns it exists)."""
    delivery = session.get(HomeDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no home delivery {delivery_id}")
    if actor.role is Role.COURIER:
        if actor.delivery_id != delivery.id:
            raise NotFound(f"no home delivery {delivery_id}")
    else:
        require_role(actor, *STAFF, Role.SYSTEM)
        require_site(actor, delivery.site_id)
    return delivery


def _locked(session: Session, actor: Principal, delivery_id: int) -> tuple[HomeDelivery, Parcel]:
    """The delivery and its parcel, the parcel's row locked first, then the delivery read
    again under it (another transaction may have cancelled or taken it meanwhile)."""
    delivery = _delivery(session, actor, delivery_id)
    parcel = locked_parcel(session, delivery.parcel_id)
    assert parcel is not None
    session.refresh(delivery, with_for_update=True)
    return delivery, parcel


# ---------------------------------------------------------------- taken, delivered


def take(ctx: Ctx, actor: Principal, delivery_id: int) -> dict[str, Any]:
    """The courier takes the parcel from the shop (recorded by the shop's staff at the
    hand-over, or by the courier on their page): it leaves the shelf, its place kept for
    the day. Taking it again answers the same."""
    now = ctx.now()
    with ctx.db.transaction() as session:
        delivery, parcel = _locked(session, actor, delivery_id)
        if delivery.status == hd.Status.TAKEN.value:
            return delivery_view(ctx, delivery)
        hd.next_status(delivery.status, hd.Step.TAKE)  # refused before anything changes
        if ctx.local_day(now) != delivery.day:
            raise HomeDeliveryRefused(
                f"this delivery is planned for {delivery.day.isoformat()}: hand the parcel "
                "over on that day", day=delivery.day.isoformat())
        history.apply(session, parcel, Action.HAND_TO_COURIER, actor, now,
                      data={"delivery_id": delivery.id, "courier_kind": delivery.courier_kind})
        _step(delivery, hd.Step.TAKE, now)
        delivery.taken_at = now
        return delivery_view(ctx, delivery)


def deliver(ctx: Ctx, actor: Principal, delivery_id: int, code: str) -> dict[str, Any]:
    """At the resident's door, the resident types their own pickup code on the courier's
    phone: the code is checked as at the counter (a wrong one counts against the parcel, 5
    lock it); the parcel is delivered and the resident told."""
    now = ctx.now()
    failure: DomainError | None = None
    with ctx.db.transaction() as session:
        delivery, parcel = _locked(session, actor, delivery_id)
        hd.next_status(delivery.status, hd.Step.DELIVER)
        credential, failure = pickup_claims.code_for_parcel(ctx, session, parcel, code, actor, now)
        if credential is not None:
            history.apply(session, parcel, Action.DELIVER, actor, now,
                          data={"delivery_id": delivery.id, "holder": credential.holder,
                                "courier_kind": delivery.courier_kind})
            dead = release_credentials(session, parcel, now)
            if credential in dead:  # spent, unless another ready parcel still needs it
                credential.revoked_at, credential.used_at = None, now
            _step(delivery, hd.Step.DELIVER, now)
            notify.queue(session, parcel, DELIVERED, str(delivery.id))
            return delivery_view(ctx, delivery)
    # The wrong attempt was committed above; only now is the refusal reported.
    assert failure is not None
    raise failure


# ---------------------------------------------------------------- the end of the day


def end_of_day(ctx: Ctx, limit: int = 1000) -> list[int]:
    """Deliveries whose day is over: a parcel still out comes back to its shelf with its
    deadline extended (and the resident told); a request nobody took lapses. By the
    context's clock; safe to run twice or concurrently."""
    now = ctx.now()
    today = ctx.local_day(now)
    with ctx.db.read() as session:
        ids = list(session.scalars(
            select(HomeDelivery.id).where(HomeDelivery.status.in_(OPEN),
                                          HomeDelivery.day < today)
            .order_by(HomeDelivery.day, HomeDelivery.id).limit(limit)))
    closed = []
    for delivery_id in ids:
        with ctx.db.transaction() as session:
            delivery, parcel = _locked(session, SYSTEM, delivery_id)
            if delivery.status not in OPEN or delivery.day >= today:
                continue  # delivered or cancelled meanwhile
            _close_overdue(ctx, session, delivery, parcel, now)
            closed.append(delivery_id)
    return closed


def _close_overdue(ctx: Ctx, session: Session, delivery: HomeDelivery, parcel: Parcel,
                   now: datetime) -> None:
    if delivery.status == hd.Status.REQUESTED.value:
        _step(delivery, hd.Step.LAPSE, now)
        history.record(session, parcel, "home_delivery_lapsed", parcel.state, SYSTEM, now,
                       data={"delivery_id": delivery.id})
        return
    if parcel.state != "out_for_delivery":
        # Declared missing or damaged while out: the declaration is the parcel's story; the
        # delivery only closes (a failing return here would stop the sweep for the others).
        _step(delivery, hd.Step.RETURN, now)
        return
    old = parcel.holding_deadline
    parcel.holding_deadline = hd.returned_deadline(
        old, now, ctx.settings.timezone, closed_on(session, parcel.site))
    history.apply(session, parcel, Action.RETURN_TO_SHELF, SYSTEM, now,
                  reason="not delivered by the end of the day",
                  data={"delivery_id": delivery.id, "from": iso(old),
                        "to": iso(parcel.holding_deadline)})
    _step(delivery, hd.Step.RETURN, now)
    notify.queue(session, parcel, RETURNED, str(delivery.id))


# ---------------------------------------------------------------- reading


def site_deliveries(ctx: Ctx, actor: Principal, site_id: int,
                    day: date | None = None) -> list[dict[str, Any]]:
    """A shop's "Remise à domicile" list: open deliveries (of ``day`` if given), by day."""
    require_role(actor, *STAFF)
    require_site(actor, site_id)
    with ctx.db.read() as session:
        _site(session, site_id)
        # A parcel picked up at the counter meanwhile is not the courier's to take: its
        # request lapses with its day.
        query = select(HomeDelivery).join(Parcel, Parcel.id == HomeDelivery.parcel_id).where(
            HomeDelivery.site_id == site_id, HomeDelivery.status.in_(OPEN),
            Parcel.state.in_(["ready_for_pickup", "out_for_delivery"]))
        if day is not None:
            query = query.where(HomeDelivery.day == day)
        rows = session.scalars(query.order_by(HomeDelivery.day, HomeDelivery.id))
        return [delivery_view(ctx, d, with_link=True) for d in rows]


def for_resident(ctx: Ctx, resident: Principal) -> dict[str, Any]:
    """What the resident's page shows: the planned delivery, or whether one can be asked
    for (the site's offer, the days left before the deadline)."""
    assert resident.parcel_id is not None
    now = ctx.now()
    with ctx.db.read() as session:
        parcel = session.get(Parcel, resident.parcel_id)
        assert parcel is not None
        open_delivery = _open_for(session, parcel.id)
        offer = _offer(session, parcel.site)
        offered = (offer is not None and hd.SERVICE in (parcel.site.services or [])
                   and parcel.site.kind != "locker")
        days: list[date] = []
        if offered and offer is not None and parcel.state == "ready_for_pickup" \
                and open_delivery is None and parcel.holding_deadline is not None:
            days = hd.delivery_days(offer, ctx.local_day(now),
                                    ctx.local_day(parcel.holding_deadline),
                                    closed_on(session, parcel.site))
        return {
            "offered": offered, "area": offer.area if offer else None,
            "days": [d.isoformat() for d in days],
            "delivery": delivery_view(ctx, open_delivery, with_link=True)
            if open_delivery else None,
        }


def delivery_view(ctx: Ctx, delivery: HomeDelivery, *, with_link: bool = False
                  ) -> dict[str, Any]:
    """A delivery as its resident, its shop and its courier see it: the courier's name is
    the resident's own choice; the link only for those who hand it to the courier."""
    parcel = delivery.parcel
    view: dict[str, Any] = {
        "id": delivery.id,
        "status": delivery.status,
        "day": delivery.day.isoformat(),
        "parcel": {"id": parcel.id, "tracking_number": parcel.tracking_number,
                   "state": parcel.state,
                   "location": parcel.location.label if parcel.location else None,
                   "recipient_name": parcel.recipient_name},
        "site": delivery.site.code, "site_name": delivery.site.name,  # a courier knows names
        "site_address": delivery.site.postal_address,
        "requested_by": delivery.requested_by,
        "consent_at": iso(delivery.consent_at),
        "courier": {"kind": delivery.courier_kind, "name": delivery.courier_name},
        "taken_at": iso(delivery.taken_at),
        "closed_at": iso(delivery.closed_at),
    }
    if with_link:
        view["courier_url"] = courier_url(ctx, delivery)
    return view


def message_facts(session: Session, parcel: Parcel) -> tuple[str | None, date | None]:
    """Who brings the parcel and on which day, for its home delivery messages (the latest
    request): the named person, or the shop itself."""
    delivery = session.scalar(select(HomeDelivery).where(HomeDelivery.parcel_id == parcel.id)
                              .order_by(HomeDelivery.id.desc()).limit(1))
    if delivery is None:
        return None, None
    name = delivery.courier_name or parcel.site.name
    return name, delivery.day
