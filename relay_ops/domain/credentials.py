"""Pickup codes: random, numeric, shown to the resident, stored only as a keyed hash.

The code is derived from a random nonce with a derivation key (so the resident's tracking page
can show it again without the code ever being stored), and verified against an HMAC made with a
second key (the "pepper"). A database dump alone reveals neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

MAX_FAILED_ATTEMPTS = 5


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def derive_code(derivation_key: bytes, nonce: str, digits: int) -> str:
    if digits < 6:
        raise ValueError("pickup codes have at least 6 digits")
    mac = hmac.new(derivation_key, nonce.encode(), hashlib.sha256).digest()
    return str(int.from_bytes(mac, "big") % 10**digits).zfill(digits)


def hash_code(pepper: bytes, site_id: int, code: str) -> str:
    """Keyed hash of a code at one site; codes are unique among a site's live credentials."""
    return hmac.new(pepper, f"{site_id}:{code}".encode(), hashlib.sha256).hexdigest()


def recipient_key(pepper: bytes, kind: str, address: str) -> str:
    """Keyed hash of a recipient's normalised phone (``kind`` "phone") or e-mail ("email").

    Same pepper as the codes, with its own prefix so a recipient key can never equal a code
    hash. A plain hash would not do: phone numbers are few enough to hash them all.
    """
    value = address.strip().lower() if kind == "email" else address.strip()
    return hmac.new(pepper, f"recipient/{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def code_matches(pepper: bytes, site_id: int, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_code(pepper, site_id, code), stored_hash)


def normalise_code(raw: str) -> str:
    return "".join(ch for ch in raw if ch.isdigit())


@dataclass(frozen=True)
class AttemptOutcome:
    locked: bool
    attempts_left: int


def after_wrong_attempt(failed_attempts: int) -> AttemptOutcome:
    """What a wrong code does to a credential that had ``failed_attempts`` before it."""
    failed = failed_attempts + 1
    return AttemptOutcome(
        locked=failed >= MAX_FAILED_ATTEMPTS,
        attempts_left=max(0, MAX_FAILED_ATTEMPTS - failed),
    )
