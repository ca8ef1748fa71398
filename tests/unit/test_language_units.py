"""The process language piece by piece: reading YAML with positions, each lint check's exact message,
line and column, loading files and policies, durations and CEL evaluation.

test_lint.py has one test per class of error through the CLI; these check the library directly,
with the whole problem (line, column, message), for every place a problem can come from.
"""

from __future__ import annotations

import hashlib
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from activities import ACTIVITY_NAMES
from orderops.durations import MAX_DURATION, Duration
from orderops.process.constructs import edges
from orderops.process.expressions import ExpressionError, evaluate, referenced_variables
from orderops.process.lint import InvalidDefinition, lint_text, load, load_definition, load_policy
from orderops.process.load import Problem, Source, load_text, parse_yaml, snapshot
from orderops.process.model import ProcessDefinition

# Every field on its own line, so a problem's line and column tell which field it is about;
# the gateway lists `type` before `id`, so the node's first line is not its id's.
BASE = """\
id: unit
version: 1
start: review
address_changes_until: pack
cancel_until: pack
variables:
  limit: 10
nodes:
  - id: review
    type: task
    activity: review_order
    result: review
    next: route
  - type: exclusive
    id: route
    branches:
      - when: size(review.anomalies) > limit
        next: decide
    default: pack
  - id: decide
    type: user_task
    role: agent
    outcomes: {approve: pack, reject: rejected}
    timeout: 1h
    on_timeout: rejected
  - id: pack
    type: task
    activity: pack_order
    next: done
  - id: done
    type: end
    status: completed
  - id: rejected
    type: end
    status: rejected
"""
KNOWN_VARIABLES = "accepted_at, error, limit, now, order, promise_policy, received_events, review"


def change(*edits: tuple[str, str], append: str = "") -> str:
    text = BASE
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text + textwrap.indent(textwrap.dedent(append), "  ")


def found(text: str, known=ACTIVITY_NAMES) -> list[tuple[int, int, str]]:
    definition, problems = lint_text(text, known)
    assert (definition is None) == bool(problems)
    return [(p.line, p.column, p.message) for p in problems]


def test_the_base_definition_is_valid():
    assert found(BASE) == []


# -- reading YAML ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, problem",
    [
        ("id: x\nversion: 1: 2\n", (2, 11, "YAML syntax error: mapping values are not allowed here")),
        (
            "id: x\nnodes: [a, b\n",
            (
                3,
                1,
                "YAML syntax error: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence started at line 2, column 8)",
            ),
        ),
        ("\nid: x\nname: a\x07b\n", (3, 1, "YAML syntax error: unacceptable character #x0007: special characters are not allowed")),
        ("", (1, 1, "the file is empty: a process definition needs id, version, start and nodes")),
        ("# only a comment\n", (1, 1, "the file is empty: a process definition needs id, version, start and nodes")),
        ("id: x\n? [a, b]\n: 1\n", (2, 3, "a mapping key must be a plain name")),
        ("id: x\nvariables:\n    a: 1\n    a: 2\n", (4, 5, "duplicate key 'a' (first given on line 3)")),
        ("id: x\nversion: !!int abc\n", (2, 10, "cannot read value 'abc': invalid literal for int() with base 10: 'abc'")),
        (
            "id: x\nname: !!python/name:os.system x\n",
            (2, 7, "cannot read value 'x': could not determine a constructor for the tag 'tag:yaml.org,2002:python/name:os.system'"),
        ),
    ],
    ids=["syntax", "syntax-at-end", "control-character", "empty", "only-comment", "complex-key", "duplicate-key", "bad-int", "unsafe-tag"],
)
def test_unreadable_yaml_is_one_problem_at_its_line_and_column(text: str, problem: tuple[int, int, str]):
    source, problems = parse_yaml(text)
    assert [(p.line, p.column, p.message) for p in problems] == [problem]
    assert source.text == text


