import json
import logging
from pathlib import Path

import pytest

from relay_ops.notifications.errors import InvalidRecipient, NotificationConfigError
from relay_ops.notifications.messages import Channel, RenderedMessage
from relay_ops.notifications.senders import (
    ConsoleSender,
    FileSender,
    OutgoingMessage,
    SmsWebhookSender,
    SmtpSender,
    build_sender,
)

SMS = OutgoingMessage(Channel.SMS, "06 12 34 56 78", None, "Code : 482913", "notif-1-sms")
EMAIL = OutgoingMessage(
    Channel.EMAIL, "marie@example.fr", "Votre colis", "Code de retrait : 482913", "notif-1-email"
)


def test_outgoing_message_from_a_rendered_message() -> None:
    rendered = RenderedMessage(subject="Votre colis", body="Code de retrait : 482913")
    message = OutgoingMessage.from_rendered(Channel.EMAIL, "marie@example.fr", rendered, "k-1")
    assert message == OutgoingMessage(
        Channel.EMAIL, "marie@example.fr", "Votre colis", "Code de retrait : 482913", "k-1"
    )


# --- file sender ---------------------------------------------------------------------------


def test_file_sender_appends_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "outbox" / "notifications.jsonl"
    sender = FileSender(path)

    first = sender.send(SMS)
    second = sender.send(EMAIL)

    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["provider_id"] for line in lines] == [first.provider_id, second.provider_id]
    assert first.provider_id != second.provider_id
    assert lines[0] | {"sent_at": None} == {
        "provider_id": first.provider_id,
        "sent_at": None,
        "channel": "sms",
        "to": "+33612345678",
        "subject": None,
        "body": "Code : 482913",
        "idempotency_key": "notif-1-sms",
    }
    assert lines[1]["to"] == "marie@example.fr" and lines[1]["subject"] == "Votre colis"


def test_file_sender_logs_without_the_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay_ops.notifications")
    FileSender(tmp_path / "n.jsonl").send(SMS)
    assert "+336***78" in caplog.text
    assert "482913" not in caplog.text


def test_file_sender_refuses_an_invalid_recipient_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    with pytest.raises(InvalidRecipient):
        FileSender(path).send(OutgoingMessage(Channel.SMS, "12", None, "x", "k"))
    assert not path.exists()


# --- console sender ------------------------------------------------------------------------


