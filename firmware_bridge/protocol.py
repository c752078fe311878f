"""The locker protocol, version 1: topics, envelope and message bodies.

Both ends import this module: the backend bridge and the locker agent. It is pure (no MQTT
client, no I/O) so a hardware maker's test bench can import it too. The prose contract is
`docs/locker-protocol.md`; `docs/asyncapi.yaml` is generated from these models.

Every message is a JSON object (UTF-8) with a common envelope::

    {"v": 1, "msg_id": uuid, "locker_id": str, "ts": ISO 8601 UTC, "type": str, "body": {...}}

Device messages add `boot_id`; events add `seq`; commands add `corr_id`, `expires_at` and
`expect`. Models are strict (no type coercion) and refuse unknown fields.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)

from firmware_bridge.clock import now_utc

PROTOCOL_VERSION: Final = 1
TOPIC_ROOT: Final = "relayops/v1/lockers"
TOPIC_KINDS: Final = ("cmd", "evt", "state", "status", "ack")
BRIDGE_SHARE_GROUP: Final = "bridges"
# Backend bridges split the event load; each event goes to one member of the group.
BRIDGE_EVT_SUBSCRIPTION: Final = f"$share/{BRIDGE_SHARE_GROUP}/{TOPIC_ROOT}/+/evt"
# Status is retained and small: every bridge reads all of it (no shared subscription).
BRIDGE_STATUS_SUBSCRIPTION: Final = f"{TOPIC_ROOT}/+/status"
# A command received later than its expires_at plus this tolerance is refused, not executed.
CLOCK_TOLERANCE_S: Final = 30
MAX_PAYLOAD_BYTES: Final = 256 * 1024
LOCKER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_LOCKER_ID_RE = re.compile(LOCKER_ID_PATTERN)


class ProtocolError(ValueError):
    """An invalid message. `reason` is one of the REASONS codes, `detail` is for humans."""

    REASONS: Final = (
        "bad_topic",
        "too_large",
        "bad_json",
        "unsupported_version",
        "unknown_type",
        "invalid",
        "locker_mismatch",
    )

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in self.REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# --- topics ---------------------------------------------------------------------------------


def check_locker_id(locker_id: str) -> str:
    """A locker id is one topic level: no '/', '+', '#', no leading '$'."""
    if not isinstance(locker_id, str) or not _LOCKER_ID_RE.match(locker_id):
        raise ProtocolError("bad_topic", f"invalid locker id {locker_id!r}")
    return locker_id


def topic(locker_id: str, kind: str) -> str:
    if kind not in TOPIC_KINDS:
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{TOPIC_ROOT}/{check_locker_id(locker_id)}/{kind}"


def cmd_topic(locker_id: str) -> str:
    return topic(locker_id, "cmd")


def evt_topic(locker_id: str) -> str:
    return topic(locker_id, "evt")


def state_topic(locker_id: str) -> str:
    return topic(locker_id, "state")


def status_topic(locker_id: str) -> str:
    return topic(locker_id, "status")


def ack_topic(locker_id: str) -> str:
    return topic(locker_id, "ack")


def parse_topic(name: str) -> tuple[str, str]:
    """`relayops/v1/lockers/{locker_id}/{kind}` -> (locker_id, kind); shares are stripped."""
    if name.startswith("$share/"):
        name = name.split("/", 2)[2] if name.count("/") >= 2 else ""
    prefix = TOPIC_ROOT + "/"
    if not name.startswith(prefix):
        raise ProtocolError("bad_topic", f"not under {TOPIC_ROOT}: {name!r}")
    parts = name[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in TOPIC_KINDS:
        raise ProtocolError("bad_topic", f"expected {TOPIC_ROOT}/<locker_id>/<kind>: {name!r}")
    return check_locker_id(parts[0]), parts[1]


# --- field types ----------------------------------------------------------------------------


def _require_iso_text(value: object) -> object:
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string")


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() != timedelta(0):
        raise ValueError("must be UTC (end with Z or +00:00)")
    return value.astimezone(UTC)


UtcDateTime = Annotated[
    datetime,
    BeforeValidator(_require_iso_text),
    Field(strict=False),
    AfterValidator(_require_utc),
]
Uuid = Annotated[uuid.UUID, Field(strict=False)]
LockerId = Annotated[str, Field(pattern=LOCKER_ID_PATTERN)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]
Reason = Annotated[str, Field(min_length=1, max_length=200)]
Compartment = Annotated[int, Field(ge=1, le=9999)]
# A lock board's address on the locker's bus (a KR-CU16's address switches: 0-15).
BoardAddress = Annotated[int, Field(ge=0, le=15)]
Seq = Annotated[int, Field(ge=0)]
Version = Annotated[int, Field(ge=0)]
Base64Text = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]+={0,2}$", max_length=100)]
HexDigest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Purpose = Literal["deposit", "pickup", "collection", "maintenance"]
CredentialKind = Literal["qr", "pin", "carrier"]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --- command bodies (backend -> locker) ------------------------------------------------------


class OpenCompartment(_Model):
    """Open one door. `credential_id` (a QR jti or a PIN credential id) is marked spent."""

    purpose: Purpose
    compartment: Compartment
    parcel_ref: ShortText | None = None
    credential_id: ShortText | None = None
    presentation_id: Uuid | None = None


class PublicKey(_Model):
    kid: Annotated[str, Field(min_length=1, max_length=16)]
    key: Base64Text  # raw 32-byte Ed25519 public key, base64


class PinKey(_Model):
    """Names the PIN key a sync's hashes are made with. The key itself is never sent: the
    locker holds it from its provisioning bundle (section 12), so a broker observer who captures
    a sync cannot test PINs against its hashes offline."""

    key_id: ShortText
    # Only ever filled in by the locker from its bundle; a sync carrying a key is refused.
    key: Base64Text | None = None


class PinCredential(_Model):
    credential_id: ShortText
    parcel_ref: ShortText
    compartment: Compartment
    pin_hash: HexDigest  # hex HMAC-SHA256(pin key, "relayops/pin/v1:" + pin)
    not_before: UtcDateTime
    expires_at: UtcDateTime


class Reservation(_Model):
    """A compartment held for a deposit (or collection) opened by a code typed after the
    carrier key: a carrier's, a producer's, or a sender's drop-off code (section 7)."""

    reservation_id: ShortText
    purpose: Literal["deposit", "collection"]
    compartment: Compartment
    parcel_ref: ShortText | None = None
    code_hash: HexDigest  # same keyed hash as PINs, over the code that opens it
    expires_at: UtcDateTime


