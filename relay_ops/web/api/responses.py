"""Success answers of the API (pydantic), for the OpenAPI document only.

Each model states one shape a service's view function returns (``parcel_views.parcel_view``,
``sites.site_view``...): a field is required when the view always writes it, nullable when it
can write null, and other fields are allowed (``extra="allow"``), so a view that gains a field
does not break its clients' validation. Nothing validates answers at run time: the fuzz test's
``response_schema_conformance`` and tests/integration/test_response_schemas.py check that real
answers conform."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ParcelRefOut(Out):
    """``parcel_views.shelf_ref``: a parcel named on a shelf (a group, a pickup's leftovers)."""

    id: int
    tracking_number: str
    location: str | None
    compartment: int | None


class LeftParcelOut(ParcelRefOut):
    """``parcel_views.left_view``: a parcel of a shared code not handed over, and its state."""

    state: str


class GroupOut(Out):
    size: int
    same_code: bool
    parcels: list[ParcelRefOut]


class ParcelRecipientOut(Out):
    """The recipient as the viewer may see them: the name for staff, the contact details for
    operators and carriers too."""

    name: str | None
    phone: str | None = None
    email: str | None = None
    locale: str | None = None


class ParcelFieldsOut(Out):
    """What ``parcel_views.parcel_view`` writes besides its site."""

    id: int
    tracking_number: str
    state: str
    direction: str
    unannounced: bool
    carrier: str | None
    location: str | None
    compartment: int | None
    size_class: str | None
    expected_date: str | None
    holding_deadline: str | None
    holding_rule: str | None
    extended: bool
    checked_in_at: str | None
    closed_at: str | None
    group: GroupOut | None
    recipient: ParcelRecipientOut | None = None


class ParcelOut(ParcelFieldsOut):
    """``parcel_views.parcel_view``: the site by its code."""

    site: str


class ParcelPageOut(Out):
    items: list[ParcelOut]
    page: int
    per_page: int
    total: int


class ActorOut(Out):
    """Who did it: ``user``, ``carrier``, ``system``... and which one (``user:2``)."""

    kind: str
    id: str | None


class EventOut(Out):
    """``parcel_views.event_view``: one step of a parcel's history."""

    id: int
    at: str
    action: str
    from_state: str | None
    to_state: str
    actor: ActorOut
    site_id: int | None
    reason: str | None
    data: Any


class EventListOut(Out):
    items: list[EventOut]


class CheckInOut(Out):
    """``checkin._check_in_answer``: ``checked_in`` (201) or ``already_checked_in`` (200)."""

    status: str
    parcel: ParcelOut


class PickupOut(Out):
    """``pickup.pick_up``: the parcel named, every parcel its code handed over, and those
    the code covers that had left the shelf."""

    status: str
    parcel: ParcelOut
    parcels: list[ParcelOut]
    not_handed_over: list[LeftParcelOut]


class ClosingDayOut(Out):
    day: str
    reason: str | None


class SeasonOut(Out):
    from_: str | None = Field(alias="from")
    to: str | None


class SiteOut(Out):
    """``sites.site_view``; ``capacity``, ``held`` and ``free`` when its occupancy is counted,
    ``season`` when the site has one."""

    id: int
    code: str
    name: str
    kind: str
    network: str | None
    address: str
    postcode: str
    city: str
    latitude: float
    longitude: float
    area: str
    # "24/7", day -> ranges, or null for a shop created before hours were required.
    opening_hours: dict[str, list[list[str]]] | str | None
    step_free_access: bool
    services: list[str]
    status: str
    closing_days: list[ClosingDayOut]
    season: SeasonOut | None = None
    capacity: int | None = None
    held: int | None = None
    free: int | None = None


class CountedSiteOut(SiteOut):
    """A site with its occupancy counted (``get_site``, ``create_site``)."""

    capacity: int
    held: int
    free: int


class DirectorySiteOut(CountedSiteOut):
    """An entry of the directory: ``distance_km`` when asked ``near`` a point."""

    open_now: bool
    distance_km: float | None = None


class SiteListOut(Out):
    items: list[DirectorySiteOut]


class LocationOut(Out):
    """``sites.locations_view``: a shelf location and how many parcels it holds."""

    id: int
    label: str
    size_class: str
    capacity: int
    used: int
    active: bool
    refrigerated: bool
    valid_from: str | None
    valid_until: str | None


class LocationListOut(Out):
    items: list[LocationOut]


class OccupancyOut(Out):
    site: str
    capacity: int
    held: int
    free: int
    ratio: float | None
    by_state: dict[str, int]
    locations: list[LocationOut]


class CompartmentOut(Out):
    """``locker_views.compartment_view``."""

    number: int
    size_class: str
    dims_mm: list[int]
    state: str
    refrigerated: bool
    fault_reason: str | None
    reserved_until: str | None
    parcel: str | None
    parcel_id: int | None
    parcels: list[str]
    opened_for: str | None


class LockerOut(CountedSiteOut):
    """``locker_views.locker_view_in``: the site, its link, doors and waiting commands; its
    open ``alerts`` for operators (carriers do not see them)."""

    locker_model: str | None
    link: dict[str, Any]
    commands_waiting: int
    compartments: list[CompartmentOut]
    alerts: list[dict[str, Any]] | None = None


class ManifestLineOut(Out):
    """``manifests._result``: ``accepted`` with ``parcel_id``, or ``rejected`` with
    ``reason`` and ``detail``."""

    index: int
    tracking_number: str
    status: str
    parcel_id: int | None = None
    state: str | None = None
    reconciled: bool | None = None
    reason: str | None = None
    detail: str | None = None


class ManifestAnswerOut(Out):
    """``manifests.announce``: the first answer, replayed as it was for the same content."""

    id: int
    reference: str
    expected_date: str | None
    accepted: int
    rejected: int
    parcels: list[ManifestLineOut]


class ManifestOut(Out):
    """``manifests.get_manifest``: a manifest and its reconciliation."""

    id: int
    reference: str
    expected_date: str | None
    created_at: str
    expected: int
    checked_in: int
    not_arrived: list[str]
    rejected: list[ManifestLineOut]
    reconciled: list[str]
    by_state: dict[str, int]
    parcels: list[ParcelOut]


class ManifestSummaryOut(Out):
    id: int
    reference: str
    expected_date: str | None
    accepted: int | None
    rejected: int | None


class ManifestPageOut(Out):
    items: list[ManifestSummaryOut]
    page: int
    per_page: int


class CarrierOut(Out):
    """``accounts.carrier_view``."""

    id: int
    code: str
    name: str
    reroute_policy: str


class CarrierListOut(Out):
    items: list[CarrierOut]


class UserOut(Out):
    """``accounts.user_view``."""

    id: int
    username: str
    display_name: str
    role: str
    locale: str
    sites: list[str]
    active: bool


class UserListOut(Out):
    items: list[UserOut]


class TokenOut(Out):
    token: str
    expires_at: str


class IssuedKeyOut(Out):
    token: str


class OutboundParcelOut(Out):
    """``outbound.outbound_view``: a sent parcel as staff and its carrier see it; ``overdue``
    in the list of late ones."""

    id: int
    tracking_number: str
    direction: str
    state: str
    site: str
    carrier: str | None
    location: str | None
    size_class: str | None
    dropped_off_at: str | None
    collect_by: str | None
    overdue_since: str | None
    reason: str | None
    closed_at: str | None
    overdue: bool | None = None


class OutboundParcelListOut(Out):
    items: list[OutboundParcelOut]


class DropOffOut(Out):
    """``outbound._deposit_answer``: ``dropped_off`` (201) or ``already_dropped_off`` (200)."""

    status: str
    parcel: OutboundParcelOut
    receipt_url: str


class LabelNetworksOut(Out):
    carrier: str
    label_networks: list[str]


class CarrierServiceOut(Out):
    """``carrier_sites._service_view``: a carrier collecting sent parcels at a shop."""

    carrier: str
    name: str
    label_networks: list[str]
    collection_delay_hours: int
    rounds: list[str]


class CarrierServiceListOut(Out):
    items: list[CarrierServiceOut]


class ProducerOut(Out):
    """``producers.producer_view``."""

    id: int
    code: str
    name: str


class ProducerListOut(Out):
    items: list[ProducerOut]


class ProxyOut(Out):
    name: str | None


class ResidentParcelOut(ParcelFieldsOut):
    """``resident.resident_view``: the parcel with its whole site, the recipient's live code
    and QR code (null until it arrives, and once it is gone), whether it can be extended, and
    the proxy named."""

    site: SiteOut
    pickup_code: str | None
    qr_url: str | None
    can_extend: bool
    proxy: ProxyOut | None
