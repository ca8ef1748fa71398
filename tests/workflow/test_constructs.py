"""Each construct of the language, through small definitions in tests/definitions/."""

from __future__ import annotations

import asyncio

import pytest

from activities.store import Store
from orderops.messages import CancelRequest, ExternalEvent, ReviewDecision
from tests.helpers import awaiting_decision, cancel_while_stubborn_step_runs, settled, status, wait_until, waiting_for
from tests.support import journal_for

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden


async def test_retry_policy_is_honoured(start, store: Store):
    order, handle = await start("retry.yaml")
    result = await settled(handle, store)
    assert result.status == "completed"
    [step] = result.steps
    assert (step.node, step.attempt, step.outcome) == ("flaky", 3, "completed")
    assert journal_for(order.order_id) == ["flaky_step"]


async def test_non_retryable_failure_takes_the_failure_path(start, store: Store):
    order, handle = await start("on_error.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node, result.reason) == ("failed", "printer_down", "label printer down")
    failed = next(s for s in result.steps if s.node == "print_label")
    assert failed.outcome == "failed" and failed.detail == "PrinterFault: the label printer is on fire"
    # One attempt only, despite maximum_attempts 5; then the prepared step is undone.
    assert journal_for(order.order_id) == ["journal_step:prepare", "broken_step", "undo_step:prepare"]


async def test_unhandled_failure_fails_the_order_and_compensates_in_reverse(start, store: Store):
    order, handle = await start("saga.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("failed", "third")
    assert result.reason == "step 'third' failed: PrinterFault: the label printer is on fire"
    assert journal_for(order.order_id) == [
        "journal_step:first",
        "journal_step:second",
        "broken_step",
        "undo_step:second",
        "undo_step:first",
    ]


async def test_parallel_branches_join_before_continuing(start, store: Store):
    order, handle = await start("parallel.yaml")
    result = await settled(handle, store)
    assert result.status == "completed"
    calls = journal_for(order.order_id)
    assert sorted(calls[:2]) == ["journal_step:left", "journal_step:right"]
    assert calls[2:] == ["journal_step:after"]


async def test_failing_parallel_branch_cancels_its_sibling(start, store: Store):
    _order, handle = await start("parallel_fail.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("failed", "failed")
    outcomes = {s.node: s.outcome for s in result.steps}
    assert outcomes == {"fork": "failed", "slow": "cancelled", "broken": "failed"}
    fork = next(s for s in result.steps if s.node == "fork")
    assert "PrinterFault" in fork.detail
    history = await handle.fetch_history()
    assert any(e.HasField("activity_task_cancel_requested_event_attributes") for e in history.events)


async def test_user_task_receive_and_wait_timeouts(start, store: Store):
    _order, handle = await start("timers.yaml")
    result = await settled(handle, store)
    assert result.status == "completed"
    outcomes = {s.node: (s.outcome, s.detail) for s in result.steps}
    assert outcomes["decide"] == ("timed_out", "no decision within 0:00:01")
    assert outcomes["scan"] == ("timed_out", "no 'scanned' event within 0:00:01")
    assert outcomes["pause"] == ("completed", "waited 0:00:01")
    assert outcomes["hold"] == ("completed", "waited 0:00:00")  # `until` already passed


async def test_receive_stores_the_event_payload_for_conditions(start, store: Store):
    _order, handle = await start("receive.yaml")
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="noise", data={}))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 1, "comment": "broken mug"}))
    result = await settled(handle, store)
    assert (result.status, result.reason) == ("completed", "unhappy customer")
    view = await status(handle)
    assert [(e.name, e.consumed_by) for e in view.events] == [("noise", None), ("feedback", "wait_feedback")]


async def test_event_sent_before_the_receive_is_kept(start, store: Store):
    _order, handle = await start("early_event.yaml")
    view = await wait_until(handle, lambda v: v.current_nodes == ["pause"])
    assert view.waiting_for_events == []
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5}))
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("completed", "done")
    assert next(s for s in result.steps if s.node == "wait_feedback").detail == "event 'feedback' received"


