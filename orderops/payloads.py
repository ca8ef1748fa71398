"""Reading what arrives from outside, the same way at every door: JSON without duplicate keys, a size
cap, and one line per problem. The workflow reads its input, signals and updates through `read_payload`,
so no payload can fail a workflow task; the command line reads its JSON through `loads`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# An event's data or a decision is a few hundred bytes; 64 KiB leaves room for any real one, and
# keeps an order's status (which lists its events) far below gRPC's 4 MiB message limit.
MAX_MESSAGE_BYTES = 64 * 1024
# The start input carries the whole definition and the order.
MAX_INPUT_BYTES = 1024 * 1024


class Refused(ValueError):
    """A payload that is not what its receiver takes; the message is one line and names the problem."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            # Two values for one key: JSON parsers disagree on which wins, so neither is taken.
            raise Refused(f"duplicate key {key!r}")
    return dict(pairs)


# Python reads an integer of more than 4,300 digits with a ValueError that names nothing; no count or
# amount here comes near 100 digits, so a longer number is refused as such (the field's own limit
# refuses the shorter ones).
MAX_NUMBER_DIGITS = 100


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_DIGITS + 1:
        raise Refused(f"a number of {len(text.lstrip('-')):,} digits; at most {MAX_NUMBER_DIGITS} are read")
    return int(text)


def parse(text: str | bytes) -> Any:
    """JSON from outside, strictly: `Refused` for a duplicate key or an overlong number; a malformed text
    raises json's own JSONDecodeError (with its position) and an absurdly deep one RecursionError."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_int=_bounded_int)


def loads(text: str | bytes, what: str) -> Any:
    """JSON from outside; a duplicate key, an overlong number or malformed text is refused in one line."""
    try:
        return parse(text)
    except Refused as err:
        raise Refused(f"{what}: {err}") from None
    except json.JSONDecodeError as err:
        raise Refused(f"{what}: malformed JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except (UnicodeDecodeError, RecursionError):
        raise Refused(f"{what}: not UTF-8 JSON of a reasonable depth") from None


def field_errors(err: ValidationError, whole: str | None = None) -> list[str]:
    """Each of pydantic's errors as "field 'x': message"; the input's own text is never repeated.
    An error of the whole input names `whole` as its field, or no field without one."""
    messages = []
    for error in err.errors():
        where = ".".join(str(p) for p in error["loc"]) or whole
        message = "missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        messages.append(f"field {where!r}: {message}" if where else message)
    return messages


def validate(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise Refused(f"{what}: {'; '.join(field_errors(err))}") from None


def validate_json(model: type[M], data: str | bytes, what: str) -> M:
    loads(data, what)  # for the duplicate keys pydantic's own parser lets through (the last would win)
    try:
        # pydantic's JSON mode, as the SDK's converter decodes: what an order ran with replays the same.
        return model.model_validate_json(data)
    except ValidationError as err:
        raise Refused(f"{what}: {'; '.join(field_errors(err))}") from None


def read_payload(payloads: Sequence[Any], model: type[M], what: str, limit: int = MAX_MESSAGE_BYTES) -> M:
    """Exactly one JSON payload (a Temporal `Payload`), within `limit` bytes, that `model` validates.

    Decoded here rather than by the SDK, whose errors on a malformed argument fail the workflow task
    (and so stop the order) instead of refusing the one message.
    """
    if len(payloads) != 1:
        raise Refused(f"{what} takes one JSON object, got {len(payloads)} arguments")
    payload = payloads[0]
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")
    if encoding != "json/plain":
        raise Refused(f"{what} takes JSON, got a payload encoded as {encoding[:40] or 'nothing'!r}")
    if len(payload.data) > limit:
        raise Refused(f"{what} is {len(payload.data):,} bytes; at most {limit:,}")
    return validate_json(model, payload.data, what)
