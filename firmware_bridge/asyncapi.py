"""The AsyncAPI 3.0 document of the locker protocol, generated from the pydantic models.

    python -m firmware_bridge.asyncapi > docs/asyncapi.yaml

A unit test rebuilds the document and compares it with the committed file, so the published
contract cannot drift from the code. The document describes the locker's side: it receives
commands and acks, and sends events, state and status.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic.json_schema import models_json_schema

from firmware_bridge import protocol as p

REF = "#/components/schemas/{model}"

_CHANNELS: dict[str, tuple[str, str, dict[str, type[p.Envelope]]]] = {
    "commands": ("cmd", "Backend to locker. QoS 1, never retained.", p.COMMAND_MODELS),
    "events": (
        "evt",
        "Locker to backend. QoS 1. Bridges subscribe with "
        f"`{p.BRIDGE_EVT_SUBSCRIPTION}`. Journaled until acknowledged on `ack`.",
        p.EVENT_MODELS,
    ),
    "state": (
        "state",
        "Locker to anyone. Retained snapshot of the doors.",
        {"state": p.StateEnvelope},
    ),
    "status": (
        "status",
        "Locker to anyone. Retained online/offline; `offline` is also the MQTT last will.",
        {"status": p.StatusEnvelope},
    ),
    "acks": (
        "ack",
        "Backend to locker. QoS 1, never retained: highest event seq of a boot committed.",
        {"ack": p.AckEnvelope},
    ),
}

_OPERATIONS = {
    "receiveCommand": ("receive", "commands", False),
    "sendEvent": ("send", "events", False),
    "sendState": ("send", "state", True),
    "sendStatus": ("send", "status", True),
    "receiveAck": ("receive", "acks", False),
}


def build_document() -> dict[str, Any]:
    models = p.all_message_models()
    _, definitions = models_json_schema(
        [(model, "validation") for model in models.values()], ref_template=REF
    )
    schemas = dict(sorted(definitions["$defs"].items()))
    _require_signatures(schemas, [model.__name__ for model in models.values()])
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for channel, (kind, description, family) in _CHANNELS.items():
        names = [model.__name__ for model in family.values()]
        channels[channel] = {
            "address": f"{p.TOPIC_ROOT}/{{locker_id}}/{kind}",
            "description": description,
            "parameters": {"locker_id": {"description": f"Locker id, {p.LOCKER_ID_PATTERN}"}},
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        }
        for type_name, model in family.items():
            messages[model.__name__] = {
                "name": type_name,
                "title": model.__name__,
                "summary": (model.__doc__ or type_name).strip().split("\n")[0],
                "contentType": "application/json",
                "payload": {"$ref": REF.format(model=model.__name__)},
            }
    operations = {
        name: {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "bindings": {"mqtt": {"qos": 1, "retain": retain}},
        }
        for name, (action, channel, retain) in _OPERATIONS.items()
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "RelayOps locker protocol",
            "version": f"{p.PROTOCOL_VERSION}.0.0",
            "description": (
                "MQTT 3.1.1 contract between RelayOps and its parcel lockers. Prose, rules and "
                "failure cases: docs/locker-protocol.md. Generated from "
                "firmware_bridge/protocol.py."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": "broker.example:8883",
                "protocol": "secure-mqtt",
                "protocolVersion": "3.1.1",
                "description": (
                    "TLS with the deployment's CA; one login per locker (username = locker "
                    "id); an ACL confines each locker to its own topics (config/mosquitto/)."
                ),
                "security": [{"$ref": "#/components/securitySchemes/lockerLogin"}],
            },
            "demo": {
                "host": "127.0.0.1:1883",
                "protocol": "mqtt",
                "protocolVersion": "3.1.1",
                "description": "The embedded demo's anonymous broker, on the loopback only.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "lockerLogin": {
                    "type": "userPassword",
                    "description": "From the locker's provisioning bundle (protocol section 12).",
                },
            },
        },
    }


def _require_signatures(schemas: dict[str, Any], message_models: list[str]) -> None:
    """`sig` is taken off before a message is validated (it signs the rest): add it here."""
    schemas["Signature"] = p.Signature.model_json_schema()
    for name in message_models:
        schema = schemas[name]
        schema["properties"]["sig"] = {
            "$ref": REF.format(model="Signature"),
            "description": (
                "Ed25519 over the canonical JSON of the message without `sig` (protocol "
                "section 12): the backend's command key on commands and acks, the locker's "
                "own key on everything a locker sends."
            ),
        }
        schema["required"] = [*schema["required"], "sig"]


def main() -> int:
    import yaml  # a development tool: PyYAML comes with the test extra

    sys.stdout.write("# Generated by `python -m firmware_bridge.asyncapi`; do not edit.\n")
    sys.stdout.write(
        yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=100)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
