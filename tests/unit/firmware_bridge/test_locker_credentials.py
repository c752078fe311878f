import base64
import time
from datetime import UTC, datetime, timedelta

import pytest

from firmware_bridge import protocol as p
from firmware_bridge.agent.credentials import (
    Grant,
    KeypadThrottle,
    OfflineVerifier,
    Refusal,
    SyncRefused,
    apply_sync,
)
from relay_ops.domain.pickup_token import (
    TokenClaims,
    generate_private_key,
    issue_token,
    new_jti,
    public_key_to_text,
)

KEY = generate_private_key()
PIN_KEY = base64.b64encode(bytes(range(32))).decode()
NOW = time.time()


def pin(credential_id: str, code: str, parcel: str = "P1", compartment: int = 2) -> p.PinCredential:
    moment = datetime.now(UTC)
    return p.PinCredential(
        credential_id=credential_id,
        parcel_ref=parcel,
        compartment=compartment,
        pin_hash=p.keyed_code_hash(PIN_KEY, code),
        not_before=moment - timedelta(hours=1),
        expires_at=moment + timedelta(hours=1),
    )


def full_sync(version: int = 1, **fields: object) -> p.SyncCredentials:
    values: dict[str, object] = {
        "version": version,
        "full": True,
        "public_keys": [p.PublicKey(kid="k1", key=public_key_to_text(KEY.public_key()))],
        "pin_key": p.PinKey(key_id="pk", key=PIN_KEY),
        "pins": [pin("c1", "123456")],
    }
    values.update(fields)
    return p.SyncCredentials(**values)  # type: ignore[arg-type]


def token(compartment: int | None = 5, parcel: int | str = 9, site: str = "L1") -> str:
    claims = TokenClaims(new_jti(), parcel, site, compartment, int(NOW) - 10, int(NOW) + 600)
    return issue_token(KEY, "k1", claims)


def test_incremental_sync_patches_the_held_version_only() -> None:
    held = full_sync()
    patch = p.SyncCredentials(
        version=2,
        full=False,
        base_version=1,
        pins=[pin("c2", "654321")],
        revoked_credentials=["c1"],
    )
    merged = apply_sync(held, patch)
    assert merged.version == 2 and [x.credential_id for x in merged.pins] == ["c2"]
    assert merged.public_keys == held.public_keys and merged.pin_key == held.pin_key
    with pytest.raises(SyncRefused):
        apply_sync(merged, patch)
    with pytest.raises(SyncRefused):
        apply_sync(None, patch)
    assert apply_sync(merged, full_sync(9)).version == 9


def test_qr_checks_signature_site_revocation_and_compartment() -> None:
    verifier = OfflineVerifier(full_sync(revoked_parcels=["66"]), "L1")
    grant, claims = verifier.check_qr(token(), NOW, 300)
    assert grant == Grant(claims.jti, "9", 5)  # type: ignore[union-attr]
    assert verifier.check_qr(token(site="L2"), NOW, 300)[0] == Refusal("wrong_site")
    assert verifier.check_qr(token(parcel=66), NOW, 300)[0] == Refusal("revoked")
    assert verifier.check_qr("RO1:nope/", NOW, 300)[0] == Refusal("malformed")
    # no compartment in the token: the locker finds the parcel's compartment in its PINs
    assert verifier.check_qr(token(None, "P1"), NOW, 300)[0].compartment == 2  # type: ignore[union-attr]
    assert verifier.check_qr(token(None, "P404"), NOW, 300)[0] == Refusal("no_compartment")
    assert OfflineVerifier(None, "L1").check_qr(token(), NOW, 300)[0] == Refusal("no_credentials")


def test_pins_match_by_keyed_hash_within_their_validity() -> None:
    verifier = OfflineVerifier(full_sync(), "L1")
    assert verifier.check_pin("123456", NOW, 30) == Grant("c1", "P1", 2)
    assert verifier.check_pin("123457", NOW, 30) == Refusal("unknown_code")
    assert verifier.check_pin("123456", NOW + 7200, 30) == Refusal("expired")
    assert OfflineVerifier(full_sync(pin_key=None), "L1").check_pin("123456", NOW, 30) == Refusal(
        "no_credentials"
    )


def test_keypad_throttle_locks_and_doubles_until_a_success() -> None:
    throttle = KeypadThrottle(max_failures=5, lockout_s=60)
    for _ in range(5):
        assert not throttle.locked(0)
        throttle.failure(0)
    assert throttle.locked(59) and not throttle.locked(60)
    for _ in range(5):
        throttle.failure(60)
    assert throttle.locked(179) and not throttle.locked(180)
    restored = KeypadThrottle()
    restored.load_state(throttle.to_state())
    assert restored.locked(179)
    restored.success()
    assert not restored.locked(61) and restored.level == 0


def reservation(rid: str, purpose: str, door: int, code: str, expires_in_s: float = 3600):
    return p.Reservation(
        reservation_id=rid,
        purpose=purpose,  # type: ignore[arg-type]
        compartment=door,
        parcel_ref=f"P-{rid}",
        code_hash=p.keyed_code_hash(PIN_KEY, code),
        expires_at=datetime.fromtimestamp(NOW + expires_in_s, UTC),
    )


def test_one_carrier_code_opens_all_its_live_reservations_in_door_order() -> None:
    held = [
        reservation("d5", "deposit", 5, "11112222"),
        reservation("c2", "collection", 2, "11112222"),
        reservation("other", "deposit", 3, "99998888"),  # another carrier's
        reservation("old", "collection", 1, "11112222", expires_in_s=-3600),
        reservation("gone", "deposit", 4, "11112222"),
    ]
    verifier = OfflineVerifier(
        full_sync(reservations=held, revoked_credentials=["gone"]), "L1"
    )
    found = verifier.carrier_reservations("11112222", NOW, 30)
    assert isinstance(found, list)
    assert [r.reservation_id for r in found] == ["c2", "d5"]
    assert verifier.carrier_reservations("12345678", NOW, 30) == Refusal("unknown_code")
    only_old = OfflineVerifier(full_sync(reservations=[held[3]]), "L1")
    assert only_old.carrier_reservations("11112222", NOW, 30) == Refusal("expired")
    assert OfflineVerifier(None, "L1").carrier_reservations("11112222", NOW, 30) == Refusal(
        "no_credentials"
    )
