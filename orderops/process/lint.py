"""`orderops lint`: every check a definition must pass before anything runs.

Lint reports everything in one run. When the models reject part of a definition, each node is
validated on its own and the reference, reachability, cycle, expression and activity checks run
over the nodes that did validate; a broken node counts as a node (it may be pointed to), its
targets are read from its raw fields, and a cycle through it is not judged, so its mistake is
reported once, without follow-on errors.

The workflow does not run lint: its checks at run time are orderops/process/runtime.py's, fixed
and versioned, so a new rule here never changes how an old order replays.
"""

from __future__ import annotations

import contextlib
import functools
import string
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, TypeAdapter, ValidationError

from orderops.process.constructs import edges, expressions, raw_targets
from orderops.process.cost import MAX_COMPREHENSION_DEPTH, nesting_depth
from orderops.process.expressions import FUNCTIONS, ExpressionError, referenced_variables, unknown_functions
from orderops.process.load import MAX_DEFINITION_CHARACTERS, DefinitionSnapshot, Problem, Source, parse_yaml, problems_of, snapshot
from orderops.process.model import End, Node, ParallelGateway, PriorityRule, ProcessDefinition, TaskNode
from orderops.process.runtime import BUILTIN_VARIABLES, known_variables
from orderops.promise import PromisePolicy
from orderops.settings import Carrier, DeliveryPolicy, PackingRules, PickingPolicy, ReturnPolicy, ReviewRules, StockPolicy

__all__ = ["BUILTIN_VARIABLES", "InvalidDefinition", "known_variables", "lint_text", "load", "load_definition", "load_policy"]


class InvalidDefinition(Exception):
    """Raised with the lint messages, already formatted as file:line:col: message."""

    def __init__(self, messages: list[str]):
        super().__init__("\n".join(messages))
        self.messages = messages


