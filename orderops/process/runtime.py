"""The checks the workflow runs on its definition when an order is instantiated (and at every replay).

They are fixed and versioned, apart from `orderops lint`: a new lint rule must never change how an
old order replays. Version 1 is: the YAML reads, the models accept it (orderops/process/model.py),
node ids are unique, every target names a node (`address_changes_until` and `cancel_until`
included), and `start` exists. The expression, reachability,
cycle, activity and settings checks are lint's; a definition in an order's input passed them when
the order was started. Changing what a version checks is an interpreter change
(docs/architecture.md): add a version instead, and let the workflow choose it with `workflow.patched`.

This module imports nothing beyond pydantic, yaml and the language itself (not lint, not activities),
so the workflow sandbox can pass it through, and it is fast (no CEL is compiled).
"""

from __future__ import annotations

import functools

from orderops.process.constructs import edges
from orderops.process.load import Problem, Source, load_text
from orderops.process.model import ProcessDefinition, Receive, TaskNode, UserTask

RUNTIME_CHECKS_VERSION = 1
VERSIONS = (1,)

# Names every expression may use besides declared variables and results (workflows/order.py sets them).
BUILTIN_VARIABLES = frozenset({"order", "error", "accepted_at", "now", "received_events", "promise_policy"})


def known_variables(definition: ProcessDefinition) -> set[str]:
    """Every name an expression of this definition may use: builtins, `variables:` and `result:` names."""
    results = {n.result for n in definition.nodes if isinstance(n, (TaskNode, UserTask, Receive)) and n.result}
    return set(BUILTIN_VARIABLES) | set(definition.variables) | results


def _structure_v1(definition: ProcessDefinition, source: Source) -> list[Problem]:
    problems = []
    ids: set[str] = set()
    for index, node in enumerate(definition.nodes):
        if node.id in ids:
            problems.append(source.problem(("nodes", index, "id"), f"duplicated node id {node.id!r}"))
        ids.add(node.id)
    if definition.start not in ids:
        problems.append(source.problem(("start",), f"'start' points to unknown node {definition.start!r}"))
    for key in ("address_changes_until", "cancel_until"):
        target = getattr(definition, key)
        if target is not None and target not in ids:
            problems.append(source.problem((key,), f"{key!r} points to unknown node {target!r}"))
    for index, node in enumerate(definition.nodes):
        for field_name, target in edges(node):
            if target not in ids:
                path = ("nodes", index, *(int(p) if p.isdigit() else p for p in field_name.split(".")))
                problems.append(source.problem(path, f"node {node.id!r}: {field_name!r} points to unknown node {target!r}"))
    return problems


def parse_for_run(source: str, version: int = RUNTIME_CHECKS_VERSION) -> tuple[ProcessDefinition | None, list[Problem]]:
    """The definition an order runs under, or None and the problems (each `.format(path)` as lint prints them)."""
    if version not in VERSIONS:
        raise ValueError(f"unknown runtime checks version {version} (known: {', '.join(map(str, VERSIONS))})")
    definition, problems = _checked(source, version)
    return definition, list(problems)


# Every new order, every order evicted from the worker's cache and every replay reads its definition
# again: 6-10 ms of YAML and pydantic for standard.yaml, the same few texts each time. The result is a
# pure function of the text and frozen (the models are), so orders share it; this module is passed
# through the sandbox, so the cache outlives each workflow's own imports (docs/performance.md).
@functools.lru_cache(maxsize=32)
def _checked(source: str, version: int) -> tuple[ProcessDefinition | None, tuple[Problem, ...]]:
    definition, parsed, problems = load_text(source)
    if definition is None:
        return None, tuple(problems)
    problems = _structure_v1(definition, parsed)
    problems.sort(key=lambda p: (p.line, p.column))
    return (definition if not problems else None), tuple(problems)
