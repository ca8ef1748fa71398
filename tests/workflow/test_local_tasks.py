"""Tasks run as local activities (`local: true`): the same retries, results, compensation and
failure paths as a regular task, without the activity-task events."""

from __future__ import annotations

import pytest
from rich.console import Console
from temporalio.api.enums.v1 import EventType

from activities.store import Store
from orderops.history.show import print_timeline
from orderops.history.timeline import build_timeline
from tests.helpers import cancel_while_stubborn_step_runs, settled
from tests.support import journal_for

pytestmark = pytest.mark.golden


async def test_local_tasks_retry_compensate_and_take_their_failure_path(start, store: Store):
    order, handle = await start("local.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node, result.reason) == ("failed", "printer_down", "label printer down")
    assert [(s.node, s.type, s.attempt, s.outcome) for s in result.steps] == [
        ("flaky", "task", 3, "completed"),
        ("prepare", "task", 1, "completed"),
        ("print_label", "task", None, "failed"),
        ("prepare", "compensation", 1, "completed"),
    ]
    assert result.steps[2].detail == "PrinterFault: the label printer is on fire"
    assert result.variables["flaky_result"] == {"calls": 3}
    # The undo of a local task is a regular activity, run as the saga runs every undo.
    assert journal_for(order.order_id) == ["flaky_step", "journal_step:prepare", "broken_step", "undo_step:prepare"]

    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert [a.rsplit("-", 1)[0] for a in scheduled] == ["undo-prepare"]
    timeline = build_timeline(history)
    runs = [(r.node, r.activity, r.attempts, r.outcome, r.local) for r in timeline.activities]
    assert runs == [
        ("flaky", "flaky_step", 3, "completed", True),
        ("prepare", "journal_step", 1, "completed", True),
        ("print_label", "broken_step", 1, "failed", True),
        ("prepare", "undo_step", 1, "completed", False),
    ]
    assert timeline.activities[2].failure == "PrinterFault: the label printer is on fire"
    console = Console(record=True, width=200)
    print_timeline(console, timeline)
    assert "activity (local) flaky_step at flaky: completed after 3 attempts" in console.export_text()


async def test_an_order_cancelled_while_a_local_task_runs_ends_cancelled_and_undone(start, store: Store):
    order, handle = await start("local_cancel.yaml")
    await cancel_while_stubborn_step_runs(order.order_id, handle)
    result = await settled(handle, store)
    assert (result.status, result.reason) == ("cancelled", "cancelled by support: customer called")
    # Unlike a regular activity, which hears of a cancellation only through a heartbeat, a local one
    # is interrupted in its worker thread (it never notes "finished"); the undo still follows.
    assert journal_for(order.order_id) == ["stubborn_step:started", "undo_step:stubborn"]
    assert [(s.node, s.type, s.outcome) for s in result.steps] == [
        ("stubborn", "task", "cancelled"),
        ("stubborn", "compensation", "completed"),
    ]
