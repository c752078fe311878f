"""When a manifest saturates a site and no site within reach has room: the operator's policy
decides, per parcel, before the van leaves (docs/overflow.md).

``reroute.check_manifest`` calls :func:`decide` where it finds no alternative, inside the
announcement's transaction. The steps of the applicable policy are tried in order; the first
that can take the parcel decides, and is recorded three ways in that transaction: a
``no_room_decisions`` row (the carrier's and operator's lists), a ``no_room_decision`` event
in the parcel's history, and a message to the resident:

- ``storage``: the nearest overflow storage site within reach, open and in season that day,
  with room by its forecast (the planner's rules, those of a reroute); the parcel is rerouted
  there (``reroute`` event, ``rerouted`` message: the new address and hours);
- ``hold``: the carrier keeps it at its depot; the parcel's expected day becomes the first
  day the original site's forecast has room (the forecast counts it then), and the resident
  is told that day (``depot_hold`` message);
- ``home``: when the carrier's contract takes this parcel home (the policy's
  ``home_size_classes``), the carrier delivers it on its own round: the parcel leaves the
  network (``home_by_carrier``, a final state; its codes, if any, die) and the resident is told
  (``carrier_home`` message). RelayOps' own home delivery (a neighbour bringing a parcel from
  the shop's shelf, ``services/home_delivery.py``) needs the parcel on a shelf; it does not
  apply to a parcel still in the van.

No step that can take the parcel: a ``none`` decision (row and event) records that the
parcel stays announced where it was, with each step's reason. No applicable policy: only the
``none`` row, so the operator sees the parcel among the undecided; the parcel's history is
unchanged (no policy decided anything), as before policies existed.

This module does not import ``reroute`` (which calls it): the planner and the move come in as
arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy.orm import Session

from relay_ops.db import bulk
from relay_ops.db.models import Carrier, NoRoomDecision, NoRoomPolicy, Parcel, RerouteProposal, Site
from relay_ops.domain import forecast as model
from relay_ops.domain import no_room as rules
from relay_ops.domain.lifecycle import Action
from relay_ops.domain.site_kinds import STORAGE, in_season
from relay_ops.services import history, locker_reservations, notify, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.credentials import release_credentials
from relay_ops.services.no_room_policies import WrittenDecision, decision_view, policy_for
from relay_ops.services.principal import Principal

DECISION_EVENT = "no_room_decision"


class Option(Protocol):
    @property
    def site(self) -> Site: ...
    @property
    def km(self) -> float: ...
    def view(self) -> dict[str, Any]: ...


class Planner(Protocol):
    """What ``reroute_planner.Planner`` gives this module: candidate sites by forecast, and the room
    it has already given away in this announcement."""

    changed: set[int]

    def options(self, origin: Site, day: date, accept: Callable[[Site], bool] | None = None,
                kind: str | None = None, parcel: Parcel | None = None
                ) -> Sequence[Option]: ...
    def day_with(self, site: Site, day: date, extra: int) -> model.DayForecast | None: ...
    def record_move(self, origin: Site, site: Site, day: date) -> None: ...


Move = Callable[[Ctx, Session, Parcel, Site, float, RerouteProposal, Principal], object]

@dataclass
class Case:
    """One parcel with nowhere to go, and what deciding it needs."""

    ctx: Ctx
    session: Session
    planner: Planner
    actor: Principal
    carrier: Carrier
    parcel: Parcel
    site: Site
    day: date
    policy: NoRoomPolicy | None
    receiving: set[int]
    move: Move


@dataclass
class _Announcement:
    """What one announcement (its planner) learnt while deciding, kept for its next parcels."""

    # The (step, site, day) that could not take a parcel, and why. Adding parcels never lowers
    # a forecast (a property test says so), so the storage and hold steps cannot take the next
    # parcel for that site and day either: no forecast is run again.
    exhausted: dict[tuple[str, int, date], str] = field(default_factory=dict)
    # Likewise, the day the last parcel of a site and day was held until: the days before it
    # were at risk with one parcel fewer, so the next parcel's search starts there.
    held_until: dict[tuple[int, date], date] = field(default_factory=dict)
    # The policy of each carrier and site, read once (a manifest for a full area asks it for
    # every parcel; the operator changes policies in transactions of their own).
    policies: dict[tuple[int, int], NoRoomPolicy | None] = field(default_factory=dict)
    # The "none" decisions not yet written, each with the answer that shows it, when the
    # announcement batches them (``batch_decisions``); None: each is written at once.
    batch: list[tuple[Case, list[dict[str, str]], dict[str, Any]]] | None = None


_ANNOUNCEMENTS: WeakKeyDictionary[Planner, _Announcement] = WeakKeyDictionary()


def _learnt(planner: Planner) -> _Announcement:
    return _ANNOUNCEMENTS.setdefault(planner, _Announcement())


def decide(
    ctx: Ctx, session: Session, planner: Planner, actor: Principal, carrier: Carrier,
    parcel: Parcel, site: Site, day: date, receiving: set[int], move: Move,
) -> dict[str, Any]:
    """The answer for this parcel in the manifest's reply (``reroute``), once decided."""
    learnt = _learnt(planner)
    policies = learnt.policies
    if (carrier.id, site.id) not in policies:
        policies[(carrier.id, site.id)] = policy_for(session, carrier.id, site)
    case = Case(ctx, session, planner, actor, carrier, parcel, site, day,
                policies[(carrier.id, site.id)], receiving, move)
    tried: list[dict[str, str]] = []
    exhausted = learnt.exhausted
    for step in case.policy.steps if case.policy else []:
        key = (step, site.id, day)
        outcome = exhausted.get(key) or STEPS[step](case, tried)
        if isinstance(outcome, dict):
            return outcome
        if step != rules.HOME:  # home depends on the parcel, not on the room left
            exhausted[key] = outcome
        tried.append({"step": step, "why": outcome})
    why = "; ".join(t["why"] for t in tried) if tried else "no no-room policy applies"
    answer: dict[str, Any] = {
        "status": "no-alternative",
        "detail": f"no open site with room within reach that day ({why}); the parcel stays"}
    if learnt.batch is None:
        answer["decision"] = decision_view(_record(case, "none", tried))
    else:
        learnt.batch.append((case, tried, answer))
    return answer


