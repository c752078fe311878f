"""Home delivery for residents who cannot come (issue 17, item 3): a trusted person (a
neighbour, a volunteer, or the shopkeeper) takes a ready parcel from the shop and brings it
to the resident, who confirms it with their own pickup code typed on the courier's phone.

A delivery request has its own small lifecycle beside the parcel's::

    requested ─take─▶ taken ─deliver─▶ delivered
        │               └─return─▶ returned   (not delivered by the end of its day)
        ├─cancel─▶ cancelled                  (the resident, until the courier has taken it)
        └─lapse──▶ lapsed                     (its day passed and nobody took the parcel)

The parcel moves with it (``domain/lifecycle.py``): ``ready_for_pickup`` ─hand_to_courier─▶
``out_for_delivery`` ─deliver─▶ ``delivered``, or ─return_to_shelf─▶ ``ready_for_pickup``
with its deadline extended. Its shelf place is kept while it is out (``out_for_delivery`` is
a held state), so the evening return always finds room.

Pure rules: what a site offers (delivery days and the area it serves, as the site words it),
whether a request may be made, the deadline of a parcel that comes back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from relay_ops.domain.errors import (
    HomeDeliveryRefused,
    InvalidTransition,
    ValidationFailed,
)
from relay_ops.domain.holding import deadline_after
from relay_ops.domain.hours import DAYS

SERVICE = "home_delivery"
# How far ahead a resident may ask: a delivery is a favour planned within the week.
MAX_DAYS_AHEAD = 14
# Days added to a parcel's deadline when its delivery failed: the resident gets time to ask
# again or to send someone, whatever was left of the holding period.
RETURN_EXTENSION_DAYS = 2
MAX_AREA_LENGTH = 300


class Status(StrEnum):
    REQUESTED = "requested"
    TAKEN = "taken"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    LAPSED = "lapsed"


class Step(StrEnum):
    TAKE = "take"
    DELIVER = "deliver"
    RETURN = "return"
    CANCEL = "cancel"
    LAPSE = "lapse"


class CourierKind(StrEnum):
    NEIGHBOUR = "neighbour"
    VOLUNTEER = "volunteer"
    SHOPKEEPER = "shopkeeper"


class RequestedBy(StrEnum):
    RESIDENT = "resident"  # from their page (the signed link)
    SHOP = "shop"  # the shopkeeper, at the resident's request (by phone, at the counter)


OPEN: frozenset[Status] = frozenset({Status.REQUESTED, Status.TAKEN})

_STEPS: dict[tuple[Status, Step], Status] = {
    (Status.REQUESTED, Step.TAKE): Status.TAKEN,
    (Status.REQUESTED, Step.CANCEL): Status.CANCELLED,
    (Status.REQUESTED, Step.LAPSE): Status.LAPSED,
    (Status.TAKEN, Step.DELIVER): Status.DELIVERED,
    (Status.TAKEN, Step.RETURN): Status.RETURNED,
}


def next_status(current: Status | str, step: Step | str) -> Status:
    """Where ``step`` leads a delivery request; :class:`InvalidTransition` if nowhere. A
    cancel once the courier holds the parcel is refused here: the resident cannot take a
    parcel back from someone on the road."""
    status, act = Status(current), Step(step)
    try:
        return _STEPS[(status, act)]
    except KeyError:
        why = (" (the courier has already taken the parcel)"
               if (status, act) == (Status.TAKEN, Step.CANCEL) else "")
        raise InvalidTransition(
            f"a home delivery that is {status.value} cannot {act.value}{why}",
            state=status.value, action=act.value,
        ) from None


def steps() -> dict[tuple[Status, Step], Status]:
    """A copy of the table, for documentation and tests."""
    return dict(_STEPS)


# ---------------------------------------------------------------- what a site offers


@dataclass(frozen=True)
class Offer:
    """The days a site delivers (``mon``…``sun``) and the area it serves, in the site's own
    words ("Riaillé bourg and the hamlets within 5 km"): the resident confirms they live
    there, so no address is asked for or kept (the courier is someone the resident trusts,
    who knows where they live)."""

    days: tuple[str, ...]
    area: str

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Offer:
        days = list(data.get("days") or [])
        unknown = sorted({str(d) for d in days} - set(DAYS))
        if unknown:
            raise ValidationFailed(f"unknown day {', '.join(unknown)}; use {', '.join(DAYS)}")
        if not days:
            raise ValidationFailed("name at least one delivery day")
        area = " ".join(str(data.get("area") or "").split())
        if not area:
            raise ValidationFailed("say which area the deliveries serve")
        if len(area) > MAX_AREA_LENGTH:
            raise ValidationFailed(f"the area is described in {MAX_AREA_LENGTH} characters")
        return cls(tuple(d for d in DAYS if d in days), area)

    def as_mapping(self) -> dict[str, Any]:
        return {"days": list(self.days), "area": self.area}

    def delivers_on(self, day: date) -> bool:
        return DAYS[day.weekday()] in self.days


ClosedOn = Callable[[date], bool]


def delivery_days(offer: Offer, today: date, last: date, closed_on: ClosedOn) -> list[date]:
    """The days a delivery may be asked for: delivery days the shop opens (the courier takes
    the parcel there), from today to ``last`` (the parcel's deadline) within two weeks."""
    end = min(last, today + timedelta(days=MAX_DAYS_AHEAD))
    days, day = [], today
    while day <= end:
        if offer.delivers_on(day) and not closed_on(day):
            days.append(day)
        day += timedelta(days=1)
    return days


@dataclass(frozen=True)
class RequestFacts:
    """What a request is judged on, read by the service under the parcel's lock."""

    services: tuple[str, ...]
    offer: Offer | None
    parcel_state: str
    is_locker: bool
    open_request: bool
    today: date
    deadline_day: date | None


def check_request(facts: RequestFacts, day: date, closed_on: ClosedOn, *, consent: bool,
                  in_area: bool) -> None:
    """Refuse a request that cannot be kept; a refusal says what the resident can do."""
    if facts.is_locker or SERVICE not in facts.services or facts.offer is None:
        raise HomeDeliveryRefused("this site does not offer home delivery")
    if facts.parcel_state != "ready_for_pickup":
        raise InvalidTransition(
            f"a parcel that is {facts.parcel_state} cannot be delivered home: it must be "
            "waiting at the shop", state=facts.parcel_state)
    if facts.open_request:
        raise HomeDeliveryRefused(
            "a home delivery is already planned for this parcel: cancel it first")
    if not consent:
        raise ValidationFailed(
            "the resident's consent is needed: the courier takes the parcel for them and "
            "sees their name")
    if not in_area:
        raise HomeDeliveryRefused(
            f"deliveries from this shop serve {facts.offer.area} only", area=facts.offer.area)
    last = facts.deadline_day or facts.today
    allowed = delivery_days(facts.offer, facts.today, last, closed_on)
    if day not in allowed:
        raise HomeDeliveryRefused(
            f"{day.isoformat()} is not a delivery day for this parcel; choose one of "
            + (", ".join(d.isoformat() for d in allowed) or "none (none is left before its "
               "deadline)"),
            days=[d.isoformat() for d in allowed])


def check_courier(kind: CourierKind | str, name: str) -> tuple[CourierKind, str]:
    """A neighbour or a volunteer is named (the resident trusts a person, not a role); the
    shopkeeper is the shop itself."""
    courier = CourierKind(kind)
    clean = " ".join(name.split())
    if courier is not CourierKind.SHOPKEEPER and not clean:
        raise ValidationFailed("name the neighbour or volunteer who will bring the parcel")
    if len(clean) > 200:
        raise ValidationFailed("the courier's name is at most 200 characters")
    return courier, clean


def day_is_over(day: date, now: datetime, tz: ZoneInfo) -> bool:
    """The end-of-day rule: a delivery's day is over once its local day has ended."""
    return now.astimezone(tz).date() > day


def returned_deadline(deadline: datetime | None, now: datetime, tz: ZoneInfo,
                      closed_on: ClosedOn) -> datetime:
    """A parcel back from a delivery that did not happen keeps at least its deadline, and at
    least :data:`RETURN_EXTENSION_DAYS` open days from its return."""
    fresh = deadline_after(now, RETURN_EXTENSION_DAYS, tz, closed_on)
    return fresh if deadline is None else max(deadline, fresh)


# ---------------------------------------------------------------- the courier's link


def courier_token(derivation_key: bytes, nonce: str) -> str:
    """The courier's one-time link token, derived from the delivery's nonce (shown again to
    the shop at the hand-over, never stored), like a pickup code: never the resident's code."""
    mac = hmac.new(derivation_key, f"courier-link:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def courier_token_hash(pepper: bytes, token: str) -> str:
    """What is stored and looked up: a keyed hash, so a copy of the database opens nothing."""
    return hmac.new(pepper, f"courier-link:{token}".encode(), hashlib.sha256).hexdigest()
