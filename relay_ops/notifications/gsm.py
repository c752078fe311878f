"""GSM 03.38 character set: how long an SMS really is, and how to keep it cheap.

An SMS written only with GSM 03.38 characters is sent in 7-bit encoding: 160 characters in a
single message, 153 per part once it must be split (the rest of each part carries the
concatenation header). A single character outside that set, such as the French ``ê``, ``ç`` or
a typographic apostrophe, switches the whole text to UCS-2: 70 characters, then 67 per part,
which more than doubles the price of a long notification. ``to_gsm`` therefore replaces such
characters with their nearest GSM spelling before sending, and ``measure`` reports the
encoding and the number of parts so templates can be tested against a budget.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# The basic table, without the escape character that introduces the extension table.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Each of these costs two septets: the escape character and its code in the extension table.
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_GSM_UNITS = 160
PART_GSM_UNITS = 153
SINGLE_UCS2_UNITS = 70
PART_UCS2_UNITS = 67

# Characters common in French text or pasted addresses that have an obvious GSM spelling which
# Unicode decomposition alone would not find.
_REPLACEMENTS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u02bc": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00ab": '"',
    "\u00bb": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u202f": " ",
    "\t": " ",
    "œ": "oe",
    "Œ": "OE",
    "ç": "c",
}


class SmsEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True, slots=True)
class SmsLength:
    encoding: SmsEncoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    parts: int


def is_gsm(text: str) -> bool:
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def to_gsm(text: str) -> str:
    """Spell ``text`` with GSM 03.38 characters only, keeping the accents GSM has (é, è, à, ù)."""
    return "".join(_gsm_spelling(char) for char in text)


def _gsm_spelling(char: str) -> str:
    if char in GSM_BASIC or char in GSM_EXTENSION:
        return char
    if char in _REPLACEMENTS:
        return _REPLACEMENTS[char]
    # "ê" decomposes into "e" and a combining circumflex: keep the letters that GSM has.
    base = "".join(
        part
        for part in unicodedata.normalize("NFD", char)
        if part in GSM_BASIC and not unicodedata.combining(part)
    )
    return base or "?"


def measure(text: str) -> SmsLength:
    if is_gsm(text):
        costs = [2 if char in GSM_EXTENSION else 1 for char in text]
        return SmsLength(
            SmsEncoding.GSM7, sum(costs), _count_parts(costs, SINGLE_GSM_UNITS, PART_GSM_UNITS)
        )
    costs = [len(char.encode("utf-16-le")) // 2 for char in text]
    return SmsLength(
        SmsEncoding.UCS2, sum(costs), _count_parts(costs, SINGLE_UCS2_UNITS, PART_UCS2_UNITS)
    )


def _count_parts(costs: list[int], single: int, per_part: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1
    # An escape sequence or a surrogate pair is never split between two parts, so pack greedily
    # rather than dividing: a part may end one unit short.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > per_part:
            parts, used = parts + 1, 0
        used += cost
    return parts
