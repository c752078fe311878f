"""TLS for the locker link: a deployment's own CA and broker certificate, and client setup.

`relay-ops broker certs --out DIR --host NAME` writes ``ca.crt``/``ca.key`` (the deployment's
CA: keep ``ca.key`` offline) and ``server.crt``/``server.key`` for Mosquitto. Lockers receive
``ca.crt`` in their bundle and trust nothing else for the broker.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients commonly accept for a server certificate


@dataclass(frozen=True)
class BrokerLogin:
    """How a client reaches the broker: plain or TLS, and as whom."""

    host: str
    port: int
    tls: bool = False
    ca_pem: str | None = None  # None with TLS: the system's trusted CAs
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, **login: str | None) -> BrokerLogin:
        """``mqtts://host:8883`` (TLS) or ``mqtt://host:1883``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL {url!r}: expected mqtt://host:port or mqtts://host:port")
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, parts.port or (8883 if tls else 1883), tls, **login)

    @property
    def on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def refuse_plaintext(self, allowed: bool) -> None:
        """A login or a command crossing a network in clear is refused unless the setting
        named for it says so; the loopback (the demo, a broker on the same host) is fine."""
        if not self.tls and not self.on_loopback and not allowed:
            raise ValueError(
                f"the broker {self.host}:{self.port} is plain TCP: use mqtts:// (TLS), or set "
                "the allow-plaintext-broker setting if the network is private and trusted"
            )

    def apply(self, client: mqtt.Client) -> None:
        """Before connecting: TLS with this CA (hostname checked), and the login."""
        if self.tls:
            context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else (
                ssl.create_default_context())
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            client.tls_set_context(context)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)


def write_deployment_certs(directory: Path, hosts: list[str], now: datetime) -> list[Path]:
    """A new CA and a server certificate for ``hosts`` (DNS names or IP addresses)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "RelayOps deployment CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name).public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    written = [
        _write(directory / "ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644),
        _write(directory / "ca.key", _key_pem(ca_key), 0o600),
        _write(directory / "server.crt", server.public_bytes(serialization.Encoding.PEM), 0o644),
        # Mosquitto reads it as its own user: the operator chowns it (docs/locker-protocol.md).
        _write(directory / "server.key", _key_pem(server_key), 0o600),
    ]
    return written


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path
