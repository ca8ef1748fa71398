"""Each construct of the language, through small definitions in tests/definitions/."""

from __future__ import annotations

import asyncio

from orderops.messages import CancelRequest, ExternalEvent
from tests.conftest import status, wait_until, waiting_for
from tests.support import journal_for


async def test_retry_policy_is_honoured(start):
    order, handle = await start("retry.yaml")
    result = await handle.result()
    assert result.status == "completed"
    [step] = result.steps
    assert (step.node, step.attempt, step.outcome) == ("flaky", 3, "completed")
    assert journal_for(order.order_id) == ["flaky_step"]


async def test_non_retryable_failure_takes_the_failure_path(start):
    order, handle = await start("on_error.yaml")
    result = await handle.result()
    assert (result.status, result.end_node, result.reason) == ("failed", "printer_down", "label printer down")
    failed = next(s for s in result.steps if s.node == "print_label")
    assert failed.outcome == "failed" and failed.detail == "PrinterFault: the label printer is on fire"
    # One attempt only, despite maximum_attempts 5; then the prepared step is undone.
    assert journal_for(order.order_id) == ["journal_step:prepare", "broken_step", "undo_step:prepare"]


async def test_unhandled_failure_fails_the_order_and_compensates_in_reverse(start):
    order, handle = await start("saga.yaml")
    result = await handle.result()
    assert (result.status, result.end_node) == ("failed", "third")
    assert result.reason == "step 'third' failed: PrinterFault: the label printer is on fire"
    assert journal_for(order.order_id) == [
        "journal_step:first",
        "journal_step:second",
        "broken_step",
        "undo_step:second",
        "undo_step:first",
    ]


async def test_parallel_branches_join_before_continuing(start):
    order, handle = await start("parallel.yaml")
    result = await handle.result()
    assert result.status == "completed"
    calls = journal_for(order.order_id)
    assert sorted(calls[:2]) == ["journal_step:left", "journal_step:right"]
    assert calls[2:] == ["journal_step:after"]


async def test_failing_parallel_branch_cancels_its_sibling(start):
    order, handle = await start("parallel_fail.yaml")
    result = await handle.result()
    assert (result.status, result.end_node) == ("failed", "failed")
    outcomes = {s.node: s.outcome for s in result.steps}
    assert outcomes == {"fork": "failed", "slow": "cancelled", "broken": "failed"}
    fork = next(s for s in result.steps if s.node == "fork")
    assert "PrinterFault" in fork.detail
    history = await handle.fetch_history()
    assert any(e.HasField("activity_task_cancel_requested_event_attributes") for e in history.events)


async def test_user_task_receive_and_wait_timeouts(start):
    order, handle = await start("timers.yaml")
    result = await handle.result()
    assert result.status == "completed"
    outcomes = {s.node: (s.outcome, s.detail) for s in result.steps}
    assert outcomes["decide"] == ("timed_out", "no decision within 0:00:01")
    assert outcomes["scan"] == ("timed_out", "no 'scanned' event within 0:00:01")
    assert outcomes["pause"] == ("completed", "waited 0:00:01")
    assert outcomes["hold"] == ("completed", "waited 0:00:00")  # `until` already passed


async def test_receive_stores_the_event_payload_for_conditions(start):
    order, handle = await start("receive.yaml")
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="noise", data={}))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 1, "comment": "broken mug"}))
    result = await handle.result()
    assert (result.status, result.reason) == ("completed", "unhappy customer")
    view = await status(handle)
    assert [(e.name, e.consumed_by) for e in view.events] == [("noise", None), ("feedback", "wait_feedback")]


async def test_event_sent_before_the_receive_is_kept(start):
    order, handle = await start("early_event.yaml")
    view = await wait_until(handle, lambda v: v.current_nodes == ["pause"])
    assert view.waiting_for_events == []
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5}))
    result = await handle.result()
    assert (result.status, result.end_node) == ("completed", "done")
    assert next(s for s in result.steps if s.node == "wait_feedback").detail == "event 'feedback' received"


async def test_cancel_while_a_branch_activity_runs_settles_it_then_undoes_everything(start):
    order, handle = await start("cancel_inflight.yaml")
    async with asyncio.timeout(30):
        while "slow_step:started" not in journal_for(order.order_id) or "journal_step:quick" not in journal_for(order.order_id):
            await asyncio.sleep(0.05)
    await handle.execute_update("cancel", CancelRequest(reason="customer called"))
    result = await handle.result()
    assert result.status == "cancelled"
    calls = journal_for(order.order_id)
    # The running activity stopped before any undo ran; then both steps were undone.
    assert calls.index("slow_step:cancelled") < calls.index("undo_step:slow")
    assert sorted(c for c in calls if c.startswith("undo_step")) == ["undo_step:quick", "undo_step:slow"]
    outcomes = {s.node: s.outcome for s in result.steps if s.type != "compensation"}
    assert outcomes == {"fork": "cancelled", "slow": "cancelled", "quick": "completed"}