class SyncCredentials(_Model):
    """The credential set a locker needs offline. Full replaces; incremental patches
    `base_version` (the locker refuses it with `version_mismatch` if it holds another)."""

    version: Version
    full: bool
    base_version: Version | None = None
    site_id: ShortText | None = None
    public_keys: list[PublicKey] = Field(default_factory=list, max_length=16)
    # The backend's command keys the locker trusts from now on (a rotation: old and new side
    # by side, then the old one dropped). Empty: keep the keys held. Section 12.
    command_keys: list[PublicKey] = Field(default_factory=list, max_length=8)
    pin_key: PinKey | None = None
    pins: list[PinCredential] = Field(default_factory=list, max_length=2000)
    reservations: list[Reservation] = Field(default_factory=list, max_length=1000)
    revoked_credentials: list[ShortText] = Field(default_factory=list, max_length=5000)
    revoked_parcels: list[ShortText] = Field(default_factory=list, max_length=5000)

    @model_validator(mode="after")
    def _incremental_names_its_base(self) -> SyncCredentials:
        if not self.full and self.base_version is None:
            raise ValueError("an incremental sync needs base_version")
        if self.base_version is not None and self.base_version >= self.version:
            raise ValueError("base_version must be lower than version")
        return self


class SetOutOfService(_Model):
    reason: Reason
    compartment: Compartment | None = None  # None: the whole locker


class SetInService(_Model):
    compartment: Compartment | None = None


class RequestSnapshot(_Model):
    pass


class ResendEvents(_Model):
    boot_id: ShortText
    from_seq: Annotated[int, Field(ge=1)]
    to_seq: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _range_is_ordered(self) -> ResendEvents:
        if self.to_seq < self.from_seq:
            raise ValueError("to_seq must be >= from_seq")
        if self.to_seq - self.from_seq >= 10_000:
            raise ValueError("at most 10000 events per request")
        return self


class RejectCredential(_Model):
    """The backend's 'no' to a forwarded `credential_presented`: show it, do not fall back."""

    presentation_id: Uuid
    reason: Reason


# --- event bodies (locker -> backend) -------------------------------------------------------


class DoorOpened(_Model):
    compartment: Compartment
    corr_id: Uuid | None = None
    purpose: Purpose | None = None
    credential_id: ShortText | None = None


