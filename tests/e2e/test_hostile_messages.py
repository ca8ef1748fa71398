"""Bad signals, updates and starts, sent as anyone could send them: with the real `temporal` CLI.

None may fail a workflow task. A signal cannot be refused to its sender, so the order records it as
refused, with the reason, in its status and its audit timeline; an update is refused by its validator
in one line; a start whose input does not decode fails the workflow at once, naming the problem.
After all of it the order still completes, or is cancelled with its stock back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

from activities.store import Store
from orderops.messages import SHOWN_EVENTS, TASK_QUEUE, WORKFLOW_NAME, CancelRequest, ExternalEvent, ReviewDecision
from orderops.payloads import MAX_MESSAGE_BYTES
from orderops.server import temporal_binary
from tests.helpers import awaiting_decision, cli, deliver, order_data, settled, status, wait_until

NEEDS_REVIEW = {"phone": "12345"}  # an invalid phone: the order waits for a person

# (signal name, its --input values or None for raw CLI arguments, what the refusal says)
BAD_SIGNALS: list[tuple[str, list[str], str]] = [
    ("event", ['{"name":"paid"}', '{"name":"paid"}'], "takes one JSON object, got 2 arguments"),
    ("event", [], "takes one JSON object, got 0 arguments"),
    ("review", ['{"decision":"approve","agent":"a"}'] * 2, "takes one JSON object, got 2 arguments"),
    ("event", ['{"name": 5}'], "field 'name': Input should be a valid string"),
    ("event", ['{"name":"paid","name":"shipped"}'], "duplicate key 'name'"),
    ("event", ['{"name":"paid","data":[1,2]}'], "field 'data': Input should be an object"),
    ("event", ["[1, 2]"], "the event signal: Input should be an object"),
    ("event", ['"paid"'], "the event signal: Input should be an object"),
    ("event", ["null"], "the event signal: Input should be an object"),
    ("event", ['{"name":"paid","extra":1}'], "field 'extra': Extra inputs are not permitted"),
    ("event", ['{"name":"   "}'], "field 'name': must not be blank"),
    ("event", [json.dumps({"name": "x" * 201})], "field 'name': String should have at most 200 characters"),
    ("event", [json.dumps({"name": "paid", "data": {"blob": "x" * MAX_MESSAGE_BYTES}})], "at most 65,536"),
    ("evnt", ['{"name":"paid"}'], "unknown signal 'evnt'; an order takes event, review"),
    ("x" * 300, ["{}"], "unknown signal"),
    ("review", ['{"decision":"approve"}'], "field 'agent': missing"),
    ("review", ['{"decision":"ship-it","agent":"amy"}'], "'ship-it' is not an outcome of 'manual_review'"),
    ("review", ['{"decision":"approve","agent":"amy","role":"warehouse_supervisor"}'], "must be decided by role 'support_agent'"),
    ("review", ['{"decision":"approve","agent":"amy","node":"nowhere"}'], "is not awaiting a decision at 'nowhere'"),
    ("review", ['{"decision":"approve","agent":"amy","changes":{"phone":"13800000000"}}'], "only with the 'edit' decision"),
]

BAD_UPDATES: list[tuple[str, list[str], str]] = [
    ("review", ['{"decision":"approve","agent":"a"}'] * 2, "takes one JSON object, got 2 arguments"),
    ("review", [], "takes one JSON object, got 0 arguments"),
    ("review", ['{"decision":"approve","agent":"amy","agent":"eve"}'], "duplicate key 'agent'"),
    ("review", ['{"decision":"ship-it","agent":"amy"}'], "'ship-it' is not an outcome of 'manual_review'"),
    ("approve", ["{}"], "unknown update 'approve'; an order takes review, change_address, cancel"),
    ("cancel", ['{"reason":"x","by":"y","force":true}'], "field 'force': Extra inputs are not permitted"),
    ("cancel", ["{}"], "field 'reason': missing"),
    ("change_address", ['{"address":{"province":"","city":"c","street":"s"},"by":"amy"}'], "field 'address"),
    (
        "change_address",
        [json.dumps({"address": {"province": "p", "city": "c", "street": "s" * MAX_MESSAGE_BYTES}, "by": "a"})],
        "at most 65,536",
    ),
]


def temporal(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([temporal_binary(), *args, "--address", address], capture_output=True, text=True, timeout=60)


def inputs(values: list[str]) -> list[str]:
    return [arg for value in values for arg in ("--input", value)]


async def failed_tasks(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)


async def test_bad_signals_are_refused_and_recorded_and_the_order_still_completes(start, client: Client, store: Store, address: str):
    order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    sending = BAD_SIGNALS + BAD_SIGNALS[:5]  # more than an order keeps
    for name, values, _ in sending:
        sent = await asyncio.to_thread(temporal, address, "workflow", "signal", "--workflow-id", handle.id, "--name", name, *inputs(values))
        assert sent.returncode == 0, sent.stderr  # a signal is never refused to its sender
    view = await wait_until(handle, lambda v: v.refused_signal_count == len(sending))
    # The latest are kept, each with its reason; the rest are counted.
    kept = sending[-len(view.refused_signals) :]
    assert 0 < len(kept) < len(sending)
    assert [(r.name, expected in r.reason) for r, (_, _, expected) in zip(view.refused_signals, kept, strict=True)] == [
        (name[:60], True) for name, _, _ in kept
    ], [r.reason for r in view.refused_signals]
    assert all("\n" not in r.reason and len(r.reason) < 300 for r in view.refused_signals)
    assert view.events == [] and view.decisions == [] and view.status == "awaiting_review"
    assert await failed_tasks(client, handle.id) == 0

    shown = await cli("status", order.order_id, address=address)
    assert shown.returncode == 0 and "refused signal evnt" in shown.stdout and "earlier refused signals not kept" in shown.stdout, (
        shown.stdout
    )
    audited = await cli("audit", order.order_id, address=address)
    assert audited.returncode == 0 and "refused signal 'event': the event signal takes one JSON object, got 2 arguments" in audited.stdout

    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy", reason="called the customer"))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed" and result.refused_signal_count == len(sending)
    assert await failed_tasks(client, handle.id) == 0


@pytest.mark.parametrize("name, values, expected", BAD_UPDATES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_UPDATES)])
async def test_a_bad_update_is_refused_in_one_line_and_the_order_can_still_be_cancelled(
    start, client, store, address, console, name, values, expected
):
    before = store.stock_levels()
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    update = ["workflow", "update", "execute", "--workflow-id", handle.id, "--name", name, *inputs(values)]
    # The refusal's reason is encrypted like every failure message (orderops/codec.py): without the codec it reads
    # "Encoded failure"; through the console's codec server, as a person who may read it, it is the one line.
    hidden = await asyncio.to_thread(temporal, address, *update)
    assert hidden.returncode != 0 and "Encoded failure" in hidden.stderr and expected not in hidden.stderr
    codec = ["--codec-endpoint", f"{console.url}/codec", "--codec-auth", f"Bearer {console.tokens['amy']}"]
    sent = await asyncio.to_thread(temporal, address, *update, *codec)
    assert sent.returncode != 0 and expected in sent.stderr, sent.stderr
    assert "Traceback" not in sent.stderr
    view = await status(handle)
    assert view.status == "awaiting_review" and view.decisions == [] and view.refused_signal_count == 0
    await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind"))
    result = await settled(handle, store)
    assert result.status == "cancelled" and store.stock_levels() == before
    assert await failed_tasks(client, handle.id) == 0


# (workflow type, --input values, what the failure says)
BAD_STARTS: list[tuple[str, list[str], str]] = [
    (WORKFLOW_NAME, [], "the workflow input takes one JSON object, got 0 arguments"),
    (WORKFLOW_NAME, ['{"order": 1}'], "the workflow input: field 'order'"),
    (WORKFLOW_NAME, ["{}", "{}"], "got 2 arguments"),
    (WORKFLOW_NAME, ["[]"], "the workflow input: Input should be an object"),
    ("PaymentWorkflow", ["{}"], "this worker runs OrderWorkflow workflows, not 'PaymentWorkflow'"),
]


@pytest.mark.parametrize("kind, values, expected", BAD_STARTS, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_STARTS)])
async def test_a_start_whose_input_does_not_decode_fails_at_once_naming_the_problem(client, worker, address, kind, values, expected):
    workflow_id = f"order-hostile-start-{BAD_STARTS.index((kind, values, expected))}"
    sent = await asyncio.to_thread(
        temporal, address, "workflow", "start", "--type", kind, "--task-queue", TASK_QUEUE, "--workflow-id", workflow_id, *inputs(values)
    )
    assert sent.returncode == 0, sent.stderr
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 30)
    assert expected in str(failure.value.cause), failure.value.cause
    assert await failed_tasks(client, workflow_id) == 0


async def test_an_order_id_that_breaks_the_pattern_fails_the_start_and_status_says_why(client, worker, address):
    data = {"order": order_data(order_id="../../w03"), "definition": {"id": "x", "version": 1, "path": "x", "source": "", "sha256": ""}}
    sent = await asyncio.to_thread(
        temporal,
        address,
        "workflow",
        "start",
        "--type",
        WORKFLOW_NAME,
        "--task-queue",
        TASK_QUEUE,
        "--workflow-id",
        "order-w03",
        "--input",
        json.dumps(data),
    )
    assert sent.returncode == 0, sent.stderr
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(client.get_workflow_handle("order-w03").result(), 30)
    assert "field 'order.order_id': String should match pattern" in str(failure.value.cause)
    shown = await cli("status", "w03", address=address)
    assert shown.returncode == 1 and "field 'order.order_id'" in shown.stderr and len(shown.stderr.strip().splitlines()) == 1, shown.stderr


async def test_status_stays_small_however_many_large_events_arrive(start, client: Client, store: Store, address: str):
    order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    blob = {"blob": "x" * (MAX_MESSAGE_BYTES - 200)}  # just under the cap: each one is taken
    sent = 80  # 5 MB of event data: more than a gRPC message may carry
    for i in range(sent):
        await handle.signal("event", ExternalEvent(name=f"noise-{i}", data=blob))
    view = await wait_until(handle, lambda v: v.event_count == sent)
    assert len(view.events) == SHOWN_EVENTS and view.events[-1].name == f"noise-{sent - 1}"
    assert all(set(e.data) == {"not_shown"} and "bytes of data" in e.data["not_shown"] for e in view.events)
    answer = await client.get_workflow_handle(handle.id).query("status")
    assert len(json.dumps(answer)) < 200_000

    shown = await cli("status", order.order_id, address=address)
    assert shown.returncode == 0 and f"events received: {sent} (" in shown.stdout, shown.stderr
    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy", reason="called the customer"))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed" and result.event_count is not None and result.event_count > sent
    assert len(result.events) == SHOWN_EVENTS and await failed_tasks(client, handle.id) == 0
