"""Pickup codes: random, numeric, shown to the resident, stored only as a keyed hash.

The code is derived from a random nonce with a derivation key (so the resident's tracking page
can show it again without the code ever being stored), and verified against an HMAC made with a
second key (the "pepper"). A database dump alone reveals neither.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

MAX_FAILED_ATTEMPTS = 5
# docs/decisions/0004: a guesser's chance of finding a given parcel's code stays below this.
GUESS_GOAL_PER_PARCEL = 1e-6


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def derive_code(derivation_key: bytes, nonce: str, digits: int) -> str:
    if digits < 6:
        raise ValueError("pickup codes have at least 6 digits")
    mac = hmac.new(derivation_key, nonce.encode(), hashlib.sha256).digest()
    return str(int.from_bytes(mac, "big") % 10**digits).zfill(digits)


def issued_code(
    derivation_key: bytes, pepper: bytes, site_id: int, nonce: str, code_hash: str, digits: int
) -> str:
    """The code a credential was issued with, to show it again. Its length is the setting of
    the day it was issued: an operator may have changed PICKUP_CODE_DIGITS since (decision
    0004 raised the default from 6 to 7), so the configured length is tried first, then the
    others, each checked against the stored hash."""
    for length in (digits, *(n for n in _CODE_LENGTHS if n != digits)):
        code = derive_code(derivation_key, nonce, length)
        if code_matches(pepper, site_id, code, code_hash):
            return code
    return derive_code(derivation_key, nonce, digits)


_CODE_LENGTHS = range(6, 13)


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


def code_only_chance(digits: int, misses_per_code: int) -> float:
    """The chance that code-only guessing finds a given parcel's code, when each live code
    meets at most ``misses_per_code`` wrong code-only guesses before a code alone is no
    longer enough at its site (docs/decisions/0004)."""
    return misses_per_code / 10**digits


def named_guess_chance(digits: int) -> float:
    """The chance for a guesser who knows a parcel's tracking number or recipient: the
    parcel's own wrong tries, then it locks until an identity document is checked."""
    return MAX_FAILED_ATTEMPTS / 10**digits


def name_words(name: str) -> list[str]:
    """A name as the counter compares it: no accents, no case, words only ("Lefèvre-Dupont"
    and "lefevre dupont" are the same name)."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).casefold()
    return "".join(ch if ch.isalnum() else " " for ch in plain).split()


def is_recipient_named(given: str, recipient_name: str | None) -> bool:
    """Whether the name the person at the counter gave is the recipient's: the full name in
    any order, or the family name (the last words: "Martin", "de la Tour"). A first name
    alone is not enough."""
    said, known = name_words(given), name_words(recipient_name or "")
    if not said or not known:
        return False
    return sorted(said) == sorted(known) or (len(said) < len(known) and known[-len(said):] == said)
