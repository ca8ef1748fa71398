"""Golden histories (tests/golden/, `make golden`): orders in flight must keep replaying.

They cover every construct of the language; a change to the interpreter that
would break an order already running fails here, before it reaches a worker.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.common import RawValue

from orderops.history.replay import ReplayOutcome, replay
from orderops.history.timeline import build_timeline, load_history_file
from orderops.messages import OrderResult
from orderops.process.load import load_text
from tests.helpers import cli
from workflows import OrderWorkflow
from workflows.order import ENGINE_2, ENGINE_2_INCLUDES, ENGINE_3, INBOX_MEMO

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
FILES = sorted(GOLDEN.glob("*.json"))


async def each(paths: list[Path]) -> AsyncIterator:
    for path in paths:
        yield str(path), load_history_file(path)


def test_golden_histories_cover_every_construct():
    timelines = [build_timeline(load_history_file(path)) for path in FILES]
    visited_types = {v.type for t in timelines for v in t.nodes}
    assert visited_types == {"task", "exclusive", "parallel", "user_task", "wait", "receive", "end"}
    assert {d.decision for t in timelines for d in t.decisions} >= {"approve", "edit", "reject"}
    assert {d.via for t in timelines for d in t.decisions} == {"update", "signal"}
    assert {timer.outcome for t in timelines for timer in t.timers} >= {"fired", "cancelled"}
    assert any(run.compensation for t in timelines for run in t.activities)
    assert any(run.attempts > 1 for t in timelines for run in t.activities)
    assert {run.outcome for t in timelines for run in t.activities} >= {"completed", "failed", "cancel_requested"}
    assert {t.status for t in timelines} == {"completed", "rejected", "cancelled", "failed"}
    assert any(t.cancellations for t in timelines)
    assert {c.via for t in timelines for c in t.cancellations} == {"update", "workflow_cancel"}
    assert "cancelled" in {run.outcome for t in timelines for run in t.activities}  # settled before undoing
    assert any(t.breached_at for t in timelines) and any(t.at_risk_at for t in timelines)
    # Standard v4's constructs: a receive of several events, the address-change update.
    histories = [load_history_file(path) for path in FILES]
    sources = [
        json.loads(h.events[0].workflow_execution_started_event_attributes.input.payloads[0].data)["definition"]["source"]
        for h in histories
    ]
    assert any("event: [in_transit, out_for_delivery, delivery_failed, delivered, lost]" in source for source in sources)
    updates = {e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name for h in histories for e in h.events}
    assert "change_address" in updates
    # Histories from before earlier interpreter changes stay, proving those orders still replay.
    assert len([p for p in FILES if p.name.startswith("legacy-")]) >= 5


def patch_ids(path: Path) -> list[str]:
    return [
        json.loads(payload.data)["id"]
        for event in load_history_file(path).events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED and event.marker_recorded_event_attributes.marker_name == "core_patch"
        for details in event.marker_recorded_event_attributes.details.values()
        for payload in details.payloads
    ]


def test_new_orders_carry_one_engine_marker_and_older_engines_orders_stay():
    # A new order carries engine 3's marker, and the inbox memo's once it waits for a person.
    new = {path.name: patch_ids(path) for path in FILES if path.name.startswith("test_")}
    assert {tuple(ids) for ids in new.values()} == {(ENGINE_3,), (ENGINE_3, INBOX_MEMO)}
    assert new["test_anomalous_order_waits_for_a_person_then_approve.json"] == [ENGINE_3, INBOX_MEMO]
    before_inbox = [patch_ids(path) for path in FILES if path.name.startswith("legacy-before-inbox-memo-")]
    assert len(before_inbox) == 3 and all(ids == [ENGINE_3] for ids in before_inbox)
    engine_2 = {path.name: patch_ids(path) for path in FILES if path.name.startswith("legacy-engine-2-")}
    assert len(engine_2) >= 10 and all(ids == [ENGINE_2] for ids in engine_2.values())
    engine_1 = {path.name: patch_ids(path) for path in FILES if path.name.startswith("legacy-engine-1-")}
    assert len(engine_1) >= 10 and all(ENGINE_2 not in ids for ids in engine_1.values())
    # Between them they take every change engine 2 folds in, each from its own marker (the
    # legacy-engine-1-566a5d2-* files were recorded by that revision, the last before engine 2).
    assert {i for ids in engine_1.values() for i in ids} == ENGINE_2_INCLUDES


async def test_golden_histories_replay_on_the_current_code():
    outcomes = await replay(each(FILES), [OrderWorkflow])
    assert len(outcomes) == len(FILES) >= 20
    assert [o.source for o in outcomes if not o.ok] == []


@workflow.defn(dynamic=True, sandboxed=False)
class TimerBeforePick(OrderWorkflow):
    """A deliberately non-deterministic interpreter: a timer slipped in before picking."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> OrderResult:
        return await super().run(args)

    async def _run_task(self, node, deadline):
        if node.id == "pick":
            await workflow.sleep(1)
        return await super()._run_task(node, deadline)


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandboxed", "fast"])
async def test_a_nondeterministic_interpreter_is_reported_at_the_right_event_and_node(sandboxed: bool):
    path = GOLDEN / "test_happy_path_ships_tracks_and_completes.json"
    history = load_history_file(path)
    pick_scheduled = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_id.startswith("pick-")
    )
    [outcome] = await replay(each([path]), workflows=[TimerBeforePick], sandboxed=sandboxed)
    assert isinstance(outcome, ReplayOutcome) and not outcome.ok
    assert (outcome.event_id, outcome.node) == (pick_scheduled, "pick")
    assert "Nondeterminism" in outcome.error


