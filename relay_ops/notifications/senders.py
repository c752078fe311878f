"""Channels that carry a rendered message to a resident: e-mail and SMS.

Every sender implements ``Sender.send(message) -> SendResult`` and reports failure with
``TransientSendError`` (retry later) or ``PermanentSendError`` (never retry; ``InvalidRecipient``
when the address or number is malformed, found before anything is sent). The caller, an RQ job,
records ``SendResult.provider_id`` and ``provider_response`` against the notification and
decides about retries; senders never retry by themselves.

``OutgoingMessage.idempotency_key`` must be the same on every attempt of one notification: the
SMTP sender turns it into the Message-ID header and the SMS webhook sends it as the
``Idempotency-Key`` header and the ``reference`` field, so a provider can drop a duplicate when
a retry follows a send whose answer was lost.

Configuration keys read by ``build_sender`` (a plain mapping, e.g. the Flask config):

=======================  =================================================================
NOTIFY_EMAIL_BACKEND     "console" (default), "file" or "smtp"
NOTIFY_SMS_BACKEND       "console" (default), "file" or "webhook"
NOTIFY_FILE_PATH         JSON-lines file the "file" backend appends to (required for it)
SMTP_HOST                SMTP server host (required for "smtp")
SMTP_PORT                SMTP server port (default 587 with STARTTLS, 25 without)
SMTP_FROM                sender address, "noreply@example.fr" or "Name <noreply@...>"
                         (required for "smtp"; its domain ends every Message-ID)
SMTP_USERNAME            login, if the server requires one (default: no login)
SMTP_PASSWORD            password for SMTP_USERNAME
SMTP_STARTTLS            true/false (default false): upgrade the connection with STARTTLS,
                         verifying the server certificate
SMTP_TIMEOUT             seconds (default 10)
SMS_WEBHOOK_URL          gateway endpoint (required for "webhook"); https, or http only to
                         a loopback address so the token never crosses a network in clear
SMS_WEBHOOK_TOKEN        bearer token for the gateway (required for "webhook")
SMS_WEBHOOK_TIMEOUT      seconds (default 10)
=======================  =================================================================

The console and file backends are for development and tests: the console one logs whole
messages, pickup codes included, so it must not be used in production.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import logging
import os
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any, Protocol

from relay_ops.clock import Clock, system_clock
from relay_ops.notifications.errors import (
    InvalidRecipient,
    NotificationConfigError,
    PermanentSendError,
    SendError,
    TransientSendError,
)
from relay_ops.notifications.messages import Channel, RenderedMessage
from relay_ops.notifications.recipients import mask, normalize_phone, validate_email

__all__ = [
    "ConsoleSender",
    "FileSender",
    "InvalidRecipient",
    "NotificationConfigError",
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "Sender",
    "SmsWebhookSender",
    "SmtpSender",
    "TransientSendError",
    "build_sender",
    "normalize_recipient",
]

logger = logging.getLogger(__name__)

# Enough of a provider's answer to diagnose a failure, not enough to bloat the database.
MAX_PROVIDER_RESPONSE_CHARS = 500
_MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    channel: Channel
    recipient: str  # e-mail address or phone number, normalised by the sender
    subject: str | None  # None for SMS
    body: str
    idempotency_key: str

    @classmethod
    def from_rendered(
        cls, channel: Channel, recipient: str, rendered: RenderedMessage, idempotency_key: str
    ) -> OutgoingMessage:
        return cls(channel, recipient, rendered.subject, rendered.body, idempotency_key)


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str | None
    provider_response: str


class Sender(Protocol):
    def send(self, message: OutgoingMessage) -> SendResult: ...


def normalize_recipient(channel: Channel, recipient: str) -> str:
    """The recipient as it will be used, or ``InvalidRecipient``."""
    if channel is Channel.EMAIL:
        return validate_email(recipient)
    return normalize_phone(recipient)


# --- development senders -------------------------------------------------------------------


class ConsoleSender:
    """Logs the whole message (development only: the log then holds pickup codes)."""

    def send(self, message: OutgoingMessage) -> SendResult:
        recipient = normalize_recipient(message.channel, message.recipient)
        logger.info(
            "%s to %s [%s]\nSubject: %s\n\n%s",
            message.channel.value,
            recipient,
            message.idempotency_key,
            message.subject or "-",
            message.body,
        )
        return SendResult(provider_id=None, provider_response="logged")


class FileSender:
    """Appends one JSON line per message to ``path``, for development and tests."""

    def __init__(self, path: str | os.PathLike[str], clock: Clock = system_clock) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> SendResult:
        recipient = normalize_recipient(message.channel, message.recipient)
        provider_id = f"file-{uuid.uuid4().hex}"
        record = {
            "provider_id": provider_id,
            "sent_at": self.clock().isoformat(),
            "channel": message.channel.value,
            "to": recipient,
            "subject": message.subject,
            "body": message.body,
            "idempotency_key": message.idempotency_key,
        }
        self._append(json.dumps(record, ensure_ascii=False) + "\n")
        # The file holds the message; the log gets no body, since the body holds the code.
        logger.info(
            "%s to %s written to %s as %s",
            message.channel.value,
            mask(recipient),
            self.path,
            provider_id,
        )
        return SendResult(provider_id=provider_id, provider_response=f"appended to {self.path}")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One write() on an O_APPEND descriptor, so lines from several worker processes
        # sharing the file do not interleave.
        with self._lock:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line.encode("utf-8"))
            finally:
                os.close(descriptor)


# --- e-mail --------------------------------------------------------------------------------


class SmtpSender:
    """Sends e-mail through an SMTP server (smtplib), over one connection kept open.

    The connection is opened on the first message and reused for the next ones (one MAIL, RCPT,
    DATA each): a new connection, greeting, STARTTLS and login per message cost more than the
    message. It is closed after any failure (its state is then unknown), after
    ``MAX_MESSAGES_PER_CONNECTION`` messages, and when it has been idle ``IDLE_CLOSE_S``
    seconds (servers drop idle clients; Postfix after 300 s). A reused connection that the
    server closed meanwhile fails at MAIL, before anything of the message was sent, and the
    message goes out on a new one.

    The provider id is the Message-ID, derived from the idempotency key so that every retry of
    one notification carries the same Message-ID; the provider response is the server's reply
    to DATA (Postfix, for one, puts its queue id there).
    """

    MAX_MESSAGES_PER_CONNECTION = 100
    IDLE_CLOSE_S = 30.0

    def __init__(
        self,
        host: str,
        port: int,
        sender_address: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        envelope_from = parseaddr(sender_address)[1]
        if "@" not in envelope_from:
            raise NotificationConfigError(f"SMTP sender address has no domain: {sender_address!r}")
        self.host = host
        self.port = port
        self.sender_address = sender_address
        self.envelope_from = envelope_from
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        # A private CA for an internal relay; by default the system's, with hostname checks.
        self.tls_context = tls_context
        self._lock = threading.Lock()
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._last_used = 0.0

    def send(self, message: OutgoingMessage) -> SendResult:
        _require_channel(message, Channel.EMAIL)
        recipient = validate_email(message.recipient)
        email = self._build_email(message, recipient)
        try:
            with self._lock:
                reply = self._deliver(email, recipient)
        except smtplib.SMTPResponseException as error:
            raise _smtp_error(error.smtp_code, error.smtp_error) from error
        except (smtplib.SMTPException, OSError) as error:
            # Refused connection, timeout, dropped connection, TLS failure: the server or the
            # network may be back later.
            raise TransientSendError(f"SMTP {self.host}:{self.port}: {error!r}") from error
        return SendResult(provider_id=email["Message-ID"], provider_response=reply)

    def close(self) -> None:
        with self._lock:
            self._close()

    def __del__(self) -> None:
        # A sender dropped with its connection open (a test, a reconfigured app) lets the
        # socket go without QUIT: no network I/O in a finalizer.
        smtp = getattr(self, "_smtp", None)
        if smtp is not None:
            smtp.close()

    def message_id(self, idempotency_key: str) -> str:
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
        domain = self.envelope_from.rpartition("@")[2]
        return f"<{digest}@{domain}>"

    def _build_email(self, message: OutgoingMessage, recipient: str) -> EmailMessage:
        email = EmailMessage(policy=SMTP_POLICY)
        email["From"] = self.sender_address
        email["To"] = recipient
        email["Subject"] = message.subject or ""
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = self.message_id(message.idempotency_key)
        # RFC 3834: keeps vacation responders from answering a notification.
        email["Auto-Submitted"] = "auto-generated"
        # Quoted-printable rather than 8bit: accents survive servers without 8BITMIME.
        email.set_content(message.body, cte="quoted-printable")
        return email

    def _deliver(self, email: EmailMessage, recipient: str) -> str:
        try:
            smtp = self._begin()
            # mail/rcpt/data rather than send_message, to keep the server's answer to DATA.
            _expect(smtp.rcpt(recipient), accepted=(250, 251))
            code, reply = smtp.data(email.as_bytes())
            _expect((code, reply), accepted=(250,))
        except BaseException:
            # Whatever the server saw of this message, the session's state is unknown now.
            self._close()
            raise
        self._sent_on_connection += 1
        self._last_used = time.monotonic()
        if self._sent_on_connection >= self.MAX_MESSAGES_PER_CONNECTION:
            self._close()
        return _truncate(f"{code} {_decode(reply)}")

    def _begin(self) -> smtplib.SMTP:
        """A connection on which MAIL FROM was accepted: the kept one, or a new one if the
        server closed the kept one (nothing of the message has been sent yet then)."""
        if self._smtp is not None and time.monotonic() - self._last_used > self.IDLE_CLOSE_S:
            self._close()
        if self._smtp is not None:
            try:
                answer = self._smtp.mail(self.envelope_from)
            except (smtplib.SMTPServerDisconnected, OSError):
                answer = (421, b"connection lost while idle")
            if answer[0] != 421:  # 421: the server is closing this connection
                _expect(answer, accepted=(250,))
                return self._smtp
            self._close()
        smtp = self._open()
        _expect(smtp.mail(self.envelope_from), accepted=(250,))
        return smtp

    def _open(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            # mail() does not greet the server by itself as send_message does.
            smtp.ehlo_or_helo_if_needed()
        except BaseException:
            _quit_quietly(smtp)
            raise
        self._smtp, self._sent_on_connection = smtp, 0
        return smtp

    def _close(self) -> None:
        if self._smtp is not None:
            _quit_quietly(self._smtp)
            self._smtp = None


def _expect(answer: tuple[int, bytes], accepted: tuple[int, ...]) -> None:
    code, reply = answer
    if code not in accepted:
        raise _smtp_error(code, reply)


def _smtp_error(code: int, reply: bytes | str) -> SendError:
    response = _truncate(f"{code} {_decode(reply)}")
    if 500 <= code < 600:
        return PermanentSendError(f"SMTP refused: {response}", response)
    return TransientSendError(f"SMTP deferred: {response}", response)


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    # The messages sent are already accepted or already failed: a failing QUIT must not turn
    # a delivered message into an error that would be retried as a duplicate.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


# --- SMS -----------------------------------------------------------------------------------


class SmsWebhookSender:
    """POSTs ``{"to", "text", "reference"}`` as JSON to an HTTP SMS gateway.

    Authenticated with ``Authorization: Bearer <token>``; the idempotency key travels as the
    ``Idempotency-Key`` header and as ``reference``. A 2xx answer is success, and ``id`` in a
    JSON answer becomes the provider id. 408, 429 and 5xx are transient; any other status,
    redirects included (a POST silently turned into a GET would lose the message), is permanent.
    """

    def __init__(self, url: str, token: str, timeout: float = 10) -> None:
        _check_webhook_url(url)
        self.url = url
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_RefuseRedirects())

    def send(self, message: OutgoingMessage) -> SendResult:
        _require_channel(message, Channel.SMS)
        to = normalize_phone(message.recipient)
        payload = {"to": to, "text": message.body, "reference": message.idempotency_key}
        request = urllib.request.Request(  # noqa: S310 - scheme checked in __init__
            self.url,
            data=json.dumps(payload).encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": message.idempotency_key,
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status, raw = response.status, response.read(_MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as error:
            with error:  # it holds the open connection
                raw = error.read(_MAX_RESPONSE_BYTES)
            raise _http_error(error.code, raw) from error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            # Connection refused, DNS failure, timeout, connection dropped mid-answer.
            raise TransientSendError(f"SMS gateway unreachable: {error!r}") from error
        response = _truncate(f"{status} {_decode(raw)}")
        return SendResult(provider_id=_provider_id(raw), provider_response=response)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


def _http_error(status: int, raw: bytes) -> SendError:
    response = _truncate(f"{status} {_decode(raw)}")
    if status in (408, 429) or status >= 500:
        return TransientSendError(f"SMS gateway busy or failing: {response}", response)
    return PermanentSendError(f"SMS gateway refused: {response}", response)


def _provider_id(raw: bytes) -> str | None:
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("id") not in (None, ""):
        return str(answer["id"])
    return None


def _check_webhook_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise NotificationConfigError(
        f"SMS webhook URL must be https (http only for a loopback host): {url!r}"
    )


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# --- shared helpers ------------------------------------------------------------------------


def _require_channel(message: OutgoingMessage, channel: Channel) -> None:
    if message.channel is not channel:
        raise ValueError(f"a {channel.value} sender cannot send a {message.channel.value} message")


def _decode(raw: bytes | str) -> str:
    return raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")


def _truncate(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_PROVIDER_RESPONSE_CHARS:
        return text
    return text[: MAX_PROVIDER_RESPONSE_CHARS - 1] + "…"


# --- configuration -------------------------------------------------------------------------

_BACKEND_KEYS = {Channel.EMAIL: "NOTIFY_EMAIL_BACKEND", Channel.SMS: "NOTIFY_SMS_BACKEND"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def build_sender(
    channel: Channel, settings: Mapping[str, Any], clock: Clock = system_clock
) -> Sender:
    """The sender configured for ``channel``; see the module docstring for the keys."""
    key = _BACKEND_KEYS[channel]
    backend = str(settings.get(key) or "console").strip().lower()
    if backend == "console":
        return ConsoleSender()
    if backend == "file":
        return FileSender(_required(settings, "NOTIFY_FILE_PATH"), clock)
    if channel is Channel.EMAIL and backend == "smtp":
        return _build_smtp_sender(settings)
    if channel is Channel.SMS and backend == "webhook":
        return SmsWebhookSender(
            url=_required(settings, "SMS_WEBHOOK_URL"),
            token=_required(settings, "SMS_WEBHOOK_TOKEN"),
            timeout=_number(settings, "SMS_WEBHOOK_TIMEOUT", 10),
        )
    choices = "console, file, smtp" if channel is Channel.EMAIL else "console, file, webhook"
    raise NotificationConfigError(f"{key}={backend!r}: expected one of {choices}")


def _build_smtp_sender(settings: Mapping[str, Any]) -> SmtpSender:
    starttls = _flag(settings, "SMTP_STARTTLS", False)
    return SmtpSender(
        host=_required(settings, "SMTP_HOST"),
        port=int(_number(settings, "SMTP_PORT", 587 if starttls else 25)),
        sender_address=_required(settings, "SMTP_FROM"),
        username=str(settings.get("SMTP_USERNAME") or "") or None,
        password=str(settings.get("SMTP_PASSWORD") or "") or None,
        starttls=starttls,
        timeout=_number(settings, "SMTP_TIMEOUT", 10),
    )


def _required(settings: Mapping[str, Any], key: str) -> str:
    value = str(settings.get(key) or "").strip()
    if not value:
        raise NotificationConfigError(f"{key} is required by the configured notification backend")
    return value


def _number(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NotificationConfigError(f"{key} must be a number, got {value!r}") from None
    if number <= 0:
        raise NotificationConfigError(f"{key} must be positive, got {value!r}")
    return number


def _flag(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NotificationConfigError(f"{key} must be true or false, got {value!r}")
