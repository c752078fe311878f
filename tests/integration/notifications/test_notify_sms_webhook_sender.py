import json

import pytest
from notify_servers import SmsGateway, free_port

from relay_ops.notifications.errors import (
    InvalidRecipient,
    PermanentSendError,
    TransientSendError,
)
from relay_ops.notifications.messages import Channel
from relay_ops.notifications.senders import (
    MAX_PROVIDER_RESPONSE_CHARS,
    OutgoingMessage,
    SmsWebhookSender,
    build_sender,
)

TOKEN = "gw-token-4f2b"
TEXT = "Colis 6A12345678901 disponible : Épicerie du Bourg. Code : 482913."


def an_sms(recipient: str = "06 12 34 56 78", key: str = "notif-1-sms") -> OutgoingMessage:
    return OutgoingMessage(Channel.SMS, recipient, None, TEXT, key)


def sender_for(gateway: SmsGateway, timeout: float = 5) -> SmsWebhookSender:
    return SmsWebhookSender(gateway.url, TOKEN, timeout=timeout)


def test_the_gateway_receives_number_text_and_reference(sms_gateway: SmsGateway) -> None:
    result = sender_for(sms_gateway).send(an_sms())

    [request] = sms_gateway.requests
    assert (request.method, request.path) == ("POST", "/v1/sms")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Idempotency-Key"] == "notif-1-sms"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "to": "+33612345678",
        "text": TEXT,
        "reference": "notif-1-sms",
    }
    assert result.provider_id == "msg-7f3a"
    assert result.provider_response == '201 {"id": "msg-7f3a", "status": "queued"}'


def test_a_numeric_provider_id_is_kept_as_text(sms_gateway: SmsGateway) -> None:
    sms_gateway.script.body = '{"id": 90210}'
    assert sender_for(sms_gateway).send(an_sms()).provider_id == "90210"


def test_an_answer_without_an_id_is_still_a_success(sms_gateway: SmsGateway) -> None:
    sms_gateway.script.status = 202
    sms_gateway.script.body = "accepted"
    sms_gateway.script.content_type = "text/plain"
    result = sender_for(sms_gateway).send(an_sms())
    assert result.provider_id is None
    assert result.provider_response == "202 accepted"


def test_a_long_answer_is_truncated(sms_gateway: SmsGateway) -> None:
    sms_gateway.script.body = json.dumps({"id": "m-1", "debug": "x" * 5000})
    result = sender_for(sms_gateway).send(an_sms())
    assert result.provider_id == "m-1"
    assert len(result.provider_response) == MAX_PROVIDER_RESPONSE_CHARS
    assert result.provider_response.endswith("…")


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
def test_server_errors_and_throttling_are_transient(sms_gateway: SmsGateway, status: int) -> None:
    sms_gateway.script.status = status
    sms_gateway.script.body = '{"error": "try later"}'
    with pytest.raises(TransientSendError) as caught:
        sender_for(sms_gateway).send(an_sms())
    assert caught.value.provider_response == f'{status} {{"error": "try later"}}'


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_permanent(sms_gateway: SmsGateway, status: int) -> None:
    sms_gateway.script.status = status
    sms_gateway.script.body = '{"error": "invalid destination"}'
    with pytest.raises(PermanentSendError) as caught:
        sender_for(sms_gateway).send(an_sms())
    assert caught.value.provider_response == f'{status} {{"error": "invalid destination"}}'


def test_a_redirect_is_not_followed(sms_gateway: SmsGateway) -> None:
    # Following it would turn the POST into a GET and lose the message without an error.
    sms_gateway.script.status = 302
    sms_gateway.script.extra_headers = {"Location": "/elsewhere"}
    with pytest.raises(PermanentSendError, match="302"):
        sender_for(sms_gateway).send(an_sms())
    assert [request.path for request in sms_gateway.requests] == ["/v1/sms"]


def test_a_gateway_too_slow_to_answer_is_a_transient_timeout(sms_gateway: SmsGateway) -> None:
    sms_gateway.script.delay = 5
    with pytest.raises(TransientSendError, match="timed out"):
        sender_for(sms_gateway, timeout=0.3).send(an_sms())


def test_connection_refused_is_transient() -> None:
    sender = SmsWebhookSender(f"http://127.0.0.1:{free_port()}/v1/sms", TOKEN, timeout=1)
    with pytest.raises(TransientSendError, match="Connection refused"):
        sender.send(an_sms())


def test_an_invalid_number_is_refused_before_any_request(sms_gateway: SmsGateway) -> None:
    with pytest.raises(InvalidRecipient):
        sender_for(sms_gateway).send(an_sms("12 34"))
    assert sms_gateway.requests == []


def test_the_token_is_not_in_error_messages(sms_gateway: SmsGateway) -> None:
    sms_gateway.script.status = 401
    sms_gateway.script.body = "unauthorized"
    with pytest.raises(PermanentSendError) as caught:
        sender_for(sms_gateway).send(an_sms())
    assert TOKEN not in str(caught.value)


def test_build_sender_makes_a_working_webhook_sender(sms_gateway: SmsGateway) -> None:
    settings = {
        "NOTIFY_SMS_BACKEND": "webhook",
        "SMS_WEBHOOK_URL": sms_gateway.url,
        "SMS_WEBHOOK_TOKEN": TOKEN,
        "SMS_WEBHOOK_TIMEOUT": "2",
    }
    result = build_sender(Channel.SMS, settings).send(an_sms(key="notif-2-sms"))
    assert result.provider_id == "msg-7f3a"
    assert sms_gateway.requests[0].headers["Idempotency-Key"] == "notif-2-sms"