_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
_BLOCK_DEEP = "".join(" " * (2 * i) + f"k{i}:\n" for i in range(70)) + " " * 140 + "k: 1\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[" * 2000 + "]" * 2000, (1, 65, "the YAML is nested more than 64 levels deep")),
        ("a: " + "{b: " * 2000 + "1" + "}" * 2000, (1, 256, "the YAML is nested more than 64 levels deep")),
        ("a: " + "[" * 50000 + "]" * 50000, (1, 67, "the YAML is nested more than 64 levels deep")),
        (_BLOCK_DEEP, (65, 129, "the YAML is nested more than 64 levels deep")),
        # a billion laughs: nine aliases of nine aliases of ... 387 million values from 500 bytes
        (_LAUGHS, (5, 1, "the definition holds more than 20,000 values (an alias counts as all it repeats)")),
        ("nodes: [" + "1, " * 30_000 + "]", (1, 60000, "the definition holds more than 20,000 values (an alias counts as all it repeats)")),
        ("# " + "x" * 1_048_576, (1, 1, "the definition is longer than 1,048,576 characters, the most that is read")),
    ],
    ids=["deep-lists", "deep-mappings", "deeper-lists", "deep-blocks", "billion-laughs", "too-many-values", "too-long"],
)
def test_yaml_past_a_cap_is_one_problem_at_the_place_it_is_passed(text: str, problem: tuple[int, int, str]):
    assert [(p.line, p.column, p.message) for p in parse_yaml(text)[1]] == [problem]


def test_aliases_below_the_cap_are_read_as_what_they_repeat():
    source, problems = parse_yaml("retry: &r {maximum_attempts: 3}\nagain: *r\n")
    assert problems == [] and source.data == {"retry": {"maximum_attempts": 3}, "again": {"maximum_attempts": 3}}


def test_every_key_and_list_item_is_marked_with_its_line_and_column():
    source, problems = parse_yaml("# header\nid: x\nnodes:\n  - id: a\n    next: b\n  -   id: c\n")
    assert problems == []
    assert source.data == {"id": "x", "nodes": [{"id": "a", "next": "b"}, {"id": "c"}]}
    assert source.marks == {
        (): (2, 1),
        ("id",): (2, 1),
        ("nodes",): (3, 1),
        ("nodes", 0): (4, 5),
        ("nodes", 0, "id"): (4, 5),
        ("nodes", 0, "next"): (5, 5),
        ("nodes", 1): (6, 7),
        ("nodes", 1, "id"): (6, 7),
    }


@pytest.mark.parametrize("other_break", ["\x85", "\u2028", "\u2029", "\r"], ids=["NEL", "LS", "PS", "CR"])
def test_positions_count_lines_as_an_editor_does_not_at_the_breaks_only_yaml_knows(other_break: str):
    # YAML also ends a line there; the editor the message is read beside does not.
    assert parse_yaml(f"a: 'x{other_break}y'\nb: 1\nb: 2\n")[1] == [Problem(3, 1, "duplicate key 'b' (first given on line 2)")]
    _, problems = parse_yaml(f"a: 1\n{other_break}b: [\nc: 2\n")
    assert [(p.line, p.column) for p in problems] == [(4, 1)]
    assert "started at line 2, column 5" in problems[0].message


def test_a_position_is_that_of_the_deepest_part_of_the_path_in_the_file():
    source, _ = parse_yaml("# header\nid: x\nnodes:\n  - id: a\n    next: b\n")
    assert source.position(("nodes", 0, "next")) == (5, 5)
    assert source.position(("nodes", 0, "retry", "backoff")) == (4, 5)  # the node: retry is not in the file
    assert source.position(("nodes", 0, "retry")) == (4, 5)
    assert source.position(("promise_policy",)) == (2, 1)  # the document
    assert source.problem(("nodes", 0, "next"), "m") == Problem(5, 5, "m")
    assert Source("").position(("anything",)) == (1, 1)  # nothing read: the start of the file


def test_a_problem_formats_as_file_line_column_message():
    assert Problem(3, 7, "bad").format("defs/x.yaml") == "defs/x.yaml:3:7: bad"


def test_a_node_that_is_not_a_mapping_is_reported_at_its_item():
    text = BASE.replace("nodes:\n", "nodes:\n  - 5\n", 1)
    assert found(text) == [(9, 5, "Input should be a valid dictionary or object to extract fields from")]


@pytest.mark.parametrize("outcome", ["task", "end"])
def test_a_field_named_like_a_construct_type_is_not_taken_for_its_tag(outcome: str):
    """pydantic puts the node's type in error locations (nodes.2.user_task.outcomes...); only that one is dropped."""
    text = change(("{approve: pack, reject: rejected}", f"{{approve: pack, reject: rejected, {outcome}: 'not an id'}}"))
    assert found(text) == [(23, 49, f"node 'decide': {outcome}: String should match pattern '^[A-Za-z_][A-Za-z0-9_\\-]*$'")]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_a_definition_must_be_a_mapping(text: str):
    definition, _, problems = load_text(text)
    assert definition is None
    assert problems == [Problem(1, 1, "a process definition must be a mapping with id, version, start and nodes")]


