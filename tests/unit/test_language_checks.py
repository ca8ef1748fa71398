"""The language's table of constructs, the workflow's runtime checks, the fields that carry shop rules
(priority, at_risk_activity, kpi), and lint reporting everything when part of a definition is broken.

Library-level, no server: each check with its exact line, column and message.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from activities import ACTIVITY_NAMES
from orderops import server
from orderops.process import load as load_module
from orderops.process.constructs import CONSTRUCTS, EDGE_FIELDS, construct, edges, expressions, raw_targets
from orderops.process.expressions import evaluate
from orderops.process.lint import lint_text
from orderops.process.load import Problem, parse_yaml
from orderops.process.model import NODE_TYPES, PRIORITY_LEVELS, PriorityPolicy, ProcessDefinition
from orderops.process.render import dot, mermaid
from orderops.process.runtime import BUILTIN_VARIABLES, RUNTIME_CHECKS_VERSION, known_variables, parse_for_run

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "process_defs").glob("*.yaml"))
TEST_DEFINITIONS = sorted((ROOT / "tests" / "definitions").glob("*.yaml"))
GOLDEN = sorted((ROOT / "tests" / "golden").glob("*.json"))

SMALL = """\
id: small
version: 1
start: work
nodes:
  - id: work
    type: task
    activity: pack_order
    next: gate
  - id: gate
    type: exclusive
    branches:
      - when: order.paid
        next: done
    default: ask
  - id: ask
    type: user_task
    role: agent
    outcomes: {approve: done, reject: stop}
    timeout: 1h
    on_timeout: stop
  - id: done
    type: end
    status: completed
  - id: stop
    type: end
    status: cancelled
