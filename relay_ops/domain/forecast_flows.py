"""The site's other parcels in the occupancy forecast: parcels sent from the shop and local
producers' orders (issue 17, docs/forecast.md "Sent parcels and producer orders").

They take the same places as the parcels carriers deliver, but come and go by other rules,
so each is a *flow* of its own, learned apart from the site's own history:

- its **deposits** per open day (a level and a trend, as the inbound arrival rate:
  ``forecast_learning.learn_arrival_rate``) and, for those announced (a producer's order the
  evening before), the share announced by each lead (``learn_lead_share``);
- its **dwell**: the hazard of leaving the shelf by open-day age since the deposit (age 0 on
  the deposit day), whatever the way out: a sent parcel collected by its carrier, handed back
  or lost; an order picked up, or taken back by its producer once expired. No deadline
  applies: the learned hazard holds the carrier's collection delay or the producer's short
  holding period, which the site's inbound rules (``holding_days``, ``return_lag_days``)
  would not.

A flow's deposits either come with the morning's deliveries (a producer brings the orders:
counted at their deposit day's peak, like a van's parcels) or through the day, after the
peak (a sender at the counter: first counted at the next day's peak, if the carrier has not
taken the parcel by then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from relay_ops.domain.forecast_learning import ArrivalRate, ClosedOn, Counted, hazard_at

SENT = "sent"
ORDERS = "orders"
KINDS = (SENT, ORDERS)

# Priors of the flows' hazards by open-day age, before a site has its own history. A sent
# parcel waits for its carrier's next round (agreements say within 24 hours: most leave the
# day after their deposit); an order is collected like a counter parcel (DESIGN 1b), its
# short holding period and the producer's take-back carried by the last age's 0.5.
PRIOR_FLOW_HAZARDS: dict[str, tuple[float, ...]] = {
    SENT: (0.2, 0.9, 0.9, 0.5),
    ORDERS: (0.61, 0.28 / 0.39, 0.10 / 0.11, 0.5),
}


@dataclass(frozen=True)
class FlowArrival:
    """One of the flow's parcels announced for ``day``, coming at all with ``probability``."""

    day: date
    probability: float = 1.0


@dataclass(frozen=True)
class Flow:
    """What the forecast knows of one flow at a site: its learned rate, dwell and lead shares,
    its parcels on hand now (counted by their age in open days) and those announced."""

    kind: str
    rate: ArrivalRate = ArrivalRate()
    hazards: Sequence[float] = ()
    lead_share: Sequence[float] = ()
    held: Counted[int] = ()
    announced: Sequence[FlowArrival] = ()
    after_peak: bool = False  # deposits come through the day, after the morning's peak


@dataclass(frozen=True)
class FlowDay:
    """A flow's share of one forecast day: its expected deposits, and its parcels expected at
    the peak (part of ``DayForecast.predicted``)."""

    kind: str
    deposits: float
    present: float


def presence(
    flow: Flow, start: date, age: int, days: Sequence[date], closed_on: ClosedOn,
    today: date, today_remaining: float, *, deposited: bool = False,
) -> list[float]:
    """Probability that one of the flow's parcels, there from ``start`` at ``age``, is on the
    shelf at each day's peak. ``deposited``: it is deposited on ``start`` itself, so for a flow
    whose deposits come after the peak it is first counted the next day. It leaves on an open
    day with the flow's hazard at its age (today only with the share of the day still to
    come); closing days pause ageing, as for the site's own parcels."""
    out: list[float] = []
    alive = 1.0
    for day in days:
        if day < start or (deposited and flow.after_peak and day == start):
            out.append(0.0)
        else:
            out.append(alive)
        if day < start or closed_on(day):
            continue
        h = hazard_at(flow.hazards, age)
        if day == today:
            h *= today_remaining
        alive *= 1.0 - h
        age += 1
    return out
