"""`orderops lint`: every check a definition must pass before anything runs."""

from __future__ import annotations

import functools
import string
from collections.abc import Collection
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, TypeAdapter, ValidationError

from orderops.process.expressions import ExpressionError, referenced_variables
from orderops.process.load import DefinitionSnapshot, Problem, Source, load_text, parse_yaml, problems_of, snapshot
from orderops.process.model import (
    End,
    ExclusiveGateway,
    ParallelGateway,
    ProcessDefinition,
    Receive,
    TaskNode,
    UserTask,
    Wait,
    edges,
)
from orderops.promise import PromisePolicy

# Names every expression may use besides declared variables and results (workflows/order.py sets them).
BUILTIN_VARIABLES = frozenset({"order", "error", "accepted_at", "now", "received_events", "promise_policy"})


class InvalidDefinition(Exception):
    """Raised with the lint messages, already formatted as file:line:col: message."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


def _node_path(definition: ProcessDefinition, node_id: str, *rest: str | int) -> tuple:
    index = next(i for i, n in enumerate(definition.nodes) if n.id == node_id)
    return ("nodes", index, *rest)


def _field_path(dotted: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


def _check_ids(definition: ProcessDefinition, source: Source) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, node in enumerate(definition.nodes):
        if node.id in seen:
            problems.append(source.problem(("nodes", index, "id"), f"duplicated node id {node.id!r}"))
        seen.add(node.id)
    return problems


def _check_targets(definition: ProcessDefinition, source: Source) -> list[Problem]:
    ids = {n.id for n in definition.nodes}
    problems = []
    if definition.start not in ids:
        problems.append(source.problem(("start",), f"'start' points to unknown node {definition.start!r}"))
    for key in ("address_changes_until", "cancel_until"):
        target = getattr(definition, key)
        if target is not None and target not in ids:
            problems.append(source.problem((key,), f"{key!r} points to unknown node {target!r}"))
    for index, node in enumerate(definition.nodes):
        for field_name, target in edges(node):
            if target not in ids:
                path = ("nodes", index, *_field_path(field_name))
                problems.append(source.problem(path, f"node {node.id!r}: {field_name!r} points to unknown node {target!r}"))
        if isinstance(node, ExclusiveGateway) and node.default is None:
            problems.append(source.problem(("nodes", index), f"node {node.id!r}: exclusive gateway has no 'default' branch"))
        if isinstance(node, UserTask):
            for outcome, target in node.outcomes.items():
                if not target:
                    path = ("nodes", index, "outcomes", outcome)
                    problems.append(source.problem(path, f"node {node.id!r}: outcome {outcome!r} has no target"))
    return problems


def _check_activities(definition: ProcessDefinition, source: Source, known: Collection[str]) -> list[Problem]:
    problems = []
    for index, node in enumerate(definition.nodes):
        if not isinstance(node, TaskNode):
            continue
        for field_name in ("activity", "compensation"):
            name = getattr(node, field_name)
            if name and name not in known:
                problems.append(
                    source.problem(
                        ("nodes", index, field_name),
                        f"node {node.id!r}: unknown activity {name!r} (known: {', '.join(sorted(known))})",
                    )
                )
    return problems


def _graph(definition: ProcessDefinition) -> dict[str, list[str]]:
    ids = {n.id for n in definition.nodes}
    return {n.id: [t for _, t in edges(n) if t in ids] for n in definition.nodes}


def _check_reachability(definition: ProcessDefinition, source: Source) -> list[Problem]:
    graph = _graph(definition)
    if definition.start not in graph:
        return []
    seen, stack = {definition.start}, [definition.start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return [
        source.problem(("nodes", i, "id"), f"node {n.id!r} is unreachable from start {definition.start!r}")
        for i, n in enumerate(definition.nodes)
        if n.id not in seen
    ]


def _strongly_connected(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative so deep definitions cannot overflow the stack."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = graph[node]
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return components


def _check_cycles(definition: ProcessDefinition, source: Source) -> list[Problem]:
    graph = _graph(definition)
    problems = []
    for component in _strongly_connected(graph):
        members = set(component)
        is_cycle = len(component) > 1 or component[0] in graph[component[0]]
        leaves = any(t not in members for m in component for t in graph[m])
        if is_cycle and not leaves:
            first = min(component, key=lambda nid: _node_path(definition, nid)[1])
            ordered = sorted(component, key=lambda nid: _node_path(definition, nid)[1])
            problems.append(
                source.problem(
                    _node_path(definition, first, "id"),
                    f"cycle with no way out: {' -> '.join(ordered)} never reaches an end node",
                )
            )
    return problems


def _check_parallel(definition: ProcessDefinition, source: Source) -> list[Problem]:
    """A branch must reach its join without ending the whole process first."""
    nodes = definition.node_map()
    problems = []
    for index, node in enumerate(definition.nodes):
        if not isinstance(node, ParallelGateway):
            continue
        for b, start in enumerate(node.branches):
            seen, stack = set(), [start]
            while stack:
                current = stack.pop()
                if current in seen or current == node.join or current not in nodes:
                    continue
                seen.add(current)
                if isinstance(nodes[current], End):
                    problems.append(
                        source.problem(
                            ("nodes", index, "branches", b),
                            f"node {node.id!r}: branch {start!r} reaches end node {current!r} before join {node.join!r}",
                        )
                    )
                    break
                stack.extend(t for _, t in edges(nodes[current]))
    return problems


def _expressions(node) -> list[tuple[tuple, str]]:
    found: list[tuple[tuple, str]] = [(("deadline",), node.deadline)] if getattr(node, "deadline", None) else []
    if isinstance(node, TaskNode) and node.search_attributes:
        found += [(("search_attributes", name), expr) for name, expr in node.search_attributes.items()]
    if isinstance(node, TaskNode) and node.status_from:
        found.append((("status_from",), node.status_from))
    return found + _node_expressions(node)


def _node_expressions(node) -> list[tuple[tuple, str]]:
    match node:
        case TaskNode(input=dict() as mapping):
            return [(("input", key), expr) for key, expr in mapping.items()]
        case ExclusiveGateway():
            return [(("branches", i, "when"), b.when) for i, b in enumerate(node.branches)]
        case UserTask(details=str() as expr):
            return [(("details",), expr)]
        case Wait(until=str() as expr):
            return [(("until",), expr)]
    return []


def known_variables(definition: ProcessDefinition) -> set[str]:
    results = {n.result for n in definition.nodes if isinstance(n, (TaskNode, UserTask, Receive)) and n.result}
    return set(BUILTIN_VARIABLES) | set(definition.variables) | results


def _check_expressions(definition: ProcessDefinition, source: Source) -> list[Problem]:
    known = known_variables(definition)
    problems = []
    for index, node in enumerate(definition.nodes):
        for rel_path, expr in _expressions(node):
            path = ("nodes", index, *rel_path)
            try:
                unknown = sorted(referenced_variables(expr) - known)
            except ExpressionError as err:
                problems.append(source.problem(path, f"node {node.id!r}: {err}"))
                continue
            if unknown:
                problems.append(
                    source.problem(
                        path,
                        f"node {node.id!r}: expression {expr!r} names unknown variable {unknown[0]!r} (known: {', '.join(sorted(known))})",
                    )
                )
    return problems


def lint_text(text: str, known_activities: Collection[str] | None) -> tuple[ProcessDefinition | None, list[Problem]]:
    """All checks; `known_activities=None` skips the activity-name check (the workflow
    cannot see which activities its workers registered)."""
    definition, source, problems = load_text(text)
    if definition is None:
        return None, problems
    problems = _check_ids(definition, source) + _check_targets(definition, source) + _check_expressions(definition, source)
    if known_activities is not None:
        problems += _check_activities(definition, source, known_activities) + _check_variables(definition, source)
    # Graph checks assume unique ids; on duplicates they would only add noise.
    if not any("duplicated node id" in p.message for p in problems):
        problems += _check_reachability(definition, source) + _check_cycles(definition, source) + _check_parallel(definition, source)
    problems.sort(key=lambda p: (p.line, p.column))
    return (definition if not problems else None), problems


@functools.cache
def _variable_models() -> dict[str, TypeAdapter]:
    """Settings the warehouse activities take from `variables:`, checked when a file is linted.

    Not inside the workflow's own re-lint: a stricter check there would stop old orders replaying.
    """
    from activities.inputs import Carrier, DeliveryPolicy, PackingRules, PickingPolicy, ReturnPolicy, StockPolicy
    from activities.review import ReviewRules

    return {
        "review_rules": TypeAdapter(ReviewRules),
        "stock_policy": TypeAdapter(StockPolicy),
        "picking": TypeAdapter(PickingPolicy),
        "packing": TypeAdapter(PackingRules),
        "carriers": TypeAdapter(list[Carrier]),
        "delivery": TypeAdapter(DeliveryPolicy),
        "return_policy": TypeAdapter(ReturnPolicy),
        "notifications": TypeAdapter(dict[str, Annotated[str, AfterValidator(_template)]]),
    }


def _template(text: str) -> str:
    """A notification text must fill in: {field} placeholders, braces doubled to print one."""
    try:
        list(string.Formatter().parse(text))
    except ValueError as err:
        raise ValueError(f"not a valid template: {err}") from None
    return text


def _check_variables(definition: ProcessDefinition, source: Source) -> list[Problem]:
    problems = []
    for name, adapter in _variable_models().items():
        value = definition.variables.get(name)
        if value is None:
            continue
        try:
            adapter.validate_python(value)
        except ValidationError as err:
            for error in err.errors():
                loc = tuple(error["loc"])
                where = ".".join(str(part) for part in ("variables", name, *loc))
                message = "unknown setting" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
                problems.append(source.problem(("variables", name, *loc), f"{where}: {message}"))
    return problems


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidDefinition([f"{path}: cannot read: {getattr(err, 'strerror', None) or err}"]) from None


def load_policy(path: Path) -> PromisePolicy:
    """A promise policy in a file of its own, checked with the same line-numbered messages."""
    source, problems = parse_yaml(_read(path))
    if not problems:
        try:
            return PromisePolicy.model_validate(source.data)
        except ValidationError as err:
            problems = problems_of(err, source)
    raise InvalidDefinition([p.format(str(path)) for p in problems])


def load(path: Path, known_activities: Collection[str] | None) -> tuple[ProcessDefinition, DefinitionSnapshot]:
    """Read and lint a definition file (and the policy file it names); raise InvalidDefinition."""
    text = _read(path)
    definition, problems = lint_text(text, known_activities)
    if definition is None:
        raise InvalidDefinition([p.format(str(path)) for p in problems])
    policy = definition.promise_policy
    if isinstance(policy, str):
        policy = load_policy(path.parent / policy)
    return definition, snapshot(path, text, definition, policy)


def load_definition(path: Path, known_activities: Collection[str] | None) -> DefinitionSnapshot:
    return load(path, known_activities)[1]
