"""How the console words a refused body or form: the first field pydantic names, and its message, in one line."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg'].removeprefix('Value error, ')}"
