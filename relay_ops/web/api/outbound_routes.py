"""API operations for parcels sent from a site (docs/outbound.md): thin translations to
``services/outbound.py``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Response
from pydantic import ConfigDict, Field

from relay_ops import qr
from relay_ops.domain.outbound import MAX_ROUNDS, NETWORK_SPEC, ROUND_SPEC
from relay_ops.services import (
    carrier_sites,
    locker_sending,
    outbound,
    outbound_exceptions,
    pickup_lists,
)
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import client_address, ctx, endpoint
from relay_ops.web.api import responses as r
from relay_ops.web.api.schemas import (
    CONTACT_REGEX,
    HHMM,
    NOT_BLANK,
    Code,
    Email,
    Phone,
    SizeClass,
    Strict,
    Tracking,
    TrackingNumber,
    only_when,
)
from relay_ops.web.inputs import MANIFEST_BODY_LIMIT

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
OPERATOR = (Role.OPERATOR,)
CARRIER_OR_STAFF = (Role.CARRIER, Role.OPERATOR, Role.SHOPKEEPER)
NetworkSpec = Annotated[str, Field(pattern=f"^(?:{NETWORK_SPEC})$")]


class LabelNetworksIn(Strict):
    label_networks: Annotated[list[NetworkSpec], Field(max_length=20, description=(
        "`upu-s10` (any UPU S10 number), `upu-s10:FR` (issued by one country), "
        "`prefix:MR` (the carrier's own numbers, starting with these characters)"))]


RoundSpec = Annotated[str, Field(pattern=f"^{ROUND_SPEC}$")]


class CarrierServiceIn(Strict):
    collection_delay_hours: Annotated[int, Field(ge=1, le=336)]
    rounds: Annotated[list[RoundSpec] | None,
                      Field(max_length=MAX_ROUNDS, description=(
                          "when the carrier passes (the site's time zone): `HH:MM` every day, "
                          "or weekdays then `HH:MM` on those days only (`tue,thu 14:00`, "
                          "`mon-fri 10:30`); each round's pickup list holds the parcels "
                          "deposited before it. Left out: unchanged"))] = None


class SenderIn(Strict):
    """Where the receipt goes; a sender's name is not kept (nothing needs it)."""

    phone: Phone | None = None
    email: Email | None = None
    locale: Literal["fr", "en"] = "fr"

    model_config = CONTACT_REGEX


class DropOffIn(Strict):
    tracking_number: TrackingNumber
    carrier: Code | None = None
    sender: SenderIn | None = None
    size_class: SizeClass | None = None
    reason: Literal["send", "return"] = "send"
    return_of: TrackingNumber | None = None


class SenderByPhone(SenderIn):
    phone: Phone


class SenderByEmail(SenderIn):
    email: Email


# At a locker nobody is at the counter: the receipt goes to the sender's phone or e-mail, so
# one of them is given (one model each, so the document says it).
LockerSenderIn = SenderByPhone | SenderByEmail


class LockerDropOffIn(Strict):
    tracking_number: TrackingNumber
    size_class: SizeClass
    sender: LockerSenderIn
    carrier: Code | None = None
    reason: Literal["send", "return"] = Field("send", description=(
        "`return`: a resident returns a parcel picked up at this locker (its return label, "
        "and the parcel's number in `return_of`)"))
    return_of: TrackingNumber | None = None

    # `return_of` names the parcel a return brings back: given exactly when reason is return.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        only_when("reason", "return", "return_of"),
        {"anyOf": [{"properties": {"reason": {"const": "send"}}},
                   {"required": ["return_of"], "properties": {"return_of": {"type": "string"}}}]},
    ]})


class OutboundRefusalIn(Strict):
    reason: Annotated[str, Field(min_length=1, max_length=300,
                                 json_schema_extra={"pattern": NOT_BLANK})]


class PickupListQuery(Strict):
    carrier: Code | None = None
    round: Annotated[HHMM | None, Field(description=(
        "a time today (HH:MM): only the parcels whose round is due by then (one of the "
        "carrier's rounds: that round's list)"))] = None


class OutboundCollectionIn(Strict):
    # Like a manifest's lines: each number is judged and reported on its own; one at least.
    taken: Annotated[list[Tracking], Field(max_length=1000)] = []
    not_found: Annotated[list[Tracking], Field(max_length=1000)] = []
    carrier: Code | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": [name], "properties": {name: {"minItems": 1}}}
        for name in ("taken", "not_found")]})


@endpoint("/carriers/<code>/label-networks", "PUT", summary="The labels a carrier collects",
          tag="sending", roles=OPERATOR, body=LabelNetworksIn, errors=(404,),
          description="Replaces the carrier's label networks: a parcel is sent from a site "
                      "only if a carrier serving the site collects its label's network.",
          response=r.LabelNetworksOut)
def set_carrier_label_networks(principal: Principal, code: str, body: LabelNetworksIn) -> Any:
    return carrier_sites.set_label_networks(ctx(), principal, code, body.label_networks)