# -- structure: pydantic's errors at their place --------------------------------------------------


@pytest.mark.parametrize(
    "text, problems",
    [
        (change(("start: review\n", "")), [(1, 1, "missing required field 'start'")]),
        (change(("version: 1\n", "version: 1\ncolour: red\n")), [(3, 1, "unknown field 'colour'")]),
        (change(("version: 1\n", "version: 0\n")), [(2, 1, "version: Input should be greater than or equal to 1")]),
        (change(("version: 1\n", "version: 1\nname: {a: 1}\n")), [(3, 1, "name: Input should be a valid string")]),
        (
            change(("version: 1\n", "version: 1\nevents: [paid, 9lives]\n")),
            [(3, 16, "events: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'")],
        ),
        (
            change(("    type: user_task", "    type: human")),
            [
                (
                    21,
                    5,
                    "node 'decide': unknown construct type 'human' (expected one of: task, exclusive, parallel, user_task, wait, receive, end)",
                )
            ],
        ),
        (
            change(("    type: user_task\n", "")),
            [(20, 5, "node 'decide': missing field 'type' (one of: task, exclusive, parallel, user_task, wait, receive, end)")],
        ),
        (change(("  - id: decide\n    type: user_task\n", "  - type: user_task\n")), [(20, 5, "node '#3': missing required field 'id'")]),
        (
            change(("timeout: 1h", "timeout: forever")),
            [(24, 5, "node 'decide': timeout: invalid duration 'forever': use forms like 30s, 5m, 1h30m, 2d")],
        ),
        (
            change(("timeout: 1h", "timeout: yes")),
            [(24, 5, "node 'decide': timeout: invalid duration True: use forms like 30s, 5m, 1h30m, 2d")],
        ),
        (
            change(("    activity: pack_order\n", "    activity: pack_order\n    status: packing\n    keep_status: true\n")),
            [(26, 5, "node 'pack': give either 'status' or 'keep_status', not both")],
        ),
        (
            change(("    activity: pack_order\n", "    activity: pack_order\n    retry: {initial_interval: 10s, maximum_interval: 1s}\n")),
            [(29, 5, "node 'pack': retry: maximum_interval must not be shorter than initial_interval")],
        ),
        (
            change(("version: 1\n", "version: 1\npromise_policy:\n  default_tier: tier1\n  tiers:\n    tier1: 99\n")),
            [(6, 5, "tier1: Input should be less than or equal to 60")],
        ),
        (
            change(("version: 1\n", "version: 1\npromise_policy:\n  tiers:\n    tier1: 2\n")),
            [(3, 1, "missing required field 'default_tier'")],
        ),
    ],
    ids=[
        "missing",
        "unknown-field",
        "bad-value",
        "mapping-for-a-string",
        "list-item",
        "unknown-construct",
        "no-type",
        "no-id",
        "bad-duration",
        "boolean-duration",
        "node-rule",
        "nested-rule",
        "inline-policy-value",
        "inline-policy-missing",
    ],
)
def test_structural_problems_are_at_the_value_they_are_about(text: str, problems: list):
    assert found(text) == problems


