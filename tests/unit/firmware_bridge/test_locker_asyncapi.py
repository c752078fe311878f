"""docs/asyncapi.yaml is generated from the protocol models: it must match them exactly."""

import json
from pathlib import Path

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware_bridge import protocol as p
from firmware_bridge.asyncapi import build_document

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.yaml"


def test_committed_document_matches_the_models() -> None:
    committed = yaml.safe_load(DOCUMENT.read_text())
    assert committed == build_document(), (
        "docs/asyncapi.yaml is stale: run `python -m firmware_bridge.asyncapi > docs/asyncapi.yaml`"
    )


def test_every_message_type_has_a_message_and_a_schema() -> None:
    document = yaml.safe_load(DOCUMENT.read_text())
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert names == set(p.COMMAND_BODIES) | set(p.EVENT_BODIES) | {"state", "status", "ack"}
    schemas = document["components"]["schemas"]
    for body in [*p.COMMAND_BODIES.values(), *p.EVENT_BODIES.values()]:
        assert schemas[body.__name__]["additionalProperties"] is False


def test_wire_messages_carry_exactly_the_documented_fields() -> None:
    schemas = yaml.safe_load(DOCUMENT.read_text())["components"]["schemas"]
    samples: list[p.Envelope] = [
        p.make_command("L1", p.OpenCompartment(purpose="deposit", compartment=1), ctr=1),
        p.make_event("L1", "b", 3, p.DoorClosed(compartment=1, occupied=None)),
        p.make_ack("L1", "b", 3),
        p.make_status("L1", "b", "online"),
    ]
    key = Ed25519PrivateKey.generate()
    for message in samples:
        wire = json.loads(p.sign(message, key, "k1"))
        schema = schemas[type(message).__name__]
        assert set(wire) == set(schema["properties"])
        assert set(schema["required"]) <= set(wire)
        assert schema["properties"]["type"]["const"] == wire["type"]
        body_schema = schemas[type(message.body).__name__]
        assert set(wire["body"]) == set(body_schema["properties"])
