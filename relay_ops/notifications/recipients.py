"""Recipient addresses checked and normalised before anything is sent.

Phone numbers become E.164 (``+33612345678``): French national numbers (``06 12 34 56 78``,
``06.12.34.56.78``), ``0033...`` and ``+33 (0)6...`` forms, and any international ``+`` number
of 8 to 15 digits. Numbers without a ``+`` or a French leading 0 are refused rather than
guessed. Known limit: French overseas numbers written nationally (``0690...``) are given the
+33 prefix; they reach the resident only if written in international form (``+590690...``).

E-mail addresses get a syntax check, not a deliverability check: ASCII only, since the SMTP
sender does not negotiate SMTPUTF8.
"""

from __future__ import annotations

import re

from relay_ops.notifications.errors import InvalidRecipient

_PHONE_SEPARATORS = re.compile(r"[\s.\-/()\u00a0\u202f]")
_FRENCH_NATIONAL = re.compile(r"0([1-9]\d{8})")
_FRENCH_SUBSCRIBER = re.compile(r"0?([1-9]\d{8})")
_INTERNATIONAL = re.compile(r"\+[1-9]\d{7,14}")

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_DOMAIN = re.compile(r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")


def normalize_phone(raw: str) -> str:
    # "+33 (0)6 ..." is a common way to print a French number; the (0) is not dialled.
    compact = _PHONE_SEPARATORS.sub("", raw.replace("(0)", ""))
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if match := _FRENCH_NATIONAL.fullmatch(compact):
        return "+33" + match.group(1)
    if compact.startswith("+33"):
        # "+330612345678" (trunk 0 kept after the country code) is unambiguous for France.
        if match := _FRENCH_SUBSCRIBER.fullmatch(compact[3:]):
            return "+33" + match.group(1)
        raise InvalidRecipient(f"not a French phone number: {mask(raw)}")
    if _INTERNATIONAL.fullmatch(compact):
        return compact
    raise InvalidRecipient(f"not a phone number in national or +international form: {mask(raw)}")


def validate_email(raw: str) -> str:
    address = raw.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or len(address) > 254
        or len(local) > 64
        or not _EMAIL_LOCAL.fullmatch(local)
        or not _EMAIL_DOMAIN.fullmatch(domain)
    ):
        raise InvalidRecipient(f"not an e-mail address: {mask(raw)}")
    return address


def mask(recipient: str) -> str:
    """Enough of an address to tell messages apart in logs, not enough to contact anyone."""
    text = recipient.strip()
    if "@" in text:
        local, _, domain = text.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if len(text) <= 4:
        return "***"
    return f"{text[:4]}***{text[-2:]}"
