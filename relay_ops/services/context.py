"""What every use case needs: the database, the settings it reads, and the clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from relay_ops.db.database import Database
from relay_ops.domain.holding import HoldingPolicy
from relay_ops.domain.sizing import Dims


def system_clock() -> datetime:
    return datetime.now(UTC)


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
            holding={k: HoldingPolicy(**v) for k, v in config["HOLDING_PERIODS"].items()},
            size_classes={k: _dims(v) for k, v in config["SIZE_CLASSES"].items()},
            secret_key=config["SECRET_KEY"],
            argon2_time_cost=int(config["ARGON2_TIME_COST"]),
            argon2_memory_kib=int(config["ARGON2_MEMORY_KIB"]),
        )


def _dims(value: Any) -> Dims:
    h, w, d = (int(x) for x in value)
    return (h, w, d)


@dataclass(frozen=True)
class Ctx:
    db: Database
    settings: Settings
    clock: Callable[[], datetime] = field(default=system_clock)

    def now(self) -> datetime:
        return self.clock()
