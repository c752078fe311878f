"""SQLAlchemy 2.x typed models.

Names follow DESIGN section 2. Timestamps are always timezone-aware UTC. Personal data lives
only in the ``recipient_*`` and ``holder_name`` columns, which the retention purge erases; the
event log never copies it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from relay_ops.db.database import CLOCK_KEY

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def stamp_now(context: DefaultExecutionContext) -> datetime:
    """A row's default time: the clock of the Database whose connection writes it."""
    now: datetime = context.connection.info[CLOCK_KEY]()
    return now


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Site(Base):
    __tablename__ = "sites"
    # The reroute planner asks for the sites in a box of coordinates around a full site
    # (domain/geo.box_around): a national network's others are left out by the index.
    __table_args__ = (Index("ix_sites_latitude_longitude", "latitude", "longitude"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # shop | locker | storage (domain/site_kinds)
    network: Mapped[str | None] = mapped_column(String(80))
    address: Mapped[str] = mapped_column(String(300))
    postcode: Mapped[str] = mapped_column(String(10))
    city: Mapped[str] = mapped_column(String(120))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    # town or countryside: decides how far a reroute may send a parcel.
    area: Mapped[str] = mapped_column(String(12), default="countryside")
    opening_hours: Mapped[Any] = mapped_column(JSON)
    step_free_access: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(12), default="open")  # open|closed|saturated
    locker_model: Mapped[str | None] = mapped_column(String(80))
    # What it offers the public (domain/site_services.SERVICES): the directory filters on it.
    services: Mapped[list[Any]] = mapped_column(default=list)
    # A storage site opened for a season takes parcels only between these days (included).
    season_from: Mapped[date | None] = mapped_column(Date)
    season_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)

    locations: Mapped[list[Location]] = relationship(
        back_populates="site", order_by="Location.label"
    )
    closing_days: Mapped[list[ClosingDay]] = relationship(order_by="ClosingDay.day")

    @property
    def postal_address(self) -> str:
        """The address on one line, as a message or a courier reads it."""
        return f"{self.address}, {self.postcode} {self.city}"


