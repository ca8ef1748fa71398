"""`orderops lint`: one test per class of error, each pointing at the right line."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from activities import ACTIVITY_NAMES
from orderops.process.lint import lint_text
from orderops.worker import check_definitions
from tests.helpers import ROOT, run_cli

VALID = """\
id: sample
version: 1
start: review
nodes:
  - id: review
    type: task
    activity: review_order
    result: review
    next: route
  - id: route
    type: exclusive
    branches:
      - when: size(review.anomalies) > 0
        next: manual
    default: done
  - id: manual
    type: user_task
    role: support_agent
    outcomes: {approve: done, reject: rejected}
    timeout: 1h
    on_timeout: rejected
  - id: done
    type: end
    status: completed
  - id: rejected
    type: end
    status: rejected
"""


def problems(text: str) -> list[tuple[int, str]]:
    definition, found = lint_text(textwrap.dedent(text), ACTIVITY_NAMES)
    assert definition is None, "expected the definition to be rejected"
    return [(p.line, p.message) for p in found]


def test_valid_definition_passes():
    definition, found = lint_text(VALID, ACTIVITY_NAMES)
    assert found == []
    assert [n.id for n in definition.nodes] == ["review", "route", "manual", "done", "rejected"]


@pytest.mark.parametrize(
    "change, line, message",
    [
        (("  - id: route\n    type: exclusive", "  - id: route\n    type: exclusive:"), 11, "YAML syntax error"),
        (("    type: exclusive", "    type: switch"), 11, "unknown construct type 'switch'"),
        (("    result: review\n", "    result: review\n    colour: red\n"), 9, "unknown field 'colour'"),
        (("activity: review_order", "activity: review_ordr"), 7, "unknown activity 'review_ordr'"),
        (("        next: manual", "        next: manul"), 14, "'branches.0.next' points to unknown node 'manul'"),
        (("    default: done\n", ""), 10, "exclusive gateway has no 'default' branch"),
        (("size(review.anomalies) > 0", "size(review.anomalies) >"), 13, "invalid CEL expression"),
        (("size(review.anomalies) > 0", "size(reviews.anomalies) > 0"), 13, "names unknown variable 'reviews'"),
        (("outcomes: {approve: done, reject: rejected}", "outcomes: {approve: done, reject: }"), 19, "outcome 'reject' has no target"),
        (("  - id: rejected", "  - id: done"), 25, "duplicated node id 'done'"),
        (
            ("    role: support_agent\n", "    role: support_agent\n    kpi: shipment\n"),
            19,
            "kpi 'shipment' goes on a task, not on a user_task",
        ),
        (
            ("start: review\n", "priority: {rules: [{when: 'order.paid', key: 6}]}\nstart: review\n"),
            3,
            "key: Input should be less than or equal to 5",
        ),
        (
            ("start: review\n", "priority: {rules: [{when: 'order.paied ||', key: 2}]}\nstart: review\n"),
            3,
            "priority: invalid CEL expression",
        ),
        (("start: review\n", "at_risk_activity: page_ops\nstart: review\n"), 3, "'at_risk_activity': unknown activity 'page_ops'"),
    ],
    ids=[
        "yaml-syntax",
        "unknown-construct",
        "unknown-field",
        "unknown-activity",
        "dangling-next",
        "gateway-without-default",
        "invalid-cel",
        "unknown-variable",
        "outcome-without-target",
        "duplicated-id",
        "kpi-on-the-wrong-construct",
        "priority-key-out-of-range",
        "priority-invalid-cel",
        "unknown-at-risk-activity",
    ],
)
def test_each_error_class_is_reported_at_its_line(change, line, message):
    old, new = change
    assert old in VALID
    found = problems(VALID.replace(old, new, 1))
    assert any(at == line and message in m for at, m in found), found


def test_unreachable_node():
    text = VALID + "  - id: orphan\n    type: end\n    status: failed\n"
    assert (28, "node 'orphan' is unreachable from start 'review'") in problems(text)


def test_cycle_with_no_way_out():
    text = VALID.replace("outcomes: {approve: done, reject: rejected}", "outcomes: {approve: loop_a, reject: rejected}") + (
        "  - id: loop_a\n    type: wait\n    duration: 1m\n    next: loop_b\n"
        "  - id: loop_b\n    type: wait\n    duration: 1m\n    next: loop_a\n"
    )
    found = problems(text)
    assert any("cycle with no way out: loop_a -> loop_b" in m for _, m in found), found


def test_cycle_with_an_exit_is_fine():
    text = VALID.replace("outcomes: {approve: done, reject: rejected}", "outcomes: {approve: done, edit: review, reject: rejected}")
    definition, found = lint_text(text, ACTIVITY_NAMES)
    assert found == [] and definition is not None


def test_parallel_branch_must_reach_its_join():
    text = VALID.replace("start: review", "start: fork") + (
        "  - id: fork\n    type: parallel\n    branches: [review, done]\n    join: route\n"
    )
    found = problems(text)
    assert any("branch 'done' reaches end node 'done' before join 'route'" in m for _, m in found), found


def test_shipped_definitions_pass(tmp_path):
    checked, problems = check_definitions(ROOT / "process_defs")
    assert problems == [] and checked == ["returns.yaml", "standard.yaml"]


def test_cli_reports_file_line_col_and_fails(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("next: manual", "next: nowhere"))
    good = ROOT / "process_defs" / "standard.yaml"
    result = run_cli("lint", str(good), str(bad))
    assert result.returncode == 1
    assert f"{good}: ok (standard v5" in result.stdout
    assert re.search(
        rf"^{re.escape(str(bad))}:14:9: node 'route': 'branches.0.next' points to unknown node 'nowhere'$", result.stdout, re.M
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_lint_of_missing_file_is_one_line(tmp_path: Path):
    result = run_cli("lint", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert result.stdout.strip() == f"{tmp_path / 'absent.yaml'}: cannot read: No such file or directory"


def test_worker_refuses_an_invalid_definition(tmp_path: Path):
    (tmp_path / "broken.yaml").write_text(VALID.replace("activity: review_order", "activity: teleport"))
    result = run_cli("--address", "127.0.0.1:1", "worker", "--process-dir", str(tmp_path))
    assert result.returncode == 1
    # The worker checks definitions before it needs a server, with lint's message.
    assert f"{tmp_path / 'broken.yaml'}:7:5: node 'review': unknown activity 'teleport'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("id: t1\x01\n", "1:1: YAML syntax error: unacceptable character #x0001"),
        ("id: x\nversion: !!int abc\n", "2:10: cannot read value 'abc'"),
        ("? [a, b]\n: 1\n", "1:3: a mapping key must be a plain name"),
        ("id: x\nversion: 1\nversion: 2\n", "3:1: duplicate key 'version' (first given on line 2)"),
    ],
    ids=["control-character", "bad-tagged-value", "complex-key", "duplicate-key"],
)
def test_unreadable_yaml_is_one_line_not_a_traceback(tmp_path: Path, text: str, expected: str):
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    result = run_cli("lint", str(path))
    assert result.returncode == 1
    # One line for it; the rest of the file is still checked (these files lack start and nodes).
    assert [line for line in result.stdout.splitlines() if line.startswith(f"{path}:{expected}")], result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        (
            ("    result: review\n", "    result: review\n    timeouts: {heartbeat: 10s}\n"),
            "timeouts: needs start_to_close or schedule_to_close",
        ),
        (("    result: review\n", "    result: review\n    timeouts: {start_to_close: 0s}\n"), "must be more than 0"),
        (("    result: review\n", "    result: review\n    timeouts: {start_to_close: -5}\n"), "duration -5s must be more than 0"),
        (("    timeout: 1h\n", "    timeout: 99999999999d\n"), "is too long (at most 3650 days)"),
        (
            ("    result: review\n", "    result: review\n    retry: {initial_interval: 10s, maximum_interval: 1s}\n"),
            "maximum_interval must not be shorter than initial_interval",
        ),
        (
            ("    result: review\n", "    result: review\n    local: true\n    timeouts: {start_to_close: 10s, heartbeat: 5s}\n"),
            "a local task cannot heartbeat: remove timeouts.heartbeat or set local: false",
        ),
        (
            ("    result: review\n", "    result: review\n    local: true\n    timeouts: {start_to_close: 2m}\n"),
            "a local task needs timeouts.start_to_close of at most 1m",
        ),
        (
            ("    result: review\n", "    result: review\n    local: true\n    timeouts: {schedule_to_close: 30s}\n"),
            "a local task needs timeouts.start_to_close of at most 1m",
        ),
        (
            ("    result: review\n", "    result: review\n    local: true\n    retry: {maximum_attempts: 3}\n"),
            "a local task needs retry.maximum_interval of at most 1m",
        ),
        (
            ("    result: review\n", "    result: review\n    local: true\n    retry: {maximum_interval: 10s}\n"),
            "a local task must not retry without end: give retry.maximum_attempts or timeouts.schedule_to_close",
        ),
    ],
    ids=[
        "heartbeat-only",
        "zero-timeout",
        "negative-timeout",
        "huge-timeout",
        "inverted-retry-intervals",
        "local-heartbeat",
        "local-too-long",
        "local-without-start-to-close",
        "local-long-retry-waits",
        "local-endless-retries",
    ],
)
def test_settings_temporal_would_reject_are_caught_by_lint(change, message):
    old, new = change
    assert old in VALID
    found = problems(VALID.replace(old, new, 1))
    assert any(message in m for _, m in found), found


def test_warehouse_settings_in_variables_are_checked_at_their_line(tmp_path: Path):
    shutil.copytree(ROOT / "process_defs", tmp_path / "defs")
    path = tmp_path / "defs" / "standard.yaml"
    text = path.read_text()
    path.write_text(text.replace("max_scan_mismatches: 2 ", "max_scan_mismach: 2 ").replace("daily_capacity: 200", "daily_capacity: -1"))
    result = run_cli("lint", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    picking_line = 1 + text[: text.index("max_scan_mismatches")].count("\n")
    capacity_line = 1 + text[: text.index("daily_capacity: 200")].count("\n")
    assert f"{path}:{picking_line}:5: variables.picking.max_scan_mismach: unknown setting" in lines
    assert f"{path}:{capacity_line}:7: variables.carriers.0.daily_capacity: Input should be greater than 0" in lines


def test_conditions_settings_and_templates_in_variables_are_checked(tmp_path: Path):
    shutil.copytree(ROOT / "process_defs", tmp_path / "defs")
    path = tmp_path / "defs" / "standard.yaml"
    text = path.read_text()
    path.write_text(
        text.replace("    max_attempts: 3 ", "    max_attemps: 3 ")
        .replace('delivered: "Order {order_id} was delivered', 'delivered: "Order {order_id was delivered')
        .replace("    max_scan_mismatches: 2 ", "")
    )
    result = run_cli("lint", str(path))
    assert result.returncode == 1
    assert "variables.delivery.max_attempts: Field required" in result.stdout + result.stderr
    assert "variables.delivery.max_attemps: unknown setting" in result.stdout + result.stderr
    assert "variables.picking.max_scan_mismatches: Field required" in result.stdout + result.stderr
    assert "variables.notifications.delivered: not a valid template: unexpected '{' in field name" in result.stdout + result.stderr


def test_status_and_keep_status_do_not_go_together(tmp_path: Path):
    path = tmp_path / "both.yaml"
    path.write_text(VALID.replace("  - id: manual\n", "  - id: manual\n    keep_status: true\n    status: waiting\n", 1))
    result = run_cli("lint", str(path))
    assert result.returncode == 1 and "give either 'status' or 'keep_status', not both" in result.stdout + result.stderr


# A newcomer's first file: one mistake of each class docs/process-language.md lists (a YAML syntax
# error apart: nothing after one can be read), each on a line of its own. Every node that is not
# itself wrong is right, so any other problem would be a follow-on error.
NEWCOMER = """\
id: newcomer
version: !!int one
name: My first process
name: My first process, again
colour: blue
at_risk_activity: page_the_boss
cancel_until: nowhere
priority:
  rules:
    - when: order.order_type == "urgent"
      key: 7
