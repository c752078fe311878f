"""Check-in at a shop: a scanned parcel gets a shelf, a deadline, a code (or joins its
recipient's) and a message, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from relay_ops.db import loaders
from relay_ops.db.direct import split
from relay_ops.db.models import Location, Parcel, ProducerOrder, Site, UnannouncedScan
from relay_ops.domain import sizing, tracking
from relay_ops.domain.errors import (
    NoShelves,
    NotFound,
    SiteAtCapacity,
    UnannouncedParcel,
    WrongSite,
)
from relay_ops.domain.holding import ClosedOn, Perishable, deadline_after, perishable_deadline
from relay_ops.domain.lifecycle import Action, State
from relay_ops.domain.site_kinds import has_shelves
from relay_ops.services import checkin_queries as queries
from relay_ops.services import history, notify, numbers, reroute_at_site, reservations
from relay_ops.services.checkin_grouping import Group, join_group, recipient_group
from relay_ops.services.checkin_registration import Recipient, register_unannounced
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import issue_credential
from relay_ops.services.forecast import Stored
from relay_ops.services.holding import holding_facts, holding_period, keep_holding
from relay_ops.services.parcel_views import HELD, STAFF, iso, parcel_view
from relay_ops.services.principal import Principal, Role, require_role, require_site
from relay_ops.services.shelves import allocate_shelf, class_of
from relay_ops.services.site_calendar import closed_given


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
    day). A parcel registered unannounced by this very check-in is kept the same way, expected
    today: its van brings it back like an announced one, so the forecast, the carrier's list
    of parcels in its vans and the next scan know it. So does a shop whose last free places
    are held for rerouted parcels expected today, to a parcel without such a reservation; a
    reserved parcel's check-in uses its reservation (services/reservations.py).
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
            parcel = register_unannounced(
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
        group = recipient_group(ctx, session, site, parcel)
        try:
            if reserved_day is None:  # places held for rerouted parcels are not its own
                reservations.keep_room(ctx, session, site, class_of(ctx, parcel), reserved)
            shelves = [p.location_id for p in group.ready] if group is not None else None
            location = allocate_shelf(ctx, session, site, parcel, shelves,
                                      keep_cold=order is not None and order.keep_cold)
        except SiteAtCapacity as full:
            if parcel.state != State.ANNOUNCED.value:
                raise  # nothing kept: the parcel is not coming here
            if registered_now:
                parcel.expected_date = ctx.local_day(now)
            history.record(session, parcel, history.CHECK_IN_REFUSED, parcel.state, actor, now,
                           reason=str(full)[:300])
            # A producer's order stays with its producer's flow: never sent elsewhere.
            refusal = full if order is not None else _decided(ctx, session, site, parcel,
                                                              actor, full)
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


def _decided(ctx: Ctx, session: Session, site: Site, parcel: Parcel, actor: Principal,
             full: SiteAtCapacity) -> SiteAtCapacity:
    """The refusal, with what was decided for the parcel before the van leaves
    (``reroute_at_site.full_at_counter``): the driver reads where it goes, the shopkeeper too."""
    answer = reroute_at_site.full_at_counter(ctx, session, parcel, site, actor)
    if answer is None:
        return full
    return type(full)(f"{full.detail}; {reroute_at_site.decision_sentence(answer)}",
                      **{**full.extra, "reroute": answer})


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
    today = ctx.local_day(now)
    rows = queries.SHOP.rows(session, {
        "site_id": site_id, "today": today, "yesterday": today - timedelta(days=1),
        # The look-ahead holding rule's input: a day at risk within a shop's standard period.
        "until": today + timedelta(days=ctx.settings.holding["shop"].days),
        "reserved_since": reservations.reserved_since(ctx, today),
    })
    if not rows:
        raise NotFound(f"no site {site_id}")
    site_row, (ratio, risk, reserved, _) = split(rows[0], loaders.SITES, 4)
    site = loaders.SITES.one(session, site_row)
    if not has_shelves(site.kind):
        raise NoShelves("lockers take parcels through a drop-off session")
    set_committed_value(site, "locations", [
        loaders.LOCATIONS.one(session, row)
        for row in queries.SHELVES.rows(session, {"site_id": site.id})])
    closed = closed_given(site, {row[-1] for row in rows if row[-1] is not None})
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
    rows = [_parcel_of(session, row) for row in queries.parcel(carrier_code is not None).rows(
        session, {"number": number, "site_id": site.id, "carrier_code": carrier_code})]
    here = [row for row in rows if row[0].site_id == site.id]
    if len(here) > 1 and carrier_code is not None:
        # the named carrier's own, before a parcel of no carrier registered here
        here = [row for row in here if row[0].carrier_id is not None]
    # The carriers of parcels at this shop are its staff's to see; of parcels elsewhere, not.
    row = _only_row(here or rows, number, disclose=bool(here))
    return (row[0], bool(row[1]), row[2]) if row is not None else (None, False, None)


def _parcel_of(session: Session, row: Sequence[Any]) -> tuple[Parcel, bool, date | None]:
    """A row of ``queries.parcel`` as the parcel (with its carrier and producer's order set),
    whether it was scanned unannounced here, and the day of the place held for it here."""
    parcel_row, (scanned, reserved_day), carrier_row, order_row = split(
        row, loaders.PARCELS, 2, loaders.CARRIERS, loaders.ORDERS)
    parcel = loaders.PARCELS.one(session, parcel_row)
    set_committed_value(parcel, "carrier", loaders.CARRIERS.maybe(session, carrier_row))
    set_committed_value(parcel, "producer_order", loaders.ORDERS.maybe(session, order_row))
    return parcel, bool(scanned), reserved_day


def _only_row(rows: Sequence[Any], number: str, *, disclose: bool) -> Any:
    # two or more: ambiguous, refused
    numbers.only_one([row[0] for row in rows], number, disclose=disclose)
    return rows[0] if rows else None


def _check_in_answer(parcel: Parcel, actor: Principal, status: str) -> dict[str, Any]:
    return {"status": status, "parcel": parcel_view(parcel, actor)}


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