@endpoint("/sites/<id:site_id>/carriers/<code>", "PUT", summary="A carrier collects at a shop",
          tag="sending", roles=OPERATOR, body=CarrierServiceIn, errors=(404,),
          description="The carrier takes sent parcels from this shop within "
                      "`collection_delay_hours` of each deposit; past it, the parcel is "
                      "on the overdue list (`GET /outbound/overdue`).",
          response=r.CarrierServiceOut)
def carrier_serves_site(
    principal: Principal, site_id: int, code: str, body: CarrierServiceIn
) -> Any:
    return carrier_sites.serve_site(ctx(), principal, site_id, code, body.collection_delay_hours,
                                    body.rounds)


@endpoint("/sites/<id:site_id>/carriers/<code>", "DELETE", summary="A carrier stops collecting",
          tag="sending", roles=OPERATOR, status=204, errors=(404,))
def carrier_stops_serving(principal: Principal, site_id: int, code: str) -> Any:
    carrier_sites.stop_serving(ctx(), principal, site_id, code)
    return 204, None


@endpoint("/sites/<id:site_id>/carriers", summary="Carriers collecting sent parcels here",
          tag="sending", roles=STAFF, errors=(404,),
          response=r.CarrierServiceListOut)
def list_site_carriers(principal: Principal, site_id: int) -> Any:
    return {"items": carrier_sites.site_carriers(ctx(), principal, site_id)}


@endpoint("/sites/<id:site_id>/outbound", "POST", summary="Scan a parcel in for sending",
          tag="sending", roles=STAFF, body=DropOffIn, status=201, errors=(404, 409),
          extra_responses={200: "The parcel was already dropped off here: the same answer"},
          description="A sender's parcel (or a resident's return: `reason: return`, with the "
                      "received parcel's number in `return_of`). Its label must be valid "
                      "(`invalid-tracking-number`), the shop must declare `send` among its "
                      "services (`service-not-offered`, 409) and a carrier serving the shop "
                      "must collect the label "
                      "(`label-not-collected-here`, 409); not at a locker or a storage site "
                      "(409 `site-has-no-shelves`, `shops-only`); when several carriers "
                      "collect it, name one "
                      "(`carrier-choice-needed`, 409, lists them). The parcel gets a shelf "
                      "place shared with received parcels (`site-at-capacity` when none), the "
                      "sender a receipt (`receipt_url`, and a message when `sender` gives a "
                      "phone or an e-mail).",
          response=r.DropOffOut)
def drop_off_outbound(principal: Principal, site_id: int, body: DropOffIn) -> Any:
    sender = outbound.Sender(**body.sender.model_dump()) if body.sender else None
    return outbound.drop_off(
        ctx(), principal, site_id, body.tracking_number, carrier_code=body.carrier,
        sender=sender, size_class=body.size_class, reason=body.reason, return_of=body.return_of,
    )


@endpoint("/sites/<id:site_id>/outbound/pickup-list", summary="Sent parcels to collect here",
          tag="sending", roles=CARRIER_OR_STAFF, query=PickupListQuery, errors=(404,),
          description="A carrier sees its own parcels only; staff see every carrier's, or "
                      "one's (`carrier`). Oldest collection deadline first; `overdue` once "
                      "the carrier's agreed delay has passed. Each parcel names the `round` "
                      "it waits for (the carrier's first round after its deposit; null when "
                      "the carrier declared no rounds here); for one carrier, `rounds` lists "
                      "today's rounds with the size of each one's list, and `round=HH:MM` "
                      "keeps the parcels whose round is due by then today: one of the "
                      "carrier's rounds gives that round's list (parcels deposited before it), "
                      "any other time what must be ready by it.",
          response=r.PickupListOut)
def outbound_pickup_list(principal: Principal, site_id: int, query: PickupListQuery) -> Any:
    return pickup_lists.pickup_list(ctx(), principal, site_id, query.carrier, query.round)


@endpoint("/outbound/collection-sites", summary="Where a carrier collects sent parcels",
          tag="sending", roles=(Role.CARRIER, Role.OPERATOR),
          description="The sites where the calling carrier collects (operators: every carrier "
                      "at every site): parcels waiting, the agreed delay, its `rounds` there "
                      "and the `next_round`.",
          response=r.CollectionSiteListOut)
def outbound_collection_sites(principal: Principal) -> Any:
    return {"items": carrier_sites.collection_sites(ctx(), principal)}


@endpoint("/sites/<id:site_id>/outbound/collections", "POST",
          summary="The carrier takes sent parcels", tag="sending", roles=CARRIER_OR_STAFF,
          body=OutboundCollectionIn, idempotent=True, errors=(404, 409),
          max_body=MANIFEST_BODY_LIMIT,  # up to 2 x 1,000 numbers: a round, like a manifest
          description="Each number in `taken` becomes `collected` (its event says by whom "
                      "and when; the sender is told it has left); each in `not_found` (on the "
                      "pickup list, not on the shelf) becomes `lost`. Every number gets its "
                      "own answer; a refused one changes nothing. A carrier acts for itself; "
                      "staff name the `carrier`. Not at a locker (409 `site-has-no-shelves`): "
                      "there the carrier's code opens the doors.",
          response=r.CollectedListOut)