# -- the lint checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, problems",
    [
        (change(("start: review", "start: revue")), [(3, 1, "'start' points to unknown node 'revue'")]),
        (
            change(("address_changes_until: pack", "address_changes_until: gone")),
            [(4, 1, "'address_changes_until' points to unknown node 'gone'")],
        ),
        (change(("cancel_until: pack", "cancel_until: gone")), [(5, 1, "'cancel_until' points to unknown node 'gone'")]),
        (
            change(("    activity: pack_order\n", "    activity: pack_order\n    on_error: oops\n")),
            [(29, 5, "node 'pack': 'on_error' points to unknown node 'oops'")],
        ),
        (change(("default: pack", "default: pak")), [(19, 5, "node 'route': 'default' points to unknown node 'pak'")]),
        (
            change(("        next: decide", "        next: decid")),
            [
                (18, 9, "node 'route': 'branches.0.next' points to unknown node 'decid'"),
                (20, 5, "node 'decide' is unreachable from start 'review'"),
                (33, 5, "node 'rejected' is unreachable from start 'review'"),
            ],
        ),
        (change(("    default: pack\n", "")), [(14, 5, "node 'route': exclusive gateway has no 'default' branch")]),
        (
            change(("reject: rejected}", "reject: rejectd}")),
            [(23, 31, "node 'decide': 'outcomes.reject' points to unknown node 'rejectd'")],
        ),
        (change(("reject: rejected}", "reject: }")), [(23, 31, "node 'decide': outcome 'reject' has no target")]),
        (
            change(("    on_timeout: rejected", "    on_timeout: rejectd")),
            [(25, 5, "node 'decide': 'on_timeout' points to unknown node 'rejectd'")],
        ),
        (
            change(("    on_timeout: rejected\n", "    on_timeout: rejected\n    deadline: accepted_at\n    on_breach: late\n")),
            [(27, 5, "node 'decide': 'on_breach' points to unknown node 'late'")],
        ),
        (
            change(
                ("{approve: pack, reject: rejected}", "{approve: hear, reject: rejected}"),
                append="""\
                  - id: hear
                    type: receive
                    event: paid
                    timeout: 1h
                    on_timeout: nowhere
                    next: nothing
                """,
            ),
            [
                (40, 5, "node 'hear': 'on_timeout' points to unknown node 'nowhere'"),
                (41, 5, "node 'hear': 'next' points to unknown node 'nothing'"),
            ],
        ),
        (
            change(
                ("{approve: pack, reject: rejected}", "{approve: later, reject: rejected}"),
                append="""\
                  - id: later
                    type: wait
                    duration: 1m
                    next: nowhere
                """,
            ),
            [(39, 5, "node 'later': 'next' points to unknown node 'nowhere'")],
        ),
    ],
    ids=[
        "start",
        "address-changes-until",
        "cancel-until",
        "task-on-error",
        "gateway-default",
        "gateway-branch",
        "gateway-without-default",
        "outcome",
        "outcome-without-target",
        "user-task-on-timeout",
        "on-breach",
        "receive-next-and-on-timeout",
        "wait-next",
    ],
)
def test_every_transition_to_an_unknown_node_is_reported_at_its_field(text: str, problems: list):
    assert found(text) == problems


def test_duplicated_ids_are_reported_without_follow_on_errors():
    # `rejected` is gone: the duplicates and the dangling targets are reported; the nodes named `done` share
    # their transitions, so neither looks unreachable, and the graph checks still run (see test_language_checks.py).
    text = change(
        ("  - id: rejected", "  - id: done"),
        append="""\
          - type: end
            id: done
            status: failed
        """,
    )
    assert found(text) == [
        (23, 31, "node 'decide': 'outcomes.reject' points to unknown node 'rejected'"),
        (25, 5, "node 'decide': 'on_timeout' points to unknown node 'rejected'"),
        (33, 5, "duplicated node id 'done'"),
        (37, 5, "duplicated node id 'done'"),
    ]


def test_with_duplicated_ids_the_graph_checks_do_not_guess_which_node_is_meant():
    # Read as a graph, the second `b` (an end) would hide the first's edge to `c` and report `c` unreachable.
    text = """\
id: dup
version: 1
start: a
nodes:
  - id: a
    type: wait
    duration: 1m
    next: b
  - id: b
    type: wait
    duration: 1m
    next: c
  - id: c
    type: end
    status: completed
  - id: b
    type: end
    status: failed
"""
    assert found(text) == [(16, 5, "duplicated node id 'b'")]


def test_graph_checks_still_run_beside_other_problems():
    text = change(("activity: pack_order", "activity: pack_ordr"), append="  - type: end\n    id: orphan\n    status: failed\n")
    assert found(text, known={"review_order", "pack_order"}) == [
        (28, 5, "node 'pack': unknown activity 'pack_ordr' (known: pack_order, review_order)"),
        (37, 5, "node 'orphan' is unreachable from start 'review'"),
    ]


def test_unknown_activities_are_found_on_every_task_after_any_other_node():
    text = change(
        (
            "  - id: review\n    type: task\n",
            "  - id: review\n    type: wait\n    duration: 1m\n    next: check\n  - id: check\n    type: task\n",
        ),
        ("activity: pack_order\n", "activity: pack_order\n    compensation: unpack\n"),
        ("activity: review_order", "activity: review_ordr"),
    )
    assert found(text, known={"review_order", "pack_order"}) == [
        (15, 5, "node 'check': unknown activity 'review_ordr' (known: pack_order, review_order)"),
        (33, 5, "node 'pack': unknown activity 'unpack' (known: pack_order, review_order)"),
    ]


def test_without_known_activities_the_activity_and_variable_checks_are_skipped():
    text = change(("activity: pack_order", "activity: anything"), ("  limit: 10\n", "  limit: 10\n  picking: {mode: walk}\n"))
    assert found(text, known=None) == []


