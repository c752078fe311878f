"""The reroute planner: which sites can take one more parcel on a day, by their forecast and
the places already promised there (``services/reservations.py``), ranked by load and distance
(``domain/forecast.reroute_cost``, docs/forecast.md "Where a reroute goes"). ``reroute.py``
uses it at announce time, for a full locker and when a carrier accepts a proposal;
``no_room.py`` when no site within reach has room.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from relay_ops.db.models import Parcel, Site
from relay_ops.domain import forecast as model
from relay_ops.domain.geo import distance_km
from relay_ops.domain.sizing import Dims
from relay_ops.services import forecast, reservations
from relay_ops.services.context import Ctx
from relay_ops.services.locker_compartments import has_room, parcel_dims
from relay_ops.services.sites import in_box_around


@dataclass(frozen=True)
class Option:
    site: Site
    km: float
    day: model.DayForecast
    cost: float

    def view(self) -> dict[str, Any]:
        return {
            "site": self.site.code, "name": self.site.name, "address": self.site.address,
            "city": self.site.city, "distance_km": round(self.km, 2),
            "step_free_access": self.site.step_free_access,
            "predicted": self.day.predicted, "capacity": self.day.capacity,
        }


class Planner:
    """Candidate sites' forecast inputs, read once per announcement, plus the room promised
    since they were read.

    Every place a reroute promises is a stored reservation (services/reservations.py): a
    parcel moved holds one at its new site, a proposal awaiting the carrier one at its first
    option (the one a carrier takes first), whether it was made by this announcement or an
    earlier one. A site's forecast counts them (the moved parcel as announced there, the
    proposal's place as an arrival), so inputs read after a promise see it; ``promised``
    covers those made since a site's inputs were read here. Without the proposals' places,
    every parcel of a big manifest was proposed the same site, the carrier accepted them one
    by one and the last ones found it full.

    A candidate's row is locked before its forecast is read (``FOR UPDATE SKIP LOCKED``):
    two announcements cannot both promise a site's last place, and one never waits for
    another (which, holding its own sites, might be waiting for this one): a site another
    transaction holds is skipped as a candidate.
    """

    def __init__(self, ctx: Ctx, session: Session) -> None:
        self.ctx, self.session = ctx, session
        self.inputs: dict[int, model.SiteInputs] = {}
        self.since_read: dict[tuple[int, date], int] = defaultdict(int)
        self.changed: set[int] = set()  # sites a parcel left or joined since their inputs
        self.locked: set[int] = set()
        self.doorless: set[tuple[int, Dims]] = set()  # (locker, parcel size) without a door
        # Where the van goes now (a full counter's parcel): a candidate must take it now too,
        # asked before its forecast is read (a site full now is neither read nor offered).
        self.takes_now: Callable[[Site], bool] | None = None
        self.near: dict[int, list[Site]] = {}  # per origin: the open sites of its box
        self.reach: dict[tuple[int, str], list[tuple[Site, float]]] = {}  # per origin, kind
        # (origin, day, kind) whose every site within reach is full that day by its forecast
        self.full_around: set[tuple[int, date, str]] = set()
        # Each outlook computed, by site, day and parcels added, with the inputs it came from.
        self.outlooks: dict[tuple[int, date, int],
                            tuple[model.SiteInputs, model.DayForecast | None]] = {}

    def promised(self, site: Site, day: date) -> int:
        """Places promised at ``site`` for ``day`` (reservations) that its inputs, read
        earlier in this transaction, do not count yet."""
        return self.since_read[(site.id, day)]

    def record_hold(self, site: Site, day: date) -> None:
        """A place was reserved at ``site``: inputs read later see it; cached ones do not."""
        if site.id in self.inputs:
            self.since_read[(site.id, day)] += 1

    def inputs_now(self, site: Site) -> model.SiteInputs | None:
        """The site's inputs as a read now would find them, from those read earlier, when
        the only change since is places promised there (a proposal's hold: one more
        arrival that day, as ``reservations.promised_arrivals`` counts it). None when they
        were never read, or a parcel joined or left the site since: read them again."""
        if site.id not in self.inputs or site.id in self.changed:
            return None
        inputs = self.inputs[site.id]
        show = self.ctx.settings.forecast.show_rate
        promised = [model.Arrival(day, show)
                    for (site_id, day), count in sorted(self.since_read.items())
                    if site_id == site.id for _ in range(count)]
        return replace(inputs, announced=[*inputs.announced, *promised]) if promised else inputs

    def lock(self, site: Site) -> bool:
        """The site's row, locked for this transaction unless another one holds it (False:
        skip it). Its forecast inputs are read after the lock, never before."""
        if site.id in self.locked:
            return True
        found = self.session.scalar(
            select(Site.id).where(Site.id == site.id).with_for_update(skip_locked=True)
        )
        if found is None:
            return False
        self.locked.add(site.id)
        return True

    def read_inputs(self, sites: list[Site]) -> None:
        """The forecast inputs of those of ``sites`` not read yet, read together (a full
        area's neighbours are asked at once: ``forecast.inputs_of_sites``). Locked first."""
        unread = [site for site in sites if site.id not in self.inputs]
        if unread:
            self.inputs.update(forecast.inputs_of_sites(self.ctx, self.session, unread))

    def day_with(self, site: Site, day: date, extra: int) -> model.DayForecast | None:
        """The site's forecast for ``day`` with what is promised to it that day, plus
        ``extra`` more (or, negative, fewer) parcels announced that day."""
        self.read_inputs([site])
        inputs = self.inputs[site.id]
        extra += self.promised(site, day)
        # The forecast is a function of its inputs alone: a big manifest for a full area asks
        # each neighbour the same question for each parcel it cannot place (5,000 parcels x
        # 10 neighbours), and the answer changes only when a place is promised there.
        known = self.outlooks.get((site.id, day, extra))
        if known is not None and known[0] is inputs:
            return known[1]
        outlook = self._outlook(inputs, day, extra)
        self.outlooks[(site.id, day, extra)] = (inputs, outlook)
        return outlook

    def _outlook(self, inputs: model.SiteInputs, day: date, extra: int
                 ) -> model.DayForecast | None:
        if extra >= 0:
            arrival = model.Arrival(day, self.ctx.settings.forecast.show_rate)
            announced = [*inputs.announced, *[arrival] * extra]
        else:
            announced = _without_first(inputs.announced, day, -extra)
        ahead = (day - inputs.today).days
        if not 0 <= ahead <= inputs.horizon:
            return None
        # A day's forecast does not depend on the days after it (a property test says so):
        # run it up to that day only, mostly tomorrow, not the whole week; it is the last.
        return model.forecast(replace(inputs, announced=announced, horizon=ahead))[-1]

    def record_move(self, origin: Site, site: Site, day: date) -> None:
        # Inputs read after the move see the parcel already; only cached ones need counting.
        self.record_hold(site, day)
        self.changed |= {origin.id, site.id}

    def has_door(self, site: Site, parcel: Parcel) -> bool:
        """A locker's room is its doors, per size: a free door takes the parcel once every
        parcel a place is held for there without a door yet (proposals, parcels held at the
        depot) has taken its own, by the drop-off's rule (smallest fitting door). A moved
        parcel holds its door at once, so it is no longer free. A shop: always (its forecast
        and shelves decide). Read after the site's lock: two planners never count one door."""
        if site.kind != "locker":
            return True
        key = (site.id, parcel_dims(self.ctx, parcel))
        if key in self.doorless:
            return False
        promised = reservations.awaiting_a_door(self.ctx, self.session, site.id)
        if has_room(self.ctx, self.session, site, parcel, promised):
            return True
        # Within one transaction a locker's doors are taken, seldom given back: a locker with
        # no door for a size is not read again for that size (at worst, safe: one less option).
        self.doorless.add(key)
        return False

    def sites_near(self, origin: Site) -> list[Site]:
        """The open sites in the box of coordinates that holds ``origin``'s reach, read once:
        the rest of the network is never loaded (a national one has thousands of sites)."""
        if origin.id not in self.near:
            reach = in_box_around(origin.latitude, origin.longitude, reach_km(self.ctx, origin))
            self.near[origin.id] = list(self.session.scalars(
                select(Site).where(Site.status == "open", reach).order_by(Site.id)))
        return self.near[origin.id]

    def reachable(self, origin: Site, kind: str) -> list[tuple[Site, float]]:
        """The other sites of ``kind`` within ``origin``'s reach, with their distance, worked
        out once per announcement (a manifest asks them again for each parcel to place)."""
        if (origin.id, kind) not in self.reach:
            self.reach[(origin.id, kind)] = [
                (site, km) for site in self.sites_near(origin)
                if site.id != origin.id and site.kind == kind
                and (km := within_reach(self.ctx, origin, site)) is not None]
        return self.reach[(origin.id, kind)]

    def options(
        self, origin: Site, day: date, accept: Callable[[Site], bool] | None = None,
        kind: str | None = None, parcel: Parcel | None = None,
    ) -> list[Option]:
        """The sites of ``kind`` (the origin's by default) within reach that can take one
        more parcel on ``day`` (and that ``accept`` takes, when given; a locker only with a
        door for ``parcel``, :meth:`has_door`), the cheapest first by
        :func:`model.reroute_cost` (load and distance, docs/forecast.md)."""
        settings = self.ctx.settings.forecast
        radius = reach_km(self.ctx, origin)
        # Every site within reach refused by its forecast alone stays refused for the rest of
        # the announcement: places are only ever promised, never given back, here, and more
        # arrivals never lower a forecast (a property test says so). A manifest for a full
        # area then asks its neighbours once, not once per parcel.
        full_key = (origin.id, day, kind or origin.kind)
        plain = accept is None and self.takes_now is None
        if plain and full_key in self.full_around:
            return []
        candidates, by_forecast_alone = [], True
        for site, km in self.reachable(origin, kind or origin.kind):
            if accept is not None and not accept(site):
                continue
            if self.takes_now is not None and not self.takes_now(site):
                continue
            if not self.lock(site):
                by_forecast_alone = False  # it may be free again for the next parcel
                continue  # another announcement is promising its room right now
            if parcel is not None and not self.has_door(site, parcel):
                by_forecast_alone = False  # a smaller parcel may find a door
                continue  # every door of its size (or larger) is taken or promised
            candidates.append((site, km))
        self.read_inputs([site for site, _ in candidates])
        found = []
        for site, km in candidates:
            outlook = self.day_with(site, day, 1)
            if outlook is None or outlook.closed or outlook.at_risk:
                continue
            cost = model.reroute_cost(outlook.high, outlook.capacity, km, radius,
                                      settings.reroute_distance_weight)
            found.append(Option(site, km, outlook, cost))
        if plain and not found and by_forecast_alone:
            self.full_around.add(full_key)
        found.sort(key=lambda o: (o.cost, o.km))
        return found[: settings.reroute_options]


def _without_first(announced: Sequence[model.Arrival], day: date, count: int
                   ) -> list[model.Arrival]:
    """The arrivals without the first ``count`` of ``day`` (all of them if fewer), in one pass:
    a manifest's bisection asks for thousands fewer."""
    kept = []
    for arrival in announced:
        if count and arrival.day == day:
            count -= 1
        else:
            kept.append(arrival)
    return kept


def reach_km(ctx: Ctx, origin: Site) -> float:
    """How far a parcel announced for ``origin`` may be sent: the setting of its area (town
    or countryside), the shortest one for an area it does not name."""
    radii = ctx.settings.forecast.reroute_radius_km
    return radii.get(origin.area, min(radii.values()))


def within_reach(ctx: Ctx, origin: Site, site: Site) -> float | None:
    """The distance in km from ``origin`` to ``site`` if a parcel of ``origin`` may be sent
    there (within its reach, and never a step in place of step-free access), else None: the
    reroutes' rule, and the catchment of a storage site (``services/season.py``)."""
    if origin.step_free_access and not site.step_free_access:
        return None
    km = distance_km(origin.latitude, origin.longitude, site.latitude, site.longitude)
    return km if km <= reach_km(ctx, origin) else None


def arrival_day(ctx: Ctx, parcel: Parcel) -> date:
    """The same rule as the forecast: the expected day, else the day after the announcement."""
    if parcel.expected_date is not None:
        return parcel.expected_date
    return ctx.local_day(parcel.created_at or ctx.now()) + timedelta(days=1)
