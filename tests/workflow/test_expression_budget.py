"""An expression too costly for the order's data fails the order, never a workflow task."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.store import Store
from tests.helpers import settled
from tests.support import journal_for


async def test_a_cheap_expression_runs(start, store: Store):
    order, handle = await start("costly.yaml")
    result = await settled(handle, store)
    assert result.status == "completed"
    assert journal_for(order.order_id) == ["journal_step:record"]


async def test_an_expression_over_too_much_data_fails_the_order_before_it_runs(start, client: Client, store: Store):
    values = list(range(3000))  # 9 million pairs: seconds of CEL inside one workflow task
    order, handle = await start("costly.yaml", variables={"values": values})
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("failed", "check")
    assert result.reason is not None and "would take about" in result.reason and "at most 200 ms" in result.reason
    assert "2999" not in result.reason  # no data value in the message
    assert journal_for(order.order_id) == []
    history = await client.get_workflow_handle(handle.id).fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def test_a_task_whose_input_is_too_costly_takes_its_on_error(start, client: Client, store: Store):
    order, handle = await start("costly_input.yaml", variables={"values": list(range(3000))})
    result = await settled(handle, store)
    assert (result.status, result.end_node, result.reason) == ("failed", "too_costly", "input too costly to evaluate")
    count = next(s for s in result.steps if s.node == "count")
    assert count.outcome == "failed" and count.detail is not None and "would take about" in count.detail
    assert journal_for(order.order_id) == []  # the activity never ran
    history = await client.get_workflow_handle(handle.id).fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]


async def test_the_same_task_over_little_data_runs(start, store: Store):
    order, handle = await start("costly_input.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("completed", "done")
    assert journal_for(order.order_id) == ["journal_step:0"]