def collect_outbound(principal: Principal, site_id: int, body: OutboundCollectionIn) -> Any:
    return {"items": outbound.collect(ctx(), principal, site_id, body.taken, body.not_found,
                                      body.carrier)}


@endpoint("/parcels/<id:parcel_id>/outbound-refusal", "POST",
          summary="The carrier will not take a sent parcel", tag="sending",
          roles=CARRIER_OR_STAFF, body=OutboundRefusalIn, errors=(404, 409),
          description="Badly packed, too heavy...: the parcel becomes `refused`, stays on the "
                      "shelf (off the pickup list) and its sender is told to take it back. "
                      "In a locker door: the carrier's code no longer opens it, and the "
                      "sender's `refused` message gives a new code that does. "
                      "A carrier refuses its own parcels; staff, their shop's.",
          response=r.OutboundParcelOut)
def refuse_outbound(principal: Principal, parcel_id: int, body: OutboundRefusalIn) -> Any:
    return outbound_exceptions.refuse(ctx(), principal, parcel_id, body.reason)


@endpoint("/parcels/<id:parcel_id>/hand-back", "POST",
          summary="A sender takes their parcel back", tag="sending", roles=STAFF,
          errors=(404, 409),
          description="A sent parcel waiting, refused or damaged leaves the shelf, `returned` "
                      "to its sender. Not at a locker (409 `site-has-no-shelves`): there the "
                      "sender's code opens "
                      "the door, and its closing says the parcel left.",
          response=r.OutboundParcelOut)
def hand_back_outbound(principal: Principal, parcel_id: int) -> Any:
    return outbound_exceptions.hand_back(ctx(), principal, parcel_id)


@endpoint("/outbound/overdue", summary="Sent parcels their carrier is late for",
          tag="sending", roles=CARRIER_OR_STAFF,
          description="Raised by the `outbound-overdue` sweep, once per parcel. Operators see "
                      "all, a carrier its own, a shopkeeper their shops'.",
          response=r.OutboundParcelListOut)
def outbound_overdue(principal: Principal) -> Any:
    return {"items": outbound_exceptions.overdue(ctx(), principal)}


@endpoint("/outbound/receipts/<token>", summary="A sender's drop-off receipt", tag="sending",
          errors=(404,),
          description="The link in the sender's messages: parcel, shop, drop-off time, and "
                      "when the carrier took it. Valid after the collection; names nobody. "
                      "At a locker, `locker_code` is the sender's code while it has one: the "
                      "drop-off code (and its QR image) until the parcel is in, or the code "
                      "that takes back a parcel its carrier refused.",
          response=r.ReceiptOut)
def outbound_receipt(principal: Principal, token: str) -> Any:
    return {**outbound.receipt(ctx(), token),
            "locker_code": locker_sending.sender_code(ctx(), token)}


@endpoint("/lockers/<id:site_id>/drop-offs", "POST",
          summary="Send a parcel from a locker: a door and a drop-off code", tag="sending",
          body=LockerDropOffIn, status=201, errors=(403, 404, 409, 422, 429),
          extra_responses={200: "The carrier's platform announced it already: the same drop-off"},
          description="The sender (no key needed), or its carrier's platform (a carrier key, "
                      "its own labels), announces a labelled parcel: a free door of its "
                      "`size_class` is held for 3 days and the answer gives the drop-off "
                      "`code` (typed after the keypad's carrier key, then the label scanned) "
                      "and its QR code (`qr`, image at `qr_svg_url`): the locker opens the "
                      "door, online or offline. Door closed with the parcel in: "
                      "`awaiting_collection`, the sender's receipt sent. Refused: a label no "
                      "carrier serving the locker collects (409 `label-not-collected-here`), no "
                      "free door of that size "
                      "(409 `parcel-does-not-fit`), a label its carrier already registered "
                      "(409; numbers are unique per carrier: another carrier's parcel under "
                      "the same number is not this label, and is never told of). "
                      "Without a key, announcements are rate limited per client address "
                      "(10 an hour) and per locker (60 an hour): 429 with `Retry-After`.",
          response=r.LockerDropOffOut)
def announce_locker_drop_off(principal: Principal, site_id: int, body: LockerDropOffIn) -> Any:
    sender = outbound.Sender(phone=body.sender.phone, email=body.sender.email,
                             locale=body.sender.locale)
    return locker_sending.announce_drop_off(ctx(), principal, site_id, locker_sending.DropOff(
        tracking_number=body.tracking_number, size_class=body.size_class, sender=sender,
        carrier=body.carrier, reason=body.reason, return_of=body.return_of),
        client=client_address())


@endpoint("/outbound/drop-offs/<token>/qr.svg", summary="A locker drop-off's QR code (SVG)",
          tag="sending", errors=(404,), media_type="image/svg+xml",
          description="The link given with a drop-off code: shown to the locker's scanner, "
                      "it opens the door reserved for the parcel. Gone once deposited.")
def locker_drop_off_qr(principal: Principal, token: str) -> Any:
    return Response(qr.svg(locker_sending.drop_off_qr(ctx(), token)), mimetype="image/svg+xml")
