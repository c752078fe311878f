"""Input schemas of the API (pydantic): validation and the OpenAPI document in one place."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic.json_schema import JsonSchemaValue

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
# A line of a manifest: any text, checked parcel by parcel and reported in the answer.
Tracking = Annotated[str, Field(min_length=1, max_length=64)]
# One parcel named by an operation: 8 to 35 letters and digits once spaces and dashes are
# dropped (domain.tracking.normalise), so a lookup of "j" is refused here, as the document
# says, rather than by the service. An S10-shaped number must also have its check digit.
TrackingNumber = Annotated[str, Field(
    min_length=8, max_length=64, pattern=r"^[\s-]*(?:[A-Za-z0-9][\s-]*){8,35}$",
    description="UPU S10 (with its check digit) or 8 to 35 letters and digits; spaces and "
                "dashes are ignored",
)]
# Latitude within ±90 and longitude within ±180, at most 10 decimals: the pattern is the
# whole rule, so the document and the server check the same thing.
_LAT = r"-?(?:90(?:\.0{1,10})?|[1-8]?[0-9](?:\.[0-9]{1,10})?)"
_LON = r"-?(?:180(?:\.0{1,10})?|(?:1[0-7][0-9]|[1-9]?[0-9])(?:\.[0-9]{1,10})?)"
NEAR_PATTERN = f"^{_LAT},{_LON}$"


class Strict(BaseModel):
    """Unknown fields are refused. ``one_of_fields_required``: at least one of these fields
    must be given (not null); the validator and the document's ``anyOf`` come from that one
    tuple."""

    model_config = ConfigDict(extra="forbid")
    one_of_fields_required: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_of_required(self) -> Strict:
        names = self.one_of_fields_required
        if names and all(getattr(self, n) is None for n in names):
            raise ValueError(f"give at least one of: {', '.join(names)}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.one_of_fields_required:
            target = handler.resolve_ref_schema(schema)
            target["anyOf"] = [{"required": [n], "properties": {n: {"not": {"type": "null"}}}}
                               for n in cls.one_of_fields_required]
        return schema


class LocationIn(Strict):
    label: Annotated[str, Field(min_length=1, max_length=20)]
    size_class: str = "M"
    capacity: Annotated[int, Field(ge=1, le=10_000)]
    # A cold place (a fridge): only such places take "keep cold" items.
    refrigerated: bool = False


Service = Literal["receive", "send", "cold", "home_delivery", "locker"]
# One or more services, comma-separated: the directory's filter.
SERVICES_PATTERN = (r"^(receive|send|cold|home_delivery|locker)"
                    r"(,(receive|send|cold|home_delivery|locker))*$")


class SeasonIn(Strict):
    """The days a storage site takes parcels, both included (either end may be open)."""

    from_: Annotated[date | None, Field(alias="from")] = None
    to: date | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SiteIn(Strict):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    # storage: overflow room opened when shops are full (docs/overflow.md), run like a shop.
    kind: Literal["shop", "locker", "storage"]
    network: str | None = None
    address: Annotated[str, Field(min_length=1, max_length=300)]
    postcode: Annotated[str, Field(min_length=1, max_length=10)]
    city: Annotated[str, Field(min_length=1, max_length=120)]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    area: Literal["town", "countryside"] = "countryside"
    # Required for a shop (checked by the service: lockers default to "24/7").
    opening_hours: dict[str, list[list[str]]] | Literal["24/7"] | None = None
    step_free_access: bool = False
    locations: list[LocationIn] = []
    # What it offers the public; by default "receive" (and "locker" for a locker).
    services: list[Service] | None = None
    season: SeasonIn | None = None


Hours = dict[str, list[list[str]]] | Literal["24/7"]


class OpeningHoursIn(Strict):
    opening_hours: Hours


class LocationsIn(Strict):
    locations: Annotated[list[LocationIn], Field(min_length=1)]


class SiteStatusIn(Strict):
    status: Literal["open", "closed", "saturated"]


class SitesQuery(Strict):
    near: Annotated[str | None, Field(
        pattern=NEAR_PATTERN, description="latitude,longitude in degrees")] = None
    radius_km: Annotated[float | None, Field(gt=0, le=500)] = None
    has_room: bool = False
    open_now: bool = False
    kind: Literal["shop", "locker", "storage"] | None = None
    service: Annotated[str | None, Field(
        pattern=SERVICES_PATTERN,
        description="comma-separated services the site must all offer, e.g. `send,cold`")] = None


class SiteServicesIn(Strict):
    services: Annotated[list[Service], Field(max_length=5)]


class ClosingDayIn(Strict):
    day: date
    reason: Annotated[str | None, Field(max_length=200)] = None


class RecipientIn(Strict):
    name: Annotated[str | None, Field(max_length=200)] = None
    phone: Annotated[str | None, Field(max_length=32)] = None
    email: Annotated[str | None, Field(max_length=254)] = None
    locale: Literal["fr", "en"] = "fr"


Dims = Annotated[list[Annotated[int, Field(gt=0, le=5000)]], Field(min_length=3, max_length=3)]


class CheckInIn(Strict):
    tracking_number: TrackingNumber
    accept_unannounced: bool = False
    size_class: str | None = None
    dimensions_mm: Dims | None = None
    recipient: RecipientIn | None = None
    carrier: Code | None = None


class IdentityIn(Strict):
    document_type: Annotated[str, Field(min_length=1, max_length=40)]
    document_last4: Annotated[str, Field(min_length=4, max_length=4)]
    name: Annotated[str, Field(min_length=1, max_length=200)]


class PickupIn(Strict):
    one_of_fields_required = ("code", "tracking_number")
    # The service keeps the digits of the code: one at least, or there is no code.
    code: Annotated[str | None, Field(max_length=32, pattern=r"[0-9]")] = None
    tracking_number: TrackingNumber | None = None
    recipient_name: Annotated[str | None, Field(max_length=200)] = None
    identity: IdentityIn | None = None
    override_lock: bool = False


class CollectionIn(Strict):
    # Like a manifest's lines: each number is judged and reported on its own.
    tracking_numbers: Annotated[list[Tracking], Field(min_length=1, max_length=1000)]


class InventoryQuery(Strict):
    state: Annotated[str | None, Field(description="comma-separated states")] = None
    expiring_within_hours: Annotated[int | None, Field(ge=0, le=24 * 60)] = None
    unannounced: bool | None = None
    carrier: Code | None = None
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int | None, Field(ge=1, le=500)] = None


class PageQuery(Strict):
    page: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int | None, Field(ge=1, le=500)] = None


class ParcelLookupQuery(Strict):
    tracking_number: TrackingNumber
    # Numbers are unique per carrier: staff who see two carriers' parcels under one number
    # name the carrier (a carrier sees its own alone).
    carrier: Code | None = None


class ManifestParcelIn(Strict):
    tracking_number: Tracking
    site: Annotated[str, Field(max_length=40)]
    recipient: RecipientIn | None = None
    size_class: str | None = None
    dimensions_mm: Dims | None = None
    weight_g: Annotated[int | None, Field(gt=0, le=100_000)] = None
    expected_date: date | None = None


class ManifestIn(Strict):
    reference: Annotated[str, Field(min_length=1, max_length=80)]
    expected_date: date | None = None
    parcels: Annotated[list[ManifestParcelIn], Field(min_length=1, max_length=5000)]

    def as_service_body(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class DeclarationIn(Strict):
    kind: Literal["missing", "damaged"]
    note: Annotated[str, Field(min_length=1, max_length=300)]


class RefusalIn(Strict):
    """Why the recipient will not have the parcel (wrong item, damaged, unwanted)."""

    reason: Annotated[str, Field(min_length=1, max_length=280)]


class RerouteAccept(Strict):
    site: Code
    refuse: Literal[False] = False


class RerouteRefuse(Strict):
    refuse: Literal[True]


class RerouteDecisionIn(RootModel[RerouteAccept | RerouteRefuse]):
    """Either a proposed `site`, or `refuse: true`: one shape each, so the document says it."""


class ProxyIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class TokenIn(Strict):
    username: Annotated[str, Field(min_length=1, max_length=80)]
    password: Annotated[str, Field(min_length=1, max_length=200)]


class CarrierIn(Strict):
    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200)]
    reroute_policy: Literal["confirm", "automatic"] = "confirm"


class KeyIn(Strict):
    label: Annotated[str, Field(max_length=120)] = ""


class UserIn(Strict):
    username: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.@-]+$")]
    password: Annotated[str, Field(min_length=10, max_length=200)]
    role: Literal["operator", "shopkeeper"]
    display_name: Annotated[str, Field(max_length=200)] = ""
    sites: list[Code] = []
    locale: Literal["fr", "en"] = "fr"


class UserActiveIn(Strict):
    active: bool


class LockerIn(Strict):
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]  # also its MQTT id
    name: Annotated[str, Field(min_length=1, max_length=200)]
    locker_model: Annotated[str, Field(min_length=1, max_length=80)]
    network: str | None = None
    address: Annotated[str, Field(min_length=1, max_length=300)]
    postcode: Annotated[str, Field(min_length=1, max_length=10)]
    city: Annotated[str, Field(min_length=1, max_length=120)]
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    area: Literal["town", "countryside"] = "countryside"
    step_free_access: bool = False


class CompartmentServiceIn(Strict):
    in_service: bool
    reason: Annotated[str, Field(max_length=200)] | None = None


class LockerDepositIn(Strict):
    tracking_number: TrackingNumber