def batch_decisions(planner: Planner) -> None:
    """From now on, the parcels ``planner`` finds no place for are recorded together by
    :func:`record_batched` (a manifest's: thousands of parcels for a full area, one row
    each), not one flush each."""
    _learnt(planner).batch = []


def record_batched(session: Session, planner: Planner) -> None:
    """The batched "none" decisions written (rows, one statement: ``db/bulk.py``; nothing in
    the announcement reads them back as objects, and 5,000 ORM objects cost a quarter of a
    second), then their events and answers."""
    learnt = _learnt(planner)
    batch, learnt.batch = learnt.batch or [], None
    rows = [_decision_row(case, "none", tried) for case, tried, _ in batch]
    bulk.insert_new_rows(session, NoRoomDecision, rows)
    for (case, _, answer), row in zip(batch, rows, strict=True):
        decision = WrittenDecision(
            id=row["id"], parcel_id=row["parcel_id"], parcel=case.parcel, carrier=case.carrier,
            site=case.site, day=row["day"], step=row["step"], to_site=None, hold_until=None,
            policy_id=row["policy_id"], tried=row["tried"], created_at=row["created_at"])
        _decision_event(case, decision)
        answer["decision"] = decision_view(decision)


def _record(case: Case, step: str, tried: list[dict[str, str]], *,
            to_site: Site | None = None, hold_until: date | None = None) -> NoRoomDecision:
    """The decision's row and its event in the parcel's history."""
    decision = NoRoomDecision(**_decision_row(case, step, tried, to_site=to_site,
                                              hold_until=hold_until))
    case.session.add(decision)
    case.session.flush()
    _decision_event(case, decision)
    return decision


def _decision_row(case: Case, step: str, tried: list[dict[str, str]], *,
                  to_site: Site | None = None, hold_until: date | None = None
                  ) -> dict[str, Any]:
    """The decision's columns (a batch writes many rows in one statement)."""
    return {
        "parcel_id": case.parcel.id, "carrier_id": case.carrier.id,
        "policy_id": case.policy.id if case.policy else None, "site_id": case.site.id,
        "day": case.day, "step": step, "to_site_id": to_site.id if to_site else None,
        "hold_until": hold_until, "tried": tried,
    }


def _decision_event(case: Case, decision: NoRoomDecision | WrittenDecision) -> None:
    """The decision in the parcel's history (written: it names the decision's id)."""
    if case.policy is None:
        return  # nothing was decided for the parcel: its history says nothing new
    data: dict[str, Any] = {
        "decision": decision.id, "step": decision.step, "site": case.site.code,
        "day": case.day.isoformat(), "tried": [t["step"] for t in decision.tried or []]}
    if decision.to_site is not None:
        data["to_site"] = decision.to_site.code
    if decision.hold_until is not None:
        data["hold_until"] = decision.hold_until.isoformat()
    history.record(case.session, case.parcel, DECISION_EVENT, case.parcel.state, case.actor,
                   case.ctx.now(), reason=f"{case.site.code} and every site within reach "
                   f"expected full on {case.day.isoformat()}", data=data)


