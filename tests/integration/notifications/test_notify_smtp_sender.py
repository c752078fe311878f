import email
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import Message
from email.policy import default as default_policy
from typing import Any

import pytest
from notify_servers import (
    SMTP_PASSWORD,
    SMTP_USER,
    Certificate,
    RecordingHandler,
    SmtpServer,
    _start,
    free_port,
)

from relay_ops.notifications.errors import (
    InvalidRecipient,
    PermanentSendError,
    TransientSendError,
)
from relay_ops.notifications.messages import Channel, MessageContext, MessageKind, render
from relay_ops.notifications.senders import OutgoingMessage, SmtpSender, build_sender

SENDER = "RelayOps Nozay <noreply@relais.example.fr>"


def a_message(recipient: str = "marie.dupont@example.fr", key: str = "notif-1") -> OutgoingMessage:
    return OutgoingMessage(
        channel=Channel.EMAIL,
        recipient=recipient,
        subject="Votre colis est disponible : Épicerie du Bourg",
        body="Bonjour,\n\nCode de retrait : 482913\nÀ très vite à l'épicerie.\n",
        idempotency_key=key,
    )


def sender_for(server: SmtpServer, **options: object) -> SmtpSender:
    return SmtpSender(server.host, server.port, SENDER, timeout=5, **options)  # type: ignore[arg-type]


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=default_policy)


def text_of(message: Message) -> str:
    # Lines travel with CRLF endings (RFC 5322); a mail client shows them as plain newlines.
    return message.get_content().replace("\r\n", "\n")


def test_the_server_receives_the_message_as_sent(smtp_server: SmtpServer) -> None:
    result = sender_for(smtp_server).send(a_message())

    [envelope] = smtp_server.handler.received
    assert envelope.mail_from == "noreply@relais.example.fr"
    assert envelope.rcpt_tos == ["marie.dupont@example.fr"]
    received = parse(envelope.original_content or b"")
    assert received["From"] == SENDER
    assert received["To"] == "marie.dupont@example.fr"
    assert received["Subject"] == "Votre colis est disponible : Épicerie du Bourg"
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Date"]
    assert received["Message-ID"] == result.provider_id
    assert text_of(received) == a_message().body
    assert received.get_content_charset() == "utf-8"
    assert received["Content-Transfer-Encoding"] == "quoted-printable"
    assert result.provider_response == "250 2.0.0 Ok: queued as 4F3A2B1C"


def test_a_rendered_notification_arrives_intact(smtp_server: SmtpServer) -> None:
    ctx = MessageContext(
        tracking_number="6A12345678901",
        carrier_name="Colissimo",
        site_name="Épicerie du Bourg",
        site_address="1 place de l'Église\n44170 Nozay",
        opening_hours="mar.-sam. 8:30-12:30 et 15:00-19:00",
        tracking_url="https://relais.example.fr/t/9fQ2xL7bVw3kT8mZ",
        deadline=datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
        pickup_code="482913",
        qr_url="https://relais.example.fr/qr/9fQ2xL7bVw3kT8mZ.png",
    )
    rendered = render(MessageKind.READY, Channel.EMAIL, "fr", ctx)
    message = OutgoingMessage.from_rendered(Channel.EMAIL, "marie@example.fr", rendered, "n-7")

    sender_for(smtp_server).send(message)

    received = parse(smtp_server.handler.received[0].original_content or b"")
    assert received["Subject"] == rendered.subject
    assert text_of(received) == rendered.body


def test_every_attempt_of_one_notification_has_the_same_message_id(smtp_server: SmtpServer) -> None:
    sender = sender_for(smtp_server)
    first = sender.send(a_message(key="notif-9"))
    retry = sender.send(a_message(key="notif-9"))
    other = sender.send(a_message(key="notif-10"))

    ids = [parse(e.original_content or b"")["Message-ID"] for e in smtp_server.handler.received]
    assert ids == [first.provider_id, first.provider_id, other.provider_id]
    assert first.provider_id == retry.provider_id != other.provider_id


def test_a_recipient_refused_for_good_is_permanent(smtp_server: SmtpServer) -> None:
    with pytest.raises(PermanentSendError) as caught:
        sender_for(smtp_server).send(a_message("unknown@example.fr"))
    assert caught.value.provider_response.startswith("550 5.1.1")
    assert smtp_server.handler.received == []


def test_a_greylisted_recipient_is_transient(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransientSendError) as caught:
        sender_for(smtp_server).send(a_message("greylisted@example.fr"))
    assert caught.value.provider_response.startswith("451 4.7.1")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("554 5.7.1 Message rejected as spam", PermanentSendError),
        ("452 4.3.1 Insufficient system storage", TransientSendError),
    ],
)
def test_a_refusal_after_data_is_classified_by_its_code(
    smtp_server: SmtpServer, reply: str, error: type[Exception]
) -> None:
    smtp_server.handler.data_reply = reply
    with pytest.raises(error, match=reply.split()[0]):
        sender_for(smtp_server).send(a_message())


def test_an_invalid_address_is_refused_before_connecting() -> None:
    # Nothing listens on this port: reaching the network would be a TransientSendError.
    sender = SmtpSender("127.0.0.1", free_port(), SENDER, timeout=1)
    with pytest.raises(InvalidRecipient):
        sender.send(a_message("marie@example.fr\r\nBcc: all@example.fr"))


