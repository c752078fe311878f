"""Input schemas of the API (pydantic): validation and the OpenAPI document in one place."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator
from pydantic.json_schema import JsonSchemaValue

from relay_ops.domain.errors import ValidationFailed
from relay_ops.domain.hours import DAYS
from relay_ops.domain.lifecycle import State
from relay_ops.web.api.openapi import VOCABULARY

Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")]
# A day in a query string is text: an ISO date, nothing pydantic would coerce (`0`). The
# pattern lets 30 February through: ``iso_day`` reads it against the calendar.
IsoDay = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$",
                              json_schema_extra={"format": "date"})]


def iso_day(text: str) -> date:
    """An ``IsoDay`` as a date; a day the calendar does not have is a 422."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(f"{text} is not a day (YYYY-MM-DD)") from None
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
# One of the deployment's size classes (SIZE_CLASSES), listed by the served document.
SizeClass = Annotated[str, Field(min_length=1, max_length=8,
                                 json_schema_extra={VOCABULARY: "size_class"})]
# One of the configured locker models (LOCKER_MODELS), listed by the served document.
LockerModel = Annotated[str, Field(min_length=1, max_length=80,
                                   json_schema_extra={VOCABULARY: "locker_model"})]
# Text with something besides whitespace, as the services judge it (str.strip, str.split):
# Python's whitespace, listed (ECMA-262's \s is another set: it has U+FEFF, not U+001C-1F).
BLANKS = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029"
          "\u202f\u205f\u3000")
NOT_BLANK = f"[^{BLANKS}]"
STATES_PATTERN = "^,*(?:(?:{0})(?:,+(?:{0}))*)?,*$".format("|".join(s.value for s in State))
# A phone number or an e-mail address the notifications can use: each pattern is a part of
# what notifications.recipients accepts (normalize_phone, validate_email), so what the
# document allows is sent, and what it forbids is refused (422) before the service.
# Phones: national French (06 12 34 56 78), +33/0033 with an optional trunk 0 or "(0)", or
# another country's +XX and 8 to 15 digits; spaces, dots, dashes or slashes between digits.
_SEP = r"[ ./-]?"
PHONE_PATTERN = (
    rf"^(?:0[1-9](?:{_SEP}[0-9]{{2}}){{4}}"
    rf"|(?:\+|00)33{_SEP}(?:\(0\){_SEP}|0{_SEP})?[1-9](?:{_SEP}[0-9]){{8}}"
    rf"|(?:\+|00)(?!33)[1-9][0-9](?:{_SEP}[0-9]){{6,13}})(?![\s\S])")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
EMAIL_PATTERN = (
    rf"^(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\s\S])")
# The patterns look ahead: a model using them reads patterns with Python's re (the default
# engine has no look-ahead; ECMA-262, which the document follows, has it).
CONTACT_REGEX = ConfigDict(regex_engine="python-re")
Phone = Annotated[str, Field(max_length=32, pattern=PHONE_PATTERN)]
Email = Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]
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
    size_class: SizeClass = "M"
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


def only_when(field: str, value: str, absent: str) -> dict[str, Any]:
    """The document's form of "``absent`` is given (not null) only when ``field`` is
    ``value``": a model's ``json_schema_extra`` for a rule its service checks."""
    return {"anyOf": [{"required": [field], "properties": {field: {"const": value}}},
                      {"properties": {absent: {"type": "null"}}}]}


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
    opening_hours: Hours | None = None
    step_free_access: bool = False
    locations: list[LocationIn] = []
    # What it offers the public; by default "receive" (and "locker" for a locker).
    services: list[Service] | None = None
    season: SeasonIn | None = None

    # A season for a storage site only; a shop or a storage site says when it opens (a
    # locker opens around the clock unless told otherwise).
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        only_when("kind", "storage", "season"),
        # Shelf locations for shops and storage sites; a locker has compartments.
        {"anyOf": [{"required": ["kind"], "properties": {"kind": {"enum": ["shop", "storage"]}}},
                   {"properties": {"locations": {"maxItems": 0}}}]},
        {"anyOf": [{"required": ["kind"], "properties": {"kind": {"const": "locker"}}},
                   {"required": ["opening_hours"],
                    "properties": {"opening_hours": {"not": {"type": "null"}}}}]}]})


# A time of day, and a day's opening hours as the domain reads them (domain.hours). That a
# range ends after it starts relates two items of a list: JSON Schema cannot say it, so the
# service refuses such a range (422) where the document cannot (the fuzz test's hook says so).
HHMM = Annotated[str, Field(pattern=r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$")]
TimeRange = Annotated[list[HHMM], Field(min_length=2, max_length=2)]
Day = Literal[DAYS]  # type: ignore[valid-type]
# Open at least one day of the week (a mapping whose days all have no range never opens).
_OPENS_SOME_DAY = {"anyOf": [{"required": [d], "properties": {d: {"minItems": 1}}}
                             for d in DAYS]}
WeekHours = Annotated[dict[Day, list[TimeRange]], Field(json_schema_extra=_OPENS_SOME_DAY)]
Hours = WeekHours | Literal["24/7"]


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
    size_class: SizeClass | None = None
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
    state: Annotated[str | None, Field(pattern=STATES_PATTERN,
                                       description="comma-separated states")] = None
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
    note: Annotated[str, Field(min_length=1, max_length=300,
                               json_schema_extra={"pattern": NOT_BLANK})]


class RefusalIn(Strict):
    """Why the recipient will not have the parcel (wrong item, damaged, unwanted)."""

    reason: Annotated[str, Field(min_length=1, max_length=280,
                                 json_schema_extra={"pattern": NOT_BLANK})]


class RerouteAccept(Strict):
    site: Code
    refuse: Literal[False] = False


class RerouteRefuse(Strict):
    refuse: Literal[True]


class RerouteDecisionIn(RootModel[RerouteAccept | RerouteRefuse]):
    """Either a proposed `site`, or `refuse: true`: one shape each, so the document says it."""


class ProxyIn(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200,
                               json_schema_extra={"pattern": NOT_BLANK})]


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

    # A shopkeeper is attached to at least one site.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["role"], "properties": {"role": {"const": "operator"}}},
        {"required": ["sites"], "properties": {"sites": {"minItems": 1}}}]})


class UserActiveIn(Strict):
    active: bool


class LockerIn(Strict):
    code: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]  # also its MQTT id
    name: Annotated[str, Field(min_length=1, max_length=200)]
    locker_model: LockerModel
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
    # Out of service: say why (something besides spaces).
    reason: Annotated[str, Field(max_length=200)] | None = None

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"properties": {"in_service": {"const": True}}},
        {"required": ["reason"], "properties": {"reason": {"type": "string",
                                                           "pattern": NOT_BLANK}}}]})


class LockerDepositIn(Strict):
    tracking_number: TrackingNumber