class DoorClosed(_Model):
    """`occupied` is None where the board has no occupancy sensor. `opened_for` recalls why the
    door was last opened, so the backend can spot a parcel left behind."""

    compartment: Compartment
    occupied: bool | None
    opened_for: Purpose | None = None
    corr_id: Uuid | None = None
    credential_id: ShortText | None = None
    open_seconds: Annotated[int, Field(ge=0)] | None = None


class DoorLeftOpen(_Model):
    compartment: Compartment
    open_seconds: Annotated[int, Field(ge=0)]
    opened_for: Purpose | None = None


class DoorFailedToOpen(_Model):
    compartment: Compartment
    reason: Reason
    corr_id: Uuid | None = None
    credential_id: ShortText | None = None
    board: BoardAddress | None = None  # with reason board_offline: the board that is silent


class CredentialPresented(_Model):
    """Online: `result=forwarded`, the locker waits for `open_compartment` or
    `reject_credential` naming `presentation_id`. Offline decisions are reported too."""

    presentation_id: Uuid
    kind: CredentialKind
    result: Literal["forwarded", "accepted_offline", "refused"]
    token: Annotated[str, Field(max_length=400)] | None = None  # QR text (signed, not secret)
    code_hash: HexDigest | None = None  # keyed hash of a typed PIN or carrier code, never the code
    key_id: ShortText | None = None
    reason: Reason | None = None
    credential_id: ShortText | None = None
    compartment: Compartment | None = None


class OfflinePickup(_Model):
    """A pickup verified by the locker alone, journaled BEFORE the door was told to open.
    Its outcome follows as door_opened / door_failed_to_open with the same credential_id."""

    presentation_id: Uuid
    credential_kind: Literal["qr", "pin"]
    credential_id: ShortText
    parcel_ref: ShortText
    compartment: Compartment
    verified_at: UtcDateTime
    token: Annotated[str, Field(max_length=400)] | None = None  # QR text, for re-verification


class OfflineDeposit(_Model):
    reservation_id: ShortText
    compartment: Compartment
    parcel_ref: ShortText | None = None
    verified_at: UtcDateTime


class OfflineCollection(_Model):
    reservation_id: ShortText
    compartment: Compartment
    parcel_ref: ShortText | None = None
    verified_at: UtcDateTime


class Fault(_Model):
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    compartment: Compartment | None = None
    detail: Reason | None = None
    credential_id: ShortText | None = None
    board: BoardAddress | None = None  # board_offline, board_recovered: which lock board


class Heartbeat(_Model):
    uptime_s: Annotated[int, Field(ge=0)]
    unacked_events: Annotated[int, Field(ge=0)]
    credential_version: Version | None = None


class CompartmentState(_Model):
    number: Compartment
    door: Literal["open", "closed", "unknown"]
    occupied: bool | None
    in_service: bool
    fault: Reason | None = None


class StateSnapshot(_Model):
    compartments: list[CompartmentState] = Field(max_length=9999)
    in_service: bool
    credential_version: Version | None
    acked_seq: Seq  # highest seq of this boot the backend has acknowledged
    unacked_events: Annotated[int, Field(ge=0)]
    started_at: UtcDateTime
    agent_version: ShortText


class CmdResult(_Model):
    corr_id: Uuid
    command_msg_id: Uuid
    command_type: ShortText
    status: Literal["accepted", "done", "failed"]
    reason: Reason | None = None

    @model_validator(mode="after")
    def _failure_has_a_reason(self) -> CmdResult:
        if self.status == "failed" and not self.reason:
            raise ValueError("a failed result needs a reason")
        return self


class SyncAck(_Model):
    version: Version | None  # credential version now held (None: none yet)
    applied: bool


# --- bodies of the non-sequenced messages ---------------------------------------------------


class AckBody(_Model):
    """Backend -> locker: every event of `boot_id` up to `seq` is committed; drop them."""

    boot_id: ShortText
    seq: Annotated[int, Field(ge=1)]


class StatusBody(_Model):
    state: Literal["online", "offline"]


# --- message type registry ------------------------------------------------------------------

