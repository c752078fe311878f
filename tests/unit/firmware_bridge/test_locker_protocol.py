import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol as p


def command_dict(**overrides: Any) -> dict[str, Any]:
    message = json.loads(
        p.encode(p.make_command("L1", p.OpenCompartment(purpose="pickup", compartment=3)))
    )
    message.update(overrides)
    return message


def as_bytes(message: object) -> bytes:
    return json.dumps(message).encode()


def reason_of(topic: str, payload: bytes) -> str:
    with pytest.raises(p.ProtocolError) as error:
        p.parse_message(topic, payload)
    return error.value.reason


def test_topics_per_locker_and_the_bridge_share() -> None:
    assert p.cmd_topic("L1") == "relayops/v1/lockers/L1/cmd"
    assert p.parse_topic("relayops/v1/lockers/L1/evt") == ("L1", "evt")
    assert p.BRIDGE_EVT_SUBSCRIPTION == "$share/bridges/relayops/v1/lockers/+/evt"
    for bad in ["L/1", "L+", "#", "$SYS", ""]:
        with pytest.raises(p.ProtocolError):
            p.cmd_topic(bad)


def test_every_message_family_round_trips() -> None:
    snapshot = p.StateSnapshot(
        compartments=[p.CompartmentState(number=1, door="closed", occupied=None, in_service=True)],
        in_service=True,
        credential_version=None,
        acked_seq=0,
        unacked_events=0,
        started_at=datetime.now(UTC),
        agent_version="0.1.0",
    )
    messages: list[tuple[str, p.Envelope]] = [
        (p.cmd_topic("L1"), p.make_command("L1", p.RequestSnapshot())),
        (
            p.evt_topic("L1"),
            p.make_event("L1", "b1", 1, p.DoorClosed(compartment=2, occupied=True)),
        ),
        (p.evt_topic("L1"), p.make_event("L1", "b1", 0, p.Heartbeat(uptime_s=1, unacked_events=0))),
        (p.ack_topic("L1"), p.make_ack("L1", "b1", 7)),
        (p.status_topic("L1"), p.make_status("L1", "b1", "offline")),
        (p.state_topic("L1"), p.make_state("L1", "b1", snapshot)),
    ]
    for topic, message in messages:
        assert p.parse_message(topic, p.encode(message)) == message


def test_a_parsed_command_carries_its_typed_body() -> None:
    command = p.parse_message(p.cmd_topic("L1"), as_bytes(command_dict()))
    assert isinstance(command, p.CommandEnvelope)
    assert isinstance(command.body, p.OpenCompartment)
    assert command.body.compartment == 3


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("other/L1/cmd", as_bytes(command_dict()), "bad_topic"),
        ("relayops/v1/lockers/L1/cmd/extra", as_bytes(command_dict()), "bad_topic"),
        ("relayops/v1/lockers/L1/nope", as_bytes(command_dict()), "bad_topic"),
        ("relayops/v1/lockers/L1/cmd", b"{not json", "bad_json"),
        ("relayops/v1/lockers/L1/cmd", b"\xff\xfe", "bad_json"),
        ("relayops/v1/lockers/L1/cmd", b"[1, 2]", "bad_json"),
        ("relayops/v1/lockers/L1/cmd", b"", "bad_json"),
        ("relayops/v1/lockers/L1/cmd", b"x" * (p.MAX_PAYLOAD_BYTES + 1), "too_large"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(v=2)), "unsupported_version"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(v="1")), "unsupported_version"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(type="explode")), "unknown_type"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(type="door_opened")), "unknown_type"),
        ("relayops/v1/lockers/L1/evt", as_bytes(command_dict()), "unknown_type"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(extra=1)), "invalid"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(msg_id="nope")), "invalid"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(ts="2025-01-01T10:00:00")), "invalid"),
        (
            "relayops/v1/lockers/L1/cmd",
            as_bytes(command_dict(ts="2025-01-01T10:00:00+02:00")),
            "invalid",
        ),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(ts=1700000000)), "invalid"),
        ("relayops/v1/lockers/L1/cmd", as_bytes(command_dict(expect="nothing")), "invalid"),
        ("relayops/v1/lockers/L2/cmd", as_bytes(command_dict()), "locker_mismatch"),
    ],
)
def test_invalid_messages_raise_one_protocol_error_with_a_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    assert reason_of(topic, payload) == reason