def test_a_cycle_with_no_way_out_is_reported_at_its_first_node_in_file_order():
    text = change(
        ("{approve: pack, reject: rejected}", "{approve: zeta, reject: rejected}"),
        append="""\
          - id: zeta
            type: wait
            duration: 1m
            next: alpha
          - type: wait
            id: alpha
            duration: 1m
            next: zeta
        """,
    )
    assert found(text) == [(36, 5, "cycle with no way out: zeta -> alpha never reaches an end node")]


def test_a_node_waiting_on_itself_forever_is_a_cycle():
    text = change(
        ("{approve: pack, reject: rejected}", "{approve: stuck, reject: rejected}"),
        append="""\
          - type: wait
            id: stuck
            duration: 1m
            next: stuck
        """,
    )
    assert found(text) == [(37, 5, "cycle with no way out: stuck never reaches an end node")]


def test_closed_cycles_are_found_after_nodes_already_visited_and_apart_from_open_ones():
    """Tarjan's search starts again at every node not yet seen; components it has finished stay finished."""
    text = """\
id: cycles
version: 1
start: a
nodes:
  - id: a
    type: exclusive
    branches:
      - when: order.paid
        next: b
      - when: order.paid
        next: c
    default: end
  - id: b
    type: wait
    duration: 1m
    next: a
  - id: c
    type: wait
    duration: 1m
    next: d
  - id: d
    type: exclusive
    branches:
      - when: order.paid
        next: c
      - when: order.paid
        next: b
    default: c
  - id: end
    type: end
    status: completed
  - id: lone
    type: wait
    duration: 1m
    next: lone
"""
    # c <-> d only lead to each other and to b, whose cycle with a has the way out: none is closed but `lone`.
    assert found(text) == [
        (32, 5, "node 'lone' is unreachable from start 'a'"),
        (32, 5, "cycle with no way out: lone never reaches an end node"),
    ]
    closed = text.replace("        next: b\n    default: c", "        next: d\n    default: c")
    assert found(closed) == [
        (17, 5, "cycle with no way out: c -> d never reaches an end node"),
        (32, 5, "node 'lone' is unreachable from start 'a'"),
        (32, 5, "cycle with no way out: lone never reaches an end node"),
    ]


PARALLEL = """\
id: par
version: 1
start: fork
nodes:
  - id: fork
    type: parallel
    branches: [left, right]
    join: joined
  - id: left
    type: wait
    duration: 1m
    next: check
  - id: check
    type: exclusive
    branches:
      - when: order.paid
        next: left
    default: joined
  - id: right
    type: exclusive
    branches:
      - when: order.paid
        next: stop
    default: joined
  - id: joined
    type: end
    status: completed
  - id: stop
    type: end
    status: cancelled
"""


def test_a_parallel_branch_ending_the_process_before_its_join_is_reported_at_the_branch():
    # `left` loops back on itself before the join: searched once. `right` reaches the join first, then an end.
    assert found(PARALLEL) == [(7, 22, "node 'fork': branch 'right' reaches end node 'stop' before join 'joined'")]


def test_a_parallel_gateway_s_dangling_branch_and_on_error_are_reported():
    text = PARALLEL.replace("branches: [left, right]\n    join: joined\n", "branches: [left, rite]\n    join: joined\n    on_error: oops\n")
    assert found(text) == [
        (7, 22, "node 'fork': 'branches.1' points to unknown node 'rite'"),
        (9, 5, "node 'fork': 'on_error' points to unknown node 'oops'"),
        (20, 5, "node 'right' is unreachable from start 'fork'"),
        (29, 5, "node 'stop' is unreachable from start 'fork'"),
    ]


