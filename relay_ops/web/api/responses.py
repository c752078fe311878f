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


class ParcelListOut(Out):
    items: list[ParcelOut]


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


class TokensRevokedOut(Out):
    """``accounts.revoke_user_tokens``: how many tokens stopped working."""

    revoked: int


class ProxyNamedOut(Out):
    """``credentials.name_proxy``: the proxy's name and their own live code."""

    proxy_name: str | None
    proxy_code: str


class NotificationOut(Out):
    """``notify.notification_view``: a message owed for a parcel and what became of it."""

    id: int
    kind: str
    channel: str
    status: str
    attempts: int
    provider_id: str | None
    provider_response: str | None
    error: str | None
    created_at: str
    sent_at: str | None


class NotificationListOut(Out):
    items: list[NotificationOut]


# ---------------------------------------------------------------- jobs (worker/admin.py)


class OutboxCountsOut(Out):
    """``outbox.counts``: job rows per status, and the oldest one waiting."""

    pending: int
    dispatched: int
    done: int
    failed: int
    oldest_waiting_since: str | None


class QueueCountsOut(Out):
    name: str
    queued: int


class JobsOverviewOut(Out):
    """``admin.overview``: ``queues`` and ``redis`` with RQ only (``mode: rq``)."""

    mode: str
    outbox: OutboxCountsOut
    queues: list[QueueCountsOut] | None = None
    redis: str | None = None


class FailedJobOut(Out):
    """``admin._job_view`` (RQ) or ``admin._failing_rows`` (in process, with
    ``next_attempt_at``)."""

    id: str
    queue: str | None
    function: str | None
    args: list[Any]
    outbox_id: int | None
    error: str | None
    enqueued_at: str | None
    ended_at: str | None
    next_attempt_at: str | None = None


class FailedJobListOut(Out):
    items: list[FailedJobOut]


class JobRetriedOut(Out):
    id: str
    status: str


# ---------------------------------------------------------------- home delivery


class HomeOfferOut(Out):
    """``home_delivery._offer_view``: ``offered`` once the site lists ``home_delivery``."""

    site: str
    offered: bool
    days: list[str]
    area: str | None


class HomeParcelOut(Out):
    id: int
    tracking_number: str
    state: str
    location: str | None
    recipient_name: str | None


class CourierOut(Out):
    kind: str
    name: str | None


class HomeDeliveryOut(Out):
    """``home_delivery.delivery_view``; ``courier_url`` for those who hand it to the
    courier (null when the shopkeeper delivers)."""

    id: int
    status: str
    day: str
    parcel: HomeParcelOut
    site: str
    site_name: str
    site_address: str
    requested_by: str
    consent_at: str
    courier: CourierOut
    taken_at: str | None
    closed_at: str | None
    courier_url: str | None = None


class HomeDeliveryListOut(Out):
    items: list[HomeDeliveryOut]


class ResidentHomeDeliveryOut(Out):
    """``home_delivery.for_resident``: the planned delivery, or the days one can be asked
    for."""

    offered: bool
    area: str | None
    days: list[str]
    delivery: HomeDeliveryOut | None


# ---------------------------------------------------------------- no room


class NoRoomPolicyOut(Out):
    """``no_room_policies.policy_view``: null carrier, site or area means every one."""

    id: int
    carrier: str | None
    site: str | None
    area: str | None
    steps: list[str]
    home_size_classes: list[str]
    updated_at: str


class NoRoomPolicyListOut(Out):
    items: list[NoRoomPolicyOut]


class NoRoomDecisionOut(Out):
    """``no_room_policies.decision_view``."""

    id: int
    parcel_id: int
    tracking_number: str
    carrier: str | None
    site: str
    day: str
    step: str
    to_site: str | None
    hold_until: str | None
    policy_id: int | None
    tried: list[Any]
    created_at: str


class NoRoomDecisionListOut(Out):
    items: list[NoRoomDecisionOut]


# ---------------------------------------------------------------- forecasts, reroutes, season


class FlowForecastOut(Out):
    deposits: float
    on_shelves: float


class ForecastDayOut(Out):
    """``forecast_views.day_view`` with the places held for reroutes and the flows."""

    day: str
    predicted: float
    low: int
    high: int
    capacity: int
    arrivals: float
    closed: bool
    at_risk: bool
    reserved: int
    flows: dict[str, FlowForecastOut]
    demand_factor: float


