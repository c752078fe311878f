"""The local SMTP server and SMS gateway of the notification tests, for the job processes."""

from tests.integration.notifications.notify_servers import (  # noqa: F401 - fixtures by name
    sms_gateway,
    smtp_server,
)