"""


def found(text: str, known=ACTIVITY_NAMES) -> list[tuple[int, int, str]]:
    definition, problems = lint_text(text, known)
    assert (definition is None) == bool(problems)
    return [(p.line, p.column, p.message) for p in problems]


def edit(text: str, *edits: tuple[str, str]) -> str:
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# -- the table of constructs ---------------------------------------------------------------------


def test_every_construct_has_one_entry_with_its_model():
    assert tuple(CONSTRUCTS) == NODE_TYPES
    for name, entry in CONSTRUCTS.items():
        assert entry.name == name
        assert typing.get_args(entry.model.model_fields["type"].annotation) == (name,)
        assert set(entry.edge_fields) <= set(entry.model.model_fields)
    assert set(EDGE_FIELDS) == {f for entry in CONSTRUCTS.values() for f in entry.edge_fields}


def test_edges_expressions_labels_and_shapes_come_from_the_table():
    definition = lint_text(SMALL, ACTIVITY_NAMES)[0]
    nodes = definition.node_map()
    assert construct(nodes["gate"]) is CONSTRUCTS["exclusive"]
    assert edges(nodes["gate"]) == CONSTRUCTS["exclusive"].edges(nodes["gate"]) == [("branches.0.next", "done"), ("default", "ask")]
    assert expressions(nodes["gate"]) == [(("branches", 0, "when"), "order.paid")]
    assert expressions(nodes["done"]) == []
    text = mermaid(definition)
    opening, closing = CONSTRUCTS["user_task"].mermaid_shape
    assert f"{opening}ask<br/>user task: agent<br/>timeout 1:00:00{closing}" in text
    assert f'"ask" [{CONSTRUCTS["user_task"].dot_shape}' in dot(definition)


def test_the_targets_of_a_node_that_did_not_validate_are_read_from_its_fields():
    assert raw_targets({"type": "exclusive", "branches": [{"when": "x", "next": "a"}, {"next": 3}], "default": "b"}) == ["a", "b"]
    assert raw_targets({"type": "user_task", "outcomes": {"ok": "a", "no": None}, "on_timeout": "c", "next": "ignored"}) == ["a", "c"]
    # An unknown type: every field that holds targets in any construct.
    assert raw_targets({"type": "switch", "next": "a", "join": "b", "outcomes": {"x": "c"}}) == ["a", "b", "c"]
    assert raw_targets("not a node") == []


# -- runtime checks ----------------------------------------------------------------------------


def _golden_source(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
    return json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))["definition"]["source"]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.stem)
def test_runtime_checks_accept_the_definition_of_every_golden_history(path: Path):
    definition, problems = parse_for_run(_golden_source(path))
    assert problems == [] and definition is not None


@pytest.mark.parametrize("path", SHIPPED + TEST_DEFINITIONS, ids=lambda p: p.name)
def test_runtime_checks_give_the_definition_lint_gives(path: Path):
    text = path.read_text()
    assert parse_for_run(text) == (lint_text(text, None)[0], [])


def test_orders_share_a_parsed_definition_but_not_its_problems():
    first, second = parse_for_run(SMALL), parse_for_run(SMALL)
    assert first[0] is second[0]  # read once, by every order that runs it
    broken = SMALL.replace("start:", "begin:")
    problems = parse_for_run(broken)[1]
    problems.clear()
    assert parse_for_run(broken)[1] != []
    with pytest.raises(ValidationError):  # frozen: no order can change what the others run
        first[0].start = "elsewhere"  # type: ignore[misc]


def test_runtime_checks_are_version_1():
    assert RUNTIME_CHECKS_VERSION == 1
    assert parse_for_run(SMALL, version=1)[1] == []
    with pytest.raises(ValueError, match="unknown runtime checks version 2"):
        parse_for_run(SMALL, version=2)


@pytest.mark.parametrize(
    "edits, problem",
    [
        ((("  - id: stop", "  - id: done"),), Problem(24, 5, "duplicated node id 'done'")),
        ((("start: work", "start: wrok"),), Problem(3, 1, "'start' points to unknown node 'wrok'")),
        ((("start: work", "cancel_until: gone\nstart: work"),), Problem(3, 1, "'cancel_until' points to unknown node 'gone'")),
        ((("    default: ask", "    default: aks"),), Problem(14, 5, "node 'gate': 'default' points to unknown node 'aks'")),
        ((("reject: stop}", "reject: }"),), Problem(18, 31, "node 'ask': outcome 'reject' has no target")),
        ((("    default: ask\n", ""),), Problem(9, 5, "node 'gate': exclusive gateway has no 'default' branch")),
        ((("version: 1", "version: [1"),), Problem(3, 6, "YAML syntax error: expected ',' or ']', but got ':'")),
    ],
    ids=["duplicate-id", "start", "cancel-until", "target", "outcome-without-target", "no-default", "yaml"],
)
def test_runtime_checks_reject_what_the_workflow_cannot_run(edits, problem: Problem):
    definition, problems = parse_for_run(edit(SMALL, *edits))
    assert definition is None
    match = [p for p in problems if p.line == problem.line and p.message.startswith(problem.message)]
    assert match, problems
    assert match[0].format("defs/x.yaml").startswith(f"defs/x.yaml:{problem.line}:{match[0].column}: {problem.message}")


@pytest.mark.parametrize(
    "edits",
    [
        (("when: order.paid", "when: order.paid &&"),),  # CEL that does not parse
        (("when: order.paid", "when: orders.paid"),),  # an unknown variable
        (("activity: pack_order", "activity: teleport"),),  # an unknown activity
        (
            ("outcomes: {approve: done, reject: stop}", "outcomes: {approve: done}"),
            ("on_timeout: stop", "on_timeout: done"),
        ),  # `stop` unreachable
        (("on_timeout: stop", "on_timeout: ask"), ("outcomes: {approve: done, reject: stop}", "outcomes: {approve: ask}")),  # a trap
    ],
    ids=["cel-syntax", "unknown-variable", "unknown-activity", "unreachable", "cycle-without-exit"],
)
def test_lint_s_other_checks_are_not_runtime_checks(edits):
    """What lint alone rejects: a rule added to lint can never stop an old order replaying."""
    text = edit(SMALL, *edits)
    assert lint_text(text, ACTIVITY_NAMES)[0] is None
    definition, problems = parse_for_run(text)
    assert problems == [] and definition is not None


def test_known_variables_are_the_builtins_the_variables_and_the_results():
    definition = parse_for_run(
        edit(SMALL, ("start: work", "variables: {limit: 3}\nstart: work"), ("    next: gate", "    result: packed\n    next: gate"))
    )[0]
    assert known_variables(definition) == set(BUILTIN_VARIABLES) | {"limit", "packed"}


def test_the_runtime_checks_import_neither_lint_nor_activities_nor_cel():
    code = textwrap.dedent(
        """
        import sys
        import orderops.process.constructs, orderops.process.runtime
        from orderops.process.runtime import known_variables, parse_for_run
        loaded = [m for m in sys.modules if m.split(".")[0] in ("activities", "cel", "temporalio", "workflows")
                  or m in ("orderops.process.lint", "orderops.process.expressions", "orderops.settings")]
        print(loaded)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("path", SHIPPED + TEST_DEFINITIONS, ids=lambda p: p.name)