class ForecastOut(Out):
    """``forecast_views.site_forecast``; ``free_doors`` (per size class) at a locker."""

    site: str
    computed_at: str
    days: list[ForecastDayOut]
    days_at_risk: list[str]
    in_vans: dict[str, int]
    free_doors: dict[str, int] | None = None


class ReservationOut(Out):
    """``reservations.view``: a place held for a rerouted parcel."""

    id: int
    site: str | None
    day: str
    status: str


class RerouteOptionOut(Out):
    """``reroute_planner.Option.view``: a site within reach and its forecast that day."""

    site: str
    name: str
    distance_km: float
    predicted: float
    capacity: int


class RerouteProposalOut(Out):
    """``reroute.proposal_view``."""

    id: int
    parcel_id: int
    status: str
    from_site: str | None
    to_site: str | None
    day: str
    reason: str
    options: list[RerouteOptionOut]
    distance_km: float | None
    created_at: str
    decided_at: str | None
    reservation: ReservationOut | None


class RerouteProposalListOut(Out):
    items: list[RerouteProposalOut]


class TemporaryShelfOut(Out):
    """``season.shelf_view``."""

    id: int
    label: str
    size_class: str
    capacity: int
    held: int
    refrigerated: bool
    valid_from: str
    valid_until: str


class TemporaryShelfListOut(Out):
    items: list[TemporaryShelfOut]


class DemandDayOut(Out):
    """``demand_index._view``."""

    day: str
    factor: float
    source: str | None
    declared_at: str


class DemandIndexOut(Out):
    items: list[DemandDayOut]


class DayMissingOut(Out):
    day: str
    missing: int


class ExtraPlacesOut(Out):
    """``season.period_view``."""

    from_: str = Field(alias="from")
    until: str
    places: int
    days: list[DayMissingOut]


class RecommendationOut(Out):
    """``season.recommendations``: a shop's extra places still missing, by period."""

    site: str
    id: int
    name: str
    places: int
    periods: list[ExtraPlacesOut]
    shortened_holding: dict[str, int]
    temporary_shelves: list[TemporaryShelfOut]


class RecommendationListOut(Out):
    items: list[RecommendationOut]


class OverflowDayOut(Out):
    """The shops' expected parcels beyond their places sent to a storage site that day, and
    their standard deviation (``spread``)."""

    day: str
    parcels: float
    spread: float


class ExpectedPlacesOut(Out):
    """The same figures from the expected counts, not the band's quantile."""

    places: int
    periods: list[ExtraPlacesOut]


class StorageRecommendationOut(Out):
    """``season.storage_recommendations``: a storage site's extra places for the overflow of
    the shops within its reach."""

    site: str
    id: int
    name: str
    catchment: list[str]
    overflow: list[OverflowDayOut]
    places: int
    periods: list[ExtraPlacesOut]
    expected: ExpectedPlacesOut


class UnservedShopOut(Out):
    """A shop whose overflow no storage site in season reaches, by period."""

    site: str
    id: int
    name: str
    places: int
    periods: list[ExtraPlacesOut]
    expected: ExpectedPlacesOut


class StorageRecommendationsOut(Out):
    storage: list[StorageRecommendationOut]
    unserved: list[UnservedShopOut]


class PeriodOut(Out):
    from_: str = Field(alias="from")
    to: str


class SiteFlowsOut(Out):
    """A site's figures (``stats.FIGURES``) per period (``today``, ``last_7_days``)."""

    id: int
    code: str
    name: str
    kind: str
    today: dict[str, int]
    last_7_days: dict[str, int]


class FlowVolumesOut(Out):
    """``stats.flow_volumes``."""

    periods: dict[str, PeriodOut]
    figures: list[str]
    sites: list[SiteFlowsOut]
    totals: dict[str, dict[str, int]]


# ---------------------------------------------------------------- lockers


class LockerSessionOut(Out):
    """``locker_dropoff.session_view``; ``to_collect`` once a collection starts."""

    id: int
    site_id: int
    status: str
    opened_at: str
    expires_at: str
    closed_at: str | None
    collect_queue: list[int]
    to_collect: list[str] | None = None


class LockerDepositOut(Out):
    """``locker_dropoff.deposit``: ``door_opening`` with its ``compartment``, or
    ``rerouted`` to the site named in ``rerouted_to`` (the locker is full)."""

    status: str
    session_id: int
    tracking_number: str
    compartment: int | None = None
    size_class: str | None = None
    reason: str | None = None
    rerouted_to: dict[str, Any] | None = None


