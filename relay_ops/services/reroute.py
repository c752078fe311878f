"""Saturation seen at announce time, and reroutes before the van leaves.

When a manifest would put a site over capacity on the arrival day (the forecast's upper band
above capacity, see docs/forecast.md), the last parcels of that manifest for that site and
day are offered other sites, the least loaded first with distance weighed in
(``forecast.reroute_cost``): sites that will have room that day by their own forecast
(counting the places already promised there, ``services/reservations.py``), that open that day, that
lie within ``FORECAST.reroute_radius_km`` of the original site (by its area: town or
countryside), of the same kind, and with step-free access if the original site has it. The
carrier's ``reroute_policy`` decides what happens: ``automatic`` moves the parcel at once
(event, message to the recipient, all in the announcement's transaction); ``confirm`` stores
a proposal the carrier accepts or refuses later. Either way the destination (or, for a
proposal, its first option) holds a place for the parcel on its day; a locker the parcel
moves to holds it a door of its size, and a locker is a candidate only with such a door
(``Planner.has_door``). Only announced parcels move: a parcel on a shelf stays where it is.
A parcel the van brings to a full site (a locker at drop-off, a shop's counter) is decided
with the same planner, move and offer by ``reroute_at_site.py``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Carrier, Parcel, PlaceReservation, RerouteProposal, Site
from relay_ops.domain import credentials as creds
from relay_ops.domain import forecast as model
from relay_ops.domain.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from relay_ops.domain.geo import distance_km
from relay_ops.domain.lifecycle import Action, State
from relay_ops.services import (
    forecast,
    history,
    locker_reservations,
    no_room,
    notify,
    reservations,
)
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import code_of, live_credentials
from relay_ops.services.principal import Principal, Role, require_parcel, require_role
from relay_ops.services.reroute_planner import Planner, arrival_day


class RerouteSiteFull(Conflict):
    slug = "reroute-site-full"
    title = "The proposed site no longer has room that day"


class SiteNotProposed(Conflict):
    """A well-formed site code the proposal does not offer: a business refusal (409), not an
    invalid request, since the request itself is what the API document describes."""

    slug = "site-not-proposed"
    title = "This site is not one of the proposal's options"


# ---------------------------------------------------------------- at announce time


def check_manifest(
    ctx: Ctx, session: Session, actor: Principal, carrier: Carrier,
    results: list[dict[str, Any]], parcels: list[Parcel],
) -> None:
    """Refresh the touched sites' forecasts and act on the days the manifest saturates.

    ``parcels`` are the parcels the manifest created (announced, in ``session``: those it
    reconciled were already counted where they are); ``results`` are the announcement's
    per-parcel answers, to which saturation notes are added.
    """
    parcels = sorted(parcels, key=lambda parcel: parcel.id)
    if not parcels:
        return
    groups: dict[tuple[int, date], list[Parcel]] = defaultdict(list)
    for parcel in parcels:
        groups[(parcel.site_id, arrival_day(ctx, parcel))].append(parcel)
    # The row locks serialise announcements (and check-ins) per site, in id order against
    # deadlocks, so two manifests cannot both take a site's last places.
    touched = {
        site_id: session.get(Site, site_id, with_for_update=True)
        for site_id in sorted({site_id for site_id, _ in groups})
    }
    planner = Planner(ctx, session)
    no_room.batch_decisions(planner)  # a full area's thousands of parcels: one INSERT
    by_parcel = {r["parcel_id"]: r for r in results if r.get("parcel_id")}
    receiving: set[int] = set()
    unwritten: list[Unwritten] = []
    for (site_id, day), group in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        site = touched[site_id]
        assert site is not None
        movers, outlook = _excess(planner, site, day, group)
        for parcel in movers:
            by_parcel[parcel.id]["saturation"] = _saturation_view(site, outlook)
            by_parcel[parcel.id]["reroute"] = offer(
                ctx, session, planner, actor, carrier, parcel, site, day, receiving,
                first=True, unwritten=unwritten)
    complete(session, unwritten)
    no_room.record_batched(session, planner)
    others = [session.get(Site, site_id) for site_id in sorted(receiving - set(touched))]
    _store_forecasts(ctx, session, planner, [
        site for site in [*touched.values(), *others] if site is not None])


def _store_forecasts(ctx: Ctx, session: Session, planner: Planner, sites: list[Site]) -> None:
    """The sites' forecasts stored after the check, together: from the inputs the planner
    read when no parcel joined or left a site since (a proposal's place promised there is
    added), else from its inputs read again (all such sites' at once)."""
    inputs = {site.id: planner.inputs_now(site) for site in sites}
    stale = [site for site in sites if inputs[site.id] is None]
    inputs.update(forecast.inputs_of_sites(ctx, session, stale))
    forecast.store_sites(ctx, session, {
        site_id: model.forecast(site_inputs)
        for site_id, site_inputs in inputs.items() if site_inputs is not None})


def _excess(
    planner: Planner, site: Site, day: date, group: list[Parcel]
) -> tuple[list[Parcel], model.DayForecast | None]:
    """The last parcels of ``group`` to move so the day is no longer at risk (all of them
    if even that is not enough), and the day's forecast with the whole group."""
    outlook = planner.day_with(site, day, 0)
    if outlook is None or not outlook.at_risk:
        return [], outlook
    # Fewer arrivals never raise the forecast (a property test says so): bisect the count.
    low, high = 1, len(group)
    while low < high:
        middle = (low + high) // 2
        trial = planner.day_with(site, day, -middle)
        if trial is not None and not trial.at_risk:
            high = middle
        else:
            low = middle + 1
    return group[len(group) - low:], outlook


def _saturation_view(site: Site, outlook: model.DayForecast | None) -> dict[str, Any]:
    assert outlook is not None
    return {
        "site": site.code, "day": outlook.day.isoformat(), "predicted": outlook.predicted,
        "high": outlook.high, "capacity": outlook.capacity,
        "detail": f"{site.name} is expected to hold about {outlook.predicted:.0f} parcels for "
                  f"{outlook.capacity} places on {outlook.day.isoformat()}",
    }


Unwritten = tuple[dict[str, Any], RerouteProposal, PlaceReservation]


def offer(
    ctx: Ctx, session: Session, planner: Planner, actor: Principal, carrier: Carrier,
    parcel: Parcel, site: Site, day: date, receiving: set[int], *, first: bool = False,
    unwritten: list[Unwritten] | None = None,
) -> dict[str, Any]:
    """A place for ``parcel`` (over ``site``'s room on ``day``) at a site within reach, moved
    or proposed by the carrier's policy, else the no-room policy's decision. ``first``: the
    parcel was announced in this transaction, so it holds no place yet (a manifest's).
    ``unwritten`` given: a proposal and its place are written at the session's next flush
    (any read of them flushes first), not at once, and left there for :func:`complete` to
    give their answer the ids (a manifest's hundreds of proposals: a few statements, not two
    flushes each)."""
    options = planner.options(site, day, parcel=parcel)
    if not options:  # the operator's no-room policy decides (docs/overflow.md)
        return no_room.decide(ctx, session, planner, actor, carrier, parcel, site, day,
                              receiving, move)
    automatic = carrier.reroute_policy == "automatic"
    # A move's event names the proposal: an automatic one is written at once.
    deferred = None if automatic else unwritten
    proposal = RerouteProposal(
        parcel_id=parcel.id, from_site_id=site.id, day=day,
        options=[o.view() for o in options], status="automatic" if automatic else "proposed",
        reason=f"{site.code} expected over capacity on {day.isoformat()}",
    )
    session.add(proposal)
    if deferred is None:
        session.flush()
    answer: dict[str, Any] = {
        "status": proposal.status, "proposal_id": proposal.id, "options": proposal.options,
    }
    best = options[0]
    if automatic:
        held = move(ctx, session, parcel, best.site, best.km, proposal, actor)
        planner.record_move(site, best.site, day)
        answer["site"] = best.site.code
    else:
        # The first option's place waits for the carrier's answer.
        held = reservations.hold(ctx, session, parcel, best.site, day, proposal, first=first,
                                 flush=deferred is None)
        planner.record_hold(best.site, day)
    receiving.add(best.site.id)  # its forecast now counts the place
    if deferred is None:
        answer["reservation"] = reservations.view(session, held)
    else:
        answer["reservation"] = None  # given by complete(), with the proposal's id
        deferred.append((answer, proposal, held))
    return answer


def complete(session: Session, unwritten: list[Unwritten]) -> None:
    """The proposals :func:`offer` left unwritten written, and their answers given the ids."""
    session.flush()
    for answer, proposal, held in unwritten:
        answer["proposal_id"] = proposal.id
        answer["reservation"] = reservations.view(session, held)
    unwritten.clear()


def move(
    ctx: Ctx, session: Session, parcel: Parcel, to: Site, km: float, proposal: RerouteProposal,
    actor: Principal,
) -> PlaceReservation:
    """The reroute itself: new destination, codes valid there, a place held there for the
    proposal's day (any place held before released), event, message; one transaction."""
    if parcel.state != State.ANNOUNCED.value:
        raise InvalidTransition(
            f"{parcel.tracking_number} is {parcel.state}: a parcel on a shelf is never moved",
            state=parcel.state,
        )
    origin = parcel.site
    now = ctx.now()
    # a door reserved in advance at the origin locker goes back to its pool
    locker_reservations.release_advance_reservation(ctx, session, parcel, origin, actor, "rerouted")
    parcel.site_id, parcel.site = to.id, to
    _carry_credentials(ctx, session, parcel)
    proposal.to_site_id, proposal.distance_km, proposal.decided_at = to.id, round(km, 3), now
    history.apply(
        session, parcel, Action.REROUTE, actor, now, reason=proposal.reason,
        data={"from_site": origin.code, "to_site": to.code, "distance_km": round(km, 2),
              "day": proposal.day.isoformat(), "proposal": proposal.id,
              "policy": proposal.status},
    )
    notify.queue(session, parcel, "rerouted", str(proposal.id))
    held = reservations.hold(ctx, session, parcel, to, proposal.day, proposal)
    # At a locker the place is a door of the parcel's size, held now (docs/forecast.md).
    if to.kind == "locker" and locker_reservations.hold_door(
            ctx, session, parcel, to, proposal.day, actor) is None:
        raise RerouteSiteFull(f"{to.name} has no free door for this parcel any more")
    return held


def _carry_credentials(ctx: Ctx, session: Session, parcel: Parcel) -> None:
    """A code given before the move (a proxy's) keeps working at the new site: codes derive
    from the credential's nonce, only the site-bound hash changes."""
    pepper = ctx.settings.pickup_code_pepper
    for credential in live_credentials(session, parcel.id):
        code = code_of(ctx, credential)
        credential.site_id = parcel.site_id
        credential.code_hash = creds.hash_code(pepper, parcel.site_id, code)


# ---------------------------------------------------------------- the carrier decides


def decide(
    ctx: Ctx, actor: Principal, parcel_id: int, *, site_code: str | None, refuse: bool
) -> dict[str, Any]:
    """The carrier (or an operator) accepts a proposed site, or refuses the proposal."""
    require_role(actor, Role.CARRIER, Role.OPERATOR)
    if refuse == (site_code is not None):
        raise ValidationFailed("give either the proposed `site` or `refuse: true`")
    with ctx.db.transaction() as session:
        parcel = require_parcel(
            actor, session.get(Parcel, parcel_id, with_for_update=True), parcel_id
        )
        proposal = session.scalar(
            select(RerouteProposal)
            .where(RerouteProposal.parcel_id == parcel.id, RerouteProposal.status == "proposed")
            .order_by(RerouteProposal.id.desc())
        )
        if proposal is None:
            raise NotFound(f"no reroute proposal waits for parcel {parcel_id}")
        if parcel.state != State.ANNOUNCED.value:
            raise InvalidTransition(
                f"{parcel.tracking_number} is {parcel.state}: a parcel on a shelf is never moved",
                state=parcel.state,
            )
        if refuse:
            _refuse(ctx, session, parcel, proposal, actor)
        else:
            assert site_code is not None
            _accept(ctx, session, parcel, proposal, site_code, actor)
        return proposal_view(session, proposal)


def _refuse(
    ctx: Ctx, session: Session, parcel: Parcel, proposal: RerouteProposal, actor: Principal
) -> None:
    proposal.status, proposal.decided_at = "refused", ctx.now()
    reservations.release_proposal(ctx, session, proposal)
    history.record(session, parcel, "reroute_refused", parcel.state, actor, ctx.now(),
                   data={"proposal": proposal.id})


def _accept(
    ctx: Ctx, session: Session, parcel: Parcel, proposal: RerouteProposal, site_code: str,
    actor: Principal,
) -> None:
    if site_code not in {o["site"] for o in proposal.options}:
        raise SiteNotProposed(f"{site_code!r} was not proposed; choose one of the options")
    target = session.scalar(select(Site).where(Site.code == site_code).with_for_update())
    if target is None or target.status != "open":
        raise RerouteSiteFull(f"{site_code} no longer takes parcels")
    # The proposal's own place is freed first, so it is not counted against it.
    reservations.release_proposal(ctx, session, proposal)
    planner = Planner(ctx, session)
    planner.locked.add(target.id)
    outlook = planner.day_with(target, proposal.day, 1)
    if outlook is None or outlook.at_risk:
        raise RerouteSiteFull(
            f"{target.name} is now expected full on {proposal.day.isoformat()}; "
            "refuse this proposal or wait for the next announcement"
        )
    if not planner.has_door(target, parcel):
        raise RerouteSiteFull(
            f"{target.name} has no free door left for this parcel's size; "
            "refuse this proposal or wait for the next announcement"
        )
    origin = parcel.site
    km = distance_km(origin.latitude, origin.longitude, target.latitude, target.longitude)
    proposal.status = "accepted"
    move(ctx, session, parcel, target, km, proposal, actor)
    forecast.refresh(ctx, session, origin)
    forecast.refresh(ctx, session, target)


def proposal_view(session: Session, proposal: RerouteProposal) -> dict[str, Any]:
    def code(site_id: int | None) -> str | None:
        site = session.get(Site, site_id) if site_id else None
        return site.code if site else None

    return {
        "id": proposal.id,
        "parcel_id": proposal.parcel_id,
        "status": proposal.status,
        "from_site": code(proposal.from_site_id),
        "to_site": code(proposal.to_site_id),
        "day": proposal.day.isoformat(),
        "reason": proposal.reason,
        "options": proposal.options,
        "distance_km": proposal.distance_km,
        "created_at": proposal.created_at.isoformat(),
        "decided_at": proposal.decided_at.isoformat() if proposal.decided_at else None,
        "reservation": reservations.view(session, reservations.for_proposal(session, proposal.id)),
    }


def list_for_parcel(ctx: Ctx, actor: Principal, parcel_id: int) -> list[dict[str, Any]]:
    require_role(actor, Role.CARRIER, Role.OPERATOR)
    with ctx.db.read() as session:
        require_parcel(actor, session.get(Parcel, parcel_id), parcel_id)
        rows = session.scalars(
            select(RerouteProposal).where(RerouteProposal.parcel_id == parcel_id)
            .order_by(RerouteProposal.id)
        )
        return [proposal_view(session, p) for p in rows]
