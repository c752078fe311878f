import uuid

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ops.domain.pickup_token import (
    TOKEN_PREFIX,
    BadSignature,
    MalformedToken,
    TokenClaims,
    TokenError,
    TokenExpired,
    TokenNotYetValid,
    UnknownKey,
    WrongSite,
    b45decode,
    b45encode,
    generate_private_key,
    issue_token,
    load_private_key,
    load_public_key,
    new_jti,
    private_key_to_pem,
    public_key_to_pem,
    public_key_to_text,
    unverified_claims,
    verify_token,
)

NOW = 1_760_000_000
KEY = generate_private_key()
OTHER_KEY = generate_private_key()
KEYS = {"k1": KEY.public_key()}


def claims(**overrides: object) -> TokenClaims:
    fields: dict[str, object] = {
        "jti": new_jti(),
        "parcel_id": 123456789,
        "site": "LCK-0042",
        "compartment": 7,
        "not_before": NOW - 60,
        "expires_at": NOW + 3 * 86400,
    }
    fields.update(overrides)
    return TokenClaims(**fields)  # type: ignore[arg-type]


def test_a_token_round_trips_its_claims() -> None:
    original = claims(parcel_id="6A12345678901", compartment=None)
    token = issue_token(KEY, "k1", original)
    assert token.startswith(TOKEN_PREFIX)
    assert verify_token(token, KEYS, NOW, expected_site="LCK-0042") == original


@pytest.mark.parametrize(
    ("parcel_id", "site", "max_chars"),
    [(123456789, "LCK-0042", 180), ("X" * 20, "LCK-0042-VILLAGE", 215)],
)
def test_a_token_fits_a_small_qr_code_in_alphanumeric_mode(
    parcel_id: int | str, site: str, max_chars: int
) -> None:
    token = issue_token(KEY, "k2026a", claims(parcel_id=parcel_id, site=site))
    assert len(token) <= max_chars
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(token)
    qr.make(fit=True)
    assert qr.version <= 8
    assert qr.data_list[0].mode == qrcode.util.MODE_ALPHA_NUM


def test_expired_and_not_yet_valid_tokens_are_refused_outside_the_leeway() -> None:
    token = issue_token(KEY, "k1", claims(not_before=NOW, expires_at=NOW + 100))
    assert verify_token(token, KEYS, NOW + 100 + 300, expected_site=None)
    with pytest.raises(TokenExpired) as expired:
        verify_token(token, KEYS, NOW + 100 + 301, expected_site=None)
    assert expired.value.reason == "expired"
    assert verify_token(token, KEYS, NOW - 300, expected_site=None)
    with pytest.raises(TokenNotYetValid):
        verify_token(token, KEYS, NOW - 301, expected_site=None)
    with pytest.raises(TokenExpired):
        verify_token(token, KEYS, NOW + 101, expected_site=None, leeway_s=0)


def test_key_rotation_accepts_both_key_ids_and_refuses_a_retired_one() -> None:
    old = issue_token(KEY, "k1", claims())
    new = issue_token(OTHER_KEY, "k2", claims())
    both = {"k1": KEY.public_key(), "k2": OTHER_KEY.public_key()}
    verify_token(old, both, NOW, expected_site=None)
    verify_token(new, both, NOW, expected_site=None)
    with pytest.raises(UnknownKey) as unknown:
        verify_token(old, {"k2": OTHER_KEY.public_key()}, NOW, expected_site=None)
    assert unknown.value.reason == "unknown_key"


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused() -> None:
    forged = issue_token(OTHER_KEY, "k1", claims())
    with pytest.raises(BadSignature) as bad:
        verify_token(forged, KEYS, NOW, expected_site=None)
    assert bad.value.reason == "bad_signature"


