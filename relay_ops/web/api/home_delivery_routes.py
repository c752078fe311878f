"""API operations for home delivery by a trusted person (docs/home-delivery.md): thin
translations to ``services/home_delivery.py``."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field

from relay_ops.domain.hours import DAYS
from relay_ops.services import home_delivery
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.openapi import Link
from relay_ops.web.api.schemas import NOT_BLANK, IsoDay, Strict, iso_day

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
RESIDENT = (Role.RESIDENT,)
COURIER = (Role.COURIER,)
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
assert set(Day.__args__) == set(DAYS)  # type: ignore[attr-defined]


class OfferIn(Strict):
    days: Annotated[list[Day], Field(min_length=1, max_length=7)]
    area: Annotated[str, Field(min_length=1, max_length=300, description=(
        "The area the deliveries serve, in the shop's words: residents confirm they live "
        "there (no address is asked for or kept)"))]


class CourierIn(Strict):
    kind: Literal["neighbour", "volunteer", "shopkeeper"]
    name: Annotated[str, Field(max_length=200, description=(
        "The neighbour's or volunteer's name; empty for the shopkeeper"))] = ""

    # A neighbour or a volunteer is named (domain.home_delivery.check_courier).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"kind": {"const": "shopkeeper"}}},
        {"required": ["name"], "properties": {"name": {"pattern": NOT_BLANK}}}]})


class RequestIn(Strict):
    day: date
    courier: CourierIn
    consent: Annotated[Literal[True], Field(description=(
        "The resident agrees that the courier takes the parcel for them and sees their name"))]
    in_area: Annotated[bool, Field(description="The resident lives in the area the shop serves")]


class CodeIn(Strict):
    code: Annotated[str, Field(min_length=1, max_length=20, pattern=r"[0-9]")]  # digits kept


class ListQuery(Strict):
    day: IsoDay | None = None


REQUEST_DOC = (
    "A ready parcel at a shop offering home delivery (`home_delivery` among its services and "
    "its days and area declared) is brought home on `day` (one of the shop's delivery days "
    "it opens, up to the parcel's deadline) by a named neighbour or volunteer, who gets a "
    "one-time link of their own (`courier_url`), or by the shopkeeper. Refusals: "
    "`home-delivery-refused` (409: not offered, not a delivery day, outside the area, one "
    "already planned), `invalid-transition` (409: the parcel is not waiting at the shop). "
    "The resident is told who will bring it and when.")


@endpoint("/sites/<id:site_id>/home-delivery", summary="A shop's home delivery days and area",
          tag="home delivery", errors=(404,),
          response=r.HomeOfferOut)
def get_offer(principal: Principal, site_id: int) -> Any:
    return home_delivery.get_offer(ctx(), site_id)


@endpoint("/sites/<id:site_id>/home-delivery", "PUT", summary="Declare home delivery days and area",
          tag="home delivery", roles=STAFF, body=OfferIn, errors=(404,),
          description="The shop's operator or its own shopkeeper. Residents may ask once the "
                      "site also lists `home_delivery` in its services (`PUT /sites/{id}/"
                      "services`).",
          response=r.HomeOfferOut)
def set_offer(principal: Principal, site_id: int, body: OfferIn) -> Any:
    return home_delivery.set_offer(ctx(), principal, site_id, body.model_dump())


@endpoint("/sites/<id:site_id>/home-deliveries", summary="A shop's planned home deliveries",
          tag="home delivery", roles=STAFF, query=ListQuery, errors=(404,),
          description="Open deliveries (requested or taken), by day; each with the "
                      "courier's link to hand over.",
          response=r.HomeDeliveryListOut)
def list_site_deliveries(principal: Principal, site_id: int, query: ListQuery) -> Any:
    day = iso_day(query.day) if query.day else None
    return {"items": home_delivery.site_deliveries(ctx(), principal, site_id, day)}


@endpoint("/parcels/<id:parcel_id>/home-delivery", "POST",
          summary="Plan a home delivery at the resident's request", tag="home delivery",
          roles=STAFF, body=RequestIn, status=201, errors=(404, 409),
          description=REQUEST_DOC + " Recorded as asked by the shop for the resident.",
          links={"Cancel": Link("DELETE /parcels/<id:parcel_id>/home-delivery",
                                {"parcel_id": "$request.path.parcel_id"})},
          response=r.HomeDeliveryOut)
def shop_request(principal: Principal, parcel_id: int, body: RequestIn) -> Any:
    return 201, _request(principal, parcel_id, body)


@endpoint("/parcels/<id:parcel_id>/home-delivery", "DELETE",
          summary="Cancel a home delivery for the resident", tag="home delivery", roles=STAFF,
          errors=(404, 409),
          description="Until the courier has taken the parcel (`invalid-transition` after).",
          response=r.HomeDeliveryOut)
def shop_cancel(principal: Principal, parcel_id: int) -> Any:
    return home_delivery.cancel(ctx(), principal, parcel_id)


@endpoint("/home-deliveries/<id:delivery_id>/taken", "POST",
          summary="The courier takes the parcel from the shop", tag="home delivery",
          roles=STAFF, errors=(404, 409),
          description="Recorded by the shop at the hand-over, on the delivery's day "
                      "(`home-delivery-refused` otherwise); taking it again answers the same.",
          response=r.HomeDeliveryOut)
def shop_take(principal: Principal, delivery_id: int) -> Any:
    return home_delivery.take(ctx(), principal, delivery_id)


@endpoint("/home-deliveries/<id:delivery_id>/delivered", "POST",
          summary="Delivered: the resident's code (the shopkeeper as courier)",
          tag="home delivery", roles=STAFF, body=CodeIn, errors=(403, 404, 409, 423, 429),
          description="The resident's pickup code, checked as at the counter: a wrong one "
                      "counts against the parcel (`wrong-pickup-code`), five lock it "
                      "(`pickup-code-locked`).",
          response=r.HomeDeliveryOut)
def shop_deliver(principal: Principal, delivery_id: int, body: CodeIn) -> Any:
    return home_delivery.deliver(ctx(), principal, delivery_id, body.code)


# ------------------------------------------------------------------ the resident's link


@endpoint("/track/<token>/home-delivery", summary="Home delivery: what can be asked",
          tag="residents", roles=RESIDENT, errors=(404, 410),
          response=r.ResidentHomeDeliveryOut)
def resident_options(principal: Principal) -> Any:
    return home_delivery.for_resident(ctx(), principal)


@endpoint("/track/<token>/home-delivery", "POST", summary="Ask for home delivery",
          tag="residents", roles=RESIDENT, body=RequestIn, status=201, errors=(404, 409, 410),
          description=REQUEST_DOC,
          response=r.HomeDeliveryOut)
def resident_request(principal: Principal, body: RequestIn) -> Any:
    assert principal.parcel_id is not None
    return 201, _request(principal, principal.parcel_id, body)


@endpoint("/track/<token>/home-delivery", "DELETE", summary="Cancel the home delivery",
          tag="residents", roles=RESIDENT, errors=(404, 409, 410),
          description="Until the courier has taken the parcel (`invalid-transition` after).",
          response=r.HomeDeliveryOut)
def resident_cancel(principal: Principal) -> Any:
    assert principal.parcel_id is not None
    return home_delivery.cancel(ctx(), principal, principal.parcel_id)


def _request(principal: Principal, parcel_id: int, body: RequestIn) -> Any:
    return home_delivery.request(
        ctx(), principal, parcel_id, day=body.day, courier_kind=body.courier.kind,
        courier_name=body.courier.name, consent=body.consent, in_area=body.in_area)


# ------------------------------------------------------------------ the courier's link


@endpoint("/courier/<courier_token>", summary="The delivery entrusted to this link",
          tag="home delivery", roles=COURIER, errors=(404,),
          description="The courier's one-time link names one delivery: its parcel only, "
                      "until it is delivered, returned or cancelled (then 404).",
          response=r.HomeDeliveryOut)
def courier_view(principal: Principal) -> Any:
    return home_delivery.courier_view(ctx(), principal)


@endpoint("/courier/<courier_token>/taken", "POST", summary="I have taken the parcel",
          tag="home delivery", roles=COURIER, errors=(404, 409),
          response=r.HomeDeliveryOut)
def courier_take(principal: Principal) -> Any:
    assert principal.delivery_id is not None
    return home_delivery.take(ctx(), principal, principal.delivery_id)


@endpoint("/courier/<courier_token>/delivered", "POST",
          summary="Delivered: the resident types their code", tag="home delivery",
          roles=COURIER, body=CodeIn, errors=(403, 404, 409, 423, 429),
          description="The resident types their own pickup code on the courier's phone; "
                      "checked as at the counter (five wrong codes lock it).",
          response=r.HomeDeliveryOut)
def courier_deliver(principal: Principal, body: CodeIn) -> Any:
    assert principal.delivery_id is not None
    return home_delivery.deliver(ctx(), principal, principal.delivery_id, body.code)