def test_the_fast_yaml_reader_gives_the_same_values_and_positions(path: Path, monkeypatch):
    text = path.read_text()
    fast, problems = parse_yaml(text)
    assert problems == []
    monkeypatch.setattr(load_module, "_FAST_LOADER", None)
    slow, _ = parse_yaml(text)
    assert (fast.data, fast.marks) == (slow.data, slow.marks)


def _depth(node: yaml.Node) -> int:
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    return 1 + max(map(_depth, children), default=0) if isinstance(node, yaml.CollectionNode) else 0


_nested = st.recursive(
    st.one_of(st.integers(), st.text(alphabet="ab-?:[]{} ", max_size=6)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet="ab-:?", min_size=1, max_size=3), inner, max_size=3),
    max_leaves=40,
)


@given(_nested, st.sampled_from([None, True, False]))
def test_the_cheap_depth_bound_never_undercounts(data, flow):
    """The streaming depth check is skipped only on this bound, so it must hold for block, flow and mixed styles."""
    text = yaml.safe_dump({"root": data}, default_flow_style=flow)
    assert load_module._depth_bound(text) >= _depth(yaml.compose(text))


def _values(node: yaml.Node) -> int:
    children = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else node.value
    return 1 + sum(map(_values, children)) if isinstance(node, yaml.CollectionNode) else 1


@given(_nested, st.sampled_from([None, True, False]))
def test_the_cheap_value_bound_never_undercounts(data, flow):
    """The streaming count is skipped only on this bound."""
    text = yaml.safe_dump({"root": data}, default_flow_style=flow)
    assert load_module._value_bound(text) >= _values(yaml.compose(text))


# -- YAML errors -------------------------------------------------------------------------------


def test_a_syntax_error_names_where_the_unclosed_construct_began():
    text = 'id: x\nname: "Standard\nversion: 1\nstart: a\n'
    assert parse_yaml(text)[1] == [
        Problem(5, 1, "YAML syntax error: found unexpected end of stream (while scanning a quoted scalar started at line 2, column 7)")
    ]


def test_values_yaml_cannot_read_are_reported_and_the_rest_is_still_checked():
    text = edit(SMALL, ("version: 1", "version: !!int one"), ("        next: done", "        next: dnoe"))
    assert found(text) == [
        (2, 10, "cannot read value 'one': invalid literal for int() with base 10: 'one'"),
        (13, 9, "node 'gate': 'branches.0.next' points to unknown node 'dnoe'"),
    ]


# -- lint reports everything ---------------------------------------------------------------------


def test_a_broken_node_does_not_hide_the_other_nodes_problems():
    text = edit(SMALL, ("    role: agent\n", "    role: agent\n    colour: red\n"), ("        next: done", "        next: dnoe"))
    assert found(text) == [
        (13, 9, "node 'gate': 'branches.0.next' points to unknown node 'dnoe'"),
        (18, 5, "node 'ask': unknown field 'colour'"),
    ]


def test_a_broken_node_is_still_a_node_others_lead_to_and_it_leads_on():
    # `ask` is broken (no timeout); the gateway's default still names it, and `stop` is reached only through it.
    text = edit(
        SMALL,
        ("    timeout: 1h\n", ""),
        ("    branches:\n      - when: order.paid\n        next: done", "    branches:\n      - when: order.paid\n        next: ask"),
    )
    assert found(text) == [(15, 5, "node 'ask': missing required field 'timeout'")]


