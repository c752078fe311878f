"""The shape of a locale's message catalog, shared by ``catalog_fr`` and ``catalog_en``.

Why Python modules and not gettext ``.po`` files: notifications are a dozen whole messages in
two languages, each rendered with named placeholders. A ``.po`` catalog would need a compile
step at install and test time (or compiled ``.mo`` binaries committed beside their sources),
Babel for the date names, and a translator tool nobody on the project uses yet; a typo in a
msgid would silently fall back to the source text. A plain module per locale is reviewed in a
diff like code, needs nothing at run time, and ``tests/unit/notifications`` checks the two
catalogs mechanically: same message keys, same placeholders in every message, GSM-only SMS
text. If the web pages later adopt Flask-Babel catalogs, these dictionaries convert one to one
into msgid/msgstr pairs.

Message keys are ``<template>.<part>``: ``ready.email.subject``, ``ready.email.body``,
``ready.sms`` and, for messages that can run long, ``ready.sms.compact`` (sent when the full
SMS would not fit in two GSM parts). Placeholders are ``str.format`` names filled from
``MessageContext`` by ``messages.render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LocaleCatalog:
    code: str
    weekdays: tuple[str, ...]  # Monday first, as datetime.weekday() counts
    months: tuple[str, ...]  # January first
    first_of_month: str  # how the day number 1 is written ("1er" in French)
    long_datetime: str  # placeholders: weekday, day, month, year, time
    short_datetime: str  # the same without the year, for SMS
    messages: Mapping[str, str]

    def __post_init__(self) -> None:
        if len(self.weekdays) != 7 or len(self.months) != 12:
            raise ValueError(f"catalog {self.code!r} needs 7 weekdays and 12 months")