# ---------------------------------------------------------------- the steps


def _storage(case: Case, tried: list[dict[str, str]]) -> dict[str, Any] | str:
    options = case.planner.options(
        case.site, case.day, lambda s: in_season(s.season_from, s.season_to, case.day),
        kind=STORAGE, parcel=case.parcel)
    if not options:
        return "no storage site open, in season and with room within reach that day"
    best = options[0]
    proposal = RerouteProposal(
        parcel_id=case.parcel.id, from_site_id=case.site.id, day=case.day,
        options=[o.view() for o in options], status="automatic",
        reason=f"{case.site.code} and every shop within reach expected full on "
               f"{case.day.isoformat()}: overflow storage",
    )
    case.session.add(proposal)
    case.session.flush()
    decision = _record(case, rules.STORAGE, tried, to_site=best.site)
    case.move(case.ctx, case.session, case.parcel, best.site, best.km, proposal, case.actor)
    case.planner.record_move(case.site, best.site, case.day)
    case.receiving.add(best.site.id)
    return {"status": "overflow-storage", "site": best.site.code, "proposal_id": proposal.id,
            "options": proposal.options, "decision": decision_view(decision)}


def _hold(case: Case, tried: list[dict[str, str]]) -> dict[str, Any] | str:
    today = case.ctx.today()
    horizon = case.ctx.settings.forecast.horizon_days
    # Lazily, from the day after the parcel's (or the day the last parcel of this site and
    # day was held until): each day is a forecast run, and the first day with room ends it.
    held_until = _learnt(case.planner).held_until
    first = held_until.get((case.site.id, case.day), case.day + timedelta(days=1))
    later = (today + timedelta(days=n) for n in range(1, horizon + 1))
    days = (case.planner.day_with(case.site, day, 1) for day in later if day >= first)
    until = rules.first_day_with_room(days, after=case.day)
    if until is None:
        return f"{case.site.code}'s forecast shows no day with room within {horizon} days"
    held_until[(case.site.id, case.day)] = until
    # The parcel now arrives that day: the forecast, and the next parcels held, count it there.
    case.parcel.expected_date = until
    # A locker's door reserved ahead for the full day goes back to its pool; the carrier gets
    # one at drop-off on the new day.
    locker_reservations.release_advance_reservation(
        case.ctx, case.session, case.parcel, case.site, case.actor, "held at the depot")
    case.planner.record_move(case.site, case.site, until)
    # Room promised is room held: the day the carrier is told to bring it, its place waits.
    place = reservations.hold(case.ctx, case.session, case.parcel, case.site, until, None,
                              reason=f"held at the depot until {until.isoformat()}")
    decision = _record(case, rules.HOLD, tried, hold_until=until)
    notify.queue(case.session, case.parcel, "depot_hold", str(decision.id))
    return {"status": "hold-at-depot", "until": until.isoformat(),
            "decision": decision_view(decision),
            "reservation": reservations.view(case.session, place)}


def _home(case: Case, tried: list[dict[str, str]]) -> dict[str, Any] | str:
    assert case.policy is not None  # steps come from a policy
    if not rules.home_allowed(case.policy.home_size_classes or [], case.parcel.size_class):
        size = case.parcel.size_class or "unknown"
        return f"the carrier's contract does not deliver this parcel at home (size {size})"
    decision = _record(case, rules.HOME, tried)
    now = case.ctx.now()
    locker_reservations.release_advance_reservation(
        case.ctx, case.session, case.parcel, case.site, case.actor, "delivered home")
    release_credentials(case.session, case.parcel, now)
    history.apply(case.session, case.parcel, Action.HOME_BY_CARRIER, case.actor, now,
                  reason="no room at the site nor within reach: the carrier delivers it home",
                  data={"decision": decision.id, "site": case.site.code})
    notify.queue(case.session, case.parcel, "carrier_home", str(decision.id))
    case.planner.changed.add(case.site.id)  # it left the site's forecast
    return {"status": "home-delivery", "decision": decision_view(decision)}


STEPS: dict[str, Callable[[Case, list[dict[str, str]]], dict[str, Any] | str]] = {
    rules.STORAGE: _storage, rules.HOLD: _hold, rules.HOME: _home,
}
