"""Real servers on 127.0.0.1 for the notification senders: an SMTP server (aiosmtpd) with a TLS
certificate, an HTTP server standing in for the SMS gateway, and a free-port helper."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMTP_USER = "relay"
SMTP_PASSWORD = "s3cret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RecordingHandler:
    """Accepts mail like a relay would, except for a few addresses that mimic real refusals."""

    received: list[Envelope] = field(default_factory=list)
    data_reply: str = "250 2.0.0 Ok: queued as 4F3A2B1C"
    # The next this many messages are queued for delivery, then the connection drops before
    # the reply: the sender never learns that the provider took the message.
    drop_after_accepting: int = 0

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        if address.startswith("unknown@"):
            return "550 5.1.1 <unknown@example.fr>: Recipient address rejected"
        if address.startswith("greylisted@"):
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.received.append(envelope)
            if self.drop_after_accepting > 0:
                self.drop_after_accepting -= 1
                assert server.transport is not None
                server.transport.abort()  # the reply below goes nowhere
        return self.data_reply


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: RecordingHandler


def _start(handler: RecordingHandler, **server_options: Any) -> tuple[Controller, SmtpServer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **server_options)
    controller.start()
    return controller, SmtpServer("127.0.0.1", port, handler)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    controller, server = _start(RecordingHandler())
    try:
        yield server
    finally:
        controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert_path)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, to test STARTTLS with real verification."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relayops-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


def _check_password(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    valid = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        SMTP_USER.encode(),
        SMTP_PASSWORD.encode(),
    )
    return AuthResult(success=valid, handled=False)


@pytest.fixture
def smtp_server_with_starttls_and_auth(certificate: Certificate) -> Iterator[SmtpServer]:
    """Like a submission server: STARTTLS required, then AUTH required."""
    controller, server = _start(
        RecordingHandler(),
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        authenticator=_check_password,
    )
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class GatewayScript:
    """What the fake SMS gateway answers next; tests change it before sending."""

    status: int = 201
    body: str = '{"id": "msg-7f3a", "status": "queued"}'
    content_type: str = "application/json"
    extra_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # The next this many requests are recorded (the provider took them), then the connection
    # drops without an answer.
    drop_after_accepting: int = 0


@dataclass
class SmsGateway:
    url: str
    script: GatewayScript
    requests: list[RecordedRequest]


class _GatewayHandler(BaseHTTPRequestHandler):
    server: _GatewayServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append(
            RecordedRequest("POST", self.path, dict(self.headers.items()), body)
        )
        self._answer()

    def do_GET(self) -> None:
        self.server.requests.append(
            RecordedRequest("GET", self.path, dict(self.headers.items()), b"")
        )
        self._answer()

    def _answer(self) -> None:
        script = self.server.script
        if script.drop_after_accepting > 0:
            script.drop_after_accepting -= 1
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if script.delay:
            # Wait like an overloaded gateway, but let the fixture end the wait at teardown.
            self.server.released.wait(script.delay)
        payload = script.body.encode("utf-8")
        self.send_response(script.status)
        self.send_header("Content-Type", script.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in script.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output clean; requests are recorded instead


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _GatewayHandler)
        self.script = GatewayScript()
        self.requests: list[RecordedRequest] = []
        self.released = threading.Event()


@pytest.fixture
def sms_gateway() -> Iterator[SmsGateway]:
    """An HTTP server on 127.0.0.1 standing in for the SMS provider's API."""
    server = _GatewayServer()
    # A short poll interval: shutdown() waits for it, and it runs after every test.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield SmsGateway(f"http://127.0.0.1:{port}/v1/sms", server.script, server.requests)
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