def test_console_sender_logs_the_whole_message(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relay_ops.notifications")
    result = ConsoleSender().send(EMAIL)
    assert result.provider_response == "logged"
    assert "marie@example.fr" in caplog.text
    assert "Votre colis" in caplog.text
    assert "Code de retrait : 482913" in caplog.text


def test_console_sender_validates_like_a_real_sender() -> None:
    with pytest.raises(InvalidRecipient):
        ConsoleSender().send(OutgoingMessage(Channel.EMAIL, "marie", "s", "b", "k"))


# --- SMTP and webhook construction ---------------------------------------------------------


def test_message_id_depends_only_on_the_idempotency_key() -> None:
    sender = SmtpSender("smtp.example.fr", 25, "RelayOps <noreply@relais.example.fr>")
    first = sender.message_id("notif-42")
    assert first == sender.message_id("notif-42")
    assert first != sender.message_id("notif-43")
    assert first.startswith("<") and first.endswith("@relais.example.fr>")


def test_smtp_sender_needs_a_sender_address_with_a_domain() -> None:
    with pytest.raises(NotificationConfigError):
        SmtpSender("smtp.example.fr", 25, "noreply")


def test_senders_refuse_a_message_of_the_other_channel() -> None:
    with pytest.raises(ValueError, match="email sender cannot send a sms"):
        SmtpSender("127.0.0.1", 1, "noreply@example.fr").send(SMS)
    with pytest.raises(ValueError, match="sms sender cannot send a email"):
        SmsWebhookSender("https://sms.example.fr/send", "t").send(EMAIL)


@pytest.mark.parametrize(
    "url",
    [
        "http://sms.example.fr/send",  # the token would travel in clear
        "ftp://sms.example.fr/send",
        "file:///etc/passwd",
        "https:///send",
        "sms.example.fr/send",
    ],
)
def test_webhook_url_must_be_https_or_loopback(url: str) -> None:
    with pytest.raises(NotificationConfigError):
        SmsWebhookSender(url, "token")


@pytest.mark.parametrize(
    "url", ["https://sms.example.fr/send", "http://127.0.0.1:8080/send", "http://localhost/send"]
)
def test_webhook_url_accepted(url: str) -> None:
    assert SmsWebhookSender(url, "token").url == url


# --- build_sender --------------------------------------------------------------------------


def test_console_is_the_default_backend() -> None:
    assert isinstance(build_sender(Channel.EMAIL, {}), ConsoleSender)
    assert isinstance(build_sender(Channel.SMS, {}), ConsoleSender)


def test_file_backend(tmp_path: Path) -> None:
    settings = {"NOTIFY_SMS_BACKEND": "file", "NOTIFY_FILE_PATH": str(tmp_path / "n.jsonl")}
    sender = build_sender(Channel.SMS, settings)
    assert isinstance(sender, FileSender)
    assert sender.path == tmp_path / "n.jsonl"


def test_smtp_backend_reads_every_key_and_converts_strings_from_the_environment() -> None:
    sender = build_sender(
        Channel.EMAIL,
        {
            "NOTIFY_EMAIL_BACKEND": "SMTP",
            "SMTP_HOST": "smtp.example.fr",
            "SMTP_PORT": "2525",
            "SMTP_FROM": "noreply@relais.example.fr",
            "SMTP_USERNAME": "relay",
            "SMTP_PASSWORD": "secret",
            "SMTP_STARTTLS": "true",
            "SMTP_TIMEOUT": "3.5",
        },
    )
    assert isinstance(sender, SmtpSender)
    assert (sender.host, sender.port, sender.envelope_from) == (
        "smtp.example.fr",
        2525,
        "noreply@relais.example.fr",
    )
    assert (sender.username, sender.password, sender.starttls, sender.timeout) == (
        "relay",
        "secret",
        True,
        3.5,
    )


@pytest.mark.parametrize(("starttls", "port"), [(True, 587), (False, 25), ("0", 25)])
def test_smtp_default_port_follows_starttls(starttls: object, port: int) -> None:
    settings = {
        "NOTIFY_EMAIL_BACKEND": "smtp",
        "SMTP_HOST": "smtp.example.fr",
        "SMTP_FROM": "noreply@example.fr",
        "SMTP_STARTTLS": starttls,
    }
    sender = build_sender(Channel.EMAIL, settings)
    assert isinstance(sender, SmtpSender)
    assert sender.port == port
    assert sender.username is None


def test_webhook_backend() -> None:
    sender = build_sender(
        Channel.SMS,
        {
            "NOTIFY_SMS_BACKEND": "webhook",
            "SMS_WEBHOOK_URL": "https://sms.example.fr/send",
            "SMS_WEBHOOK_TOKEN": "t0ken",
            "SMS_WEBHOOK_TIMEOUT": 4,
        },
    )
    assert isinstance(sender, SmsWebhookSender)
    assert (sender.url, sender.token, sender.timeout) == ("https://sms.example.fr/send", "t0ken", 4)


@pytest.mark.parametrize(
    ("channel", "settings", "complaint"),
    [
        (Channel.EMAIL, {"NOTIFY_EMAIL_BACKEND": "webhook"}, "NOTIFY_EMAIL_BACKEND"),
        (Channel.SMS, {"NOTIFY_SMS_BACKEND": "smtp"}, "NOTIFY_SMS_BACKEND"),
        (Channel.SMS, {"NOTIFY_SMS_BACKEND": "file"}, "NOTIFY_FILE_PATH"),
        (Channel.EMAIL, {"NOTIFY_EMAIL_BACKEND": "smtp", "SMTP_FROM": "a@b.fr"}, "SMTP_HOST"),
        (Channel.EMAIL, {"NOTIFY_EMAIL_BACKEND": "smtp", "SMTP_HOST": "h"}, "SMTP_FROM"),
        (
            Channel.EMAIL,
            {
                "NOTIFY_EMAIL_BACKEND": "smtp",
                "SMTP_HOST": "h",
                "SMTP_FROM": "a@b.fr",
                "SMTP_PORT": "x",
            },
            "SMTP_PORT",
        ),
        (
            Channel.EMAIL,
            {
                "NOTIFY_EMAIL_BACKEND": "smtp",
                "SMTP_HOST": "h",
                "SMTP_FROM": "a@b.fr",
                "SMTP_STARTTLS": "maybe",
            },
            "SMTP_STARTTLS",
        ),
        (
            Channel.SMS,
            {"NOTIFY_SMS_BACKEND": "webhook", "SMS_WEBHOOK_TOKEN": "t"},
            "SMS_WEBHOOK_URL",
        ),
        (
            Channel.SMS,
            {"NOTIFY_SMS_BACKEND": "webhook", "SMS_WEBHOOK_URL": "https://sms.example.fr"},
            "SMS_WEBHOOK_TOKEN",
        ),
        (
            Channel.SMS,
            {
                "NOTIFY_SMS_BACKEND": "webhook",
                "SMS_WEBHOOK_URL": "https://sms.example.fr",
                "SMS_WEBHOOK_TOKEN": "t",
                "SMS_WEBHOOK_TIMEOUT": "-1",
            },
            "SMS_WEBHOOK_TIMEOUT",
        ),
    ],
)
def test_misconfiguration_names_the_key(
    channel: Channel, settings: dict[str, object], complaint: str
) -> None:
    with pytest.raises(NotificationConfigError, match=complaint):
        build_sender(channel, settings)
