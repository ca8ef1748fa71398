"""Ops tools on definitions: JSON Schema, diagrams, and diffs with the orders they concern."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from orderops.process.diff import diff
from orderops.process.lint import lint_text
from orderops.process.model import ProcessDefinition
from orderops.process.render import dot, mermaid
from tests.helpers import KNOWN_ACTIVITIES, ROOT, awaiting_decision, cli, run_cli, wait_until

SHIPPED = sorted((ROOT / "process_defs").glob("*.yaml"))
TEST_DEFINITIONS = sorted((ROOT / "tests" / "definitions").glob("*.yaml"))
SCHEMA_FILE = ROOT / "process_defs" / "process-definition.schema.json"


def parsed(path: Path) -> ProcessDefinition:
    definition, problems = lint_text(path.read_text(), KNOWN_ACTIVITIES)
    assert problems == []
    return definition


# -- schema ------------------------------------------------------------------


def test_committed_schema_is_the_generated_one():
    result = run_cli("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads(SCHEMA_FILE.read_text()) == ProcessDefinition.model_json_schema()


@pytest.mark.parametrize("path", SHIPPED + TEST_DEFINITIONS, ids=lambda p: p.name)
def test_schema_accepts_every_definition_and_editors_find_it(path: Path):
    jsonschema.validate(yaml.safe_load(path.read_text()), json.loads(SCHEMA_FILE.read_text()))
    if path in SHIPPED:
        assert path.read_text().splitlines()[0] == "# yaml-language-server: $schema=./process-definition.schema.json"


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d["nodes"][0].update(type="teleport"), "teleport"),
        (lambda d: d["nodes"][0].update(colour="red"), "colour"),
        (lambda d: d.pop("start"), "start"),
        (lambda d: d["nodes"][1].update(timeout="soon"), "soon"),
    ],
    ids=["unknown-type", "unknown-field", "missing-start", "bad-duration"],
)
def test_schema_rejects_a_broken_definition(mutate, fragment):
    data = yaml.safe_load((ROOT / "tests" / "definitions" / "timers.yaml").read_text())
    mutate(data)
    with pytest.raises(jsonschema.ValidationError) as raised:
        jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    assert fragment in str(raised.value)


# -- render -----------------------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED + TEST_DEFINITIONS, ids=lambda p: p.name)
def test_every_definition_renders_with_distinct_shapes_and_labelled_edges(path: Path):
    definition = parsed(path)
    text = mermaid(definition)
    for node in definition.nodes:
        assert f">{node.id}<br/>" in text or f'"{node.id}<br/>' in text
    graph = dot(definition)
    assert graph.count(" -> ") >= len(definition.nodes) - 1
    shapes = {
        "task": "shape=box, style=",
        "exclusive": "shape=diamond",
        "parallel": "shape=hexagon",
        "user_task": "peripheries=2",
        "wait": "shape=circle",
        "receive": "shape=cds",
        "end": "shape=doublecircle",
    }
    for node in definition.nodes:
        line = next(text for text in graph.splitlines() if text.strip().startswith(f'"{node.id}" ['))
        assert shapes[node.type] in line
    if shutil.which("dot"):
        checked = subprocess.run(["dot", "-Tsvg"], input=graph, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0 and "<svg" in checked.stdout, checked.stderr


def test_standard_diagram_shows_constructs_and_conditions():
    text = mermaid(parsed(ROOT / "process_defs" / "standard.yaml"))
    assert '{{"checks<br/>parallel +"}}' in text
    assert '{"route_review<br/>exclusive"}' in text
    assert '[["manual_review<br/>user task: support_agent<br/>timeout 1 day, 0:00:00"]]' in text
    assert '>"await_tracking<br/>receive in_transit | out_for_delivery | delivery_failed | delivered | lost' in text
    assert '|"picking.mode == #quot;wave#quot;"|' in text and '|"reject"|' in text and '|"timeout"|' in text


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (.ci/run installs it)")
@pytest.mark.parametrize("fmt, magic", [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_svg_and_png_through_graphviz(tmp_path: Path, fmt: str, magic: bytes):
    out = tmp_path / f"standard.{fmt}"
    result = run_cli("render", str(ROOT / "process_defs" / "standard.yaml"), "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert magic in out.read_bytes()[:400]


async def test_render_colours_the_path_an_order_took(start, address):
    order, handle = await start(phone="12345")
    await wait_until(handle, awaiting_decision)
    result = await cli("render", "--order", order.order_id, address=address)
    assert result.returncode == 0, result.stderr
    classes = {line.split()[2]: line.split()[1].split(",") for line in result.stdout.splitlines() if line.strip().startswith("class ")}
    definition = parsed(ROOT / "process_defs" / "standard.yaml")
    key = {n.id: f"n{i}" for i, n in enumerate(definition.nodes)}
    assert {key["checks"], key["auto_review"], key["reserve_stock"], key["route_review"]} <= set(classes["visited"])
    assert classes["current"] == [key["manual_review"]]
    assert key["pick"] not in classes["visited"]
    await handle.execute_update("cancel", {"reason": "test over"})


# -- diff -----------------------------------------------------------------


def test_diff_lists_nodes_and_edges():
    old = parsed(ROOT / "process_defs" / "standard.yaml")
    text = (ROOT / "process_defs" / "standard.yaml").read_text()
    text = text.replace("version: 5", "version: 6").replace("      approve: stock_gate\n      edit", "      approve: pack\n      edit")
    text = text.replace(
        "  - id: completed\n", "  - id: thank_you\n    type: wait\n    duration: 1m\n    next: completed\n\n  - id: completed\n"
    )
    text = text.replace("    on_timeout: completed    # no answer", "    on_timeout: thank_you    # no answer")
    new, problems = lint_text(text, KNOWN_ACTIVITIES)
    assert problems == []
    changes = diff(old, new)
    assert (changes.old, changes.new) == ("standard v5", "standard v6")
    assert changes.added_nodes == ["thank_you"] and changes.removed_nodes == []
    assert [(c.node, c.fields) for c in changes.changed_nodes] == [("await_feedback", ["on_timeout"]), ("manual_review", ["outcomes"])]
    assert "manual_review -> pack [approve]" in changes.added_edges
    assert "manual_review -> stock_gate [approve]" in changes.removed_edges
    assert changes.affected_nodes == {"await_feedback", "manual_review"}


async def test_diff_names_in_flight_orders_at_changed_nodes(start, address, tmp_path: Path):
    order, handle = await start(phone="12345")
    await wait_until(handle, awaiting_decision)
    shutil.copytree(ROOT / "process_defs" / "policies", tmp_path / "policies")
    new = tmp_path / "standard-v5.yaml"
    new.write_text(
        (ROOT / "process_defs" / "standard.yaml")
        .read_text()
        .replace("version: 5", "version: 6")
        .replace("      approve: stock_gate\n      edit", "      approve: pack\n      edit")
    )
    waiting = []
    for _ in range(100):  # visibility is eventually consistent
        result = await cli("diff", str(ROOT / "process_defs" / "standard.yaml"), str(new), address=address)
        assert result.returncode == 0, result.stderr
        waiting = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith(order.order_id)]
        if waiting:
            break
        await asyncio.sleep(0.2)
    assert waiting == [f"{order.order_id} at manual_review"]
    assert "  changed nodes: manual_review (outcomes)" in result.stdout
    await handle.execute_update("cancel", {"reason": "test over"})


def test_diff_of_identical_definitions_and_of_a_broken_one(tmp_path: Path):
    standard = ROOT / "process_defs" / "standard.yaml"
    same = run_cli("--address", "127.0.0.1:1", "diff", str(standard), str(standard))
    assert same.returncode == 0 and same.stdout.strip() == "standard v5 -> standard v5  (no change)"
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: x\nversion: [\n")
    bad = run_cli("diff", str(standard), str(broken))
    assert bad.returncode == 1 and bad.stderr.startswith(f"{broken}:")


def test_render_needs_a_definition_or_an_order():
    result = run_cli("render")
    assert (result.returncode, result.stderr.strip()) == (2, "orderops: render takes a definition FILE, --order ORDER_ID, or both")


def test_diff_names_each_changed_setting_by_its_path():
    old = parsed(ROOT / "process_defs" / "standard.yaml")
    text = (ROOT / "process_defs" / "standard.yaml").read_text()
    text = text.replace("version: 5", "version: 6").replace("    max_attempts: 3 ", "    max_attempts: 4 ")
    text = text.replace("      daily_capacity: 200\n", "      daily_capacity: 150\n")
    new, problems = lint_text(text, KNOWN_ACTIVITIES)
    assert problems == []
    assert diff(old, new).other_changes == ["variables.carriers.0.daily_capacity: 200 -> 150", "variables.delivery.max_attempts: 3 -> 4"]


def test_diff_names_changed_priority_at_risk_activity_and_kpi():
    old = parsed(ROOT / "process_defs" / "standard.yaml")
    text = (ROOT / "process_defs" / "standard.yaml").read_text()
    text = text.replace("  default: 3\n  at_risk: 1\n", "  default: 4\n  at_risk: 1\n").replace("at_risk_activity: notify_ops\n", "")
    text = text.replace("    kpi: review\n", "", 1)
    new, problems = lint_text(text, KNOWN_ACTIVITIES)
    assert problems == []
    changes = diff(old, new)
    assert [c.split(":")[0] for c in changes.other_changes] == ["priority", "at_risk_activity"]
    assert ("escalated_review", ["kpi"]) in [(c.node, c.fields) for c in changes.changed_nodes]