def test_a_token_for_another_site_is_refused() -> None:
    token = issue_token(KEY, "k1", claims(site="LCK-0001"))
    with pytest.raises(WrongSite) as wrong:
        verify_token(token, KEYS, NOW, expected_site="LCK-0042")
    assert wrong.value.reason == "wrong_site"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RO1:",
        "RO1:/",
        "RO2:ABC/",
        "RO1:abc/",
        "RO1:A/",
        "RO1:" + "0" * 30 + "/",
        "RO1:GGW/",
        "hello",
        "RO1: /",
        "RO1:ABC",
    ],
)
def test_garbage_is_malformed(text: str) -> None:
    with pytest.raises(MalformedToken) as malformed:
        verify_token(text, KEYS, NOW, expected_site=None)
    assert malformed.value.reason == "malformed"


def test_claims_are_checked_when_issuing() -> None:
    with pytest.raises(ValueError):
        claims(expires_at=NOW - 3600)
    with pytest.raises(ValueError):
        claims(jti="not-a-uuid")
    with pytest.raises(ValueError):
        claims(parcel_id=True)
    with pytest.raises(ValueError):
        claims(compartment=0)
    with pytest.raises(ValueError):
        issue_token(KEY, "", claims())


def test_a_token_survives_a_reader_that_trims_spaces() -> None:
    for _ in range(200):  # some tokens end in a base45 space before the terminator
        token = issue_token(KEY, "k1", claims())
        assert verify_token(token.strip(), KEYS, NOW, expected_site=None)
    with pytest.raises(MalformedToken):
        verify_token(token[:-1], KEYS, NOW, expected_site=None)


def test_unverified_claims_read_without_a_key() -> None:
    original = claims()
    kid, read = unverified_claims(issue_token(KEY, "k1", original))
    assert (kid, read) == ("k1", original)


def test_keys_load_from_pem_and_raw_base64() -> None:
    private = load_private_key(private_key_to_pem(KEY))
    public_raw = load_public_key(public_key_to_text(KEY.public_key()))
    public_pem = load_public_key(public_key_to_pem(KEY.public_key()))
    token = issue_token(private, "k1", claims())
    verify_token(token, {"k1": public_raw}, NOW, expected_site=None)
    verify_token(token, {"k1": public_pem}, NOW, expected_site=None)
    with pytest.raises(ValueError):
        load_public_key("AAAA")


@given(st.binary(max_size=80))
def test_base45_round_trips(data: bytes) -> None:
    assert b45decode(b45encode(data)) == data


def test_base45_matches_rfc_9285_examples() -> None:
    assert b45encode(b"AB") == "BB8"
    assert b45encode(b"Hello!!") == "%69 VD92EX0"
    assert b45decode("QED8WEX0") == b"ietf!"


ALTERED_TOKEN = issue_token(KEY, "k1", claims(jti=str(uuid.UUID(int=42))))
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:abcxyz_=é"


@settings(max_examples=400)
@given(st.data())
def test_any_altered_character_of_a_valid_token_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(ALTERED_TOKEN) - 1))
    original = ALTERED_TOKEN[position]
    replacement = data.draw(st.sampled_from(ALPHABET).filter(lambda c: c != original))
    altered = ALTERED_TOKEN[:position] + replacement + ALTERED_TOKEN[position + 1 :]
    with pytest.raises(TokenError):
        verify_token(altered, KEYS, NOW, expected_site=None)


@settings(max_examples=300)
@given(st.data())
def test_any_altered_byte_of_a_valid_token_is_refused(data: st.DataObject) -> None:
    raw = bytearray(b45decode(ALTERED_TOKEN[len(TOKEN_PREFIX) : -1]))
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(TokenError):
        verify_token(TOKEN_PREFIX + b45encode(bytes(raw)) + "/", KEYS, NOW, expected_site=None)


@given(st.binary(max_size=6), st.booleans())
def test_truncated_or_extended_tokens_are_refused(extra: bytes, truncate: bool) -> None:
    raw = b45decode(ALTERED_TOKEN[len(TOKEN_PREFIX) : -1])
    changed = raw[: -1 - len(extra)] if truncate else raw + extra + b"\x00"
    with pytest.raises(TokenError):
        verify_token(TOKEN_PREFIX + b45encode(changed) + "/", KEYS, NOW, expected_site=None)
