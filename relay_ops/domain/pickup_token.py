"""Signed pickup tokens: the text inside a resident's QR code.

A locker verifies a token with no network: the backend signs it with an Ed25519 private key and
every locker holds the matching public keys (several at once, by key id, so keys can rotate).

Wire format (version 1)::

    RO1:<base45(payload || signature)>/

The final "/" is a terminator: base45 may end with a space, and readers often trim trailing
spaces; with the terminator a trimmed token is still whole, and a cut one is refused.
`payload` is a compact binary record (below), `signature` the 64-byte Ed25519 signature over
``SIGNING_CONTEXT || payload``. Base45 (RFC 9285) uses exactly the QR alphanumeric alphabet, so
the whole token is encoded in alphanumeric mode (5.5 bits a character) and survives decoders that
mangle binary QR payloads. A typical token is 110-120 bytes, about 175 characters: QR version 8
or less at error correction M.

Payload, all integers big-endian::

    u8  format version (1)
    str kid                 key id
    16  jti                 token id (UUID bytes), spent once
    str site                site or locker id the token is valid at
    u8  parcel tag          0: u64 integer id, 1: str id
    ... parcel id
    u16 compartment         0 means "none" (a shop counter, or the locker chooses)
    u32 not_before          unix seconds
    u32 expires_at          unix seconds

`str` is a u8 length then UTF-8 bytes. The decoder is strict: trailing bytes, non-canonical
base45 and out-of-range values are refused, so any altered character is refused.

Pure Python plus `cryptography`: no I/O, no framework.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

TOKEN_PREFIX = "RO1:"  # noqa: S105 - a format marker, not a secret
TOKEN_SUFFIX = "/"  # noqa: S105 - a format marker, not a secret
FORMAT_VERSION = 1
SIGNING_CONTEXT = b"relayops/pickup-token/v1\x00"
SIGNATURE_LEN = 64
MAX_TEXT_FIELD_BYTES = 64
MAX_KID_BYTES = 16
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_PARCEL_INT = 0
_PARCEL_STR = 1

# --- errors ---------------------------------------------------------------------------------


class TokenError(Exception):
    """A token that must not open anything. `reason` is machine-readable."""

    reason = "invalid"

    def __init__(self, detail: str = "") -> None:
        super().__init__(f"{self.reason}: {detail}" if detail else self.reason)
        self.detail = detail


class MalformedToken(TokenError):
    reason = "malformed"


class BadSignature(TokenError):
    reason = "bad_signature"


class UnknownKey(TokenError):
    reason = "unknown_key"


class TokenExpired(TokenError):
    reason = "expired"


class TokenNotYetValid(TokenError):
    reason = "not_yet_valid"


class WrongSite(TokenError):
    reason = "wrong_site"


# --- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenClaims:
    """What a token says. `jti` is a canonical UUID string; times are unix seconds."""

    jti: str
    parcel_id: int | str
    site: str
    compartment: int | None
    not_before: int
    expires_at: int

    def __post_init__(self) -> None:
        _check_claims(self)


def new_jti() -> str:
    """A fresh random token id."""
    return str(uuid.uuid4())


def _check_claims(claims: TokenClaims) -> None:
    try:
        if str(uuid.UUID(claims.jti)) != claims.jti:
            raise ValueError
    except (ValueError, AttributeError, TypeError):
        raise ValueError("jti must be a canonical lowercase UUID string") from None
    _check_text("site", claims.site, MAX_TEXT_FIELD_BYTES)
    if isinstance(claims.parcel_id, bool) or not isinstance(claims.parcel_id, int | str):
        raise ValueError("parcel_id must be an int or a str")
    if isinstance(claims.parcel_id, int) and not 0 <= claims.parcel_id <= _U64_MAX:
        raise ValueError("an integer parcel_id must fit in 64 unsigned bits")
    if isinstance(claims.parcel_id, str):
        _check_text("parcel_id", claims.parcel_id, MAX_TEXT_FIELD_BYTES)
    if claims.compartment is not None and not 1 <= claims.compartment <= 0xFFFF:
        raise ValueError("compartment must be None or 1..65535")
    for name in ("not_before", "expires_at"):
        value = getattr(claims, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _U32_MAX:
            raise ValueError(f"{name} must be unix seconds in 0..2**32-1")
    if claims.expires_at <= claims.not_before:
        raise ValueError("expires_at must be after not_before")


def _check_text(name: str, value: object, max_bytes: int) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str")
    if len(value.encode()) > max_bytes:
        raise ValueError(f"{name} is longer than {max_bytes} UTF-8 bytes")


# --- base45 (RFC 9285) ----------------------------------------------------------------------

_B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_INDEX = {char: index for index, char in enumerate(_B45)}


def b45encode(data: bytes) -> str:
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        value = data[i] * 256 + data[i + 1]
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        out += [_B45[c], _B45[d], _B45[e]]
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += [_B45[c], _B45[d]]
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Strict decode: refuses unknown characters, bad lengths and non-canonical groups."""
    if len(text) % 3 == 1:
        raise ValueError("base45 length")
    try:
        digits = [_B45_INDEX[char] for char in text]
    except KeyError:
        raise ValueError("base45 character") from None
    out = bytearray()
    full = len(digits) - len(digits) % 3
    for i in range(0, full, 3):
        value = digits[i] + digits[i + 1] * 45 + digits[i + 2] * 45 * 45
        if value > 0xFFFF:
            raise ValueError("base45 group out of range")
        out += value.to_bytes(2, "big")
    if len(digits) % 3 == 2:
        value = digits[-2] + digits[-1] * 45
        if value > 0xFF:
            raise ValueError("base45 group out of range")
        out.append(value)
    return bytes(out)