COMMAND_BODIES: Final[dict[str, type[_Model]]] = {
    "open_compartment": OpenCompartment,
    "sync_credentials": SyncCredentials,
    "set_out_of_service": SetOutOfService,
    "set_in_service": SetInService,
    "request_snapshot": RequestSnapshot,
    "resend_events": ResendEvents,
    "reject_credential": RejectCredential,
}
EVENT_BODIES: Final[dict[str, type[_Model]]] = {
    "door_opened": DoorOpened,
    "door_closed": DoorClosed,
    "door_left_open": DoorLeftOpen,
    "door_failed_to_open": DoorFailedToOpen,
    "credential_presented": CredentialPresented,
    "offline_pickup": OfflinePickup,
    "offline_deposit": OfflineDeposit,
    "offline_collection": OfflineCollection,
    "fault": Fault,
    "heartbeat": Heartbeat,
    "state_snapshot": StateSnapshot,
    "cmd_result": CmdResult,
    "sync_ack": SyncAck,
}
# Heartbeats are not journaled nor acknowledged: their seq repeats the last one assigned.
UNSEQUENCED_EVENTS: Final = frozenset({"heartbeat"})

CommandBody = (
    OpenCompartment
    | SyncCredentials
    | SetOutOfService
    | SetInService
    | RequestSnapshot
    | ResendEvents
    | RejectCredential
)
EventBody = (
    DoorOpened
    | DoorClosed
    | DoorLeftOpen
    | DoorFailedToOpen
    | CredentialPresented
    | OfflinePickup
    | OfflineDeposit
    | OfflineCollection
    | Fault
    | Heartbeat
    | StateSnapshot
    | CmdResult
    | SyncAck
)

# --- envelopes ------------------------------------------------------------------------------


class Envelope(_Model):
    v: Literal[1]
    msg_id: Uuid
    locker_id: LockerId
    ts: UtcDateTime
    type: str
    body: Any


class CommandEnvelope(Envelope):
    corr_id: Uuid  # the transaction: the same in every retry of one command
    expires_at: UtcDateTime
    expect: Literal["cmd_result"]
    # Per-locker counter given at each publication: the locker refuses one not above the last
    # it applied (a replayed capture). Absent only from unsigned test messages.
    ctr: Annotated[int, Field(ge=1)] | None = None
    body: CommandBody


class DeviceEnvelope(Envelope):
    boot_id: ShortText


class EventEnvelope(DeviceEnvelope):
    seq: Seq
    body: EventBody

    @model_validator(mode="after")
    def _sequenced_events_start_at_one(self) -> EventEnvelope:
        if self.type not in UNSEQUENCED_EVENTS and self.seq < 1:
            raise ValueError("seq starts at 1 for journaled events")
        return self


class StatusEnvelope(DeviceEnvelope):
    type: Literal["status"]
    body: StatusBody


class StateEnvelope(DeviceEnvelope):
    type: Literal["state"]
    body: StateSnapshot


class AckEnvelope(Envelope):
    type: Literal["ack"]
    body: AckBody


def _typed(base: type[Envelope], name: str, body: type[_Model], suffix: str) -> type[Envelope]:
    """One concrete envelope per message type: `type` fixed, `body` its own model."""
    model: type[Envelope] = create_model(
        f"{body.__name__}{suffix}",
        __base__=base,
        __doc__=body.__doc__,
        type=(Literal[name], ...),  # type: ignore[arg-type]
        body=(body, ...),
    )
    return model


COMMAND_MODELS: Final = {
    name: _typed(CommandEnvelope, name, body, "Command") for name, body in COMMAND_BODIES.items()
}
EVENT_MODELS: Final = {
    name: _typed(EventEnvelope, name, body, "Event") for name, body in EVENT_BODIES.items()
}
_MODELS_BY_TOPIC_KIND: Final[dict[str, dict[str, type[Envelope]]]] = {
    "cmd": COMMAND_MODELS,
    "evt": EVENT_MODELS,
    "status": {"status": StatusEnvelope},
    "state": {"state": StateEnvelope},
    "ack": {"ack": AckEnvelope},
}


# --- parsing --------------------------------------------------------------------------------


def parse_message(topic_name: str, payload: bytes) -> Envelope:
    """Validate one MQTT message. Returns the concrete envelope for its topic and type
    (e.g. a `CommandEnvelope` whose body is an `OpenCompartment`); raises `ProtocolError`
    for anything else, never another exception. The signature, if any, is not checked: see
    `receive` and `check_signature`."""
    return receive(topic_name, payload).envelope


@dataclass(frozen=True)
class Received:
    """A parsed message, with what its signature covers (section 12)."""

    envelope: Envelope
    signed_content: bytes
    signature: Signature | None