@pytest.mark.parametrize(
    "edit, problem",
    [
        (
            ("    activity: pack_order\n", "    activity: pack_order\n    deadline: promise.ship_by\n    on_breach: done\n"),
            (29, 5, f"node 'pack': expression 'promise.ship_by' names unknown variable 'promise' (known: {KNOWN_VARIABLES})"),
        ),
        (
            ("    activity: pack_order\n", "    activity: pack_order\n    input:\n      order: order\n      rules: packing\n"),
            (31, 7, f"node 'pack': expression 'packing' names unknown variable 'packing' (known: {KNOWN_VARIABLES})"),
        ),
        (
            ("    activity: pack_order\n", "    activity: pack_order\n    search_attributes:\n      Region: region\n"),
            (30, 7, f"node 'pack': expression 'region' names unknown variable 'region' (known: {KNOWN_VARIABLES})"),
        ),
        (
            ("    activity: pack_order\n", "    activity: pack_order\n    status_from: tracking.status\n"),
            (29, 5, f"node 'pack': expression 'tracking.status' names unknown variable 'tracking' (known: {KNOWN_VARIABLES})"),
        ),
        (
            ("size(review.anomalies) > limit", "size(reviews.anomalies) > limit"),
            (
                17,
                9,
                f"node 'route': expression 'size(reviews.anomalies) > limit' names unknown variable 'reviews' (known: {KNOWN_VARIABLES})",
            ),
        ),
        (
            ("    role: agent\n", "    role: agent\n    details: reason\n"),
            (23, 5, f"node 'decide': expression 'reason' names unknown variable 'reason' (known: {KNOWN_VARIABLES})"),
        ),
        (
            (
                "      - when: size(review.anomalies) > limit\n        next: decide\n",
                "      - next: decide\n        when: size(reviews.anomalies) > limit\n",
            ),
            (
                18,
                9,
                f"node 'route': expression 'size(reviews.anomalies) > limit' names unknown variable 'reviews' (known: {KNOWN_VARIABLES})",
            ),
        ),
    ],
    ids=["deadline", "input", "search-attribute", "status-from", "branch-condition", "details", "branch-condition-after-next"],
)
def test_each_expression_naming_an_unknown_variable_is_reported_at_its_line(edit: tuple[str, str], problem: tuple):
    assert found(change(edit)) == [problem]


def test_a_wait_until_naming_an_unknown_variable_is_reported_at_its_line():
    text = change(
        ("{approve: pack, reject: rejected}", "{approve: later, reject: rejected}"),
        append="""\
          - id: later
            type: wait
            until: tomorrow
            next: pack
        """,
    )
    assert found(text) == [(38, 5, f"node 'later': expression 'tomorrow' names unknown variable 'tomorrow' (known: {KNOWN_VARIABLES})")]


def test_every_expression_of_a_node_is_checked_even_after_a_broken_one():
    text = change(
        (
            "    activity: pack_order\n",
            "    activity: pack_order\n    deadline: 'now +'\n    on_breach: done\n    search_attributes:\n      Region: region\n    status_from: nowhere\n",
        )
    )
    problems = found(text)
    assert [(line, column) for line, column, _ in problems] == [(29, 5), (32, 7), (33, 5)]
    assert problems[0][2].startswith("node 'pack': invalid CEL expression 'now +': ERROR: <input>:1:6: Syntax error:")
    assert problems[1][2] == f"node 'pack': expression 'region' names unknown variable 'region' (known: {KNOWN_VARIABLES})"
    assert problems[2][2] == f"node 'pack': expression 'nowhere' names unknown variable 'nowhere' (known: {KNOWN_VARIABLES})"


def test_results_declared_variables_and_comprehension_variables_are_known():
    text = change(("size(review.anomalies) > limit", "review.findings.all(f, f.code != '') && limit > 0"))
    assert found(text) == []
    assert referenced_variables("items.exists(i, i.quantity > limit) && order.paid") == {"items", "limit", "order"}


def test_settings_in_variables_are_checked_at_their_line():
    text = change(
        (
            "  limit: 10\n",
            """\
  limit: 10
  review_rules:
    velocity:
      max_orders: 0
    colour: red
  picking: null
  packing:
    box_weight_kg: 0.2
    classes: {}
    extra: 1
  notifications:
    shipped: "Hello {name"
""",
        )
    )
    assert found(text) == [
        (10, 7, "variables.review_rules.velocity.max_orders: Input should be greater than or equal to 1"),
        (11, 5, "variables.review_rules.colour: unknown setting"),
        (16, 5, "variables.packing.extra: unknown setting"),
        (18, 5, "variables.notifications.shipped: not a valid template: expected '}' before end of string"),
    ]


def test_a_setting_s_own_rule_is_reported_without_pydantic_s_prefix():
    text = change(("  limit: 10\n", "  limit: 10\n  review_rules:\n    phone: {pattern: '(('}\n"))
    assert found(text) == [
        (9, 13, "variables.review_rules.phone.pattern: not a valid regular expression: missing ), unterminated subpattern at position 1")
    ]


# -- files -------------------------------------------------------------------------------------