promise_policy:
  default_tier: tier9
  tiers: {tier1: 2}
variables:
  limit: 10
  delivery:
    max_attempts: 3
    colour: red
start: review
nodes:
  - id: review
    type: task
    activity: review_ordr
    result: review
    next: route
  - id: route
    type: exclusive
    branches:
      - when: review.ok
        next: decide
  - id: decide
    type: user_task
    role: agent
    outcomes: {approve: check, hold: loop_a, later: waiter, close: bad_end, beam: tele, pause: pause, hand: handover, reject: }
    timeout: 1h
    on_timeout: done
  - id: check
    type: exclusive
    branches:
      - when: size(review.anomalies) >
        next: fork
      - when: size(reviews.anomalies) > limit
        next: fork
    default: fork
  - id: fork
    type: parallel
    branches: [pack, quit]
    join: ship
  - id: pack
    type: task
    activity: pack_order
    on_error: oops
    next: ship
  - id: ship
    type: task
    activity: book_carrier
    timeouts: {heartbeat: 10s}
    next: done
  - id: waiter
    type: receive
    event: paid
    timeout: 0s
    on_timeout: done
    next: done
  - id: bad_end
    type: end
    status: finished
  - id: tele
    type: teleport
  - id: pause
    type: wait
    duration: 1m
  - id: handover
    type: task
    activity: handoff_to_courier
    kpi: review
    next: done
  - id: loop_a
    type: wait
    duration: 1m
    next: loop_b
  - id: loop_b
    type: wait
    duration: 1m
    next: loop_a
  - id: quit
    type: end
    status: cancelled
  - id: done
    type: end
    status: completed
  - id: orphan
    type: end
    status: failed
  - id: done
    type: end
    status: failed