def test_a_cycle_through_a_broken_node_is_not_judged():
    trap = "  - id: trap_a\n    type: wait\n    duration: 1m\n    next: trap_b\n  - id: trap_b\n    type: wait\n    next: trap_a\n"
    text = edit(SMALL, ("{approve: done, reject: stop}", "{approve: trap_a, reject: stop}")) + trap
    # `trap_b` has no duration: its transitions are not sure, so only its own problem is reported...
    assert found(text) == [(31, 5, "node 'trap_b': a wait needs exactly one of 'duration' or 'until'")]
    # ... and once it is right, the trap is.
    fixed = text.replace("    next: trap_a\n", "    duration: 1m\n    next: trap_a\n")
    assert found(fixed) == [(27, 5, "cycle with no way out: trap_a -> trap_b never reaches an end node")]


def test_a_node_without_a_readable_id_may_be_what_an_unknown_name_means():
    text = edit(SMALL, ("  - id: ask\n    type: user_task\n", "  - type: user_task\n"))
    assert found(text) == [(15, 5, "node '#3': missing required field 'id'")]


def test_with_duplicated_ids_the_other_graph_checks_still_run():
    text = edit(SMALL, ("  - id: stop", "  - id: done")) + "  - id: orphan\n    type: end\n    status: failed\n"
    assert found(text) == [
        (18, 31, "node 'ask': 'outcomes.reject' points to unknown node 'stop'"),
        (20, 5, "node 'ask': 'on_timeout' points to unknown node 'stop'"),
        (24, 5, "duplicated node id 'done'"),
        (27, 5, "node 'orphan' is unreachable from start 'work'"),
    ]


# -- priority ------------------------------------------------------------------------------------


def test_the_priority_levels_are_those_the_embedded_server_configures():
    override = [v for v in server.PRIORITY_CONFIG if v.startswith("matching.priorityLevels=")]
    assert override in ([], [f"matching.priorityLevels={PRIORITY_LEVELS}"])  # Temporal's default is 5
    assert PRIORITY_LEVELS == 5


def test_a_priority_defaults_and_its_keys_are_bounded():
    policy = PriorityPolicy.model_validate({"rules": [{"when": "true", "key": 5}]})
    assert (policy.default, policy.at_risk, policy.rules[0].key) == (None, 1, 5)
    for bad in ({"rules": [{"when": "true", "key": 0}]}, {"default": 6}, {"at_risk": "1"}, {"rules": [{"when": "", "key": 1}]}):
        with pytest.raises(ValidationError):
            PriorityPolicy.model_validate(bad)


def test_priority_problems_are_at_their_line():
    text = edit(SMALL, ("start: work", "priority:\n  rules:\n    - when: orders.paid\n      key: 2\n  at_risk: 9\nstart: work"))
    problems = found(text)
    assert problems[0] == (
        5,
        7,
        f"priority: expression 'orders.paid' names unknown variable 'orders' (known: {', '.join(sorted(BUILTIN_VARIABLES))})",
    )
    assert problems[1] == (7, 3, "at_risk: Input should be less than or equal to 5")


def _key(policy: PriorityPolicy, variables: dict, at_risk: bool = False) -> int | None:
    """What the interpreter does with `priority:`: at risk first, then the first rule that holds, else the default."""
    if at_risk:
        return policy.at_risk
    return next((rule.key for rule in policy.rules if evaluate(rule.when, variables) is True), policy.default)


@pytest.mark.parametrize("name", ["standard.yaml", "returns.yaml"])
@pytest.mark.parametrize(
    "order_type, service_level, promise, expected",
    [
        ("normal", "standard", None, 3),
        ("normal", "express", None, 2),  # before the promise: the order's own service level
        ("normal", "same_day", None, 2),
        ("urgent", "standard", None, 2),
        ("normal", "same_day", {"service_level": "standard"}, 3),  # promised as standard outside its area
        ("normal", "standard", {"service_level": "express"}, 2),
        ("urgent", "standard", {"service_level": "standard"}, 2),
        ("promotion", "standard", {"tier": "tier1"}, 3),  # a promise without a service level
    ],
)
def test_the_shipped_priority_is_the_one_the_interpreter_hard_coded(name, order_type, service_level, promise, expected):
    definition = parse_for_run((ROOT / "process_defs" / name).read_text())[0]
    assert definition.priority is not None
    variables = {"order": {"order_type": order_type, "service_level": service_level}, "promise": promise}
    assert _key(definition.priority, variables) == expected
    assert _key(definition.priority, variables, at_risk=True) == 1


