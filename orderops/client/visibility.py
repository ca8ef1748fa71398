"""Visibility queries over orders, built from clauses whose values are always quoted.

Temporal's list filter is SQL-like text; every value a person gives (a status, a
region, a process id) goes through `literal`, so no value can end its clause and
add another.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orderops.messages import WORKFLOW_NAME


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

    def running(self, running: bool = True) -> OrderQuery:
        return self.where("ExecutionStatus", "Running", "=" if running else "!=")

    def raw(self, query: str | None) -> OrderQuery:
        """An operator's own filter (e.g. `ProcessVersion = 3`), kept inside parentheses of its own."""
        if query:
            self._clauses.append(f"({query})")
        return self

    def __str__(self) -> str:
        return " AND ".join(self._clauses)