# --- payload --------------------------------------------------------------------------------


def _pack_str(value: str) -> bytes:
    raw = value.encode()
    return bytes([len(raw)]) + raw


def _pack_payload(kid: str, claims: TokenClaims) -> bytes:
    if isinstance(claims.parcel_id, int):
        parcel = bytes([_PARCEL_INT]) + struct.pack(">Q", claims.parcel_id)
    else:
        parcel = bytes([_PARCEL_STR]) + _pack_str(claims.parcel_id)
    return b"".join(
        [
            bytes([FORMAT_VERSION]),
            _pack_str(kid),
            uuid.UUID(claims.jti).bytes,
            _pack_str(claims.site),
            parcel,
            struct.pack(">HII", claims.compartment or 0, claims.not_before, claims.expires_at),
        ]
    )


class _Reader:
    """Consumes a payload left to right; any shortfall is a malformed token."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._data):
            raise MalformedToken("truncated payload")
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def text(self, max_bytes: int) -> str:
        length = self.byte()
        if not 1 <= length <= max_bytes:
            raise MalformedToken("text field length")
        try:
            return self.take(length).decode()
        except UnicodeDecodeError:
            raise MalformedToken("text field is not UTF-8") from None

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise MalformedToken("trailing bytes")


def _unpack_payload(payload: bytes) -> tuple[str, TokenClaims]:
    reader = _Reader(payload)
    if reader.byte() != FORMAT_VERSION:
        raise MalformedToken("unknown format version")
    kid = reader.text(MAX_KID_BYTES)
    jti = str(uuid.UUID(bytes=reader.take(16)))
    site = reader.text(MAX_TEXT_FIELD_BYTES)
    tag = reader.byte()
    parcel_id: int | str
    if tag == _PARCEL_INT:
        (parcel_id,) = struct.unpack(">Q", reader.take(8))
    elif tag == _PARCEL_STR:
        parcel_id = reader.text(MAX_TEXT_FIELD_BYTES)
    else:
        raise MalformedToken("unknown parcel id tag")
    compartment, not_before, expires_at = struct.unpack(">HII", reader.take(10))
    reader.finish()
    try:
        claims = TokenClaims(
            jti=jti,
            parcel_id=parcel_id,
            site=site,
            compartment=compartment or None,
            not_before=not_before,
            expires_at=expires_at,
        )
    except ValueError as exc:
        raise MalformedToken(str(exc)) from None
    return kid, claims


# --- public API -----------------------------------------------------------------------------


def issue_token(private_key: Ed25519PrivateKey, kid: str, claims: TokenClaims) -> str:
    """Sign `claims` with `private_key` (known to lockers as `kid`) and return the QR text."""
    _check_text("kid", kid, MAX_KID_BYTES)
    payload = _pack_payload(kid, claims)
    signature = private_key.sign(SIGNING_CONTEXT + payload)
    return TOKEN_PREFIX + b45encode(payload + signature) + TOKEN_SUFFIX


def verify_token(
    token: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    now: float,
    *,
    expected_site: str | None,
    leeway_s: int = 300,
) -> TokenClaims:
    """Return the claims of a genuine, currently valid token, or raise a `TokenError`.

    The signature is checked before any claim is trusted. `leeway_s` absorbs clock drift between
    the signer and the verifier, on both ends of the validity window. `expected_site=None` skips
    the site check (the backend, which looks the site up itself).
    """
    kid, claims, payload, signature = _split(token)
    key = public_keys.get(kid)
    if key is None:
        raise UnknownKey(f"no public key with id {kid!r}")
    try:
        key.verify(signature, SIGNING_CONTEXT + payload)
    except InvalidSignature:
        raise BadSignature() from None
    if expected_site is not None and claims.site != expected_site:
        raise WrongSite(f"token is for {claims.site!r}")
    if now < claims.not_before - leeway_s:
        raise TokenNotYetValid()
    if now > claims.expires_at + leeway_s:
        raise TokenExpired()
    return claims


def _split(token: str) -> tuple[str, TokenClaims, bytes, bytes]:
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise MalformedToken("missing RO1: prefix")
    if not token.endswith(TOKEN_SUFFIX) or len(token) < len(TOKEN_PREFIX) + len(TOKEN_SUFFIX):
        raise MalformedToken("missing / terminator")
    try:
        raw = b45decode(token[len(TOKEN_PREFIX) : -len(TOKEN_SUFFIX)])
    except ValueError as exc:
        raise MalformedToken(str(exc)) from None
    if len(raw) <= SIGNATURE_LEN:
        raise MalformedToken("too short")
    payload, signature = raw[:-SIGNATURE_LEN], raw[-SIGNATURE_LEN:]
    kid, claims = _unpack_payload(payload)
    return kid, claims, payload, signature


def unverified_claims(token: str) -> tuple[str, TokenClaims]:
    """(kid, claims) WITHOUT checking the signature: for logs and display only, never access."""
    kid, claims, _payload, _signature = _split(token)
    return kid, claims


# --- keys -----------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_to_text(key: Ed25519PublicKey) -> str:
    """Raw 32-byte public key as base64 (the form sent to lockers in `sync_credentials`)."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def private_key_to_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_key_to_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def load_private_key(text: str) -> Ed25519PrivateKey:
    """From an unencrypted PKCS#8 PEM or a base64 raw 32-byte seed."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_private_key(text.encode(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw32(text))


def load_public_key(text: str) -> Ed25519PublicKey:
    """From a SubjectPublicKeyInfo PEM or a base64 raw 32-byte key."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw32(text))


def _raw32(text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not valid base64") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 raw key is 32 bytes")
    return raw