def _field_path(dotted: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


@dataclass
class _Parts:
    """What of a definition the models accepted: all of it, or the parts that validated on their own."""

    definition: ProcessDefinition | None
    start: str | None = None
    nodes: dict[int, Node] = field(default_factory=dict)  # index in the file -> node that validated
    broken: dict[int, Any] = field(default_factory=dict)  # index -> the raw data of a node that did not
    variables: dict[str, Any] | None = None  # None: not a mapping, so names cannot be checked
    address_changes_until: str | None = None
    cancel_until: str | None = None
    priority_rules: dict[int, PriorityRule] = field(default_factory=dict)  # index -> a rule that validated
    at_risk_activity: str | None = None

    def ids(self) -> list[tuple[int, str]]:
        """(index, id) of every node whose id can be read, broken or not, in the file's order."""
        found = {i: node.id for i, node in self.nodes.items()}
        found |= {i: raw["id"] for i, raw in self.broken.items() if isinstance(raw, dict) and isinstance(raw.get("id"), str)}
        return sorted(found.items())

    def unsure(self) -> set[str]:
        """Nodes whose transitions are not known for sure: broken ones, and every node of a duplicated id."""
        ids = [node_id for _, node_id in self.ids()]
        duplicated = {node_id for node_id in ids if ids.count(node_id) > 1}
        return duplicated | {node_id for i, node_id in self.ids() if i in self.broken} | set(self.anonymous())

    def anonymous(self) -> list[str]:
        """A name for each broken node whose id cannot be read: `#<index>`, which no id can be."""
        return [f"#{i}" for i, raw in sorted(self.broken.items()) if not (isinstance(raw, dict) and isinstance(raw.get("id"), str))]

    def results(self) -> set[str]:
        names = {getattr(node, "result", None) for node in self.nodes.values()}
        names |= {raw.get("result") for raw in self.broken.values() if isinstance(raw, dict) and isinstance(raw.get("result"), str)}
        return {name for name in names if isinstance(name, str)}


_NODE = TypeAdapter(Node)


def _whole(definition: ProcessDefinition) -> _Parts:
    return _Parts(
        definition=definition,
        start=definition.start,
        nodes=dict(enumerate(definition.nodes)),
        variables=definition.variables,
        address_changes_until=definition.address_changes_until,
        cancel_until=definition.cancel_until,
        priority_rules=dict(enumerate(definition.priority.rules if definition.priority else [])),
        at_risk_activity=definition.at_risk_activity,
    )


def _validate(source: Source) -> tuple[_Parts | None, list[Problem]]:
    if not isinstance(source.data, dict):
        return None, [Problem(1, 1, "a process definition must be a mapping with id, version, start and nodes")]
    try:
        return _whole(ProcessDefinition.model_validate(source.data)), []
    except ValidationError as err:
        problems = problems_of(err, source)
        failed = {e["loc"][0] for e in err.errors() if e["loc"]}
    data = source.data
    parts = _Parts(definition=None)

    def plain(key: str) -> str | None:
        value = data.get(key)
        return value if key not in failed and isinstance(value, str) else None

    parts.start, parts.at_risk_activity = plain("start"), plain("at_risk_activity")
    parts.address_changes_until, parts.cancel_until = plain("address_changes_until"), plain("cancel_until")
    variables = data.get("variables", {})
    parts.variables = {k: v for k, v in variables.items() if isinstance(k, str)} if isinstance(variables, dict) else None
    priority = data.get("priority")
    rules = priority.get("rules") if isinstance(priority, dict) else None
    for index, raw in enumerate(rules if isinstance(rules, list) else []):
        with contextlib.suppress(ValidationError):  # a broken rule is among the definition's problems
            parts.priority_rules[index] = PriorityRule.model_validate(raw)
    nodes = data.get("nodes")
    for index, raw in enumerate(nodes if isinstance(nodes, list) else []):
        try:
            parts.nodes[index] = _NODE.validate_python(raw)
        except ValidationError:
            parts.broken[index] = raw  # its problems are among the definition's
    return parts, problems


def _check_ids(parts: _Parts, source: Source) -> list[Problem]:
    seen: set[str] = set()
    problems = []
    for index, node_id in parts.ids():
        if node_id in seen:
            problems.append(source.problem(("nodes", index, "id"), f"duplicated node id {node_id!r}"))
        seen.add(node_id)
    return problems


def _check_targets(parts: _Parts, source: Source) -> list[Problem]:
    ids = {node_id for _, node_id in parts.ids()}
    if parts.anonymous():
        # A node without a readable id may be the one an unknown name means: fix its id first.
        return []
    problems = []
    for key in ("start", "address_changes_until", "cancel_until"):
        target = getattr(parts, key)
        if target is not None and target not in ids:
            problems.append(source.problem((key,), f"{key!r} points to unknown node {target!r}"))
    for index, node in parts.nodes.items():
        for field_name, target in edges(node):
            if target not in ids:
                path = ("nodes", index, *_field_path(field_name))
                problems.append(source.problem(path, f"node {node.id!r}: {field_name!r} points to unknown node {target!r}"))
    return problems


def _check_activities(parts: _Parts, source: Source, known: Collection[str]) -> list[Problem]:
    listing = ", ".join(sorted(known))
    problems = []
    if parts.at_risk_activity is not None and parts.at_risk_activity not in known:
        message = f"'at_risk_activity': unknown activity {parts.at_risk_activity!r} (known: {listing})"
        problems.append(source.problem(("at_risk_activity",), message))
    for index, node in parts.nodes.items():
        if not isinstance(node, TaskNode):
            continue
        for field_name in ("activity", "compensation"):
            name = getattr(node, field_name)
            if name and name not in known:
                message = f"node {node.id!r}: unknown activity {name!r} (known: {listing})"
                problems.append(source.problem(("nodes", index, field_name), message))
    return problems


def _graph(parts: _Parts) -> dict[str, list[str]]:
    """Every node to the nodes it may lead to. A broken node leads to every name in its target fields;
    a broken node without a readable id (named `#<index>`) may be what any unknown name means."""
    ids = {node_id for _, node_id in parts.ids()}
    anonymous = parts.anonymous()

    def resolve(targets: Iterable[str]) -> list[str]:
        return [name for t in targets for name in ([t] if t in ids else anonymous)]

    # Nodes that share an id share their transitions: which of them a name means is not known.
    graph: dict[str, list[str]] = {}
    for node in parts.nodes.values():
        graph.setdefault(node.id, []).extend(resolve(t for _, t in edges(node)))
    for index, raw in parts.broken.items():
        name = raw["id"] if isinstance(raw, dict) and isinstance(raw.get("id"), str) else f"#{index}"
        graph.setdefault(name, []).extend(resolve(raw_targets(raw)))
    return graph


def _check_reachability(parts: _Parts, source: Source) -> list[Problem]:
    graph = _graph(parts)
    if parts.start not in graph:
        return []
    seen, stack = {parts.start}, [parts.start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    first = {node_id: i for i, node_id in reversed(parts.ids())}
    return [
        source.problem(("nodes", i, "id"), f"node {node_id!r} is unreachable from start {parts.start!r}")
        for node_id, i in sorted(first.items(), key=lambda item: item[1])
        if node_id not in seen
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


def _check_cycles(parts: _Parts, source: Source) -> list[Problem]:
    graph = _graph(parts)
    position = {node_id: i for i, node_id in reversed(parts.ids())}
    unsure = parts.unsure()
    problems = []
    for component in _strongly_connected(graph):
        members = set(component)
        is_cycle = len(component) > 1 or component[0] in graph[component[0]]
        leaves = any(t not in members for m in component for t in graph[m])
        # A cycle through a node whose transitions are not known for sure may have a way out.
        if is_cycle and not leaves and not members & unsure:
            ordered = sorted(component, key=position.__getitem__)
            problems.append(
                source.problem(
                    ("nodes", position[ordered[0]], "id"),
                    f"cycle with no way out: {' -> '.join(ordered)} never reaches an end node",
                )
            )
    return problems


def _check_parallel(parts: _Parts, source: Source) -> list[Problem]:
    """A branch must reach its join without ending the whole process first."""
    unsure = parts.unsure()
    nodes = {node.id: node for node in parts.nodes.values() if node.id not in unsure}
    problems = []
    for index, node in parts.nodes.items():
        if not isinstance(node, ParallelGateway) or node.id in unsure:
            continue
        for b, start in enumerate(node.branches):
            seen, stack = set(), [start]
            while stack:
                current = stack.pop()
                # Past a node whose transitions are not known for sure (broken, duplicated), the way is not followed.
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


def _check_expression(path: tuple, expr: str, label: str, known: set[str] | None, source: Source) -> list[Problem]:
    try:
        names = referenced_variables(expr)
    except ExpressionError as err:
        return [source.problem(path, f"{label}{err}")]
    depth = nesting_depth(expr)
    if depth > MAX_COMPREHENSION_DEPTH:
        message = f"{label}expression nests {depth} comprehensions (all, exists, map, filter) inside each other; at most {MAX_COMPREHENSION_DEPTH} are allowed"
        return [source.problem(path, message)]
    functions = unknown_functions(expr)
    if functions:
        return [
            source.problem(
                path, f"{label}expression {expr!r} calls unknown function {functions[0]!r} (known: {', '.join(sorted(FUNCTIONS))})"
            )
        ]
    unknown = sorted(names - known) if known is not None else []
    if not unknown:
        return []
    assert known is not None
    message = f"{label}expression {expr!r} names unknown variable {unknown[0]!r} (known: {', '.join(sorted(known))})"
    return [source.problem(path, message)]


def _all_expressions(parts: _Parts) -> Iterable[tuple[tuple, str, str]]:
    """(path, expression, message prefix) of every CEL expression in the parts that validated."""
    for i, rule in parts.priority_rules.items():
        yield ("priority", "rules", i, "when"), rule.when, "priority: "
    for index, node in parts.nodes.items():
        for rel_path, expr in expressions(node):
            yield ("nodes", index, *rel_path), expr, f"node {node.id!r}: "


def _check_expressions(parts: _Parts, source: Source) -> list[Problem]:
    # Without a readable `variables:` mapping, names cannot be told apart: only the syntax is checked.
    known = set(BUILTIN_VARIABLES) | set(parts.variables) | parts.results() if parts.variables is not None else None
    return [problem for path, expr, label in _all_expressions(parts) for problem in _check_expression(path, expr, label, known, source)]


def lint_text(text: str, known_activities: Collection[str] | None) -> tuple[ProcessDefinition | None, list[Problem]]:
    """All checks; `known_activities=None` skips the checks that depend on the code deployed
    (activity names, the warehouse settings in `variables:`)."""
    source, problems = parse_yaml(text)
    if source.data is None and problems:  # a syntax error: nothing can be read after it
        return None, problems
    parts, found = _validate(source)
    problems += found
    if parts is None:
        return None, problems
    problems += _check_ids(parts, source) + _check_targets(parts, source) + _check_expressions(parts, source)
    if known_activities is not None:
        problems += _check_activities(parts, source, known_activities)
        if parts.variables is not None:
            problems += _check_variables(parts.variables, source)
    problems += _check_reachability(parts, source) + _check_cycles(parts, source) + _check_parallel(parts, source)
    problems = sorted(dict.fromkeys(problems), key=lambda p: (p.line, p.column))
    return (parts.definition if not problems else None), problems


@functools.cache
def _variable_models() -> dict[str, TypeAdapter]:
    """Settings the warehouse activities take from `variables:`, checked when a file is linted.

    Not inside the workflow's own re-lint: a stricter check there would stop old orders replaying.
    """
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


def _check_variables(variables: dict[str, Any], source: Source) -> list[Problem]:
    problems = []
    for name, adapter in _variable_models().items():
        value = variables.get(name)
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
        with path.open(encoding="utf-8") as file:
            return file.read(MAX_DEFINITION_CHARACTERS + 1)  # enough for parse_yaml to refuse a longer one
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidDefinition([f"{path}: cannot read: {getattr(err, 'strerror', None) or err}"]) from None


def load_policy(path: Path) -> PromisePolicy:
    """A promise policy in a file of its own, checked with the same line-numbered messages."""
    policy, problems = _policy_of(_read(path))
    if policy is None:
        raise InvalidDefinition([p.format(str(path)) for p in problems])
    return policy


# Definitions share a policy file: linting a hundred of them reads it once (keyed by its text, so
# an edited file is read again).
@functools.lru_cache(maxsize=16)
def _policy_of(text: str) -> tuple[PromisePolicy | None, tuple[Problem, ...]]:
    source, problems = parse_yaml(text)
    if not problems:
        try:
            return PromisePolicy.model_validate(source.data), ()
        except ValidationError as err:
            problems = problems_of(err, source)
    return None, tuple(problems)


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