def test_connection_refused_is_transient() -> None:
    sender = SmtpSender("127.0.0.1", free_port(), SENDER, timeout=1)
    with pytest.raises(TransientSendError, match="ConnectionRefused"):
        sender.send(a_message())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections (in the kernel backlog) but never greets."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield int(listener.getsockname()[1])


def test_a_server_that_never_answers_is_a_transient_timeout(silent_server: int) -> None:
    sender = SmtpSender("127.0.0.1", silent_server, SENDER, timeout=0.5)
    with pytest.raises(TransientSendError, match="timed out"):
        sender.send(a_message())


def test_starttls_and_login_against_a_submission_server(
    smtp_server_with_starttls_and_auth: SmtpServer, certificate: Certificate
) -> None:
    server = smtp_server_with_starttls_and_auth
    sender = sender_for(
        server,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        starttls=True,
        tls_context=certificate.client_context(),
    )
    result = sender.send(a_message())
    assert result.provider_response.startswith("250")
    assert len(server.handler.received) == 1


def test_an_untrusted_certificate_stops_the_send(
    smtp_server_with_starttls_and_auth: SmtpServer,
) -> None:
    # The system trust store does not know the test certificate: the password must not leave.
    sender = sender_for(
        smtp_server_with_starttls_and_auth,
        username=SMTP_USER,
        password=SMTP_PASSWORD,
        starttls=True,
    )
    with pytest.raises(TransientSendError, match="CERTIFICATE_VERIFY_FAILED"):
        sender.send(a_message())
    assert smtp_server_with_starttls_and_auth.handler.received == []


def test_a_wrong_password_is_permanent(
    smtp_server_with_starttls_and_auth: SmtpServer, certificate: Certificate
) -> None:
    sender = sender_for(
        smtp_server_with_starttls_and_auth,
        username=SMTP_USER,
        password="wrong",
        starttls=True,
        tls_context=certificate.client_context(),
    )
    with pytest.raises(PermanentSendError, match="535"):
        sender.send(a_message())


def test_build_sender_makes_a_working_smtp_sender(smtp_server: SmtpServer) -> None:
    sender = build_sender(
        Channel.EMAIL,
        {
            "NOTIFY_EMAIL_BACKEND": "smtp",
            "SMTP_HOST": smtp_server.host,
            "SMTP_PORT": str(smtp_server.port),
            "SMTP_FROM": SENDER,
        },
    )
    sender.send(a_message())
    assert smtp_server.handler.received[0].rcpt_tos == ["marie.dupont@example.fr"]


# --- one connection kept from one message to the next -------------------------------------


class CountingHandler(RecordingHandler):
    """Counts the greetings: one per connection."""

    greetings: int = 0

    async def handle_EHLO(self, server: object, session: Any, envelope: object,
                          hostname: str, responses: list[str]) -> list[str]:
        self.greetings += 1
        session.host_name = hostname  # aiosmtpd leaves it to a handler that answers EHLO
        return responses


@pytest.fixture
def counting_server() -> Iterator[SmtpServer]:
    # The server drops a client idle for half a second, as Postfix does after 300 s.
    controller, server = _start(CountingHandler(), timeout=0.5)
    try:
        yield server
    finally:
        controller.stop()


def test_messages_go_out_one_after_the_other_on_one_connection(
        counting_server: SmtpServer) -> None:
    sender = sender_for(counting_server)
    for n in range(5):
        sender.send(a_message(key=f"notif-{n}"))
    sender.close()

    handler = counting_server.handler
    assert isinstance(handler, CountingHandler)
    assert handler.greetings == 1
    assert [parse(e.original_content or b"")["Message-ID"] for e in handler.received] == [
        sender.message_id(f"notif-{n}") for n in range(5)]


def test_a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_message(
        counting_server: SmtpServer) -> None:
    sender = sender_for(counting_server)
    sender.send(a_message(key="before"))
    time.sleep(1.0)  # the server hangs up on the idle connection
    sender.send(a_message(key="after"))
    sender.close()

    handler = counting_server.handler
    assert isinstance(handler, CountingHandler)
    assert handler.greetings == 2
    assert len(handler.received) == 2  # each message once


def test_after_a_refusal_the_next_message_goes_out_on_a_fresh_connection(
        counting_server: SmtpServer) -> None:
    sender = sender_for(counting_server)
    with pytest.raises(PermanentSendError):
        sender.send(a_message("unknown@example.fr"))
    sender.send(a_message(key="next"))
    sender.close()

    handler = counting_server.handler
    assert isinstance(handler, CountingHandler)
    assert handler.greetings == 2
    assert [e.rcpt_tos for e in handler.received] == [["marie.dupont@example.fr"]]


def test_a_connection_is_not_kept_past_its_message_limit(
        counting_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SmtpSender, "MAX_MESSAGES_PER_CONNECTION", 2)
    sender = sender_for(counting_server)
    for n in range(5):
        sender.send(a_message(key=f"notif-{n}"))
    sender.close()

    handler = counting_server.handler
    assert isinstance(handler, CountingHandler)
    assert (handler.greetings, len(handler.received)) == (3, 5)
