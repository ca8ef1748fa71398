"""Durations as ops write them in YAML: 30s, 5m, 1h30m, 2d."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


MAX_DURATION = timedelta(days=3650)


def parse_duration(value: Any) -> Any:
    """Accept '90s', '5m', '1h30m', '2d' (and plain seconds) besides timedelta and ISO 8601 ('PT5M')."""
    try:
        if isinstance(value, bool):
            # YAML reads `yes`/`true` as a boolean, which pydantic would take as 1 second.
            raise ValueError(f"invalid duration {value!r}: use forms like 30s, 5m, 1h30m, 2d")
        if isinstance(value, (int, float)):
            value = timedelta(seconds=value)
        elif isinstance(value, str) and value.startswith("P"):
            return value  # ISO 8601, as a duration serialises: pydantic reads it
        elif isinstance(value, str):
            match = _DURATION.match(value)
            if not value.strip() or not match or not any(match.groups()):
                raise ValueError(f"invalid duration {value!r}: use forms like 30s, 5m, 1h30m, 2d")
            days, hours, minutes, seconds = match.groups()
            value = timedelta(days=int(days or 0), hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))
    except OverflowError:
        raise ValueError(f"duration {value!r} is too long (at most {MAX_DURATION.days} days)") from None
    return value


def _bounded_duration(value: timedelta) -> timedelta:
    if not timedelta(0) < value <= MAX_DURATION:
        raise ValueError(f"duration {value.total_seconds():g}s must be more than 0 and at most {MAX_DURATION.days} days")
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_bounded_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _DURATION.pattern, "examples": ["30s", "5m", "1h30m", "2d"]},
                {"type": "string", "pattern": "^P", "description": "ISO 8601"},
                {"type": "number", "minimum": 0, "description": "seconds"},
            ]
        }
    ),
]
