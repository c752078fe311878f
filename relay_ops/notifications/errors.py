"""What can go wrong when sending, split by what the caller should do about it."""

from __future__ import annotations


class SendError(Exception):
    """A message was not accepted. ``provider_response`` keeps what the provider said, if any."""

    def __init__(self, reason: str, provider_response: str = "") -> None:
        super().__init__(reason)
        self.provider_response = provider_response


class TransientSendError(SendError):
    """Try again later: network error, timeout, SMTP 4xx, HTTP 5xx, 408 or 429."""


class PermanentSendError(SendError):
    """Never retry this message: it will fail the same way (SMTP 5xx, HTTP 4xx, bad address)."""


class InvalidRecipient(PermanentSendError):
    """The address or phone number is malformed; found before anything is sent."""


class NotificationConfigError(ValueError):
    """The notification settings cannot build a sender (unknown backend, missing key)."""
