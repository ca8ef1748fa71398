"""The constructs of the language, one entry each: model, transitions, expressions, diagram.

Every module that treats node types differently reads this table instead of matching on
the node classes itself: `edges` (and so lint's graph checks, render, diff and the
workflow), lint's expression checks, and render's labels and shapes. A new construct is a
model in model.py and one entry here. Importing this module imports only the models, so
the workflow may use it (it must not import lint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from orderops.process.model import (
    Deadlined,
    End,
    ExclusiveGateway,
    Node,
    NodeBase,
    ParallelGateway,
    Receive,
    TaskNode,
    UserTask,
    Wait,
)

# A place in a node ("branches", 0, "when") and the CEL expression found there.
ExpressionAt = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class Construct:
    name: str
    model: type[NodeBase]
    edges: Callable[[Any], list[tuple[str, str]]]
    """(field path, target) of every transition the node can take, e.g. ("branches.0.next", "pick")."""
    expressions: Callable[[Any], list[ExpressionAt]]
    """Every CEL expression the node carries, with its path inside the node (lint checks them)."""
    label: Callable[[Any], str]
    """The text of the node in a diagram."""
    mermaid_shape: tuple[str, str]
    dot_shape: str
    edge_fields: tuple[str, ...]
    """The fields that hold targets, for reading the transitions of a node that did not validate."""
    waiting_status: Callable[[Any], str] = lambda node: "in_progress"
    """The order's status while it is at the node, when the node names none (`status`, `keep_status`)."""
    breach_path: Callable[[Any], str | None] = lambda node: None
    """Where a missed deadline leads when the node names no `on_breach`; None: the order fails."""


def _optional(name: str, target: str | None) -> list[tuple[str, str]]:
    return [(name, target)] if target else []


def _breach(node: Deadlined) -> list[tuple[str, str]]:
    return _optional("on_breach", node.on_breach)


def _deadline(node: Deadlined) -> list[ExpressionAt]:
    return [(("deadline",), node.deadline)] if node.deadline else []


def _task_edges(node: TaskNode) -> list[tuple[str, str]]:
    return [("next", node.next), *_optional("on_error", node.on_error), *_breach(node)]


def _task_expressions(node: TaskNode) -> list[ExpressionAt]:
    found = _deadline(node)
    found += [(("search_attributes", name), expr) for name, expr in (node.search_attributes or {}).items()]
    if node.status_from:
        found.append((("status_from",), node.status_from))
    return found + [(("input", key), expr) for key, expr in (node.input or {}).items()]


def _task_label(node: TaskNode) -> str:
    kind = "local task" if node.local else "task"
    return f"{node.id}\n{kind}: {node.activity}" + (f"\nundo: {node.compensation}" if node.compensation else "")


def _exclusive_edges(node: ExclusiveGateway) -> list[tuple[str, str]]:
    return [*((f"branches.{i}.next", b.next) for i, b in enumerate(node.branches)), ("default", node.default)]


def _exclusive_expressions(node: ExclusiveGateway) -> list[ExpressionAt]:
    return [(("branches", i, "when"), b.when) for i, b in enumerate(node.branches)]


def _parallel_edges(node: ParallelGateway) -> list[tuple[str, str]]:
    return [*((f"branches.{i}", b) for i, b in enumerate(node.branches)), ("join", node.join), *_optional("on_error", node.on_error)]


def _user_task_edges(node: UserTask) -> list[tuple[str, str]]:
    return [*((f"outcomes.{k}", v) for k, v in node.outcomes.items()), ("on_timeout", node.on_timeout), *_breach(node)]


def _user_task_expressions(node: UserTask) -> list[ExpressionAt]:
    return _deadline(node) + ([(("details",), node.details)] if node.details else [])


def _wait_edges(node: Wait) -> list[tuple[str, str]]:
    return [("next", node.next), *_breach(node)]


def _wait_expressions(node: Wait) -> list[ExpressionAt]:
    return _deadline(node) + ([(("until",), node.until)] if node.until else [])


def _wait_label(node: Wait) -> str:
    return f"{node.id}\nwait {node.duration}" if node.duration else f"{node.id}\nwait until {node.until}"


