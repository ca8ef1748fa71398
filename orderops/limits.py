"""The rules every count and every text at a door follows, in plain Python: the command line's
grammar uses them without loading pydantic (docs/performance.md#start-up)."""

from __future__ import annotations

import re
import unicodedata
from typing import BinaryIO

MAX_QUANTITY = 10_000
"""Units of one SKU on one order line."""
MAX_STOCK = 1_000_000_000
# An order file (JSON or CSV) read by `orderops start`: some 50,000 orders, read whole, never more.
MAX_ORDER_FILE_BYTES = 64 * 1024 * 1024
"""Units of one SKU on hand in one bin: far above any real shelf, far below where SQLite integers overflow."""

# Bidirectional overrides and isolates reorder what a reader sees (a name can display as another).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,18}")


def _unprintable(text: str, allowed: str = "") -> str | None:
    for char in text:
        if char not in allowed and (unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI_CONTROLS):
            return char
    return None


def plain_line(text: str) -> str:
    """A name, an address part, an id: no control characters (NUL, newline, escape), lone surrogates or
    bidirectional overrides, which corrupt labels, logs and terminals or disguise what is shown."""
    char = _unprintable(text)
    if char is not None:
        raise ValueError(f"must not contain the control character U+{ord(char):04X}")
    return text


def plain_text(text: str) -> str:
    """A reason or a note: as plain_line, but it may run over several lines."""
    char = _unprintable(text, allowed="\n\t")
    if char is not None:
        raise ValueError(f"must not contain the control character U+{ord(char):04X}")
    return text


def whole_number(text: str) -> int | None:
    """The integer `text` spells in ASCII digits, or None. int() also reads Arabic-Indic and full-width
    digits ('١٢' is 12) and spends quadratic time on thousands of digits; 18 digits bound both."""
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


# An order id names its workflow (order-<id>), files and log lines: nothing that can climb a path or
# break a query. The order model, the command line and the client read it through this one pattern.
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"


def read_bounded(source: BinaryIO, name: str) -> bytes:
    """All of `source`, or ValueError naming `name` when it holds more than MAX_ORDER_FILE_BYTES."""
    data = source.read(MAX_ORDER_FILE_BYTES + 1)
    if len(data) > MAX_ORDER_FILE_BYTES:
        raise ValueError(f"{name} is more than {MAX_ORDER_FILE_BYTES:,} bytes, the most an order file may be; split it")
    return data