@pytest.mark.parametrize(
    "body",
    [
        {"purpose": "pickup", "compartment": "3"},
        {"purpose": "pickup", "compartment": 3.0},
        {"purpose": "pickup", "compartment": 0},
        {"purpose": "steal", "compartment": 3},
        {"purpose": "pickup"},
        {"purpose": "pickup", "compartment": 3, "surprise": True},
        {"purpose": "pickup", "compartment": True},
    ],
)
def test_bodies_are_strict(body: dict[str, Any]) -> None:
    assert reason_of(p.cmd_topic("L1"), as_bytes(command_dict(body=body))) == "invalid"


def test_command_rules_beyond_types() -> None:
    sync = {"version": 3, "full": False}
    assert (
        reason_of(p.cmd_topic("L1"), as_bytes(command_dict(type="sync_credentials", body=sync)))
        == "invalid"
    )
    resend = {"boot_id": "b", "from_seq": 9, "to_seq": 3}
    assert (
        reason_of(p.cmd_topic("L1"), as_bytes(command_dict(type="resend_events", body=resend)))
        == "invalid"
    )


def test_event_rules_beyond_types() -> None:
    event = json.loads(
        p.encode(p.make_event("L1", "b1", 1, p.DoorClosed(compartment=1, occupied=None)))
    )
    event["seq"] = 0
    assert reason_of(p.evt_topic("L1"), as_bytes(event)) == "invalid"
    failed = {
        "corr_id": str(uuid.uuid4()),
        "command_msg_id": str(uuid.uuid4()),
        "command_type": "x",
        "status": "failed",
    }
    event.update(seq=2, type="cmd_result", body=failed)
    assert reason_of(p.evt_topic("L1"), as_bytes(event)) == "invalid"


def test_expiry_allows_the_clock_tolerance() -> None:
    sent = datetime(2025, 1, 1, tzinfo=UTC)
    command = p.make_command("L1", p.RequestSnapshot(), ts=sent, ttl_s=10)
    assert not p.is_expired(command, sent + timedelta(seconds=10 + p.CLOCK_TOLERANCE_S))
    assert p.is_expired(command, sent + timedelta(seconds=11 + p.CLOCK_TOLERANCE_S))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)  # a loaded CI machine is slow, not wrong
@given(
    st.dictionaries(st.sampled_from(sorted(command_dict())), json_values, max_size=4),
    st.binary(max_size=40),
)
def test_arbitrary_input_never_crashes(overrides: dict[str, Any], raw: bytes) -> None:
    for payload in (as_bytes(command_dict(**overrides)), raw):
        try:
            p.parse_message(p.cmd_topic("L1"), payload)
        except p.ProtocolError as error:
            assert error.reason in p.ProtocolError.REASONS


def test_keyed_code_hash_test_vector() -> None:
    # documented in docs/locker-protocol.md for hardware makers (checked with openssl dgst -hmac)
    key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # bytes 0..31
    assert p.keyed_code_hash(key, "123456") == (
        "1898abe7e9176c70f7d6f15419df016db53d05d1fcd77cefe650f33538e6de26"
    )


def test_a_drop_off_qr_code_carries_the_code_and_the_parcel_and_nothing_else() -> None:
    text = p.drop_off_qr_text("482913", "ACME00000701")
    assert text == "RODEP:482913/ACME00000701"
    assert p.parse_drop_off_qr(text) == ("482913", "ACME00000701")
    assert p.parse_drop_off_qr(f"  {text}\n") == ("482913", "ACME00000701")  # a scanner's CR
    for other in ("RO1:ABC", "RODEP:48a913/ACME1", "RODEP:482913/", "RODEP:/ACME1",
                  "RODEP:482913/ACME 1", "ACME00000701", "rodep:482913/ACME1"):
        assert p.parse_drop_off_qr(other) is None, other