def _receive_edges(node: Receive) -> list[tuple[str, str]]:
    return [("next", node.next), ("on_timeout", node.on_timeout), *_breach(node)]


def _none(node: Any) -> list:
    return []


CONSTRUCTS: dict[str, Construct] = {
    c.name: c
    for c in (
        Construct(
            name="task",
            model=TaskNode,
            edges=_task_edges,
            expressions=_task_expressions,
            label=_task_label,
            mermaid_shape=('["', '"]'),
            dot_shape='shape=box, style="rounded,filled"',
            edge_fields=("next", "on_error", "on_breach"),
            breach_path=lambda node: node.on_error,
        ),
        Construct(
            name="exclusive",
            model=ExclusiveGateway,
            edges=_exclusive_edges,
            expressions=_exclusive_expressions,
            label=lambda node: f"{node.id}\nexclusive",
            mermaid_shape=('{"', '"}'),
            dot_shape="shape=diamond, style=filled",
            edge_fields=("branches", "default"),
        ),
        Construct(
            name="parallel",
            model=ParallelGateway,
            edges=_parallel_edges,
            expressions=_none,
            label=lambda node: f"{node.id}\nparallel +",
            mermaid_shape=('{{"', '"}}'),
            dot_shape="shape=hexagon, style=filled",
            edge_fields=("branches", "join", "on_error"),
        ),
        Construct(
            name="user_task",
            model=UserTask,
            edges=_user_task_edges,
            expressions=_user_task_expressions,
            label=lambda node: f"{node.id}\nuser task: {node.role}\ntimeout {node.timeout}",
            mermaid_shape=('[["', '"]]'),
            dot_shape="shape=box, peripheries=2, style=filled",
            edge_fields=("outcomes", "on_timeout", "on_breach"),
            waiting_status=lambda node: "awaiting_decision",
            breach_path=lambda node: node.on_timeout,
        ),
        Construct(
            name="wait",
            model=Wait,
            edges=_wait_edges,
            expressions=_wait_expressions,
            label=_wait_label,
            mermaid_shape=('(("', '"))'),
            dot_shape="shape=circle, style=filled",
            edge_fields=("next", "on_breach"),
            breach_path=lambda node: node.next,
        ),
        Construct(
            name="receive",
            model=Receive,
            edges=_receive_edges,
            expressions=_deadline,
            label=lambda node: f"{node.id}\nreceive {' | '.join(node.events)}\ntimeout {node.timeout}",
            mermaid_shape=('>"', '"]'),
            dot_shape="shape=cds, style=filled",
            edge_fields=("next", "on_timeout", "on_breach"),
            waiting_status=lambda node: f"awaiting_{node.events[0]}",
            breach_path=lambda node: node.on_timeout,
        ),
        Construct(
            name="end",
            model=End,
            edges=_none,
            expressions=_none,
            label=lambda node: f"{node.id}\nend: {node.status}",
            mermaid_shape=('(["', '"])'),
            dot_shape="shape=doublecircle, style=filled",
            edge_fields=(),
        ),
    )
}

EDGE_FIELDS = tuple(dict.fromkeys(f for c in CONSTRUCTS.values() for f in c.edge_fields))


def construct(node: Node) -> Construct:
    return CONSTRUCTS[node.type]


def edges(node: Node) -> list[tuple[str, str]]:
    """(field path, target) for every transition a node can take."""
    return construct(node).edges(node)


def expressions(node: Node) -> list[ExpressionAt]:
    return construct(node).expressions(node)


def raw_targets(data: Any) -> list[str]:
    """The node ids a node that did not validate may lead to: every name in a field that holds targets.

    Its type may itself be what is wrong, so the fields of every construct are read. Lint uses these
    so that a broken node neither hides the nodes after it (unreachable) nor looks like a dead end.
    """
    if not isinstance(data, dict):
        return []
    kind = data.get("type")
    fields = CONSTRUCTS[kind].edge_fields if isinstance(kind, str) and kind in CONSTRUCTS else EDGE_FIELDS
    found: list[str] = []
    for name in fields:
        value = data.get(name)
        values = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                item = item.get("next")
            if isinstance(item, str):
                found.append(item)
    return found