def receive(topic_name: str, payload: bytes) -> Received:
    """`parse_message`, keeping the signature and the canonical bytes it must cover."""
    locker_id, kind = parse_topic(topic_name)
    if not isinstance(payload, bytes | bytearray):
        raise ProtocolError("bad_json", "payload must be bytes")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError("too_large", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    data = _load_json_object(payload)
    signature = _pop_signature(data)
    envelope = _validate(locker_id, kind, data)
    return Received(envelope, canonical_json(data), signature)


def _pop_signature(data: dict[str, Any]) -> Signature | None:
    raw = data.pop(SIGNATURE_FIELD, None)
    if raw is None:
        return None
    try:
        return Signature.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError("invalid", f"sig: {_summarise(exc)}") from None


def _validate(locker_id: str, kind: str, data: dict[str, Any]) -> Envelope:
    if data.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("unsupported_version", f"v={data.get('v')!r}, expected 1")
    models = _MODELS_BY_TOPIC_KIND[kind]
    message_type = data.get("type")
    if not isinstance(message_type, str) or message_type not in models:
        raise ProtocolError("unknown_type", f"{message_type!r} on a {kind} topic")
    try:
        envelope = models[message_type].model_validate(data)
    except ValidationError as exc:
        raise ProtocolError("invalid", _summarise(exc)) from None
    if envelope.locker_id != locker_id:
        raise ProtocolError(
            "locker_mismatch", f"locker_id {envelope.locker_id!r} on topic of {locker_id!r}"
        )
    return envelope


# --- signatures (section 12) -----------------------------------------------------------------

SIGNATURE_FIELD: Final = "sig"
# cmd_result reason: a signed command whose counter the locker has passed; not handled, so the
# backend publishes it again under a new counter (two bridges may publish out of order).
STALE_COUNTER: Final = "stale_counter"
# Domain separation: a signature made for another purpose (a QR token, say) can never pass as a
# message's, even where one key signs both.
SIGNING_CONTEXT: Final = b"relayops/locker-msg/v1\n"
KidText = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class Signature(_Model):
    """`"sig": {"kid": ..., "val": base64 Ed25519 signature}`, a field of the envelope."""

    kid: KidText
    val: Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{86}==$")]


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """What a signature covers: the message without `sig`, keys sorted, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(envelope: Envelope, key: Ed25519PrivateKey, kid: str) -> bytes:
    """The wire bytes of `envelope` signed with `key` (named `kid` for the receiver)."""
    data = envelope.model_dump(mode="json")
    value = key.sign(SIGNING_CONTEXT + canonical_json(data))
    data[SIGNATURE_FIELD] = {"kid": kid, "val": base64.b64encode(value).decode()}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def check_signature(received: Received, keys: Mapping[str, Ed25519PublicKey]) -> str | None:
    """None when `received` is signed by one of `keys` (by kid); else why not:
    `unsigned`, `unknown_key` or `bad_signature`."""
    signature = received.signature
    if signature is None:
        return "unsigned"
    key = keys.get(signature.kid)
    if key is None:
        return "unknown_key"
    try:
        key.verify(base64.b64decode(signature.val), SIGNING_CONTEXT + received.signed_content)
    except (InvalidSignature, ValueError):
        return "bad_signature"
    return None


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """Base64 of the raw 32-byte public key, as bundles and the database keep it."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def load_raw_public_key(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def load_raw_private_key(text: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))


def _load_json_object(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(bytes(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError("bad_json", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_json", "top level must be a JSON object")
    return data


def _summarise(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(item) for item in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


# --- building and encoding ------------------------------------------------------------------


def encode(envelope: Envelope) -> bytes:
    """Compact UTF-8 JSON, as sent on the wire."""
    return envelope.model_dump_json().encode()


def _type_of(body: _Model, registry: dict[str, type[_Model]]) -> str:
    for name, model in registry.items():
        if type(body) is model:
            return name
    raise TypeError(f"{type(body).__name__} is not a body of this message family")


def make_command(
    locker_id: str,
    body: CommandBody,
    *,
    expires_at: datetime | None = None,
    ttl_s: float = 60.0,
    corr_id: uuid.UUID | None = None,
    msg_id: uuid.UUID | None = None,
    ts: datetime | None = None,
    ctr: int | None = None,
) -> CommandEnvelope:
    """A command; `corr_id` stays the same across retries of one transaction, `msg_id` too
    when the very same message is republished."""
    name = _type_of(body, COMMAND_BODIES)
    sent = ts or now_utc()
    model: Any = COMMAND_MODELS[name]  # a CommandEnvelope subclass, built by _typed
    envelope = model(
        v=PROTOCOL_VERSION,
        msg_id=msg_id or uuid.uuid4(),
        locker_id=locker_id,
        ts=sent,
        type=name,
        body=body,
        corr_id=corr_id or uuid.uuid4(),
        expires_at=expires_at or sent + timedelta(seconds=ttl_s),
        expect="cmd_result",
        ctr=ctr,
    )
    assert isinstance(envelope, CommandEnvelope)
    return envelope


def make_event(
    locker_id: str,
    boot_id: str,
    seq: int,
    body: EventBody,
    *,
    msg_id: uuid.UUID | None = None,
    ts: datetime | None = None,
) -> EventEnvelope:
    name = _type_of(body, EVENT_BODIES)
    model: Any = EVENT_MODELS[name]  # an EventEnvelope subclass, built by _typed
    envelope = model(
        v=PROTOCOL_VERSION,
        msg_id=msg_id or uuid.uuid4(),
        locker_id=locker_id,
        ts=ts or now_utc(),
        type=name,
        body=body,
        boot_id=boot_id,
        seq=seq,
    )
    assert isinstance(envelope, EventEnvelope)
    return envelope


def make_ack(locker_id: str, boot_id: str, seq: int) -> AckEnvelope:
    return AckEnvelope(
        v=PROTOCOL_VERSION,
        msg_id=uuid.uuid4(),
        locker_id=locker_id,
        ts=now_utc(),
        type="ack",
        body=AckBody(boot_id=boot_id, seq=seq),
    )


def make_status(
    locker_id: str, boot_id: str, state: Literal["online", "offline"]
) -> StatusEnvelope:
    return StatusEnvelope(
        v=PROTOCOL_VERSION,
        msg_id=uuid.uuid4(),
        locker_id=locker_id,
        ts=now_utc(),
        type="status",
        body=StatusBody(state=state),
        boot_id=boot_id,
    )


def make_state(locker_id: str, boot_id: str, snapshot: StateSnapshot) -> StateEnvelope:
    return StateEnvelope(
        v=PROTOCOL_VERSION,
        msg_id=uuid.uuid4(),
        locker_id=locker_id,
        ts=now_utc(),
        type="state",
        body=snapshot,
        boot_id=boot_id,
    )


def is_expired(
    command: CommandEnvelope, now: datetime, tolerance_s: float = CLOCK_TOLERANCE_S
) -> bool:
    """True when `now` (the receiver's clock) is past the command's expiry plus tolerance."""
    return now > command.expires_at + timedelta(seconds=tolerance_s)


def all_message_models() -> dict[str, type[Envelope]]:
    """Every concrete message model by name (for schemas and documentation)."""
    models: dict[str, type[Envelope]] = {}
    for family in _MODELS_BY_TOPIC_KIND.values():
        for model in family.values():
            models[model.__name__] = model
    return models


CODE_HASH_CONTEXT: Final = b"relayops/pin/v1:"


def keyed_code_hash(key_b64: str, code: str) -> str:
    """The keyed hash of a PIN or carrier code, as synced to lockers and forwarded by them:
    hex HMAC-SHA256(base64-decoded per-locker key, "relayops/pin/v1:" + code)."""
    key = base64.b64decode(key_b64, validate=True)
    return hmac.new(key, CODE_HASH_CONTEXT + code.encode(), hashlib.sha256).hexdigest()


# --- drop-off QR codes (section 7, "Senders and producers") ----------------------------------

# A drop-off QR code holds what a sender would type and scan: the drop-off code (typed as a
# carrier code) and the parcel's barcode, so one scan opens the door reserved for the parcel.
# It is no signed token: the code it carries is the secret, as when typed.
DROP_OFF_QR_PREFIX: Final = "RODEP:"
_DROP_OFF_QR_RE = re.compile(r"^RODEP:([0-9]{4,12})/([A-Za-z0-9]{1,40})$")


def drop_off_qr_text(code: str, parcel_ref: str) -> str:
    return f"{DROP_OFF_QR_PREFIX}{code}/{parcel_ref}"


def parse_drop_off_qr(text: str) -> tuple[str, str] | None:
    """(code, parcel_ref) from a drop-off QR code's text; None if it is not one."""
    match = _DROP_OFF_QR_RE.match(text.strip())
    return (match.group(1), match.group(2)) if match else None