async def test_replay_command_reports_each_history(tmp_path: Path):
    good = await cli("replay", str(GOLDEN))
    assert good.returncode == 0, good.stdout + good.stderr
    fast = await cli("replay", "--fast", str(GOLDEN))
    assert fast.returncode == 0 and fast.stdout == good.stdout, fast.stdout + fast.stderr
    assert good.stdout.splitlines()[-1] == f"{len(FILES)} ok, 0 diverged"
    missing = await cli("replay", str(tmp_path / "nothing.json"))
    assert (missing.returncode, missing.stderr.strip()) == (1, f"orderops: {tmp_path / 'nothing.json'}: no such file or directory")


@pytest.mark.parametrize("path", FILES, ids=[p.stem[:40] for p in FILES])
def test_each_golden_history_carries_its_definition(path: Path):
    timeline = build_timeline(load_history_file(path))
    definition, _, problems = load_text(timeline.definition_source)
    assert problems == [] and (definition.id, definition.version) == (timeline.process.id, timeline.process.version)


def mutated(tmp_path: Path, change) -> Path:
    data = json.loads((GOLDEN / "test_happy_path_ships_tracks_and_completes.json").read_text())
    change(data["events"])
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(data))
    return path


def _pick_scheduled(events: list[dict]) -> dict:
    return next(e for e in events if e.get("activityTaskScheduledEventAttributes", {}).get("activityId", "").startswith("pick-"))


@pytest.mark.parametrize(
    "change, fragment",
    [
        (
            lambda events: _pick_scheduled(events)["activityTaskScheduledEventAttributes"]["activityType"].update(name="pick_itemz"),
            "Activity type",
        ),
        (lambda events: _pick_scheduled(events)["activityTaskScheduledEventAttributes"].update(activityId="pick-99"), "Activity id"),
    ],
    ids=["activity-type", "activity-id"],
)
async def test_changed_activity_commands_are_located_at_their_event_and_node(tmp_path: Path, change, fragment):
    path = mutated(tmp_path, change)
    expected = int(_pick_scheduled(json.loads(path.read_text())["events"])["eventId"])
    [outcome] = await replay(each([path]), [OrderWorkflow])
    assert (outcome.ok, outcome.event_id, outcome.node) == (False, expected, "pick")
    assert fragment in outcome.error and outcome.error.startswith("[TMPRL1100] Nondeterminism error")


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"events": []}', "the history has no events"),
        ('{"events": [{}]}', "the history does not begin with the workflow's start event"),
        ("{}", "not a workflow history JSON file"),
    ],
)
async def test_invalid_history_files_are_reported_not_replayed(tmp_path: Path, content: str, reason: str):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = await cli("replay", str(bad), str(GOLDEN / "test_retry_policy_is_honoured.json"))
    assert result.returncode == 1
    assert f"INVALID   bad  ({bad}): {reason}" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 ok, 0 diverged, 1 invalid"
    assert "WARN" not in result.stdout + result.stderr


async def test_a_history_missing_an_event_is_one_line_for_audit_and_a_divergence_for_replay(tmp_path: Path):
    path = mutated(tmp_path, lambda events: events.remove(_pick_scheduled(events)))
    audited = await cli("audit", "--file", str(path))
    assert audited.returncode == 1
    assert "malformed history: event" in audited.stderr and len(audited.stderr.strip().splitlines()) == 1
    replayed = await cli("replay", str(path))
    assert replayed.returncode == 1 and "DIVERGED" in replayed.stdout


async def test_a_payload_that_no_longer_decodes_is_reported_in_one_line(tmp_path: Path):
    good = FILES[0]
    history = json.loads(good.read_text(encoding="utf-8"))
    started = history["events"][0]
    attributes = next(key for key in started if key.endswith("Attributes"))
    started[attributes]["input"]["payloads"][0]["data"] = base64.b64encode(b'{"order": 1}').decode()
    bad = tmp_path / "order-undecodable.json"
    bad.write_text(json.dumps(history), encoding="utf-8")
    replayed = await cli("replay", str(bad), str(good))
    assert replayed.returncode == 1
    assert "Traceback" not in replayed.stderr, replayed.stderr
    lines = replayed.stdout.strip().splitlines()
    assert lines[0].startswith("INVALID   ") and "a payload no longer decodes (the workflow input: field" in lines[0]
    assert lines[1].startswith("ok") and lines[-1] == "1 ok, 0 diverged, 1 invalid"