def test_a_file_and_the_policy_it_names_load_into_a_snapshot(tmp_path: Path):
    policy_text = "default_tier: tier1\ntiers: {tier1: 2}\n"
    (tmp_path / "promise.yaml").write_text(policy_text, encoding="utf-8")
    text = change(("version: 1\n", "version: 1\npromise_policy: promise.yaml\n"))
    path = tmp_path / "unit.yaml"
    path.write_text(text, encoding="utf-8")
    definition, snap = load(path, ACTIVITY_NAMES)
    assert isinstance(definition, ProcessDefinition) and definition.id == "unit"
    policy = load_policy(tmp_path / "promise.yaml")
    assert snap.model_dump() == {
        "id": "unit",
        "version": 1,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "path": str(path),
        "source": text,
        "promise_policy": policy.model_dump(mode="json"),
        "promise_policy_sha256": hashlib.sha256(policy.model_dump_json().encode()).hexdigest(),
    }
    assert snap.promise_policy["ship_within"] == "P1D"  # JSON, as it travels in the workflow input
    assert load_definition(path, ACTIVITY_NAMES) == snap
    with pytest.raises(InvalidDefinition, match="unknown activity 'pack_order'"):
        load_definition(path, {"review_order"})


def test_an_inline_policy_and_the_same_policy_in_a_file_snapshot_alike(tmp_path: Path):
    (tmp_path / "promise.yaml").write_text("default_tier: tier1\ntiers: {tier1: 2}\n", encoding="utf-8")
    (tmp_path / "file.yaml").write_text(change(("version: 1\n", "version: 1\npromise_policy: promise.yaml\n")), encoding="utf-8")
    inline = change(("version: 1\n", "version: 1\npromise_policy:\n  default_tier: tier1\n  tiers: {tier1: 2}\n"))
    (tmp_path / "inline.yaml").write_text(inline, encoding="utf-8")
    by_file, by_value = load_definition(tmp_path / "file.yaml", None), load_definition(tmp_path / "inline.yaml", None)
    assert by_file.promise_policy == by_value.promise_policy
    assert by_file.promise_policy_sha256 == by_value.promise_policy_sha256 is not None


def test_a_definition_without_a_policy_snapshots_none(tmp_path: Path):
    path = tmp_path / "unit.yaml"
    path.write_text(BASE, encoding="utf-8")
    snap = load_definition(path, ACTIVITY_NAMES)
    assert (snap.promise_policy, snap.promise_policy_sha256) == (None, None)
    assert snapshot(path, BASE, lint_text(BASE, None)[0]) == snap


