"""Offline credential checks: the synced credential set, and keypad throttling.

Pure functions over the protocol models and the pickup-token module; the agent feeds them the
clock and the journal's answers.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware_bridge.protocol import (
    PinCredential,
    Reservation,
    SyncCredentials,
    keyed_code_hash,
)
from relay_ops.domain.pickup_token import (
    TokenClaims,
    TokenError,
    load_public_key,
    verify_token,
)


class SyncRefused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def apply_sync(held: SyncCredentials | None, sync: SyncCredentials) -> SyncCredentials:
    """The credential set after `sync`. A full sync replaces everything. An incremental one
    applies to `base_version` only: public keys are replaced as a whole when given, PINs and
    reservations are added or replaced by id, revocations accumulate and remove what they name."""
    if sync.full:
        return sync
    held_version = held.version if held else None
    if held is None or sync.base_version != held_version:
        raise SyncRefused("version_mismatch")
    revoked = set(held.revoked_credentials) | set(sync.revoked_credentials)
    revoked_parcels = set(held.revoked_parcels) | set(sync.revoked_parcels)
    pins = {pin.credential_id: pin for pin in held.pins}
    pins.update({pin.credential_id: pin for pin in sync.pins})
    reservations = {r.reservation_id: r for r in held.reservations}
    reservations.update({r.reservation_id: r for r in sync.reservations})
    return SyncCredentials(
        version=sync.version,
        full=True,
        site_id=sync.site_id or held.site_id,
        public_keys=sync.public_keys or held.public_keys,
        command_keys=sync.command_keys or held.command_keys,
        pin_key=sync.pin_key or held.pin_key,
        pins=[
            pin
            for pin in pins.values()
            if pin.credential_id not in revoked and pin.parcel_ref not in revoked_parcels
        ],
        reservations=[r for r in reservations.values() if r.reservation_id not in revoked],
        revoked_credentials=sorted(revoked),
        revoked_parcels=sorted(revoked_parcels),
    )


@dataclass(frozen=True)
class Refusal:
    reason: str


@dataclass(frozen=True)
class Grant:
    credential_id: str
    parcel_ref: str | None
    compartment: int


class OfflineVerifier:
    """Decides, with no network, whether a QR token, PIN or carrier code opens a door."""

    def __init__(self, credentials: SyncCredentials | None, site_id: str) -> None:
        self.credentials = credentials
        self.site_id = (credentials.site_id if credentials else None) or site_id
        self._keys: dict[str, Ed25519PublicKey] = {}
        for entry in credentials.public_keys if credentials else []:
            self._keys[entry.kid] = load_public_key(entry.key)

    @property
    def version(self) -> int | None:
        return self.credentials.version if self.credentials else None

    def code_hash(self, code: str) -> tuple[str, str] | None:
        """(key id, keyed hash) of a typed code, or None while the locker holds no PIN key
        (none synced yet, or a key its bundle does not hold)."""
        if self.credentials is None or self.credentials.pin_key is None:
            return None
        key = self.credentials.pin_key
        if key.key is None:
            return None
        return key.key_id, keyed_code_hash(key.key, code)

    def check_qr(
        self, token: str, now: float, leeway_s: int
    ) -> tuple[Grant | Refusal, TokenClaims | None]:
        if self.credentials is None:
            return Refusal("no_credentials"), None
        try:
            claims = verify_token(
                token, self._keys, now, expected_site=self.site_id, leeway_s=leeway_s
            )
        except TokenError as error:
            return Refusal(error.reason), None
        parcel_ref = str(claims.parcel_id)
        if self._revoked(claims.jti, parcel_ref):
            return Refusal("revoked"), claims
        if claims.compartment is None:
            compartment = self._compartment_of_parcel(parcel_ref)
            if compartment is None:
                return Refusal("no_compartment"), claims
            return Grant(claims.jti, parcel_ref, compartment), claims
        return Grant(claims.jti, parcel_ref, claims.compartment), claims

    def check_pin(self, pin: str, now: float, tolerance_s: float) -> Grant | Refusal:
        found = self._match(self.credentials.pins if self.credentials else [], pin)
        if isinstance(found, Refusal):
            return found
        if not _within(found.not_before, found.expires_at, now, tolerance_s):
            return Refusal("expired")
        if self._revoked(found.credential_id, found.parcel_ref):
            return Refusal("revoked")
        return Grant(found.credential_id, found.parcel_ref, found.compartment)

    def carrier_reservations(
        self, code: str, now: float, tolerance_s: float
    ) -> list[Reservation] | Refusal:
        """Every live reservation a carrier's code opens (one code, many doors), in
        compartment order. `unknown_code` counts for the keypad throttle; `expired` means the
        code is right but its reservations are over."""
        hashed = self.code_hash(code)
        if hashed is None:
            return Refusal("no_credentials")
        held = self.credentials.reservations if self.credentials else []
        # compare every candidate: the time taken must not tell which one nearly matched
        matches = [r for r in held if hmac.compare_digest(r.code_hash, hashed[1])]
        if not matches:
            return Refusal("unknown_code")
        live = [
            r
            for r in matches
            if now <= r.expires_at.timestamp() + tolerance_s
            and not self._revoked(r.reservation_id, None)
        ]
        if not live:
            return Refusal("expired")
        return sorted(live, key=lambda r: (r.compartment, r.reservation_id))

    def _match(self, candidates: list[PinCredential], code: str) -> PinCredential | Refusal:
        hashed = self.code_hash(code)
        if hashed is None:
            return Refusal("no_credentials")
        found = None
        for candidate in candidates:
            # compare every candidate: the time taken must not tell which one nearly matched
            if hmac.compare_digest(candidate.pin_hash, hashed[1]):
                found = candidate
        return found if found is not None else Refusal("unknown_code")

    def _revoked(self, credential_id: str, parcel_ref: str | None) -> bool:
        if self.credentials is None:
            return False
        return credential_id in self.credentials.revoked_credentials or (
            parcel_ref is not None and parcel_ref in self.credentials.revoked_parcels
        )

    def _compartment_of_parcel(self, parcel_ref: str) -> int | None:
        for pin in self.credentials.pins if self.credentials else []:
            if pin.parcel_ref == parcel_ref:
                return pin.compartment
        return None


def _within(not_before: datetime, expires_at: datetime, now: float, tolerance_s: float) -> bool:
    moment = datetime.fromtimestamp(now, UTC)
    slack = timedelta(seconds=tolerance_s)
    return not_before - slack <= moment <= expires_at + slack


@dataclass
class KeypadThrottle:
    """Offline keypad throttling: `max_failures` wrong codes lock the keypad for
    `lockout_s`, doubling at each further lockout (capped), until a right code is typed."""

    max_failures: int = 5
    lockout_s: float = 60.0
    max_lockout_s: float = 3600.0
    failures: int = 0
    level: int = 0
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        return now < self.locked_until

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.max_failures:
            self.locked_until = now + min(self.lockout_s * 2**self.level, self.max_lockout_s)
            self.level += 1
            self.failures = 0

    def success(self) -> None:
        self.failures = 0
        self.level = 0
        self.locked_until = 0.0

    def to_state(self) -> dict[str, float]:
        return {"failures": self.failures, "level": self.level, "locked_until": self.locked_until}

    def load_state(self, state: dict[str, float]) -> None:
        self.failures = int(state.get("failures", 0))
        self.level = int(state.get("level", 0))
        self.locked_until = float(state.get("locked_until", 0.0))