"""

# (the line, as a unique part of it; the problem expected there)
NEWCOMER_MISTAKES = [
    ("version: !!int one", "cannot read value 'one'"),
    ("name: My first process, again", "duplicate key 'name' (first given on line 3)"),
    ("colour: blue", "unknown field 'colour'"),
    ("at_risk_activity: page_the_boss", "'at_risk_activity': unknown activity 'page_the_boss'"),
    ("cancel_until: nowhere", "'cancel_until' points to unknown node 'nowhere'"),
    ("key: 7", "key: Input should be less than or equal to 5"),
    ("promise_policy:", "default_tier: unknown tier 'tier9' (tiers: tier1)"),
    ("    colour: red", "variables.delivery.colour: unknown setting"),
    ("activity: review_ordr", "node 'review': unknown activity 'review_ordr'"),
    ("  - id: route", "node 'route': exclusive gateway has no 'default' branch"),
    ("outcomes: {approve: check", "node 'decide': outcome 'reject' has no target"),
    ("when: size(review.anomalies) >", "node 'check': invalid CEL expression"),
    (
        "when: size(reviews.anomalies) > limit",
        "node 'check': expression 'size(reviews.anomalies) > limit' names unknown variable 'reviews'",
    ),
    ("branches: [pack, quit]", "node 'fork': branch 'quit' reaches end node 'quit' before join 'ship'"),
    ("on_error: oops", "node 'pack': 'on_error' points to unknown node 'oops'"),
    ("timeouts: {heartbeat: 10s}", "node 'ship': timeouts: needs start_to_close or schedule_to_close"),
    ("timeout: 0s", "node 'waiter': timeout: duration 0s must be more than 0"),
    ("status: finished", "node 'bad_end': status: Input should be 'completed', 'cancelled', 'rejected' or 'failed'"),
    ("type: teleport", "node 'tele': unknown construct type 'teleport'"),
    ("  - id: pause", "node 'pause': missing required field 'next'"),
    ("kpi: review", "node 'handover': kpi 'review' goes on a user_task, not on a task"),
    ("  - id: loop_a", "cycle with no way out: loop_a -> loop_b never reaches an end node"),
    ("  - id: orphan", "node 'orphan' is unreachable from start 'review'"),
    ("  - id: done", "duplicated node id 'done'"),
]


def test_a_newcomer_s_every_mistake_is_reported_at_its_own_line_in_one_run(tmp_path: Path):
    path = tmp_path / "newcomer.yaml"
    path.write_text(NEWCOMER)
    result = run_cli("lint", str(path))
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    reported = [line for line in result.stdout.splitlines() if line.startswith(f"{path}:")]
    lines = NEWCOMER.splitlines(keepends=True)
    expected = []
    for part, message in NEWCOMER_MISTAKES:
        at = [i + 1 for i, text in enumerate(lines) if part in text]
        if part == "  - id: done":
            at = at[-1:]  # the second `done`
        assert len(at) == 1, part
        expected.append((at[0], message))
    assert len({line for line, _ in expected}) == len(expected)  # each mistake on a line of its own
    for line, message in expected:
        assert any(r.startswith(f"{path}:{line}:") and message in r for r in reported), (line, message, reported)
    assert len(reported) == len(expected), "\n".join(reported)  # and nothing else: no follow-on errors
