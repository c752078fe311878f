"""The van stands at a full site with a parcel: decided before it leaves, by the reroutes'
rules (``reroute.py``: the planner, the move, the offer) and, where no site has room, the
operator's no-room policy (``no_room.py``).

- A full locker at drop-off (``full_at_drop_off``, called by ``locker_dropoff.deposit``):
  another locker with a door for it now, else a shop with a shelf place.
- A full shop's counter (``full_at_counter``, called by ``checkin.check_in`` after its
  refusal): when the shop's next open day is at risk too, as a flagged parcel at announce
  time (docs/overflow.md, "At the counter").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, RerouteProposal, Site
from relay_ops.domain import forecast as model
from relay_ops.services import forecast, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.principal import Principal
from relay_ops.services.reroute import move, offer
from relay_ops.services.reroute_planner import Planner
from relay_ops.services.shelves import shelf_takes

# ---------------------------------------------------------------- a locker full at drop-off


def full_at_drop_off(
    ctx: Ctx, session: Session, parcel: Parcel, origin: Site, actor: Principal,
    fits: Callable[[Site], bool],
) -> dict[str, Any] | None:
    """The carrier stands at a full locker: the parcel goes to another locker with room for
    it now (``fits``), else to a relay shop with a shelf place for its
    size; either open today, within reach, with step-free access if the locker has it, and
    not flagged today by its forecast, the cheapest by load and distance, where a place is
    held for it today. Lockers come first because the recipient chose one
    (open at all hours); a shop within reach still beats taking the parcel back to the depot.
    The move, its ``reroute`` event and the recipient's message (the new address and hours)
    are written in the caller's transaction; the same pickup credential (if one was given
    already) works there. None: nowhere to go."""
    day = ctx.today()
    planner = Planner(ctx, session)
    options = planner.options(origin, day, fits, parcel=parcel) or planner.options(
        origin, day, lambda shop: shelf_takes(ctx, session, shop, parcel), kind="shop")
    if not options:
        return None
    best = options[0]
    proposal = RerouteProposal(
        parcel_id=parcel.id, from_site_id=origin.id, day=day,
        options=[o.view() for o in options], status="automatic",
        reason=f"{origin.code} full at drop-off",
    )
    session.add(proposal)
    session.flush()
    held = move(ctx, session, parcel, best.site, best.km, proposal, actor)
    forecast.refresh(ctx, session, origin)
    forecast.refresh(ctx, session, best.site)
    return {"proposal_id": proposal.id, **best.view(),
            "reservation": reservations.view(session, held)}


# ---------------------------------------------------------------- a shop full at the counter


def full_at_counter(
    ctx: Ctx, session: Session, parcel: Parcel, origin: Site, actor: Principal,
) -> dict[str, Any] | None:
    """A full shop refused ``parcel`` at its counter: decided before the van leaves, as at
    announce time, when the shop's forecast sees its next open day at risk with the parcel
    back (else the van brings it back that day, as it would anyway). A site within reach with
    room today, by the carrier's reroute policy (moved, or proposed with a place held), else
    the operator's no-room policy (storage, hold at the depot, home: docs/overflow.md). The
    decision, its events and the resident's message are written in the refusal's transaction;
    the answer is shaped as a manifest's ``reroute``. None: nothing decided (the next open day
    has room, or the parcel has no carrier: nobody to follow a decision)."""
    carrier = parcel.carrier
    if carrier is None:
        return None
    today = ctx.today()
    planner = Planner(ctx, session)
    planner.locked.add(origin.id)  # the check-in holds its row
    # The driver goes now: a site must have a shelf place for it now, not only by its forecast
    # later today (else it is refused there too).
    planner.takes_now = lambda site: shelf_takes(ctx, session, site, parcel)
    # The shop's inputs, read once: its calendar here, its forecast below and in the policy.
    inputs = planner.inputs[origin.id] = forecast.inputs_for(ctx, session, origin)
    back = model.next_open_day(today + timedelta(days=1), inputs.closed_on)
    outlook = planner.day_with(origin, back, 0)
    if outlook is not None and not outlook.at_risk:
        return None
    receiving: set[int] = set()
    answer = offer(ctx, session, planner, actor, carrier, parcel, origin, today, receiving)
    # The sites a parcel left or joined (none when nothing was decided: a ``none`` row).
    for site_id in sorted(receiving | planner.changed):
        site = session.get(Site, site_id)
        assert site is not None
        forecast.refresh(ctx, session, site)
    return answer


def decision_sentence(answer: dict[str, Any]) -> str:
    """What was decided for a parcel with no room, in a few words (a refusal's detail)."""
    status = answer["status"]
    if status == "automatic":
        return f"rerouted to {answer['site']} today"
    if status == "proposed":
        return f"a reroute to {answer['options'][0]['site']} is proposed to the carrier"
    if status == "overflow-storage":
        return f"sent to the overflow storage {answer['site']} today"
    if status == "hold-at-depot":
        return f"the carrier keeps it at its depot until {answer['until']}"
    if status == "home-delivery":
        return "the carrier delivers it at home"
    return str(answer["detail"])
