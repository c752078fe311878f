"""Fixtures for the notification integration tests; they live in ``notify_servers`` so that the
test modules can import its helpers under a name no other conftest.py can shadow."""

from notify_servers import (  # noqa: F401 - fixtures are found by name
    certificate,
    sms_gateway,
    smtp_server,
    smtp_server_with_starttls_and_auth,
)
