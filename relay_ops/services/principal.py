"""Who is acting, and the rules of what each role may touch.

Objects outside a principal's scope are reported as not found, so nobody learns that another
shop's or carrier's parcel exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from relay_ops.db.models import Parcel
from relay_ops.domain.errors import Forbidden, NotFound


class Role(StrEnum):
    OPERATOR = "operator"
    SHOPKEEPER = "shopkeeper"
    CARRIER = "carrier"
    RESIDENT = "resident"  # holds a signed tracking link for one parcel
    SYSTEM = "system"  # jobs, sweeps, the bridge
    LOCKER = "locker"
    PUBLIC = "public"  # anyone: public site directory
    PRODUCER = "producer"  # a local producer's API key: its own orders only
    COURIER = "courier"  # holds a home delivery's one-time link: that delivery's parcel only


@dataclass(frozen=True)
class Principal:
    role: Role
    user_id: int | None = None
    carrier_id: int | None = None
    producer_id: int | None = None
    site_ids: frozenset[int] = field(default_factory=frozenset)
    parcel_id: int | None = None
    name: str = ""
    delivery_id: int | None = None  # a courier's home delivery

    @property
    def actor_id(self) -> str | None:
        if self.role in (Role.OPERATOR, Role.SHOPKEEPER):
            return f"user:{self.user_id}"
        if self.role is Role.CARRIER:
            return f"carrier:{self.carrier_id}"
        if self.role is Role.PRODUCER:
            return f"producer:{self.producer_id}"
        if self.role is Role.RESIDENT:
            return f"resident-link:{self.parcel_id}"
        if self.role is Role.COURIER:
            return f"courier-link:{self.delivery_id}"
        return self.name or None

    @property
    def key(self) -> str:
        """A stable identity for idempotency records and rate limits."""
        return f"{self.role.value}:{self.actor_id}"


SYSTEM = Principal(Role.SYSTEM, name="system")
PUBLIC = Principal(Role.PUBLIC, name="public")


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"only {allowed} may do this", role=principal.role.value)


def require_site(principal: Principal, site_id: int) -> None:
    """Operators and the system see every site; shopkeepers only theirs."""
    if principal.role in (Role.OPERATOR, Role.SYSTEM, Role.CARRIER):
        return
    if principal.role is Role.SHOPKEEPER and site_id in principal.site_ids:
        return
    raise NotFound(f"no site {site_id}")


def can_see_parcel(principal: Principal, parcel: Parcel) -> bool:
    match principal.role:
        case Role.OPERATOR | Role.SYSTEM:
            return True
        case Role.SHOPKEEPER:
            return parcel.site_id in principal.site_ids
        case Role.CARRIER:
            return parcel.carrier_id is not None and parcel.carrier_id == principal.carrier_id
        case Role.RESIDENT | Role.COURIER:
            return parcel.id == principal.parcel_id
        case Role.PRODUCER:
            order = parcel.producer_order
            return order is not None and order.producer_id == principal.producer_id
        case _:
            return False


def require_parcel(principal: Principal, parcel: Parcel | None, ref: object) -> Parcel:
    if parcel is None or not can_see_parcel(principal, parcel):
        raise NotFound(f"no parcel {ref}")
    return parcel