class KeypadCodeOut(Out):
    """A carrier's or a producer's own code at one locker's keypad."""

    site_id: int
    locker: str
    code: str
    use: str


class BrokerOut(Out):
    url: str
    client_id: str
    username: str
    password: str
    ca_cert: str | None


class LockerBundleOut(Out):
    """``locker_identity.provision``: the locker's identity, shown once."""

    format: str
    locker_id: str
    generation: int
    broker: BrokerOut
    command_keys: list[dict[str, str]]
    event_key: dict[str, str]
    pin_key: dict[str, str]


class LockerRevokedOut(Out):
    locker: str
    revoked_at: str


class CollectedOut(Out):
    """One number of a collection: ``returned`` (or the state it reached) with its
    ``parcel_id``, or ``refused`` with ``reason`` and ``detail``."""

    tracking_number: str
    status: str
    parcel_id: int | None = None
    reason: str | None = None
    detail: str | None = None


class CollectedListOut(Out):
    items: list[CollectedOut]


# ---------------------------------------------------------------- sending


class PickupRoundOut(Out):
    time: str
    at: str
    parcels: int


class PickupParcelOut(OutboundParcelOut):
    """A sent parcel on a pickup list: the round it waits for (null: no rounds here)."""

    overdue: bool
    round: str | None


class PickupListOut(Out):
    """``pickup_lists.pickup_list``: for one carrier, today's ``rounds`` (and the ``round``
    asked for)."""

    site: str
    site_name: str
    items: list[PickupParcelOut]
    rounds: list[PickupRoundOut] | None = None
    round: str | None = None


class CollectionSiteOut(Out):
    """``carrier_sites.collection_sites``."""

    site_id: int
    site: str
    site_name: str
    city: str
    carrier: str
    collection_delay_hours: int
    waiting: int
    rounds: list[str]
    next_round: str | None


class CollectionSiteListOut(Out):
    items: list[CollectionSiteOut]


class ReceiptSiteOut(Out):
    code: str
    name: str
    address: str
    postcode: str
    city: str


class SenderCodeOut(Out):
    """``locker_sending.sender_code``: the drop-off code (and QR image) or the take-back
    code."""

    purpose: str
    code: str
    compartment: int
    valid_until: str | None
    qr_svg_url: str | None


class ReceiptOut(Out):
    """``outbound.receipt``: names nobody; ``locker_code`` at a locker while it has one."""

    tracking_number: str
    state: str
    carrier: str | None
    dropped_off_at: str | None
    collected_at: str | None
    site: ReceiptSiteOut
    locker_code: SenderCodeOut | None


class DropOffLockerOut(Out):
    id: int
    code: str
    name: str
    address: str
    city: str


class LockerDropOffOut(Out):
    """``locker_sending.drop_off_view``: the door held and the sender's drop-off code."""

    status: str
    tracking_number: str
    locker: DropOffLockerOut
    carrier: str | None
    size_class: str | None
    valid_until: str | None
    code: str | None
    qr: str | None
    qr_svg_url: str
    use: str
    receipt_url: str


# ---------------------------------------------------------------- producers' orders


class OrderOut(Out):
    """``producers.order_view``: never the resident's code."""

    reference: str
    label: str
    producer: str
    producer_name: str
    site: str
    site_name: str
    state: str
    size_class: str | None
    keep_cold: bool
    holding_hours: int | None
    sell_by: str | None
    announced_at: str
    deposited_at: str | None
    holding_deadline: str | None
    location: str | None
    compartment: int | None
    closed_at: str | None


class OrderListOut(Out):
    items: list[OrderOut]


class TakeBackOrderOut(OrderOut):
    """An order on its producer's pickup list: where, and whether a locker's door."""

    site_address: str
    at_locker: bool


class TakeBackListOut(Out):
    items: list[TakeBackOrderOut]


class OrderDepositOut(CheckInOut):
    """``producer_counter.deposit``: the check-in's answer and the order."""

    order: OrderOut


class TakenBackOut(Out):
    """One reference of a take-back: ``returned`` with its ``label``, or ``refused`` with
    ``reason`` and ``detail``."""

    reference: str
    status: str
    label: str | None = None
    reason: str | None = None
    detail: str | None = None


class TakenBackListOut(Out):
    items: list[TakenBackOut]
