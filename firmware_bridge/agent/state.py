"""The locker agent's settings and the small records its state is made of (doors, forwarded
readings, a carrier's visit, doors out of service), with the journal's meta keys."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from firmware_bridge import protocol as p
from firmware_bridge.agent.drivers import CredentialKind

AGENT_VERSION = "0.1.0"


# Journal meta keys: the counter of the last command applied; the doors open and why.
COMMAND_COUNTER = "command_counter"


OPEN_DOORS = "open_doors"


# A flood of refused messages is reported once per reason in this many seconds.
REFUSAL_REPORT_EVERY_S = 60.0


@dataclass
class AgentSettings:
    site_id: str | None = None  # defaults to the locker id (or the site id in the sync)
    keepalive_s: int = 30
    poll_s: float = 0.05
    forward_timeout_s: float = 5.0  # online: wait this long for the backend, then decide locally
    door_left_open_s: float = 120.0
    heartbeat_s: float = 60.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    resend_min_s: float = 5.0
    resend_max_s: float = 300.0
    resend_batch: int = 200
    token_leeway_s: int = 300
    clock_tolerance_s: float = p.CLOCK_TOLERANCE_S
    pin_max_failures: int = 5
    pin_lockout_s: float = 60.0
    carrier_visit_s: float = 300.0  # a carrier's code stays active this long after each use
    client_id: str | None = None  # defaults to "relayops-locker-<locker_id>"
    # A login crossing a network in clear is refused unless this says the network is trusted.
    allow_plaintext_broker: bool = False


class Backoff:
    """Exponential backoff with 'equal jitter': half the delay fixed, half random, so a fleet
    that lost the broker at the same instant does not come back at the same instant."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high, self.attempt = low, high, 0

    def next_delay(self) -> float:
        ceiling = min(self.high, self.low * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 30)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class Door:
    state: str = "closed"
    opened_at: float = 0.0
    purpose: p.Purpose | None = None
    corr_id: uuid.UUID | None = None
    credential_id: str | None = None
    alarmed: bool = False


@dataclass
class Forwarded:
    kind: CredentialKind
    value: str
    deadline: float


@dataclass
class CarrierVisit:
    """A carrier who typed a valid code: the expired parcels' doors open one after the other
    (the next when the previous one closes), and each parcel scanned meanwhile opens the door
    reserved for it."""

    collections: list[p.Reservation]
    deposits: dict[str, p.Reservation]  # by parcel_ref (the barcode the carrier scans)
    until: float  # monotonic; each use extends it
    collecting: str | None = None  # the reservation whose door is open now


@dataclass
class OutOfService:
    locker: str | None = None
    compartments: dict[int, str] = field(default_factory=dict)
