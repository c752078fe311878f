"""A locker's identity: the provisioning bundle written by the backend and read by the agent.

`relay-ops locker provision CODE` writes one JSON bundle per locker (docs/locker-protocol.md
section 12). It holds everything the locker needs to be trusted and to trust:

- ``broker``: where and as whom it connects (URL, client id, username and password, CA);
- ``command_keys``: the backend's public command-signing keys (a command signed by none of them
  opens nothing);
- ``event_key``: the locker's own Ed25519 private key, made at provisioning; the backend keeps
  only its public half and refuses any event not signed by it;
- ``pin_key``: the key the locker hashes typed PINs and carrier codes with. Syncs carry hashes
  under it but never the key, so a broker observer cannot test PINs offline.

Pure: no I/O but reading and writing the bundle file, so the backend and the agent share it.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware_bridge import protocol as p
from firmware_bridge.tls import BrokerLogin

BUNDLE_FORMAT: Final = "relayops-locker-bundle/1"


class BundleError(ValueError):
    """A bundle that cannot be used; the message says which field and why."""


@dataclass(frozen=True)
class BrokerAccess:
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str | None = None
    username: str | None = None
    password: str | None = None
    ca_cert: str | None = None  # PEM of the deployment's CA


@dataclass(frozen=True)
class LockerIdentity:
    """What an agent trusts and signs with."""

    locker_id: str
    command_keys: Mapping[str, Ed25519PublicKey]
    event_key: Ed25519PrivateKey
    pin_key_id: str
    pin_key: str  # base64 of 32 bytes
    broker: BrokerAccess = field(default_factory=BrokerAccess)

    @property
    def event_kid(self) -> str:
        """Events are signed under the locker's own name: one key per locker."""
        return self.locker_id

    def login(self, host: str, port: int) -> BrokerLogin:
        """How to reach ``host:port``: TLS when the bundle's URL says mqtts, with its CA."""
        tls = self.broker.url.startswith("mqtts://")
        return BrokerLogin(host, port, tls=tls, ca_pem=self.broker.ca_cert,
                           username=self.broker.username, password=self.broker.password)

    def broker_address(self) -> tuple[str, int]:
        login = BrokerLogin.from_url(self.broker.url)
        return login.host, login.port

    def sign(self, envelope: p.Envelope) -> bytes:
        return p.sign(envelope, self.event_key, self.event_kid)

    @classmethod
    def from_bundle(cls, data: Mapping[str, Any]) -> LockerIdentity:
        if data.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"format must be {BUNDLE_FORMAT!r}")
        try:
            broker = dict(data.get("broker") or {})
            keys = {k["kid"]: p.load_raw_public_key(k["key"]) for k in data["command_keys"]}
            if not keys:
                raise BundleError("command_keys is empty: the locker would obey no one")
            base64.b64decode(data["pin_key"]["key"], validate=True)
            return cls(
                locker_id=p.check_locker_id(data["locker_id"]),
                command_keys=keys,
                event_key=p.load_raw_private_key(data["event_key"]["private"]),
                pin_key_id=str(data["pin_key"]["key_id"]),
                pin_key=str(data["pin_key"]["key"]),
                broker=BrokerAccess(**broker),
            )
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"invalid bundle: {error!r}") from None

    def to_bundle(self) -> dict[str, Any]:
        """The bundle this identity reads from (without the broker password's origin)."""
        return {
            "format": BUNDLE_FORMAT,
            "locker_id": self.locker_id,
            "broker": {k: v for k, v in vars(self.broker).items() if v is not None},
            "command_keys": [{"kid": kid, "key": p.raw_public_key(key)}
                             for kid, key in self.command_keys.items()],
            "event_key": {"kid": self.event_kid, "private": private_key_text(self.event_key)},
            "pin_key": {"key_id": self.pin_key_id, "key": self.pin_key},
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LockerIdentity:
        return cls.from_bundle(json.loads(Path(path).read_text()))


def new_event_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_text(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


def write_bundle(path: str | os.PathLike[str], bundle: Mapping[str, Any]) -> None:
    """Readable by its owner only: it holds the locker's private key and broker password."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(bundle, handle, indent=2)