# -- at_risk_activity and kpi ----------------------------------------------------------------------


def test_the_shipped_definitions_name_their_at_risk_activity_and_kpi_nodes():
    standard = parse_for_run((ROOT / "process_defs" / "standard.yaml").read_text())[0]
    returns = parse_for_run((ROOT / "process_defs" / "returns.yaml").read_text())[0]
    assert standard.at_risk_activity == "notify_ops" and returns.at_risk_activity is None  # returns has no deadlines
    assert standard.kpi_nodes("review") == ["manual_review", "escalated_review"]
    assert standard.kpi_nodes("shipment") == ["handoff"] and standard.kpi_nodes("delivery") == ["record_delivery"]
    assert returns.kpi_nodes("review") == []
    assert returns.kpi_nodes("shipment") == ["handoff"] and returns.kpi_nodes("delivery") == ["record_delivery"]
    assert standard.kpi_nodes("nothing") == []
    nodes = standard.node_map()
    assert nodes["handoff"].activity == "handoff_to_courier" and nodes["record_delivery"].activity == "record_delivery"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_user_task_keeps_the_status_it_had(path: Path):
    """The user-task default becomes awaiting_decision; the shipped ones say awaiting_review, as before."""
    definition = parse_for_run(path.read_text())[0]
    user_tasks = [n for n in definition.nodes if n.type == "user_task"]
    assert user_tasks and all(n.status == "awaiting_review" for n in user_tasks)
    assert not any(n.status == "awaiting_review" for n in definition.nodes if n.type != "user_task")


@pytest.mark.parametrize(
    "edits, problem",
    [
        (
            (("    role: agent\n", "    role: agent\n    kpi: delivery\n"),),
            (18, 5, "node 'ask': kpi 'delivery' goes on a task, not on a user_task"),
        ),
        (
            (("    activity: pack_order\n", "    activity: pack_order\n    kpi: review\n"),),
            (8, 5, "node 'work': kpi 'review' goes on a user_task, not on a task"),
        ),
        (
            (("    status: cancelled\n", "    status: cancelled\n    kpi: delivery\n"),),
            (27, 5, "node 'stop': kpi 'delivery' goes on a task, not on an end"),
        ),
        (
            (("    default: ask\n", "    default: ask\n    kpi: review\n"),),
            (15, 5, "node 'gate': kpi 'review' goes on a user_task, not on an exclusive"),
        ),
        (
            (("    activity: pack_order\n", "    activity: pack_order\n    kpi: shipped\n"),),
            (8, 5, "node 'work': kpi 'shipped' is not one of: review (on a user_task), shipment (on a task), delivery (on a task)"),
        ),
        (
            (("start: work", "at_risk_activity: page_ops\nstart: work"),),
            (3, 1, f"'at_risk_activity': unknown activity 'page_ops' (known: {', '.join(sorted(ACTIVITY_NAMES))})"),
        ),
    ],
    ids=["user-task", "task", "end", "gateway", "unknown-kpi", "unknown-at-risk-activity"],
)
def test_a_kpi_on_the_wrong_construct_and_an_unknown_at_risk_activity(edits, problem):
    assert found(edit(SMALL, *edits)) == [problem]


def test_a_kpi_where_it_belongs_is_accepted():
    text = edit(
        SMALL,
        ("    role: agent\n", "    role: agent\n    kpi: review\n"),
        ("    activity: pack_order\n", "    activity: pack_order\n    kpi: shipment\n"),
    )
    definition = lint_text(text, ACTIVITY_NAMES)[0]
    assert definition.kpi_nodes("review") == ["ask"] and definition.kpi_nodes("shipment") == ["work"]


def test_the_new_fields_are_in_the_schema():
    schema = ProcessDefinition.model_json_schema()
    assert {"priority", "at_risk_activity"} <= set(schema["properties"])
    assert schema["$defs"]["TaskNode"]["properties"]["kpi"]["anyOf"][0]["enum"] == ["shipment", "delivery"]
    assert schema["$defs"]["UserTask"]["properties"]["kpi"]["anyOf"][0]["const"] == "review"
    assert "default" in schema["$defs"]["ExclusiveGateway"]["required"]
    assert yaml.safe_load((ROOT / "process_defs" / "standard.yaml").read_text())["priority"]["default"] == 3