class ClosingDay(Base):
    __tablename__ = "closing_days"
    __table_args__ = (UniqueConstraint("site_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(200))


class Location(Base):
    """A shelf slot in a shop, labelled like ``A3``, holding up to ``capacity`` parcels."""

    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("site_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(20))
    size_class: Mapped[str] = mapped_column(String(8))
    capacity: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Parcels held here now (a held state and this location), kept by history.apply in the
    # transaction that moves a parcel in or out: the shelf policy reads it instead of counting
    # every held parcel of the shop at each check-in (issue 15).
    held: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A cold place (a fridge): only such places take "keep cold" items (domain/sizing.py).
    refrigerated: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # A temporary shelf (a season's back room): it takes parcels and counts as capacity only
    # from valid_from to valid_until, both included; NULL both: a permanent location.
    valid_from: Mapped[date | None] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)

    site: Mapped[Site] = relationship(back_populates="locations")


class Compartment(Base):
    """A locker door. Several parcels of one recipient may share one (never assume one)."""

    __tablename__ = "compartments"
    __table_args__ = (UniqueConstraint("site_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    size_class: Mapped[str] = mapped_column(String(8))
    height_mm: Mapped[int] = mapped_column(Integer)
    width_mm: Mapped[int] = mapped_column(Integer)
    depth_mm: Mapped[int] = mapped_column(Integer)
    # free | reserved | occupied | door_open | out_of_service
    state: Mapped[str] = mapped_column(String(16), default="free")
    reserved_until: Mapped[datetime | None]
    fault_reason: Mapped[str | None] = mapped_column(String(200))
    # The drop-off session holding the reservation (released when the session ends).
    reserved_session_id: Mapped[int | None] = mapped_column(
        ForeignKey("locker_sessions.id", ondelete="SET NULL")
    )
    # Why the door was last opened (deposit|pickup|collection|maintenance), and when: the
    # door_closed event is interpreted with it.
    opened_for: Mapped[str | None] = mapped_column(String(12))
    door_opened_at: Mapped[datetime | None]
    # A cold door: only such doors take producers' "keep cold" orders (domain/sizing.py).
    refrigerated: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )


class Carrier(Base):
    __tablename__ = "carriers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # automatic: reroutes happen at once; confirm: the carrier confirms each proposal
    reroute_policy: Mapped[str] = mapped_column(String(12), default="confirm")
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    # The label networks whose parcels it collects from sites (domain/outbound.py specs:
    # "upu-s10", "upu-s10:FR", "prefix:MR").
    label_networks: Mapped[list[Any]] = mapped_column(default=list)


class Producer(Base):
    """A local producer selling online: it announces orders that its customers collect at a
    shop, and takes back the ones nobody collected (docs/producers.md)."""

    __tablename__ = "producers"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(12))  # operator | shopkeeper
    locale: Mapped[str] = mapped_column(String(5), default="fr")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)

    sites: Mapped[list[Site]] = relationship(secondary="user_sites")


class UserSite(Base):
    __tablename__ = "user_sites"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """A bearer credential ``<prefix>.<secret>``: carriers' API keys and staff sessions."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    producer_id: Mapped[int | None] = mapped_column(
        ForeignKey("producers.id", ondelete="CASCADE")
    )
    label: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Manifest(Base):
    __tablename__ = "manifests"
    __table_args__ = (UniqueConstraint("carrier_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id"))
    reference: Mapped[str] = mapped_column(String(80))
    expected_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    # The announcement is replayed, not re-run, when the same reference comes again.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]]


READY_WITH_PHONE_KEY = "state = 'ready_for_pickup' AND recipient_phone_key IS NOT NULL"
READY_WITH_EMAIL_KEY = "state = 'ready_for_pickup' AND recipient_email_key IS NOT NULL"
NO_CARRIER = "carrier_id IS NULL"
SENT = "direction = 'outbound'"


class Parcel(Base):
    __tablename__ = "parcels"
    __table_args__ = (
        Index("ix_parcels_site_state", "site_id", "state"),
        Index("ix_parcels_state_deadline", "state", "holding_deadline"),
        # The grouping lookup at check-in: a ready parcel here for the same recipient. Partial,
        # so they stay as small as the shelves, however many parcels the table keeps.
        Index("ix_parcels_ready_phone_key", "site_id", "recipient_phone_key",
              postgresql_where=text(READY_WITH_PHONE_KEY), sqlite_where=text(READY_WITH_PHONE_KEY)),
        Index("ix_parcels_ready_email_key", "site_id", "recipient_email_key",
              postgresql_where=text(READY_WITH_EMAIL_KEY), sqlite_where=text(READY_WITH_EMAIL_KEY)),
        # A tracking number is unique per carrier, not network-wide: two carriers may print
        # the same number, and a carrier learns nothing of another's numbers by announcing
        # one (docs/decisions/0007-tracking-numbers-per-carrier.md). Number first: the index
        # also serves every lookup by number alone (a scan at the counter).
        UniqueConstraint("tracking_number", "carrier_id",
                         name="uq_parcels_tracking_number_carrier_id"),
        # Parcels of no carrier (registered unannounced without one, producers' orders) stay
        # unique among themselves: NULLs are distinct in the constraint above.
        Index("uq_parcels_tracking_number_no_carrier", "tracking_number", unique=True,
              postgresql_where=text(NO_CARRIER), sqlite_where=text(NO_CARRIER)),
        # The forecast's learning reads a site's parcels by their first attempt there and by
        # their check-in, in its windows (services/forecast_learning.py).
        Index("ix_parcels_first_attempt", "first_attempt_site_id", "first_attempt_at"),
        Index("ix_parcels_site_first_check_in", "site_id", "first_check_in_at"),
        # Its flows (services/forecast_flows.py): a site's sent parcels by their deposit, its
        # producers' orders (parcels of no carrier) by their check-in. Partial, so reading
        # them never walks the site's received parcels.
        Index("ix_parcels_sent_site_checked_in", "site_id", "checked_in_at",
              postgresql_where=text(SENT), sqlite_where=text(SENT)),
        Index("ix_parcels_no_carrier_site_first_check_in", "site_id", "first_check_in_at",
              postgresql_where=text(NO_CARRIER), sqlite_where=text(NO_CARRIER)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(35))
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id"))
    manifest_id: Mapped[int | None] = mapped_column(ForeignKey("manifests.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    compartment_id: Mapped[int | None] = mapped_column(ForeignKey("compartments.id"))
    state: Mapped[str] = mapped_column(String(24))
    direction: Mapped[str] = mapped_column(String(10), default="inbound")
    unannounced: Mapped[bool] = mapped_column(Boolean, default=False)
    recipient_name: Mapped[str | None] = mapped_column(String(200))
    recipient_phone: Mapped[str | None] = mapped_column(String(32))
    recipient_email: Mapped[str | None] = mapped_column(String(254))
    recipient_locale: Mapped[str] = mapped_column(String(5), default="fr")
    # Keyed hashes of the normalised phone and e-mail (domain/credentials.recipient_key): a
    # later parcel for the same recipient finds this one's pickup code without comparing
    # (or keeping) the plain address. Erased with the personal data.
    recipient_phone_key: Mapped[str | None] = mapped_column(String(64))
    recipient_email_key: Mapped[str | None] = mapped_column(String(64))
    size_class: Mapped[str | None] = mapped_column(String(8))
    height_mm: Mapped[int | None]
    width_mm: Mapped[int | None]
    depth_mm: Mapped[int | None]
    weight_g: Mapped[int | None]
    expected_date: Mapped[date | None] = mapped_column(Date)
    holding_deadline: Mapped[datetime | None]
    # The rule that set the holding period at check-in (standard, season, load, forecast,
    # perishable), and the reminder it brought forward (NULL: the site kind's usual one).
    holding_rule: Mapped[str | None] = mapped_column(String(16))
    reminder_before_hours: Mapped[int | None] = mapped_column(Integer)
    extended: Mapped[bool] = mapped_column(Boolean, default=False)
    checked_in_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    personal_data_purged_at: Mapped[datetime | None]
    # The parcel's firsts, as its events say, kept on its row by the statement that writes
    # the event (``history``): the forecast learns from a site's 100,000 parcels grouped by
    # these, without looking up each one's events (issue 15). Its first attempt (check-in,
    # or refusal for lack of room) and where; its first check-in; its first announcement;
    # its first ending (an action of ``history.ENDINGS``) and when.
    first_attempt_at: Mapped[datetime | None]
    first_attempt_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    first_check_in_at: Mapped[datetime | None]
    announced_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ending: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    updated_at: Mapped[datetime] = mapped_column(default=stamp_now, onupdate=stamp_now)

    site: Mapped[Site] = relationship(foreign_keys=[site_id])
    location: Mapped[Location | None] = relationship()
    compartment: Mapped[Compartment | None] = relationship()
    carrier: Mapped[Carrier | None] = relationship()
    # A producer's order: what it has beyond a parcel row (None for every other parcel).
    producer_order: Mapped[ProducerOrder | None] = relationship(viewonly=True)
    credentials: Mapped[list[PickupCredential]] = relationship(
        secondary="credential_parcels", order_by="PickupCredential.id", viewonly=True
    )


LIVE_CODE = "used_at IS NULL AND revoked_at IS NULL"


class PickupCredential(Base):
    """A pickup code (and QR token) for the recipient or a proxy they named."""

    __tablename__ = "pickup_credentials"
    __table_args__ = (
        Index("ix_pickup_credentials_site_hash", "site_id", "code_hash"),
        # The oldest live code at a site, which every pickup by code alone asks
        # (services/throttle.py): partial, so it is as small as the shelves and the answer
        # one index entry, however many codes the site has spent (issue 15: a scan of the
        # site's codes grew with every parcel on hand).
        Index("ix_pickup_credentials_live_site_created", "site_id", "created_at",
              postgresql_where=text(LIVE_CODE), sqlite_where=text(LIVE_CODE)),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    holder: Mapped[str] = mapped_column(String(10))  # recipient | proxy
    holder_name: Mapped[str | None] = mapped_column(String(200))
    nonce: Mapped[str] = mapped_column(String(64))
    code_hash: Mapped[str] = mapped_column(String(64))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The id (jti) of the signed QR token of a locker parcel: spent once, looked up on scan.
    token_jti: Mapped[str | None] = mapped_column(String(36), unique=True)
    locked_at: Mapped[datetime | None]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)

    # Every parcel the code hands over, the first (``parcel_id``) included: at a shop, later
    # parcels for the same recipient join it (docs/forecast.md, "Parcels grouped").
    parcels: Mapped[list[Parcel]] = relationship(
        secondary="credential_parcels", order_by="Parcel.id", viewonly=True
    )

    @property
    def live(self) -> bool:
        return self.used_at is None and self.revoked_at is None


class CredentialParcel(Base):
    """One parcel a pickup credential covers (a credential covers one or several)."""

    __tablename__ = "credential_parcels"
    __table_args__ = (Index("ix_credential_parcels_parcel", "parcel_id"),)

    credential_id: Mapped[int] = mapped_column(
        ForeignKey("pickup_credentials.id", ondelete="CASCADE"), primary_key=True
    )
    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(default=stamp_now)


class ParcelEvent(Base):
    """Append-only history: the audit log and the source of every statistic."""

    __tablename__ = "parcel_events"
    __table_args__ = (
        Index("ix_parcel_events_parcel", "parcel_id", "id"),
        Index("ix_parcel_events_site_at", "site_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=stamp_now)
    action: Mapped[str] = mapped_column(String(32))
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str] = mapped_column(String(24))
    actor_kind: Mapped[str] = mapped_column(String(12))
    actor_id: Mapped[str | None] = mapped_column(String(80))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    reason: Mapped[str | None] = mapped_column(String(300))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Notification(Base):
    """A message owed to a resident; one row per (parcel, purpose), so it is sent once."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # ready | reminder | expired | picked_up ...
    channel: Mapped[str] = mapped_column(String(8))  # email | sms
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    # queued | sent | failed | skipped (no longer applies, e.g. "ready" after the pickup)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    provider_response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    sent_at: Mapped[datetime | None]


class OutboxMessage(Base):
    """Work owed to another process (a job, a locker command), written with its state change."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available", "status", "available_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # job | locker_command
    name: Mapped[str] = mapped_column(String(80))
    target: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    available_at: Mapped[datetime] = mapped_column(default=stamp_now)
    dispatched_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    # Locker commands: the transaction id the locker answers with (cmd_result.corr_id).
    corr_id: Mapped[str | None] = mapped_column(String(36), unique=True)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("principal", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    principal: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)


class SiteForecast(Base):
    """The latest occupancy forecast of a site for one day (see docs/forecast.md)."""

    __tablename__ = "site_forecasts"
    __table_args__ = (UniqueConstraint("site_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    computed_at: Mapped[datetime] = mapped_column(default=stamp_now)
    predicted: Mapped[float] = mapped_column(Float)
    low: Mapped[int] = mapped_column(Integer)
    high: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    arrivals: Mapped[float] = mapped_column(Float)
    closed: Mapped[bool] = mapped_column(Boolean)
    at_risk: Mapped[bool] = mapped_column(Boolean)


class DemandDay(Base):
    """A day's demand against an ordinary day (1.0), declared network-wide: the season's
    shape the forecast follows (domain/demand_index.py, docs/forecast.md)."""

    __tablename__ = "demand_index"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    factor: Mapped[float] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(200))  # e.g. "network volumes 2025"
    declared_at: Mapped[datetime] = mapped_column(default=stamp_now)


class RerouteProposal(Base):
    """A parcel announced to a site the forecast sees full, and where it could go instead.

    ``status``: proposed (the carrier decides), accepted, refused, automatic (the carrier's
    policy rerouted it at once), withdrawn (the parcel arrived or moved before a decision).
    """

    __tablename__ = "reroute_proposals"
    __table_args__ = (Index("ix_reroute_proposals_parcel", "parcel_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    from_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    to_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    day: Mapped[date] = mapped_column(Date)
    # [{"site": code, "name", "distance_km", "predicted", "capacity"}], nearest first
    options: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(10), default="proposed")
    reason: Mapped[str] = mapped_column(String(300))
    distance_km: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    decided_at: Mapped[datetime | None]


class NoRoomPolicy(Base):
    """What happens to a parcel when its site is expected full and no site within reach has
    room, for a carrier (None: every carrier) and a territory (a site, an area, or everywhere):
    ``steps`` in order among storage, hold, home (domain/no_room.py, docs/overflow.md)."""

    __tablename__ = "no_room_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    # domain/no_room.Scope.key(): one policy per carrier and territory.
    scope_key: Mapped[str] = mapped_column(String(60), unique=True)
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id", ondelete="CASCADE"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    area: Mapped[str | None] = mapped_column(String(12))
    steps: Mapped[list[Any]] = mapped_column(default=list)
    # The carrier's contract delivers at home parcels of these size classes (empty: any).
    home_size_classes: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime] = mapped_column(default=stamp_now, onupdate=stamp_now)

    carrier: Mapped[Carrier | None] = relationship()
    site: Mapped[Site | None] = relationship()


class NoRoomDecision(Base):
    """One parcel's fate when no site within reach had room: ``step`` storage (``to_site_id``),
    hold (``hold_until``: the day room is expected at ``site_id``), home, or none (the policy
    had no step that could take it, or there was no policy)."""

    __tablename__ = "no_room_decisions"
    __table_args__ = (
        Index("ix_no_room_decisions_site_day", "site_id", "day"),
        Index("ix_no_room_decisions_carrier_day", "carrier_id", "day"),
        Index("ix_no_room_decisions_parcel", "parcel_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    carrier_id: Mapped[int | None] = mapped_column(ForeignKey("carriers.id"))
    policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("no_room_policies.id", ondelete="SET NULL"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))  # where it was expected
    day: Mapped[date] = mapped_column(Date)  # the day it was expected there
    step: Mapped[str] = mapped_column(String(10))  # storage | hold | home | none
    to_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    hold_until: Mapped[date | None] = mapped_column(Date)
    # The steps tried before the one that decided, and why each could not take the parcel.
    tried: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)

    parcel: Mapped[Parcel] = relationship()
    site: Mapped[Site] = relationship(foreign_keys=[site_id])
    to_site: Mapped[Site | None] = relationship(foreign_keys=[to_site_id])
    carrier: Mapped[Carrier | None] = relationship()


class PlaceReservation(Base):
    """One place promised at a site for one day to a parcel sent there by a reroute (room
    promised is room held, docs/forecast.md): the forecast, the planner and the check-in all
    count it. At a locker the place is a door: the moved parcel's door reserved ahead
    (``Parcel.compartment_id``) until the place lapses; the planner counts a door for the
    places that hold none yet.

    ``status``: held (the parcel is expected), used (it was checked in), lapsed (its day and
    the grace passed without it), released (the parcel went elsewhere, the proposal was
    refused or decided another way, or the parcel is no longer announced).
    """

    __tablename__ = "place_reservations"
    __table_args__ = (
        Index("ix_place_reservations_site_id", "site_id", "status", "day"),
        Index("ix_place_reservations_parcel_id", "parcel_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    proposal_id: Mapped[int | None] = mapped_column(
        ForeignKey("reroute_proposals.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default="held")
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    decided_at: Mapped[datetime | None]

    # A place may be held for a proposal not yet written: the flush writes both, in order.
    proposal: Mapped[RerouteProposal | None] = relationship()


class FailedAttempt(Base):
    """A refused guess (a pickup code at a site, a password for a username), for throttling."""

    __tablename__ = "failed_attempts"
    __table_args__ = (Index("ix_failed_attempts_scope_key_at", "scope", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(default=stamp_now)


class UnannouncedScan(Base):
    """A parcel scanned at a shop that no carrier announced, waiting for the shopkeeper to
    accept it or set it aside. Kept here, not in the page, so that a reload or a trip to the
    pickup screen does not forget a parcel lying on the counter."""

    __tablename__ = "unannounced_scans"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    tracking_number: Mapped[str] = mapped_column(String(35), primary_key=True)
    scanned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    scanned_at: Mapped[datetime] = mapped_column(default=stamp_now)


class CarrierCode(Base):
    """A carrier's offline code at a locker, rotated: the code is derived, never stored; a
    new generation derives another (none stored: generation 0, the first code)."""

    __tablename__ = "carrier_codes"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    carrier_id: Mapped[int] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, default=1)
    rotated_at: Mapped[datetime] = mapped_column(default=stamp_now)


class LockerLink(Base):
    """What the backend knows of a locker's link: online, boot, credentials it holds."""

    __tablename__ = "locker_links"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    status_since: Mapped[datetime | None]
    # the locker's `ts` of the last status applied: retained copies never roll it back
    status_ts: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    boot_id: Mapped[str | None] = mapped_column(String(64))
    credential_version_sent: Mapped[int] = mapped_column(Integer, default=0)
    credential_version_held: Mapped[int | None] = mapped_column(Integer)
    unacked_events: Mapped[int] = mapped_column(Integer, default=0)
    last_event_boot: Mapped[str | None] = mapped_column(String(64))
    last_event_seq: Mapped[int | None] = mapped_column(Integer)
    last_event_at: Mapped[datetime | None]
    clock_skew_s: Mapped[float | None] = mapped_column(Float)
    # A state snapshot made while earlier boots still had entries to replay is not reconciled
    # (they would change the backend's state first): the boot that reported it, and the sum
    # of the other boots' cursors that means they are all applied (services.locker_events).
    snapshot_waiting_boot: Mapped[str | None] = mapped_column(String(64))
    snapshot_waiting_until: Mapped[int | None] = mapped_column(Integer)
    # The locker's identity (protocol section 12): the public half of its event-signing key
    # (None: never provisioned, its events are refused), its broker login, and when it was
    # provisioned or revoked. A revoked locker's events are refused.
    event_key: Mapped[str | None] = mapped_column(String(64))
    identity_generation: Mapped[int] = mapped_column(Integer, default=0)
    provisioned_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    broker_username: Mapped[str | None] = mapped_column(String(80))
    broker_password_hash: Mapped[str | None] = mapped_column(String(200))
    # The last counter given to a command for this locker (signed; the locker refuses one it
    # has passed).
    command_counter: Mapped[int] = mapped_column(BigInteger, default=0)


class LockerEventCursor(Base):
    """Events of one (locker, boot) are applied in seq order; this is the highest applied."""

    __tablename__ = "locker_event_cursors"
    __table_args__ = (UniqueConstraint("site_id", "boot_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    boot_id: Mapped[str] = mapped_column(String(64))
    applied_seq: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=stamp_now)


class LockerSession(Base):
    """A carrier at a locker: drop-offs and collections. Its reservations die with it."""

    __tablename__ = "locker_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    carrier_id: Mapped[int] = mapped_column(ForeignKey("carriers.id"))
    status: Mapped[str] = mapped_column(String(10), default="open")  # open|closed|timed_out
    opened_at: Mapped[datetime] = mapped_column(default=stamp_now)
    expires_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # parcel ids still to collect, opened one door at a time
    collect_queue: Mapped[list[Any]] = mapped_column(default=list)


class LockerAlert(Base):
    """Something at a locker an operator must look at (a door left open, a parcel left...)."""

    __tablename__ = "locker_alerts"
    __table_args__ = (Index("ix_locker_alerts_site_open", "site_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    compartment: Mapped[int | None] = mapped_column(Integer)
    parcel_id: Mapped[int | None] = mapped_column(ForeignKey("parcels.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)
    resolved_at: Mapped[datetime | None]
    # One open alert per (locker, kind, door, parcel): a repeat counts here instead.
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    last_seen_at: Mapped[datetime | None]


class CarrierSite(Base):
    """A carrier collects sent parcels at a site, within its agreed delay after each deposit."""

    __tablename__ = "carrier_sites"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    carrier_id: Mapped[int] = mapped_column(
        ForeignKey("carriers.id", ondelete="CASCADE"), primary_key=True
    )
    collection_delay_hours: Mapped[int] = mapped_column(Integer)
    # The carrier's rounds here, "HH:MM" local times (domain/outbound.parse_rounds): each
    # round's pickup list holds the parcels deposited before it. Empty: one list, no rounds.
    round_times: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)


class OutboundParcel(Base):
    """What a parcel sent from a site has beyond a parcel row (``direction = 'outbound'``,
    whose ``recipient_*`` contact is the sender's: the person its messages go to, purged
    like any recipient's): when its carrier must take it, why it is sent, and its alert."""

    __tablename__ = "outbound_parcels"
    __table_args__ = (Index("ix_outbound_parcels_collect_by", "collect_by"),)

    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(8))  # send | return
    # A resident's return of a parcel they received (refusal, wrong item), when it was ours.
    return_of_parcel_id: Mapped[int | None] = mapped_column(
        ForeignKey("parcels.id", ondelete="SET NULL")
    )
    collect_by: Mapped[datetime]
    # When the overdue alert was raised (operator and carrier see it), once.
    overdue_since: Mapped[datetime | None]


class ProducerOrder(Base):
    """What a producer's order has beyond a parcel row: the parcel's sender is the producer
    (no carrier), its reference is the producer's own (unique per producer), and perishables
    carry their holding period in hours and their sell-by time (docs/producers.md)."""

    __tablename__ = "producer_orders"
    __table_args__ = (UniqueConstraint("producer_id", "reference"),)

    parcel_id: Mapped[int] = mapped_column(
        ForeignKey("parcels.id", ondelete="CASCADE"), primary_key=True
    )
    producer_id: Mapped[int] = mapped_column(ForeignKey("producers.id"))
    reference: Mapped[str] = mapped_column(String(80))
    keep_cold: Mapped[bool] = mapped_column(Boolean, default=False)
    # The producer's holding period in hours (None: the site's standard period in days).
    holding_hours: Mapped[int | None] = mapped_column(Integer)
    sell_by: Mapped[datetime | None]
    announced_at: Mapped[datetime] = mapped_column(default=stamp_now)
    # The announcement's content, so that the same announcement again is answered, not
    # refused, and a different one under the same reference is.
    fingerprint: Mapped[str] = mapped_column(String(64))

    producer: Mapped[Producer] = relationship()


class HomeDeliveryOffer(Base):
    """A site's home delivery: the days it delivers and the area it serves, in its own words
    (``domain/home_delivery.Offer``). The site also lists ``home_delivery`` in its services."""

    __tablename__ = "home_delivery_offers"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    days: Mapped[list[Any]] = mapped_column(default=list)
    area: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(default=stamp_now, onupdate=stamp_now)


class HomeDelivery(Base):
    """A resident's request that a trusted person brings a parcel home (docs/home-delivery.md).

    ``courier_name`` is personal data (purged with the parcel's); the courier's link is
    derived from ``link_nonce`` (shown again, never stored) and found by its keyed hash."""

    __tablename__ = "home_deliveries"
    __table_args__ = (
        Index("ix_home_deliveries_site_status_day", "site_id", "status", "day"),
        Index("ix_home_deliveries_parcel", "parcel_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parcel_id: Mapped[int] = mapped_column(ForeignKey("parcels.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    status: Mapped[str] = mapped_column(String(10))  # domain/home_delivery.Status
    day: Mapped[date] = mapped_column(Date)
    requested_by: Mapped[str] = mapped_column(String(8))  # resident | shop
    # Who recorded the request and the resident's consent (an actor id, never a name).
    requested_by_actor: Mapped[str] = mapped_column(String(60))
    consent_at: Mapped[datetime]
    courier_kind: Mapped[str] = mapped_column(String(10))  # neighbour | volunteer | shopkeeper
    courier_name: Mapped[str | None] = mapped_column(String(200))
    link_nonce: Mapped[str | None] = mapped_column(String(64))
    link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    taken_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=stamp_now)

    parcel: Mapped[Parcel] = relationship()
    site: Mapped[Site] = relationship()