async def test_cancel_while_a_branch_activity_runs_settles_it_then_undoes_everything(start, store: Store):
    order, handle = await start("cancel_inflight.yaml")
    async with asyncio.timeout(30):
        while "slow_step:started" not in journal_for(order.order_id) or "journal_step:quick" not in journal_for(order.order_id):
            await asyncio.sleep(0.05)
    await handle.execute_update("cancel", CancelRequest(reason="customer called"))
    result = await settled(handle, store)
    assert result.status == "cancelled"
    calls = journal_for(order.order_id)
    # The running activity stopped before any undo ran; then both steps were undone.
    assert calls.index("slow_step:cancelled") < calls.index("undo_step:slow")
    assert sorted(c for c in calls if c.startswith("undo_step")) == ["undo_step:quick", "undo_step:slow"]
    outcomes = {s.node: s.outcome for s in result.steps if s.type != "compensation"}
    assert outcomes == {"fork": "cancelled", "slow": "cancelled", "quick": "completed"}


@pytest.mark.parametrize("route", ["first", "second", "third", "anything-else"])
async def test_exclusive_gateway_takes_the_first_true_branch_or_the_default(start, store: Store, route: str):
    order, handle = await start("branches.yaml", variables={"route": route})
    result = await settled(handle, store)
    taken = route if route != "anything-else" else "fallback"
    assert journal_for(order.order_id) == [f"journal_step:{taken}"]
    choose = next(s for s in result.steps if s.node == "choose")
    assert choose.detail == (
        "default" if taken == "fallback" else f'branch {["first", "second", "third"].index(taken) + 1}: route == "{taken}"'
    )
    assert [s.node for s in result.steps] == ["choose", taken]


@pytest.mark.parametrize(("decision", "end_node", "status_"), [("approve", "approved", "completed"), ("reject", "rejected", "rejected")])
async def test_each_user_task_outcome_leads_where_the_definition_says(start, store: Store, decision, end_node, status_):
    _order, handle = await start("decide_or_timeout.yaml")
    await wait_until(handle, awaiting_decision)
    await handle.execute_update("review", ReviewDecision(decision=decision, agent="amy"))
    result = await settled(handle, store)
    assert (result.status, result.end_node) == (status_, end_node)
    [step] = result.steps
    assert (step.outcome, step.detail) == ("completed", f"{decision} by amy")


async def test_a_user_task_left_alone_times_out_to_its_own_path(start, store: Store):
    _order, handle = await start("decide_or_timeout.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node, result.reason) == ("cancelled", "nobody_decided", "nobody decided")
    [step] = result.steps
    assert (step.outcome, step.detail) == ("timed_out", "no decision within 0:00:03")
    assert result.decisions == []


async def test_a_receive_takes_next_on_its_event_and_on_timeout_without_it(start, store: Store):
    _order, handle = await start("receive_or_timeout.yaml")
    await wait_until(handle, waiting_for("scanned"))
    await handle.signal("event", ExternalEvent(name="scanned", data={}))
    received = await settled(handle, store)
    assert (received.status, received.end_node) == ("completed", "scanned")

    _order, handle = await start("receive_or_timeout.yaml")
    timed_out = await settled(handle, store)
    assert (timed_out.status, timed_out.end_node) == ("failed", "no_scan")
    assert timed_out.steps[0].outcome == "timed_out"


async def test_a_failing_undo_is_recorded_and_the_rest_of_the_saga_still_runs(start, store: Store):
    order, handle = await start("failing_undo.yaml")
    result = await settled(handle, store, failed_undos={"second"})
    assert (result.status, result.end_node) == ("failed", "fourth")
    # Undone in reverse: the third, then the second (which fails, once: it is non-retryable), then the first all the same.
    assert journal_for(order.order_id)[-3:] == ["undo_step:third", "broken_undo:second", "undo_step:first"]
    undos = [(s.node, s.outcome) for s in result.steps if s.type == "compensation"]
    assert undos == [("third", "completed"), ("second", "failed"), ("first", "completed")]
    failed = next(s for s in result.steps if s.type == "compensation" and s.node == "second")
    assert "the restocking robot is jammed" in failed.detail


async def test_cancel_while_an_activity_that_cannot_stop_runs_still_cancels_once_it_finishes(start, store: Store):
    # A step that completes although its cancellation was requested used to let the order walk
    # on to its next wait and hang there forever, cancelled but never ending.
    order, handle = await start("cancel_completes.yaml")
    await cancel_while_stubborn_step_runs(order.order_id, handle)
    result = await settled(handle, store)
    assert result.status == "cancelled"
    assert journal_for(order.order_id) == ["stubborn_step:started", "stubborn_step:finished", "undo_step:stubborn"]
    assert [(s.node, s.type, s.outcome) for s in result.steps] == [
        ("stubborn", "task", "completed"),
        ("stubborn", "compensation", "completed"),
    ]
