"""What every use case needs: the database, the settings it reads, and the clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relay_ops.clock import system_clock
from relay_ops.db.database import Database
from relay_ops.domain.holding import AdaptiveHolding, HoldingPolicy
from relay_ops.domain.sizing import Dims


@dataclass(frozen=True)
class ForecastSettings:
    """See docs/forecast.md and ``FORECAST`` in relay_ops/settings.py."""

    horizon_days: int = 7
    band_z: float = 1.645
    dwell_window_days: int = 56
    arrival_window_days: int = 28
    arrival_half_life_days: float = 14.0
    arrival_trend: bool = True
    trend_damping: float = 0.7
    rate_uncertainty_factor: float = 3.0
    rate_drift: float = 0.025
    rate_drift_with_trend: float = 0.003
    rate_drift_with_season: float = 0.0025
    prior_weight: float = 20.0
    show_rate: float = 0.97
    return_lag_days: int = 2
    reroute_radius_km: Mapping[str, float] = field(
        default_factory=lambda: {"town": 2.0, "countryside": 10.0}
    )
    reroute_options: int = 3
    # Rank candidates by load and distance (domain.forecast.reroute_cost).
    reroute_distance_weight: float = 0.5
    # A place held for a rerouted parcel is still kept this many days after its day.
    reservation_grace_days: int = 1


@dataclass(frozen=True)
class Settings:
    timezone: ZoneInfo
    public_base_url: str
    pickup_code_digits: int
    pickup_code_pepper: bytes
    pickup_code_derivation_key: bytes
    api_token_pepper: bytes
    staff_token_ttl_hours: int
    holding: Mapping[str, HoldingPolicy]
    size_classes: Mapping[str, Dims]
    secret_key: str
    argon2_time_cost: int
    argon2_memory_kib: int
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    adaptive_holding: AdaptiveHolding = field(default_factory=AdaptiveHolding)
    lockers: LockerSettings | None = None
    # Wrong code-only guesses a live code may meet at its site before a code alone is no
    # longer enough there (docs/decisions/0004): 10**(digits - 6) keeps a guesser's chance
    # at 1e-6 per parcel (10 with the default 7 digits).
    pickup_code_only_misses: int = 10

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(
            timezone=ZoneInfo(config["TIMEZONE"]),
            public_base_url=config["PUBLIC_BASE_URL"].rstrip("/"),
            pickup_code_digits=int(config["PICKUP_CODE_DIGITS"]),
            pickup_code_pepper=config["PICKUP_CODE_PEPPER"].encode(),
            pickup_code_derivation_key=config["PICKUP_CODE_DERIVATION_KEY"].encode(),
            api_token_pepper=config["API_TOKEN_PEPPER"].encode(),
            staff_token_ttl_hours=int(config["STAFF_TOKEN_TTL_HOURS"]),
            holding=_holding_policies(config["HOLDING_PERIODS"]),
            size_classes={k: _dims(v) for k, v in config["SIZE_CLASSES"].items()},
            secret_key=config["SECRET_KEY"],
            argon2_time_cost=int(config["ARGON2_TIME_COST"]),
            argon2_memory_kib=int(config["ARGON2_MEMORY_KIB"]),
            forecast=ForecastSettings(**config.get("FORECAST", {})),
            adaptive_holding=AdaptiveHolding.from_config(
                config.get("HOLDING_SEASONS") or {}, config.get("HOLDING_LOAD") or {},
                config.get("HOLDING_FLOOR_DAYS") or {},
            ),
            lockers=LockerSettings.from_config(config),
            pickup_code_only_misses=int(config["PICKUP_CODE_ONLY_MISSES"]),
        )

    @property
    def locker(self) -> LockerSettings:
        assert self.lockers is not None, "built without locker settings"
        return self.lockers


@dataclass(frozen=True)
class LockerModelSlot:
    number: int
    size_class: str
    dims: Dims


@dataclass(frozen=True)
class LockerSettings:
    models: Mapping[str, tuple[LockerModelSlot, ...]]
    signing_key: Ed25519PrivateKey
    token_kid: str
    command_key: Ed25519PrivateKey
    command_kid: str
    command_trusted_keys: Mapping[str, str]
    broker_url: str
    pin_key_secret: bytes
    open_ttl_s: int
    session_timeout_s: int
    sync_ttl_s: int
    outage_credit_min_s: int = 3600
    advance_reservation_days: int = 1

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LockerSettings:
        classes = {k: _dims(v) for k, v in config["SIZE_CLASSES"].items()}
        return cls(
            models={
                name: _model_slots(name, spec, classes)
                for name, spec in config["LOCKER_MODELS"].items()
            },
            signing_key=_signing_key(config, "LOCKER_TOKEN_SIGNING_KEY", "locker-token-key"),
            token_kid=str(config["LOCKER_TOKEN_KID"]),
            command_key=_signing_key(config, "LOCKER_COMMAND_SIGNING_KEY", "locker-command-key"),
            command_kid=str(config["LOCKER_COMMAND_KID"]),
            command_trusted_keys=dict(config.get("LOCKER_COMMAND_TRUSTED_KEYS") or {}),
            broker_url=str(config.get("LOCKER_BROKER_URL") or "mqtt://127.0.0.1:1883"),
            pin_key_secret=str(config["LOCKER_PIN_KEY_SECRET"]).encode(),
            open_ttl_s=int(config["LOCKER_OPEN_TTL_S"]),
            session_timeout_s=int(config["LOCKER_SESSION_TIMEOUT_S"]),
            sync_ttl_s=int(config["LOCKER_SYNC_TTL_S"]),
            outage_credit_min_s=int(config["LOCKER_OUTAGE_CREDIT_MIN_S"]),
            advance_reservation_days=int(config.get("LOCKER_ADVANCE_RESERVATION_DAYS", 1)),
        )


def _signing_key(config: Mapping[str, Any], name: str, purpose: str) -> Ed25519PrivateKey:
    from relay_ops.domain.pickup_token import load_private_key

    raw_key = config.get(name)
    if raw_key:
        return load_private_key(str(raw_key))
    # Development only (production refuses a missing key): derived from SECRET_KEY so the web
    # process, the bridge and the demo all sign and verify with one key.
    seed = hashlib.sha256(f"{config['SECRET_KEY']}/{purpose}".encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def _model_slots(
    name: str, spec: Mapping[str, Any], classes: Mapping[str, Dims]
) -> tuple[LockerModelSlot, ...]:
    """``{"compartments": [{"size_class": "S", "count": 4, "dims": [h, w, d]?}, ...]}``:
    compartments numbered from 1 in the order given."""
    slots: list[LockerModelSlot] = []
    for group in spec["compartments"]:
        size_class = group["size_class"]
        if "dims" not in group and size_class not in classes:
            raise ValueError(f"locker model {name}: unknown size class {size_class!r}")
        dims = _dims(group["dims"]) if "dims" in group else classes[size_class]
        for _ in range(int(group.get("count", 1))):
            slots.append(LockerModelSlot(len(slots) + 1, size_class, dims))
    return tuple(slots)


def _holding_policies(config: Mapping[str, Any]) -> dict[str, HoldingPolicy]:
    """Per site kind; a storage site (overflow room run like a counter) keeps parcels as a
    shop does unless the configuration says otherwise."""
    policies = {k: HoldingPolicy(**v) for k, v in config.items()}
    if "storage" not in policies and "shop" in policies:
        policies["storage"] = policies["shop"]
    return policies


def _dims(value: Any) -> Dims:
    h, w, d = (int(x) for x in value)
    return (h, w, d)


@dataclass(frozen=True)
class Ctx:
    db: Database
    settings: Settings
    clock: Callable[[], datetime] = field(default=system_clock)

    def __post_init__(self) -> None:
        # One clock per process: the rows this context's transactions write (created_at,
        # available_at...) are stamped by the same clock its use cases compare them with.
        self.db.clock = self.clock

    def now(self) -> datetime:
        return self.clock()

    def local_day(self, moment: datetime) -> date:
        """The day ``moment`` falls on where the network runs (``TIMEZONE``): deadlines,
        closing days, shelves and forecasts are counted in local days, not UTC ones."""
        return moment.astimezone(self.settings.timezone).date()

    def today(self) -> date:
        return self.local_day(self.now())

    def day_start(self, day: date) -> datetime:
        """Local midnight starting ``day`` (an aware datetime, in ``TIMEZONE``)."""
        return datetime.combine(day, time(0, 0), tzinfo=self.settings.timezone)
