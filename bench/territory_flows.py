"""The territory replay's other counter work (``bench/territory.py --flows``): parcels residents
send, and local producers' orders, through the same services as the counter and the API.

Rates (stated in docs/benchmarks-territory.md, "Sent parcels and producer orders"):

- Sent parcels: each open day a shop takes a Poisson number of parcels to send with mean
  ``SEND_SHARE`` (15 %) of its inbound arrivals that day (its base rate times the season). In
  French relay networks sending (second-hand sales, returns) is a sizeable share of counter
  work, often a quarter or more in towns; 15 % is the conservative figure, for villages too.
  They are deposited at 15:00 (``services/outbound.drop_off``) and the shop's carrier takes
  them on its next round at 11:00, the round that takes back expired parcels: its pickup list
  (``pickup_lists.pickup_list``) and its scan (``outbound.collect``). Until then they hold a place,
  so the morning's count of parcels on shelves (the scored actual) includes them.
- Producer orders: three producers deliver to a third of the shops (drawn once), each open
  day a Poisson number of orders with mean 1 to 3 (drawn per shop); 30 % keep cold, into a
  4-place refrigerated location each such shop gets. Announced the evening before
  (``producer_announcements.announce``), brought to the counter at 10:00
  (``producer_counter.deposit``, a check-in), collected by residents with the parcels'
  pickup-delay model, and taken back by their producer two days after they expired
  (``producer_counter.take_back``).

The flows draw from their own random stream, so the shops' planned parcels are those of the
run without ``--flows``; what follows differs a little (the flows take places, so check-ins
are refused and reroutes chosen otherwise, and each shop's fridge adds 4 places).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from relay_ops.db.models import Parcel, ProducerOrder, Site
from relay_ops.domain.errors import DomainError, SiteAtCapacity
from relay_ops.domain.lifecycle import HELD_STATES
from relay_ops.services import (
    carrier_sites,
    outbound,
    pickup_lists,
    producer_announcements,
    producer_counter,
    producers,
    sites,
)
from relay_ops.services.principal import SYSTEM, Principal, Role

if TYPE_CHECKING:
    from bench.territory import Replay, Shop

SEND_SHARE = 0.15  # parcels sent, as a share of the parcels a shop receives
PRODUCERS = ("ferme-du-bois", "fromagerie-erdre", "maraicher-don")
ORDER_SHOPS = 1 / 3  # the share of shops producers deliver to
ORDERS_PER_DAY = (1.0, 3.0)  # a delivered shop's mean orders per open day
KEEP_COLD = 0.30
FRIDGE = {"label": "F1", "size_class": "L", "capacity": 4, "refrigerated": True}
SHOP_SERVICES = ["receive", "send", "cold"]
HELD = [s.value for s in HELD_STATES]


def carrier_prefix(code: str) -> str:
    """Each carrier's own label prefix: a sent parcel's label says who collects it."""
    return "OUT" + code[:2].upper()


@dataclass
class FlowStats:
    sent_deposited: int = 0
    sent_refused_full: int = 0  # the shop had no place: the sender posts it elsewhere
    sent_collected: int = 0
    orders_announced: int = 0
    orders_keep_cold: int = 0
    orders_deposited: int = 0
    orders_refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders_returned: int = 0
    held: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    occupancy_held: int = 0
    peak: tuple[int, int, int] = (0, 0, 0)  # (held, sent, orders) on the fullest shop-day


class Flows:
    def __init__(self, replay: Replay, rng: random.Random) -> None:
        self.replay, self.ctx, self.rng = replay, replay.ctx, rng
        self.stats = FlowStats()
        self.serial = 0
        self.staff = Principal(Role.OPERATOR, name="bench-counter")
        self.producers: list[Principal] = []
        self.order_rate: dict[str, float] = {}
        self.announced: dict[date, list[tuple[Shop, Principal, str, bool]]] = defaultdict(list)
        self.order_label: dict[str, Principal] = {}

    def setup(self) -> None:
        """Carriers collect their own labels; each shop is served by one of them; producers
        get their accounts and their shops."""
        for code in self.replay.carriers:
            carrier_sites.set_label_networks(
                self.ctx, SYSTEM, code, [f"prefix:{carrier_prefix(code)}"])
        self.carrier_of = {shop.code: self.rng.choice(sorted(self.replay.carriers))
                           for shop in self.replay.shops}
        for shop in self.replay.shops:
            carrier_sites.serve_site(self.ctx, SYSTEM, shop.id, self.carrier_of[shop.code], 24)
        for code in PRODUCERS:
            view = producers.create_producer(self.ctx, SYSTEM, code=code, name=code.title())
            self.producers.append(Principal(Role.PRODUCER, producer_id=view["id"]))
        for shop in self.replay.shops:
            if self.rng.random() < ORDER_SHOPS:
                self.order_rate[shop.code] = self.rng.uniform(*ORDERS_PER_DAY)

    # ------------------------------------------------------------ sent parcels

    def deposit_sent(self, day: date) -> None:
        from bench.territory import poisson, season

        for shop in self.open_shops(day):
            carrier = self.carrier_of[shop.code]
            for _ in range(poisson(self.rng, SEND_SHARE * shop.base * season(day))):
                self.serial += 1
                number = f"{carrier_prefix(carrier)}{self.serial:09d}"
                try:
                    outbound.drop_off(self.ctx, SYSTEM, shop.id, number)
                except SiteAtCapacity:
                    self.stats.sent_refused_full += 1
                    continue
                self.stats.sent_deposited += 1

    def collect_sent(self, day: date) -> None:
        """The carrier's round: what its pickup list shows, all found and taken."""
        for shop in self.open_shops(day):
            carrier = self.replay.carriers[self.carrier_of[shop.code]]
            items = pickup_lists.pickup_list(self.ctx, carrier, shop.id)["items"]
            if not items:
                continue
            answers = outbound.collect(self.ctx, carrier, shop.id,
                                       [item["tracking_number"] for item in items], [])
            self.stats.sent_collected += sum(1 for a in answers if a["status"] == "collected")

    # ------------------------------------------------------------ producer orders

    def announce_orders(self, day: date) -> None:
        """The evening before: each delivered shop's orders of ``day``."""
        from bench.territory import poisson

        for shop in self.open_shops(day):
            if shop.code not in self.order_rate:
                continue
            for _ in range(poisson(self.rng, self.order_rate[shop.code])):
                self.serial += 1
                who = self.rng.choice(self.producers)
                cold = self.rng.random() < KEEP_COLD
                reference = f"CMD-{self.serial}"
                order = producer_announcements.Order(
                    reference=reference, site=shop.code, keep_cold=cold,
                    phone=f"+337{self.serial:08d}")
                _, view = producer_announcements.announce(self.ctx, who, order)
                self.stats.orders_announced += 1
                self.stats.orders_keep_cold += cold
                self.announced[day].append((shop, who, reference, cold))

    def deposit_orders(self, day: date) -> None:
        from bench.territory import dwell

        for shop, _, reference, _ in self.announced.pop(day, []):
            try:
                _, answer = producer_counter.deposit(self.ctx, self.staff, shop.id, reference)
            except DomainError as err:  # no (cold) place left: it goes back to the farm
                self.stats.orders_refused[err.slug] += 1
                continue
            self.stats.orders_deposited += 1
            # the parcels' own pickup-delay model (bench/territory.Replay.pickups)
            self.replay.dwell[answer["parcel"]["id"]] = dwell(self.rng, shop.first_day)

    def take_back_orders(self) -> None:
        """Each producer takes back its orders that expired two days ago or earlier."""
        cutoff = self.ctx.now() - timedelta(days=2)
        with self.ctx.db.read() as session:
            rows = list(session.execute(
                select(Parcel.site_id, ProducerOrder.producer_id, ProducerOrder.reference)
                .join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
                .where(Parcel.state.in_(producers.TO_TAKE_BACK),
                       Parcel.holding_deadline <= cutoff)))
        by_key: dict[tuple[int, int], list[str]] = defaultdict(list)
        for site_id, producer_id, reference in rows:
            by_key[(site_id, producer_id)].append(reference)
        for (site_id, producer_id), references in by_key.items():
            who = Principal(Role.PRODUCER, producer_id=producer_id)
            answers = producer_counter.take_back(self.ctx, who, site_id, references)
            self.stats.orders_returned += sum(1 for a in answers if a["status"] == "returned")

    # ------------------------------------------------------------ does the forecast count them

    def measure(self, day: date) -> None:
        """Right after the morning's check-ins (when the replay scores the forecast against the
        parcels on shelves): what the shelves hold, sent parcels and orders apart, and the
        same shops' held count as the check-in and the forecast read it
        (``sites.occupancy_of``). Equal totals say the scored actual includes them."""
        open_ids = {shop.id for shop in self.open_shops(day)}
        with self.ctx.db.read() as session:
            rows = session.execute(
                select(Parcel.site_id, Parcel.direction, ProducerOrder.parcel_id.is_not(None),
                       func.count())
                .outerjoin(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
                .where(Parcel.state.in_(HELD), Parcel.site_id.in_(open_ids))
                .group_by(Parcel.site_id, Parcel.direction, ProducerOrder.parcel_id.is_not(None)))
            per_site: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
            for site_id, direction, is_order, n in rows:
                kind = "sent" if direction == "outbound" else "orders" if is_order else "parcels"
                per_site[site_id][kind] += n
                self.stats.held[kind] += n
            for site_id in open_ids:
                site = session.get(Site, site_id)
                assert site is not None
                held = sites.occupancy_of(session, site).held
                self.stats.occupancy_held += held
                kinds = per_site[site_id]
                if held > self.stats.peak[0]:
                    self.stats.peak = (held, kinds["sent"], kinds["orders"])

    def open_shops(self, day: date) -> list[Shop]:
        return [shop for shop in self.replay.shops if self.replay.opens(shop, day)]

    def figures(self) -> dict[str, Any]:
        s = self.stats
        counted = sum(s.held.values())
        peak_held, peak_sent, peak_orders = s.peak
        return {
            "send_share_of_arrivals": SEND_SHARE,
            "order_shops": len(self.order_rate),
            # by the replay's counts, and apart by the parcels' states at the end: every
            # parcel deposited is collected, picked up, taken back or still on a shelf
            "sent": {"deposited": s.sent_deposited, "refused_shop_full": s.sent_refused_full,
                     "collected": s.sent_collected,
                     "in_state_collected": self._in("outbound", "collected"),
                     "on_shelves_at_end": self._in("outbound", *HELD),
                     "lost_or_missing": self._in("outbound", "lost", "missing")},
            "producer_orders": {
                "announced": s.orders_announced, "keep_cold": s.orders_keep_cold,
                "deposited": s.orders_deposited,
                "refused_at_counter": dict(s.orders_refused),
                "not_brought_yet": sum(len(v) for v in self.announced.values()),
                "picked_up": self._in("orders", "picked_up"),
                "returned_to_producer": s.orders_returned,
                "in_state_returned": self._in("orders", "returned"),
                "on_shelves_at_end": self._in("orders", *HELD),
                "lost_or_missing": self._in("orders", "lost", "missing")},
            # summed over the open shop-days, right after the morning's check-ins
            "held_at_scoring": {
                **dict(s.held), "counted_by_occupancy": s.occupancy_held,
                "forecast_counts_them": counted == s.occupancy_held,
                "sent_and_orders_pct": round(100 * (s.held["sent"] + s.held["orders"])
                                             / counted, 1) if counted else None},
            "fullest_shop_day": {"held": peak_held, "sent": peak_sent, "orders": peak_orders},
        }

    def _in(self, kind: str, *states: str) -> int:
        """Sent parcels (``outbound``) or producer orders in one of ``states``."""
        query = select(func.count()).select_from(Parcel).where(Parcel.state.in_(states))
        if kind == "outbound":
            query = query.where(Parcel.direction == "outbound")
        else:
            query = query.join(ProducerOrder, ProducerOrder.parcel_id == Parcel.id)
        with self.ctx.db.read() as session:
            return session.scalar(query) or 0
