"""API operations. Each one is a thin translation: validated input → service call → JSON."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response

from relay_ops import qr
from relay_ops.services import (
    accounts,
    api_tokens,
    checkin,
    checkin_registration,
    credentials,
    expiry,
    locker_carrier_codes,
    locker_dropoff,
    locker_identity,
    locker_registry,
    locker_views,
    manifests,
    opening_hours,
    parcel_views,
    pickup,
    reroute,
    resident,
    site_calendar,
    site_locations,
    site_search,
    sites,
    staff_sign_in,
)
from relay_ops.services import forecast_views as forecasts
from relay_ops.services import locker_collection as locker_collections
from relay_ops.services.principal import Principal, Role
from relay_ops.web.api import bp, client_address, ctx, endpoint, pagination
from relay_ops.web.api import responses as r
from relay_ops.web.api import schemas as s
from relay_ops.web.api.openapi import Link
from relay_ops.web.inputs import MANIFEST_BODY_LIMIT

STAFF = (Role.OPERATOR, Role.SHOPKEEPER)
OPERATOR = (Role.OPERATOR,)
CARRIER = (Role.CARRIER,)
RESIDENT = (Role.RESIDENT,)
ANY = (Role.OPERATOR, Role.SHOPKEEPER, Role.CARRIER)

# What a client does next with a site, a locker or a parcel it made or scanned (OpenAPI links:
# also the sequences the stateful fuzz test follows).
_SITE = {"site_id": "$response.body#/id"}
SITE_LINKS = {
    "GetSite": Link("GET /sites/<id:site_id>", _SITE),
    "SetStatus": Link("PUT /sites/<id:site_id>/status", _SITE),
    "SetOpeningHours": Link("PUT /sites/<id:site_id>/opening-hours", _SITE),
    "SetServices": Link("PUT /sites/<id:site_id>/services", _SITE),
    "AddLocations": Link("POST /sites/<id:site_id>/locations", _SITE),
    "ListLocations": Link("GET /sites/<id:site_id>/locations", _SITE),
    "GetOccupancy": Link("GET /sites/<id:site_id>/occupancy", _SITE),
    "GetForecast": Link("GET /sites/<id:site_id>/forecast", _SITE),
    "DeclareClosingDay": Link("POST /sites/<id:site_id>/closing-days", _SITE),
    "ListParcels": Link("GET /sites/<id:site_id>/parcels", _SITE),
    "CheckIn": Link("POST /sites/<id:site_id>/check-ins", _SITE),
}
LOCKER_LINKS = {
    "GetLocker": Link("GET /lockers/<id:site_id>", _SITE),
    "GetSite": Link("GET /sites/<id:site_id>", _SITE),
    "SetStatus": Link("PUT /sites/<id:site_id>/status", _SITE),
}


def _parcel_links(pointer: str) -> dict[str, Link]:
    parcel = {"parcel_id": pointer}
    return {
        "GetParcel": Link("GET /parcels/<id:parcel_id>", parcel),
        "GetEvents": Link("GET /parcels/<id:parcel_id>/events", parcel),
        "Extend": Link("POST /parcels/<id:parcel_id>/extension", parcel),
        "Declare": Link("POST /parcels/<id:parcel_id>/declarations", parcel),
    }


_USER = {"user_id": "$response.body#/id"}
PARCEL_LINKS = _parcel_links("$response.body#/id")
PARCEL_LINKS_FROM_ANSWER = _parcel_links("$response.body#/parcel/id")


# ------------------------------------------------------------------ auth


@endpoint("/auth/token", "POST", summary="Sign in (staff) and get a bearer token", tag="auth",
          body=s.TokenIn, status=201, errors=(401, 429),
          description="Wrong passwords are counted per username and client address: after 5, "
                      "each one doubles the wait before that address may try that username "
                      "again (1 s up to 15 min; 429 with `Retry-After`). Other addresses, "
                      "the owner's included, are not slowed down; a success clears the count.",
          response=r.TokenOut)
def create_token(principal: Principal, body: s.TokenIn) -> Any:
    issued = staff_sign_in.log_in(ctx(), body.username, body.password, client=client_address())
    return 201, {"token": issued.token, "expires_at": issued.expires_at}


# ------------------------------------------------------------------ sites


@endpoint("/sites", "POST", summary="Create a relay shop, a locker or an overflow storage site",
          tag="sites", roles=OPERATOR, body=s.SiteIn, status=201, errors=(409,),
          description="A shop needs its `opening_hours` (its messages state them, its "
                      "deadlines fall on open days); a locker without them is open `24/7`. "
                      "Hours must open at least one day a week. Change them later with "
                      "`PUT /sites/{id}/opening-hours`. A `storage` site (a town hall room, a "
                      "container, a back room opened for the season) is run like a shop "
                      "(shelf `locations`, hours, staff at its counter) and receives parcels "
                      "only when no shop within reach has room (docs/overflow.md); its "
                      "`season` (`from`, `to`, both days included) limits when.",
          response=r.CountedSiteOut, links=SITE_LINKS)
def create_site(principal: Principal, body: s.SiteIn) -> Any:
    data = body.model_dump(mode="json", exclude_none=True, by_alias=True)
    return 201, sites.create_site(ctx(), principal, data)


@endpoint("/sites", summary="Sites, optionally near a point, with room, open now", tag="sites",
          query=s.SitesQuery,
          description="Public: the directory of relay points and lockers. "
                      "`near=lat,lon` sorts by distance and adds `distance_km`; "
                      "`service=send,cold` keeps the sites that offer every service named.",
          response=r.SiteListOut)
def list_sites(principal: Principal, query: s.SitesQuery) -> Any:
    near = tuple(float(x) for x in query.near.split(",")) if query.near else None
    return {"items": site_search.list_sites(
        ctx(), principal, near=near, radius_km=query.radius_km,  # type: ignore[arg-type]
        has_room=query.has_room, open_now=query.open_now, kind=query.kind,
        services=tuple(query.service.split(",")) if query.service else (),
    )}


@endpoint("/sites/<id:site_id>", summary="A site with its occupancy", tag="sites",
          roles=ANY, errors=(404,),
          response=r.CountedSiteOut)
def get_site(principal: Principal, site_id: int) -> Any:
    return sites.get_site(ctx(), principal, site_id)


@endpoint("/sites/<id:site_id>/status", "PUT", summary="Open, close or mark a site saturated",
          tag="sites", roles=OPERATOR, body=s.SiteStatusIn, errors=(404,),
          response=r.SiteOut)
def set_site_status(principal: Principal, site_id: int, body: s.SiteStatusIn) -> Any:
    return sites.set_status(ctx(), principal, site_id, body.status)


@endpoint("/sites/<id:site_id>/opening-hours", "PUT", summary="Set a site's opening hours",
          tag="sites", roles=OPERATOR, body=s.OpeningHoursIn, errors=(404,),
          description="Replaces the site's weekly hours (`24/7`, or day → time ranges, "
                      "local time); they must open at least one day a week. Effective at once "
                      "for `open_now` and the deadlines of later check-ins. A shop that had no "
                      "hours (created before they were required): each parcel waiting there "
                      "whose ready message failed for want of them gets a deadline counted "
                      "from now and its ready message again.",
          response=r.SiteOut)
def set_opening_hours(principal: Principal, site_id: int, body: s.OpeningHoursIn) -> Any:
    return opening_hours.set_opening_hours(ctx(), principal, site_id, body.opening_hours)


@endpoint("/sites/<id:site_id>/services", "PUT", summary="Set the services a site offers",
          tag="sites", roles=STAFF, body=s.SiteServicesIn, errors=(404,),
          description="Replaces what the site offers the public (`receive`, `send`, `cold`, "
                      "`home_delivery`, `locker`); the directory filters on it "
                      "(`GET /sites?service=send,cold`). Its operator or its own shopkeeper.",
          response=r.SiteOut)
def set_site_services(principal: Principal, site_id: int, body: s.SiteServicesIn) -> Any:
    return sites.set_services(ctx(), principal, site_id, list(body.services))


@endpoint("/sites/<id:site_id>/locations", "POST", summary="Add shelf locations to a shop",
          tag="sites", roles=OPERATOR, body=s.LocationsIn, status=201, errors=(404, 409),
          response=r.LocationListOut)
def add_locations(principal: Principal, site_id: int, body: s.LocationsIn) -> Any:
    data = [loc.model_dump() for loc in body.locations]
    return 201, {"items": site_locations.add_locations(ctx(), principal, site_id, data)}


@endpoint("/sites/<id:site_id>/locations", summary="Shelf locations and how full they are",
          tag="sites", roles=STAFF, errors=(404,),
          response=r.LocationListOut)
def list_locations(principal: Principal, site_id: int) -> Any:
    return {"items": site_locations.list_locations(ctx(), principal, site_id)}


@endpoint("/sites/<id:site_id>/occupancy", summary="How full the site is", tag="sites",
          roles=STAFF, errors=(404,),
          response=r.OccupancyOut)
def get_occupancy(principal: Principal, site_id: int) -> Any:
    return site_locations.occupancy(ctx(), principal, site_id)


@endpoint("/sites/<id:site_id>/forecast", summary="Parcels on hand predicted for 7 days",
          tag="sites", roles=STAFF, errors=(404,),
          description="For today and each of the next 7 days: the parcels predicted on hand at "
                      "the day's peak with a 90 % band (`low`, `high`), the capacity, whether the "
                      "site is closed, `at_risk` when the band's top exceeds the capacity, and "
                      "`reserved`: places held that day for rerouted parcels (counted in the "
                      "prediction); `demand_factor`: the season's factor the operator declared "
                      "for the day (1.0: an ordinary day; `/demand-index`); at a locker, "
                      "`free_doors`: its free doors per size class less those held for "
                      "rerouted parcels still to come. See docs/forecast.md.",
          response=r.ForecastOut)
def get_forecast(principal: Principal, site_id: int) -> Any:
    return forecasts.site_forecast(ctx(), principal, site_id)


@endpoint("/sites/<id:site_id>/closing-days", "POST", summary="Declare a closing day",
          tag="sites", roles=STAFF, body=s.ClosingDayIn, status=201, errors=(404, 409),
          response=r.SiteOut,
          links={"WithdrawClosingDay": Link(
              "DELETE /sites/<id:site_id>/closing-days/<date:day>",
              {"site_id": "$response.body#/id", "day": "$request.body#/day"})})
def add_closing_day(principal: Principal, site_id: int, body: s.ClosingDayIn) -> Any:
    return 201, site_calendar.declare_closing_day(ctx(), principal, site_id, body.day, body.reason)


@endpoint("/sites/<id:site_id>/closing-days/<date:day>", "DELETE",
          summary="Withdraw a closing day", tag="sites", roles=STAFF, status=204, errors=(404,))
def remove_closing_day(principal: Principal, site_id: int, day: date) -> Any:
    site_calendar.remove_closing_day(ctx(), principal, site_id, day)
    return 204, None


# ------------------------------------------------------------------ lockers


@endpoint("/lockers", "POST", summary="Register a locker and its compartments", tag="lockers",
          roles=OPERATOR, body=s.LockerIn, status=201, errors=(409,),
          description="Compartments come from `locker_model` (configuration `LOCKER_MODELS`). "
                      "The `code` is also the locker's MQTT id.",
          response=r.LockerOut, links=LOCKER_LINKS)
def register_locker(principal: Principal, body: s.LockerIn) -> Any:
    return 201, locker_registry.register_locker(ctx(), principal, body.model_dump(mode="json"))


@endpoint("/lockers/<id:site_id>", summary="A locker: link, doors, alerts, commands waiting",
          tag="lockers", roles=(Role.OPERATOR, Role.CARRIER), errors=(404,),
          response=r.LockerOut)
def get_locker(principal: Principal, site_id: int) -> Any:
    return locker_views.locker_view(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/compartments/<id:number>/service", "PUT",
          summary="Take a compartment out of service, or put it back", tag="lockers",
          roles=OPERATOR, body=s.CompartmentServiceIn, errors=(404,),
          response=r.CompartmentOut)
def set_compartment_service(principal: Principal, site_id: int, number: int,
                            body: s.CompartmentServiceIn) -> Any:
    return locker_registry.set_compartment_service(ctx(), principal, site_id, number,
                                           in_service=body.in_service, reason=body.reason)


@endpoint("/lockers/alerts/<id:alert_id>/resolution", "POST", summary="Close an alert",
          tag="lockers", roles=OPERATOR, status=204, errors=(404,))
def resolve_alert(principal: Principal, alert_id: int) -> Any:
    locker_registry.resolve_alert(ctx(), principal, alert_id)
    return 204, None


@endpoint("/lockers/<id:site_id>/sessions", "POST", summary="Open a drop-off session",
          tag="lockers", roles=CARRIER, status=201, errors=(404,),
          response=r.LockerSessionOut)
def open_locker_session(principal: Principal, site_id: int) -> Any:
    return 201, locker_dropoff.open_session(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/carrier-code", summary="My offline code at this locker",
          tag="lockers", roles=CARRIER, errors=(404,),
          description="The calling carrier's own code for this locker's keypad (8 digits). "
                      "Typed at the locker, online or offline, it opens the compartments the "
                      "backend reserved for this carrier in advance: expired parcels to take "
                      "back one door after the other, and, for each announced parcel scanned "
                      "next, the door reserved for it (protocol section 7).",
          response=r.KeypadCodeOut)
def locker_carrier_code(principal: Principal, site_id: int) -> Any:
    return locker_carrier_codes.carrier_code_view(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/carrier-code/rotate", "POST",
          summary="Replace my offline code at this locker", tag="lockers", roles=CARRIER,
          errors=(404,),
          description="A new code for the calling carrier at this locker, when the old one may "
                      "be known to someone who should not have it. The locker receives the "
                      "carrier's reservations under the new code in its next credential sync; "
                      "once it has applied it, online or offline, the old code opens nothing.",
          response=r.KeypadCodeOut)
def rotate_locker_carrier_code(principal: Principal, site_id: int) -> Any:
    return locker_carrier_codes.rotate_carrier_code(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/provision", "POST",
          summary="Give the locker a new identity: its provisioning bundle", tag="lockers",
          roles=OPERATOR, errors=(404,),
          description="Makes the locker's event-signing key and broker login and answers the "
                      "bundle to install on the locker (shown once: the backend keeps only the "
                      "public key and the password's hash). Any previous identity stops working "
                      "at once. See docs/locker-protocol.md section 12.",
          response=r.LockerBundleOut)
def provision_locker(principal: Principal, site_id: int) -> Any:
    return locker_identity.provision(ctx(), principal, site_id)


@endpoint("/lockers/<id:site_id>/revoke", "POST",
          summary="Stop trusting the locker (stolen, replaced)", tag="lockers",
          roles=OPERATOR, errors=(404,),
          description="Its events are refused from now on, and its broker login leaves the "
                      "password file written by `relay-ops broker passwd`.",
          response=r.LockerRevokedOut)
def revoke_locker(principal: Principal, site_id: int) -> Any:
    return locker_identity.revoke(ctx(), principal, site_id)


@endpoint("/locker-sessions/<id:session_id>/deposits", "POST",
          summary="Scan a parcel at the locker: a door opens for it", tag="lockers",
          roles=CARRIER, body=s.LockerDepositIn, errors=(404, 409),
          description="The smallest free compartment the parcel fits in (any rotation) is "
                      "reserved and opened. When the locker is full, the parcel is rerouted "
                      "to the nearest locker with room (open, within reach, step-free access "
                      "kept, not flagged by the forecast) with the same pickup credential; "
                      "the answer's `status` is `rerouted` and `rerouted_to` names it, and the "
                      "recipient is told. With nowhere to go, or when it fits no compartment "
                      "at all, it is refused (`parcel-does-not-fit`) and stays with the "
                      "carrier. A parcel addressed to another site: 409 `wrong-site`.",
          response=r.LockerDepositOut)
def locker_deposit(principal: Principal, session_id: int, body: s.LockerDepositIn) -> Any:
    return locker_dropoff.deposit(ctx(), principal, session_id, body.tracking_number)


@endpoint("/locker-sessions/<id:session_id>/collection", "POST",
          summary="Collect the locker's expired and sent parcels, one door at a time",
          tag="lockers",
          roles=CARRIER, errors=(404, 409),
          response=r.LockerSessionOut)
def locker_collection(principal: Principal, session_id: int) -> Any:
    return locker_collections.start_collection(ctx(), principal, session_id)


@endpoint("/locker-sessions/<id:session_id>/close", "POST",
          summary="End the session: unused reservations are released", tag="lockers",
          roles=CARRIER, errors=(404,),
          response=r.LockerSessionOut)
def close_locker_session(principal: Principal, session_id: int) -> Any:
    return locker_dropoff.close_session(ctx(), principal, session_id)


# ------------------------------------------------------------------ counter operations


@endpoint("/sites/<id:site_id>/parcels", summary="Parcels on hand (filters, pages)",
          tag="counter", roles=STAFF, query=s.InventoryQuery, errors=(404,),
          response=r.ParcelPageOut)
def list_site_parcels(principal: Principal, site_id: int, query: s.InventoryQuery) -> Any:
    states = tuple(x for x in (query.state or "").split(",") if x)
    filters = parcel_views.InventoryFilter(
        states=states, expiring_within_hours=query.expiring_within_hours,
        unannounced=query.unannounced, carrier_code=query.carrier,
    )
    page, per_page = pagination(query.page, query.per_page)
    return parcel_views.inventory(ctx(), principal, site_id, filters, page, per_page)


@endpoint("/sites/<id:site_id>/check-ins", "POST", summary="Scan a parcel in", tag="counter",
          roles=STAFF, body=s.CheckInIn, status=201, errors=(404, 409),
          extra_responses={200: "Scanned again: `already_checked_in`, nothing changed"},
          description="Announced parcels become ready_for_pickup with a shelf location, a "
                      "deadline and a pickup code. Scanning again answers `already_checked_in`."
                      " Unannounced parcels need `accept_unannounced: true`. A parcel for a "
                      "recipient who already has a ready parcel here joins that parcel's code "
                      "(and its shelf location when it has room): `parcel.group` lists them. "
                      "Numbers are unique per carrier: when two carriers' parcels here carry "
                      "the scanned number, 409 `ambiguous-tracking-number` lists their "
                      "`carriers` and the scan is sent again with `carrier` (as printed on "
                      "the label); the carriers of parcels at other shops are not listed. "
                      "No place for it: 409 `site-at-capacity` with `nearest_site` (a site "
                      "with room) and, when the shop's next open day is full too, `reroute`: "
                      "what was decided for the parcel before the van leaves, in a "
                      "manifest's shape (another site today, overflow storage, held at the "
                      "depot `until` a day, home delivery, or `no-alternative`); the parcel "
                      "stays announced here unless the decision moved it, an unannounced one "
                      "included (docs/overflow.md, \"At the counter\").",
          response=r.CheckInOut, links=PARCEL_LINKS_FROM_ANSWER)
def check_in(principal: Principal, site_id: int, body: s.CheckInIn) -> Any:
    recipient = (checkin_registration.Recipient(**body.recipient.model_dump())
                 if body.recipient else None)
    dims = tuple(body.dimensions_mm) if body.dimensions_mm else None
    answer = checkin.check_in(
        ctx(), principal, site_id, body.tracking_number,
        accept_unannounced=body.accept_unannounced, size_class=body.size_class,
        dims=dims, recipient=recipient, carrier_code=body.carrier,  # type: ignore[arg-type]
    )
    return (201 if answer["status"] == "checked_in" else 200), answer


@endpoint("/sites/<id:site_id>/pickups", "POST", summary="Hand a parcel over", tag="counter",
          roles=STAFF, body=s.PickupIn, errors=(403, 404, 409, 423, 428),
          description="Give the pickup `code`, alone or with what names the parcel: its "
                      "`tracking_number` or the `recipient_name` (the full name, or the family "
                      "name; accents and case do not matter). A code alone is looked up only "
                      "while every live code at the site has met fewer than "
                      "`PICKUP_CODE_ONLY_MISSES` (default 10) wrong code-alone guesses since it "
                      "was issued; past that it is refused before being read (428 "
                      "`code-needs-tracking-or-name`): ask for the name or the tracking number. "
                      "Wrong codes with a name or tracking number count against those parcels: "
                      "5 lock them (423). See docs/decisions/0004. A locked code needs "
                      "`identity` and `override_lock: true`; a proxy's code needs `identity` "
                      "(428 `identity-check-required`). A shared code hands over every parcel "
                      "it covers that is still ready (`parcels`, one event each); "
                      "`not_handed_over` names those that left the shelf meanwhile, with their "
                      "state.",
          response=r.PickupOut, links=PARCEL_LINKS_FROM_ANSWER)
def pick_up(principal: Principal, site_id: int, body: s.PickupIn) -> Any:
    identity = pickup.IdentityCheck.from_mapping(
        body.identity.model_dump() if body.identity else None
    )
    return pickup.pick_up(
        ctx(), principal, site_id, code=body.code, tracking_number=body.tracking_number,
        recipient_name=body.recipient_name, identity=identity, override_lock=body.override_lock,
    )


@endpoint("/sites/<id:site_id>/collections", summary="Parcels waiting for their carrier",
          tag="counter", roles=ANY, errors=(404,),
          response=r.ParcelListOut)
def collection_list(principal: Principal, site_id: int) -> Any:
    return {"items": expiry.collection_list(ctx(), principal, site_id)}


@endpoint("/sites/<id:site_id>/collections", "POST", summary="Carrier takes parcels back",
          tag="counter", roles=ANY, body=s.CollectionIn, idempotent=True, errors=(404,),
          max_body=MANIFEST_BODY_LIMIT,  # up to 1,000 numbers: a batch, like a manifest
          response=r.CollectedListOut)
def collect(principal: Principal, site_id: int, body: s.CollectionIn) -> Any:
    return {"items": expiry.collect(ctx(), principal, site_id, body.tracking_numbers)}


# ------------------------------------------------------------------ parcels


@endpoint("/parcels", summary="Find a parcel by tracking number", tag="parcels", roles=ANY,
          query=s.ParcelLookupQuery, errors=(404, 409),
          description="Numbers are unique per carrier, not network-wide. A carrier finds its "
                      "own parcels only: another carrier's number answers 404 exactly like a "
                      "number nobody holds. Staff who see two carriers' parcels under one "
                      "number get 409 `ambiguous-tracking-number` with the candidates' "
                      "`carriers`, and ask again with `carrier`.",
          response=r.ParcelOut)
def find_parcel(principal: Principal, query: s.ParcelLookupQuery) -> Any:
    return parcel_views.find_parcel(ctx(), principal, query.tracking_number, query.carrier)


@endpoint("/parcels/<id:parcel_id>", summary="A parcel", tag="parcels", roles=ANY,
          errors=(404,),
          response=r.ParcelOut)
def get_parcel(principal: Principal, parcel_id: int) -> Any:
    return parcel_views.get_parcel(ctx(), principal, parcel_id)


@endpoint("/parcels/<id:parcel_id>/events", summary="A parcel's full history", tag="parcels",
          roles=ANY, errors=(404,),
          response=r.EventListOut)
def parcel_events(principal: Principal, parcel_id: int) -> Any:
    return {"items": parcel_views.parcel_history(ctx(), principal, parcel_id)}


@endpoint("/parcels/<id:parcel_id>/extension", "POST", summary="Extend the holding period once",
          tag="parcels", roles=STAFF, errors=(404, 409),
          response=r.ParcelOut)
def extend_parcel(principal: Principal, parcel_id: int) -> Any:
    return expiry.extend(ctx(), principal, parcel_id)


@endpoint("/parcels/<id:parcel_id>/recipient-refusal", "POST",
          summary="The recipient refuses a ready parcel", tag="parcels", roles=STAFF,
          body=s.RefusalIn, errors=(404, 409),
          description="Wrong item, damaged, unwanted: the parcel goes back as an expired one "
                      "does (its code dies; its carrier, or its producer, takes it back; at a "
                      "locker with its own code). Recorded at the counter by the shop's staff.",
          response=r.ParcelOut)
def refuse_delivery(principal: Principal, parcel_id: int, body: s.RefusalIn) -> Any:
    return expiry.refuse_delivery(ctx(), principal, parcel_id, body.reason)


@endpoint("/parcels/<id:parcel_id>/declarations", "POST", summary="Declare missing or damaged",
          tag="parcels", roles=STAFF, body=s.DeclarationIn, status=201, errors=(404, 409),
          response=r.ParcelOut, links=PARCEL_LINKS)
def declare(principal: Principal, parcel_id: int, body: s.DeclarationIn) -> Any:
    return 201, expiry.declare(ctx(), principal, parcel_id, body.kind, body.note)


@endpoint("/parcels/<id:parcel_id>/reroute", "POST", summary="Accept or refuse a reroute",
          tag="parcels", roles=(Role.CARRIER, Role.OPERATOR), body=s.RerouteDecisionIn,
          idempotent=True, errors=(404, 409),
          description="When an announcement finds the destination full that day and the "
                      "carrier's policy is `confirm`, the answer proposes sites. Send one of "
                      "them as `site`, or `refuse: true` to keep the destination. A site that "
                      "was not proposed, or a parcel already checked in, is refused (409): a "
                      "parcel on a shelf is never moved. An accepted site holds a place for "
                      "the parcel on its day (`reservation`); the counter keeps it for it.",
          response=r.RerouteProposalOut)
def decide_reroute(principal: Principal, parcel_id: int, body: s.RerouteDecisionIn) -> Any:
    accept = body.root if isinstance(body.root, s.RerouteAccept) else None
    return reroute.decide(ctx(), principal, parcel_id,
                          site_code=accept.site if accept else None, refuse=accept is None)


@endpoint("/parcels/<id:parcel_id>/reroutes", summary="A parcel's reroute proposals",
          tag="parcels", roles=(Role.CARRIER, Role.OPERATOR), errors=(404,),
          response=r.RerouteProposalListOut)
def list_reroutes(principal: Principal, parcel_id: int) -> Any:
    return {"items": reroute.list_for_parcel(ctx(), principal, parcel_id)}


# ------------------------------------------------------------------ manifests


@endpoint("/manifests", "POST", summary="Announce a batch of parcels", tag="manifests",
          roles=CARRIER, body=s.ManifestIn, status=201, idempotent=True, errors=(409,),
          max_body=MANIFEST_BODY_LIMIT,
          extra_responses={200: "A replay: the same reference and content, the first answer"},
          description="Each parcel is accepted or rejected with a reason. The same reference "
                      "with the same content replays the first answer (200). Tracking "
                      "numbers are unique per carrier: a number this carrier announced before "
                      "is rejected (`duplicate-tracking-number`), another carrier's parcel "
                      "under the same number is not seen at all (the line is answered as for "
                      "a number nobody holds).",
          response=r.ManifestAnswerOut,
          links={"GetManifest": Link("GET /manifests/<id:manifest_id>",
                                     {"manifest_id": "$response.body#/id"})})
def announce(principal: Principal, body: s.ManifestIn) -> Any:
    return manifests.announce(ctx(), principal, body.as_service_body())


@endpoint("/manifests", summary="The carrier's manifests", tag="manifests",
          roles=(Role.CARRIER, Role.OPERATOR), query=s.PageQuery,
          response=r.ManifestPageOut)
def list_manifests(principal: Principal, query: s.PageQuery) -> Any:
    page, per_page = pagination(query.page, query.per_page)
    return manifests.list_manifests(ctx(), principal, page, per_page)


@endpoint("/manifests/<id:manifest_id>", summary="A manifest and its reconciliation",
          tag="manifests", roles=(Role.CARRIER, Role.OPERATOR), errors=(404,),
          response=r.ManifestOut)
def get_manifest(principal: Principal, manifest_id: int) -> Any:
    return manifests.get_manifest(ctx(), principal, manifest_id)


# ------------------------------------------------------------------ carriers, users


@endpoint("/carriers", "POST", summary="Register a carrier", tag="admin", roles=OPERATOR,
          body=s.CarrierIn, status=201, errors=(409,),
          response=r.CarrierOut,
          links={"IssueKey": Link("POST /carriers/<code>/keys", {"code": "$response.body#/code"})})
def create_carrier(principal: Principal, body: s.CarrierIn) -> Any:
    return 201, accounts.create_carrier(ctx(), principal, **body.model_dump())


@endpoint("/carriers", summary="Carriers", tag="admin", roles=STAFF,
          response=r.CarrierListOut)
def list_carriers(principal: Principal) -> Any:
    return {"items": accounts.list_carriers(ctx(), principal)}


@endpoint("/carriers/<code>/keys", "POST", summary="Issue an API key (shown once)", tag="admin",
          roles=OPERATOR, body=s.KeyIn, status=201, errors=(404,),
          response=r.IssuedKeyOut)
def issue_key(principal: Principal, code: str, body: s.KeyIn) -> Any:
    issued = accounts.issue_carrier_key(ctx(), principal, code, body.label)
    return 201, {"token": issued.token}


@endpoint("/keys/<prefix>", "DELETE", summary="Revoke a key or token", tag="admin",
          roles=OPERATOR, status=204, errors=(404,))
def revoke_key(principal: Principal, prefix: str) -> Any:
    api_tokens.revoke_token(ctx(), principal, prefix)
    return 204, None


@endpoint("/users", "POST", summary="Create a staff account", tag="admin", roles=OPERATOR,
          body=s.UserIn, status=201, errors=(404, 409),
          response=r.UserOut,
          links={"SetActive": Link("PUT /users/<id:user_id>/active", _USER),
                 "SignOut": Link("DELETE /users/<id:user_id>/tokens", _USER)})
def create_user(principal: Principal, body: s.UserIn) -> Any:
    data = body.model_dump()
    return 201, accounts.create_user(
        ctx(), principal, username=data["username"], password=data["password"],
        role=data["role"], display_name=data["display_name"], site_codes=data["sites"],
        locale=data["locale"],
    )


@endpoint("/users", summary="Staff accounts", tag="admin", roles=OPERATOR,
          response=r.UserListOut)
def list_users(principal: Principal) -> Any:
    return {"items": accounts.list_users(ctx(), principal)}


@endpoint("/users/<id:user_id>/active", "PUT", summary="Deactivate or reactivate a staff account",
          tag="admin", roles=OPERATOR, body=s.UserActiveIn, errors=(404, 409),
          description="`active: false` revokes every token the account holds in the same "
                      "transaction: its next request, API or pages, is refused (401). "
                      "`active: true` lets it sign in again; revoked tokens stay revoked. "
                      "An operator cannot deactivate their own account nor the last active "
                      "operator (409).",
          response=r.UserOut)
def set_user_active(principal: Principal, user_id: int, body: s.UserActiveIn) -> Any:
    return accounts.set_active(ctx(), principal, user_id, body.active)


@endpoint("/users/<id:user_id>/tokens", "DELETE", summary="Sign a staff account out everywhere",
          tag="admin", roles=OPERATOR, errors=(404,),
          description="Revokes every token the account holds (API tokens and page sessions); "
                      "the account stays active and may sign in again. Answers how many "
                      "tokens were revoked.",
          response=r.TokensRevokedOut)
def revoke_user_tokens(principal: Principal, user_id: int) -> Any:
    return {"revoked": accounts.revoke_user_tokens(ctx(), principal, user_id)}


# ------------------------------------------------------------------ residents


@endpoint("/track/<token>", summary="A resident's view of their parcel", tag="residents",
          roles=RESIDENT, errors=(404, 410),
          response=r.ResidentParcelOut)
def track(principal: Principal) -> Any:
    return resident.resident_view(ctx(), principal)


@endpoint("/track/<token>/extension", "POST", summary="Ask for the one extension",
          tag="residents", roles=RESIDENT, errors=(404, 409, 410),
          response=r.ParcelOut)
def track_extend(principal: Principal) -> Any:
    assert principal.parcel_id is not None
    return expiry.extend(ctx(), principal, principal.parcel_id)


@endpoint("/track/<token>/refusal", "POST", summary="Refuse your parcel",
          tag="residents", roles=RESIDENT, body=s.RefusalIn, errors=(404, 409, 410),
          description="Wrong item, damaged, unwanted (at a locker: having opened the door, "
                      "leave the parcel inside and close it): the parcel goes back to its "
                      "sender's carrier and your code dies. To send back a parcel you took, "
                      "return it (a drop-off with `reason: return`).",
          response=r.ParcelOut)
def track_refuse(principal: Principal, body: s.RefusalIn) -> Any:
    assert principal.parcel_id is not None
    return expiry.refuse_delivery(ctx(), principal, principal.parcel_id, body.reason)


@endpoint("/track/<token>/proxy", "POST", summary="Name someone to pick up for you",
          tag="residents", roles=RESIDENT, body=s.ProxyIn, status=201, errors=(404, 409, 410),
          response=r.ProxyNamedOut)
def track_proxy(principal: Principal, body: s.ProxyIn) -> Any:
    assert principal.parcel_id is not None
    return 201, credentials.name_proxy(ctx(), principal, principal.parcel_id, body.name)


@endpoint("/track/<token>/qr.png", summary="The pickup QR code (PNG)", tag="residents",
          roles=RESIDENT, errors=(404, 410), media_type="image/png")
def track_qr_png(principal: Principal) -> Any:
    return Response(qr.png(resident.qr_payload(ctx(), principal)), mimetype="image/png")


@endpoint("/track/<token>/qr.svg", summary="The pickup QR code (SVG)", tag="residents",
          roles=RESIDENT, errors=(404, 410), media_type="image/svg+xml")
def track_qr_svg(principal: Principal) -> Any:
    return Response(qr.svg(resident.qr_payload(ctx(), principal)), mimetype="image/svg+xml")


__all__ = ["bp"]