def test_an_invalid_file_raises_every_problem_as_file_line_column(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(change(("start: review", "start: revue"), ("activity: pack_order", "activity: pack_ordr")), encoding="utf-8")
    with pytest.raises(InvalidDefinition) as raised:
        load(path, {"review_order", "pack_order"})
    assert raised.value.messages == [
        f"{path}:3:1: 'start' points to unknown node 'revue'",
        f"{path}:28:5: node 'pack': unknown activity 'pack_ordr' (known: pack_order, review_order)",
    ]
    assert str(raised.value) == "\n".join(raised.value.messages)


def test_an_invalid_policy_file_is_reported_against_that_file(tmp_path: Path):
    policy = tmp_path / "promise.yaml"
    policy.write_text("default_tier: tier9\ntiers:\n  tier1: 2\n", encoding="utf-8")
    path = tmp_path / "unit.yaml"
    path.write_text(change(("version: 1\n", "version: 1\npromise_policy: promise.yaml\n")), encoding="utf-8")
    with pytest.raises(InvalidDefinition) as raised:
        load(path, ACTIVITY_NAMES)
    assert raised.value.messages == [f"{policy}:1:1: default_tier: unknown tier 'tier9' (tiers: tier1)"]


def test_a_policy_file_that_is_not_yaml_is_reported_at_its_line(tmp_path: Path):
    policy = tmp_path / "promise.yaml"
    policy.write_text("tiers: {tier1: 2\n", encoding="utf-8")
    with pytest.raises(InvalidDefinition) as raised:
        load_policy(policy)
    assert raised.value.messages == [
        f"{policy}:2:1: YAML syntax error: expected ',' or '}}', but got '<stream end>' (while parsing a flow mapping started at line 1, column 8)"
    ]


def test_a_missing_or_undecodable_file_is_one_line(tmp_path: Path):
    with pytest.raises(InvalidDefinition) as missing:
        load(tmp_path / "absent.yaml", ACTIVITY_NAMES)
    assert missing.value.messages == [f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"]
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(BASE.replace("agent", "agent caf\xe9").encode("latin-1"))
    with pytest.raises(InvalidDefinition) as undecodable:
        load(latin1, ACTIVITY_NAMES)
    assert undecodable.value.messages == [
        f"{latin1}: cannot read: 'utf-8' codec can't decode byte 0xe9 in position {BASE.index('agent') + 9}: invalid continuation byte"
    ]


def test_files_are_read_as_utf8(tmp_path: Path):
    path = tmp_path / "unit.yaml"
    path.write_text(change(("version: 1\n", "version: 1\nname: 标准流程\n")), encoding="utf-8")
    definition, _ = load(path, ACTIVITY_NAMES)
    assert definition.name == "标准流程"


# -- the model ---------------------------------------------------------------------------------


def test_edges_name_each_transition_field_and_skip_unset_ones():
    nodes = lint_text(
        change(
            ("    activity: pack_order\n", "    activity: pack_order\n    on_error: rejected\n    deadline: now\n    on_breach: rejected\n")
        ),
        ACTIVITY_NAMES,
    )[0].node_map()
    assert edges(nodes["review"]) == [("next", "route")]
    assert edges(nodes["route"]) == [("branches.0.next", "decide"), ("default", "pack")]
    assert edges(nodes["decide"]) == [("outcomes.approve", "pack"), ("outcomes.reject", "rejected"), ("on_timeout", "rejected")]
    assert edges(nodes["pack"]) == [("next", "done"), ("on_error", "rejected"), ("on_breach", "rejected")]
    assert edges(nodes["done"]) == []
    without_default = lint_text(change(("    default: pack\n", "")), None)[1]
    assert [p.message for p in without_default] == ["node 'route': exclusive gateway has no 'default' branch"]


def test_a_parallel_gateway_s_edges_are_its_branches_its_join_and_its_on_error():
    nodes = load_text(PARALLEL.replace("    join: joined\n", "    join: joined\n    on_error: stop\n", 1))[0].node_map()
    assert edges(nodes["fork"]) == [("branches.0", "left"), ("branches.1", "right"), ("join", "joined"), ("on_error", "stop")]
    assert edges(load_text(PARALLEL)[0].node_map()["fork"]) == [("branches.0", "left"), ("branches.1", "right"), ("join", "joined")]


# -- durations and expressions -----------------------------------------------------------------

DURATION = TypeAdapter(Duration)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("30s", timedelta(seconds=30)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 2d ", timedelta(days=2)),
        ("1.5s", timedelta(seconds=1.5)),
        (90, timedelta(seconds=90)),
        (2.5, timedelta(seconds=2.5)),
        ("PT5M", timedelta(minutes=5)),
        (timedelta(hours=1), timedelta(hours=1)),
        ("3650d", MAX_DURATION),
    ],
)
def test_durations_as_ops_write_them(value, expected: timedelta):
    assert DURATION.validate_python(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "invalid duration '': use forms like 30s, 5m, 1h30m, 2d"),
        ("soon", "invalid duration 'soon': use forms like 30s, 5m, 1h30m, 2d"),
        (True, "invalid duration True: use forms like 30s, 5m, 1h30m, 2d"),
        (False, "invalid duration False: use forms like 30s, 5m, 1h30m, 2d"),
        ("0s", "duration 0s must be more than 0 and at most 3650 days"),
        (-5, "duration -5s must be more than 0 and at most 3650 days"),
        ("3650d1s", "duration 3.1536e+08s must be more than 0 and at most 3650 days"),
        (10**20, "duration 100000000000000000000 is too long (at most 3650 days)"),
        ("99999999999d", "duration '99999999999d' is too long (at most 3650 days)"),
    ],
)
def test_durations_that_are_not_one(value, message: str):
    with pytest.raises(ValidationError) as raised:
        DURATION.validate_python(value)
    assert raised.value.errors()[0]["msg"] == f"Value error, {message}"


def test_an_expression_evaluates_over_the_variables_it_is_given():
    assert evaluate("order.total > limit", {"order": {"total": 12}, "limit": 10}) is True
    assert evaluate("order.total > limit", {"order": {"total": 9}, "limit": 10}) is False


def test_an_expression_that_fails_at_run_time_says_which_and_why():
    with pytest.raises(ExpressionError) as raised:
        evaluate("order.total > 10", {})
    assert str(raised.value).startswith("evaluating 'order.total > 10' failed: RuntimeError: Undefined variable or function: 'order'.")
    with pytest.raises(ExpressionError, match=r"^invalid CEL expression '1 \+': "):
        evaluate("1 +", {})
