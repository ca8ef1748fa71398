"""Auditors: timelines from event history, export, and histories from the `temporal` CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from activities.store import Store
from orderops.history.timeline import build_timeline, load_history_file
from orderops.messages import ExternalEvent, ReviewDecision
from orderops.server import temporal_binary
from tests.helpers import awaiting_decision, cli, settled, wait_until

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden


async def finished_audit_order(start, store: Store):
    """An order with a retried task, a manual decision and a receive that times out."""
    order, handle = await start("audit.yaml")
    await wait_until(handle, awaiting_decision)
    await handle.signal("event", ExternalEvent(name="noise", data={"scanner": "A7"}))
    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy", reason="looks fine"))
    result = await settled(handle, store)
    assert result.status == "completed"
    return order, handle


async def test_timeline_has_definition_steps_attempts_decisions_and_timers(start, store: Store):
    order, handle = await finished_audit_order(start, store)
    timeline = build_timeline(await handle.fetch_history())

    assert (timeline.order_id, timeline.workflow_id) == (order.order_id, handle.id)
    assert (timeline.process.id, timeline.process.version) == ("test-audit", 3)
    assert len(timeline.process.sha256) == 64
    assert (timeline.status, timeline.end_node, timeline.workflow_status) == ("completed", "done", "completed")
    assert [(v.node, v.type) for v in timeline.nodes] == [("flaky", "task"), ("approve", "user_task"), ("scan", "receive"), ("done", "end")]
    assert all(v.left_at and v.left_at >= v.entered_at for v in timeline.nodes)

    [run] = timeline.activities
    assert (run.node, run.activity, run.attempts, run.outcome) == ("flaky", "flaky_step", 3, "completed")
    assert run.last_retried_failure == "Transient: transient fault 2"
    assert run.retry_delays_s == [0.2, 0.3]  # initial 0.2s, backoff 1.5
    assert run.waited_s >= 0.5  # observed: the two waits, plus the failed attempts themselves
    assert run.scheduled_at <= run.started_at <= run.closed_at

    [decision] = timeline.decisions
    assert (decision.node, decision.decision, decision.agent, decision.role, decision.reason, decision.via, decision.accepted) == (
        "approve",
        "approve",
        "amy",
        "support_agent",
        "looks fine",
        "update",
        True,
    )
    assert [(e.name, e.summary) for e in timeline.events] == [("noise", '{"scanner": "A7"}')]

    timers = {t.purpose: t for t in timeline.timers}
    assert timers["approve: decision deadline"].outcome == "cancelled"
    assert timers["approve: decision deadline"].duration_s == 3600
    scan = timers["scan: scanned deadline"]
    assert (scan.outcome, scan.duration_s, scan.node) == ("fired", 1, "scan")


async def test_export_then_audit_from_file_gives_the_same_timeline(start, address, tmp_path: Path, store: Store):
    order, handle = await finished_audit_order(start, store)
    live = await cli("audit", order.order_id, "--json", address=address)
    exported = await cli("export", order.order_id, "--out", str(tmp_path), address=address)
    assert exported.returncode == 0, exported.stderr
    path = tmp_path / f"{handle.id}.json"
    assert exported.stdout.strip() == str(path)
    offline = await cli("audit", "--file", str(path), "--json")
    assert live.returncode == offline.returncode == 0
    assert json.loads(live.stdout) == json.loads(offline.stdout)

    text = await cli("audit", "--file", str(path))
    for expected in (
        "process: test-audit v3",
        "activity flaky_step at flaky: completed after 3 attempts",
        "retry delays by policy 0.2s, 0.3s, last attempt started",
        "failure before the last attempt: Transient: transient fault 2",
        'decision at approve: approve by amy (support_agent) via update: "looks fine"',
        "timer scan: scanned deadline (0:00:01",
        "final status: completed at done",
    ):
        assert expected in text.stdout, (expected, text.stdout)


async def test_history_from_the_temporal_cli_is_accepted(start, address, tmp_path: Path, store: Store):
    order, handle = await finished_audit_order(start, store)
    shown = subprocess.run(
        [temporal_binary(), "workflow", "show", "--workflow-id", handle.id, "--address", address, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    path = tmp_path / "from-temporal-cli.json"
    path.write_text(shown.stdout)

    timeline = build_timeline(load_history_file(path))
    assert (timeline.workflow_id, timeline.status, len(timeline.activities)) == (handle.id, "completed", 1)
    audited = await cli("audit", "--file", str(path))
    assert audited.returncode == 0 and f"Order {order.order_id}" in audited.stdout
    replayed = await cli("replay", str(path))
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.splitlines()[-1] == "1 ok, 0 diverged"


async def test_audit_of_a_running_order_and_of_bad_input(start, address, tmp_path: Path):
    order, handle = await start(phone="12345")
    await wait_until(handle, awaiting_decision)
    running = await cli("audit", order.order_id, address=address)
    assert running.returncode == 0
    assert "status: awaiting_review (still running)" in running.stdout and "▶ manual_review (user_task), still here" in running.stdout
    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy"))

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    bad = await cli("audit", "--file", str(garbage))
    assert bad.returncode == 1 and bad.stderr.startswith(f"orderops: {garbage}: not a workflow history JSON file")
    neither = await cli("audit")
    assert (neither.returncode, neither.stderr.strip()) == (2, "orderops: audit takes an ORDER_ID or --file HISTORY.json (one of the two)")


async def test_replay_by_visibility_query(start, address, store: Store):
    _order, handle = await start("retry.yaml")
    await settled(handle, store)
    result = None
    for _ in range(100):  # visibility is eventually consistent
        result = await cli("replay", "--query", f"WorkflowId = '{handle.id}'", address=address)
        if result.returncode == 0:
            break
        await asyncio.sleep(0.2)
    assert result.stdout.splitlines() == [f"ok        {handle.id}  (query: {handle.id})", "1 ok, 0 diverged"]
