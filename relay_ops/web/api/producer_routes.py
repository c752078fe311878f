"""API operations for local producers' orders (docs/producers.md): thin translations to
``services/producers.py``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from relay_ops.services import (
    locker_registry,
    locker_sending,
    producer_announcements,
    producer_counter,
    producers,
    site_locations,
)
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.openapi import Link
from relay_ops.web.api.schemas import CONTACT_REGEX, Code, Email, KeyIn, Phone, SizeClass, Strict
from relay_ops.web.inputs import MANIFEST_BODY_LIMIT

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
OPERATOR = (Role.OPERATOR,)
PRODUCER = (Role.PRODUCER,)
PRODUCER_OR_STAFF = (Role.PRODUCER, Role.OPERATOR, Role.SHOPKEEPER)
# The producer's own order number, as printed on the package and scanned at the counter.
Reference = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._/#-]+$")]


class ProducerIn(Strict):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]


class _Customer(Strict):
    name: Annotated[str | None, Field(max_length=200)] = None
    phone: Phone | None = None
    email: Email | None = None
    locale: Literal["fr", "en"] = "fr"

    model_config = CONTACT_REGEX


class CustomerByPhone(_Customer):
    phone: Phone


class CustomerByEmail(_Customer):
    email: Email


# Who collects the order: the phone or e-mail the ready message and its code go to (one of
# them at least: one model each, so the document says it).
CustomerIn = CustomerByPhone | CustomerByEmail


class OrderIn(Strict):
    reference: Reference
    site: Code
    recipient: CustomerIn
    size_class: SizeClass | None = None
    keep_cold: bool = False
    holding_hours: Annotated[
        int | None, Field(ge=1, le=producer_announcements.MAX_HOLDING_HOURS)] = None
    sell_by: AwareDatetime | None = None


class OrdersQuery(Strict):
    state: Annotated[str | None, Field(max_length=24, pattern=r"^[a-z_]+$")] = None


class DepositIn(Strict):
    reference: Annotated[str, Field(min_length=1, max_length=80)]
    producer: Code | None = None


class TakeBackIn(Strict):
    references: Annotated[list[Reference], Field(min_length=1, max_length=500)]
    producer: Code | None = None


class RefrigeratedIn(Strict):
    refrigerated: bool


@endpoint("/producers", "POST", summary="Create a producer", tag="producers", roles=OPERATOR,
          body=ProducerIn, status=201, errors=(409,),
          description="A local producer whose customers collect their orders at a shop. "
                      "Give it an API key with `POST /producers/{code}/keys`.",
          response=r.ProducerOut,
          links={"IssueKey": Link("POST /producers/<code>/keys", {"code": "$response.body#/code"})})
def create_producer(principal: Principal, body: ProducerIn) -> Any:
    return 201, producers.create_producer(ctx(), principal, code=body.code, name=body.name)


@endpoint("/producers", summary="Producers", tag="producers", roles=STAFF,
          response=r.ProducerListOut)
def list_producers(principal: Principal) -> Any:
    return {"items": producers.list_producers(ctx(), principal)}


@endpoint("/producers/<code>/keys", "POST", summary="Issue a producer's API key (shown once)",
          tag="producers", roles=OPERATOR, body=KeyIn, status=201, errors=(404,),
          response=r.IssuedKeyOut)
def issue_producer_key(principal: Principal, code: str, body: KeyIn) -> Any:
    return 201, {"token": producers.issue_producer_key(ctx(), principal, code, body.label).token}


@endpoint("/producer/orders", "POST", summary="Announce an order", tag="producers",
          roles=PRODUCER, body=OrderIn, status=201, errors=(404, 409),
          extra_responses={200: "The same order was announced before: its current state"},
          description="A catalogue-free order for a resident to collect at a shop: the "
                      "producer's `reference` (one order per reference), the resident's phone "
                      "or e-mail, a size, `keep_cold` (it goes to a refrigerated place only, "
                      "at a shop that declares `cold`: `service-not-offered`, 409, otherwise), "
                      "`holding_hours` (how long the shop keeps it, bounded by its opening "
                      "hours) and `sell_by` (never kept past it; one already passed, or more "
                      "than a year ahead, is refused by today's date: 409 "
                      "`sell-by-out-of-reach`). The answer's `label` is the "
                      "number to print on the package; the shop scans it, or the reference.",
          response=r.OrderOut)
def announce_order(principal: Principal, body: OrderIn) -> Any:
    order = producer_announcements.Order(
        reference=body.reference, site=body.site, phone=body.recipient.phone,
        email=body.recipient.email, locale=body.recipient.locale, name=body.recipient.name,
        size_class=body.size_class, keep_cold=body.keep_cold,
        holding_hours=body.holding_hours, sell_by=body.sell_by,
    )
    return producer_announcements.announce(ctx(), principal, order)


@endpoint("/producer/orders", summary="The producer's orders and their states",
          tag="producers", roles=PRODUCER, query=OrdersQuery,
          description="The producer's own orders only, newest first (500 at most); "
                      "`state` filters (`announced`, `ready_for_pickup`, `picked_up`, "
                      "`expired`, `returned`...).",
          response=r.OrderListOut)
def my_orders(principal: Principal, query: OrdersQuery) -> Any:
    return {"items": producers.my_orders(ctx(), principal, query.state)}


@endpoint("/producer/orders/<reference>", summary="One of the producer's orders",
          tag="producers", roles=PRODUCER, errors=(404,),
          response=r.OrderOut)
def my_order(principal: Principal, reference: str) -> Any:
    return producers.my_order(ctx(), principal, reference)


@endpoint("/producer/take-back", summary="The producer's pickup list", tag="producers",
          roles=PRODUCER,
          description="Orders nobody collected in time (or damaged), shop by shop: the "
                      "producer takes them back, not a carrier.",
          response=r.TakeBackListOut)
def take_back_list(principal: Principal) -> Any:
    return {"items": producers.take_back_list(ctx(), principal)}


@endpoint("/sites/<id:site_id>/producer-orders", summary="The day's producer orders at a shop",
          tag="producers", roles=STAFF, errors=(404,),
          description="Orders still to come, on the shelves, or gone today (collected or "
                      "taken back by their producer).",
          response=r.OrderListOut)
def site_producer_orders(principal: Principal, site_id: int) -> Any:
    return {"items": producers.site_day(ctx(), principal, site_id)}


@endpoint("/sites/<id:site_id>/producer-orders/deposits", "POST",
          summary="Scan a producer's order in", tag="producers", roles=STAFF, body=DepositIn,
          status=201, errors=(404, 409),
          extra_responses={200: "The order was already checked in here: the same answer"},
          description="The order's label or the producer's reference (with `producer` when "
                      "two producers used it here, `producer-choice-needed`). It is checked "
                      "in like any parcel: a shelf place (refrigerated for `keep_cold`, "
                      "`no-cold-place` when none is free), its deadline, and the resident's "
                      "code and message.",
          response=r.OrderDepositOut)
def deposit_order(principal: Principal, site_id: int, body: DepositIn) -> Any:
    return producer_counter.deposit(ctx(), principal, site_id, body.reference, body.producer)


@endpoint("/sites/<id:site_id>/producer-orders/take-back", "POST",
          summary="The producer takes its uncollected orders back", tag="producers",
          roles=PRODUCER_OR_STAFF, body=TakeBackIn, errors=(404, 409),
          max_body=MANIFEST_BODY_LIMIT,
          description="Each expired or damaged order named becomes `returned` (its event "
                      "says who and when). A producer acts for itself; staff name the "
                      "`producer`. Each reference gets its own answer. Not at a locker (409 "
                      "`site-has-no-shelves`): there the producer's code opens the doors.",
          response=r.TakenBackListOut)
def take_back(principal: Principal, site_id: int, body: TakeBackIn) -> Any:
    return {"items": producer_counter.take_back(ctx(), principal, site_id, body.references,
                                                body.producer)}


@endpoint("/sites/<id:site_id>/locations/<label>/refrigerated", "PUT",
          summary="Mark a shelf location as a cold place, or not", tag="producers",
          roles=STAFF, body=RefrigeratedIn, errors=(404,),
          description="Only refrigerated places take `keep_cold` items.",
          response=r.LocationListOut)
def set_refrigerated(principal: Principal, site_id: int, label: str, body: RefrigeratedIn) -> Any:
    items = site_locations.set_refrigerated(ctx(), principal, site_id, label, body.refrigerated)
    return {"items": items}


@endpoint("/producer/lockers/<id:site_id>/code", summary="My code at this locker",
          tag="producers", roles=PRODUCER, errors=(404,),
          description="The calling producer's code for this locker's keypad: typed after the "
                      "carrier key, then each order's label scanned, it opens the door "
                      "reserved for that order (a refrigerated one for `keep_cold`).",
          response=r.KeypadCodeOut)
def producer_locker_code(principal: Principal, site_id: int) -> Any:
    return locker_sending.producer_code_view(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/compartments/<id:number>/refrigerated", "PUT",
          summary="Mark a locker door refrigerated, or not", tag="lockers", roles=OPERATOR,
          body=RefrigeratedIn, errors=(404,),
          description="Only refrigerated doors take producers' `keep_cold` orders; other "
                      "parcels go there only when no other door takes them.",
          response=r.CompartmentOut)
def set_compartment_refrigerated(principal: Principal, site_id: int, number: int,
                                 body: RefrigeratedIn) -> Any:
    return locker_registry.set_compartment_refrigerated(ctx(), principal, site_id, number,
                                                        body.refrigerated)
