"""Visibility queries over orders, built from clauses whose values are always quoted.

Temporal's list filter is SQL-like text; every value a person gives (a status, a
region, a process id) goes through `literal`, so no value can end its clause and
add another.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orderops.client.errors import InvalidRequest
from orderops.messages import WORKFLOW_NAME


class UnsafeQuery(InvalidRequest, ValueError):
    """An operator's filter that would not stay inside its own parentheses (CLI: one line, exit status 2)."""


_CLOSING = {"'": "'", '"': '"', "`": "`"}
_NAMES = {"'": "single-quoted string", '"': "double-quoted string", "`": "backquoted name"}


def check_raw(query: str) -> None:
    """Refuse a filter that could end the clause it is put in and add clauses of its own.

    Read as Temporal's visibility parser reads it: 'strings' and "strings" end at their
    quote, which a backslash escapes or a doubled quote repeats; `names` end at a backquote,
    which only doubling repeats. Outside them, every ')' must close a '(' of the filter's own
    and all must be closed by its end; comments (--, #, /* */) could hide either, so they are
    refused too, as are control characters other than tab and line breaks.
    """
    depth = 0
    quote = ""  # the open quote, or ""
    opened = 0
    i = 0
    while i < len(query):
        char = query[i]
        column = i + 1
        if ord(char) < 32 and char not in "\t\n\r":
            raise UnsafeQuery(f"--query: control character {char!r} at column {column}")
        if quote:
            if quote != "`" and char == "\\":
                i += 2  # the escaped character, whatever it is
                continue
            if char == _CLOSING[quote]:
                if query[i + 1 : i + 2] == char:
                    i += 2  # a doubled quote stands for itself
                    continue
                quote = ""
        elif char in _CLOSING:
            quote, opened = char, column
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise UnsafeQuery(f"--query: ')' at column {column} closes a parenthesis the filter did not open")
        elif char == "#" or query.startswith(("--", "/*"), i):
            raise UnsafeQuery(f"--query: comment at column {column} (comments are not allowed in a filter)")
        i += 1
    if quote:
        raise UnsafeQuery(f"--query: {_NAMES[quote]} opened at column {opened} is not closed")
    if depth:
        raise UnsafeQuery(f"--query: {depth} '(' not closed by the end of the filter")


def literal(value: str | int | bool | datetime) -> str:
    """A value as the visibility parser reads it: strings in single quotes with quotes doubled."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{value!r}: control characters cannot be part of a visibility query")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class OrderQuery:
    """`WorkflowType = 'OrderWorkflow' AND ...`: the orders among everything else on the namespace."""

    def __init__(self) -> None:
        self._clauses = [f"WorkflowType = {literal(WORKFLOW_NAME)}"]

    def where(self, attribute: str, value: str | int | bool | datetime, op: str = "=") -> OrderQuery:
        if op not in ("=", "!=", "<", "<=", ">", ">="):
            raise ValueError(f"unknown comparison {op!r}")
        self._clauses.append(f"{attribute} {op} {literal(value)}")
        return self

    def one_of(self, attribute: str, values: list[str]) -> OrderQuery:
        """`attribute IN (...)`; with no values, a query that finds nothing."""
        self._clauses.append(f"{attribute} IN ({', '.join(literal(v) for v in values)})" if values else "WorkflowId = ''")
        return self

    def running(self, running: bool = True) -> OrderQuery:
        return self.where("ExecutionStatus", "Running", "=" if running else "!=")

    def raw(self, query: str | None) -> OrderQuery:
        """An operator's own filter (e.g. `ProcessVersion = 3`), kept inside parentheses of its own.

        UnsafeQuery if the filter would not stay inside them (see check_raw)."""
        if query:
            check_raw(query)
            self._clauses.append(f"({query})")
        return self

    def __str__(self) -> str:
        return " AND ".join(self._clauses)
