"""Returns and exchanges (process_defs/returns.yaml): their own workflow, linked to the original order."""

from __future__ import annotations

import pytest

from activities.store import Store
from orderops.messages import CancelRequest, ExternalEvent, OrderResult, ReviewDecision
from orderops.order import workflow_id
from tests.helpers import AGENT, awaiting_decision, cli, deliver, from_source, settled, shipped, signed, wait_until, waiting_for

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden


async def completed_order(start, store: Store, **overrides):
    order, handle = await start(**overrides)
    await deliver(handle)
    assert (await settled(handle, store)).status == "completed"
    return order


async def test_a_return_is_restocked_and_refunded(start, client, store: Store, address: str):
    order = await completed_order(start, store)
    before = store.stock_levels()
    started = await cli("return", order.order_id, "--kind", "refund", "--reason", "damaged", "--item", "MUG-002", address=address)
    assert started.returncode == 0, started.stderr
    return_id = f"{order.order_id}-R1"
    assert started.stdout.startswith(f"return {return_id} started (order-{return_id}): refund, damaged, MUG-002 x1")
    handle = client.get_workflow_handle(workflow_id(return_id), result_type=OrderResult)
    await wait_until(handle, waiting_for("return_received"))  # 45.50 is under the approval threshold: no person
    await handle.signal(
        "event",
        from_source(
            handle, ExternalEvent(name="return_received", data={"items": [{"sku": "MUG-002", "outcome": "restock"}], "inspector": "wu"})
        ),
    )
    result = await settled(handle, store)
    assert result.status == "completed"
    assert [s.node for s in result.steps if s.type == "task"] == ["assess", "issue_label", "inspect", "refund"]
    assert store.stock_levels()["MUG-002"][0] == before["MUG-002"][0] + 1  # back on its shelf
    assert store.rows("SELECT amount, reason FROM refunds WHERE order_id = ?", return_id) == [
        {"amount": "45.50", "reason": "return: damaged"}
    ]
    assert store.rows("SELECT order_id, state FROM returns WHERE return_id = ?", return_id) == [
        {"order_id": order.order_id, "state": "inspected"}
    ]
    assert result.variables["return_request"]["original_order_id"] == order.order_id

    # The mug came back: returning it again is refused by the assessment.
    again = await cli("return", order.order_id, "--kind", "refund", "--reason", "damaged", "--item", "MUG-002", address=address)
    assert again.returncode == 0, again.stderr
    second = await settled(client.get_workflow_handle(workflow_id(f"{order.order_id}-R2"), result_type=OrderResult), store)
    assert (second.status, second.end_node) == ("rejected", "invalid")
    assert "MUG-002: 1 asked, 0 shipped and not yet returned" in second.variables["error"]["message"]


async def test_a_valuable_exchange_needs_a_person_then_ships_a_replacement(start, client, store: Store, address: str):
    order = await completed_order(start, store, items=[{"sku": "TEA-001", "quantity": 4, "unit_price": "68.00"}])  # 272.00
    started = await cli("return", order.order_id, "--kind", "exchange", "--reason", "wrong_item", address=address)
    assert started.returncode == 0, started.stderr
    handle = client.get_workflow_handle(workflow_id(f"{order.order_id}-R1"), result_type=OrderResult)
    view = await wait_until(handle, awaiting_decision)
    assert view.pending_user_tasks[0].node == "approve_return"
    approve = ReviewDecision(decision="approve", agent="amy", role="support_agent", reason="photo shows the wrong tea")
    await handle.execute_update("review", signed(handle, "review", approve, AGENT))
    await wait_until(handle, waiting_for("return_received"))
    await handle.signal(
        "event", from_source(handle, ExternalEvent(name="return_received", data={"items": [{"sku": "TEA-001", "outcome": "scrap"}]}))
    )
    await shipped(handle)
    await handle.signal("event", from_source(handle, ExternalEvent(name="delivered", data={"signer": "Li Wei"})))
    result = await settled(handle, store)
    assert result.status == "completed"
    assert store.rows("SELECT outcome FROM return_inspections WHERE return_id = ?", f"{order.order_id}-R1") == [{"outcome": "scrap"}]
    assert store.rows("SELECT state, SUM(quantity) AS q FROM reservations WHERE order_id = ? GROUP BY state", f"{order.order_id}-R1") == [
        {"state": "shipped", "q": 4}
    ]
    assert store.rows("SELECT * FROM refunds WHERE order_id = ?", f"{order.order_id}-R1") == []


async def test_return_refuses_bad_requests_in_one_line(start, address: str, store: Store):
    order, handle = await start()
    await wait_until(handle, waiting_for("scanned"))
    running = await cli("return", order.order_id, "--kind", "refund", "--reason", "damaged", address=address)
    assert (running.returncode, running.stderr.strip()) == (
        1,
        f"orderops: order {order.order_id} is scanning; only a delivered order can be returned",
    )
    await deliver(handle)
    await settled(handle, store)
    wrong_sku = await cli("return", order.order_id, "--kind", "refund", "--reason", "damaged", "--item", "LAMP-007", address=address)
    assert (
        wrong_sku.returncode == 2
        and wrong_sku.stderr.strip() == f"orderops: --item LAMP-007: order {order.order_id} has no 'LAMP-007' (it has TEA-001, MUG-002)"
    )
    bad_reason = await cli("return", order.order_id, "--kind", "refund", "--reason", "bored", address=address)
    assert bad_reason.returncode == 2 and "invalid choice: 'bored'" in bad_reason.stderr


async def test_a_cancelled_return_frees_its_items_for_another(start, client, store: Store, address: str, console):
    order = await completed_order(start, store, items=[{"sku": "TEA-001", "quantity": 4, "unit_price": "68.00"}])  # above the threshold
    assert (await cli("return", order.order_id, "--kind", "refund", "--reason", "quality", address=address)).returncode == 0
    first = client.get_workflow_handle(workflow_id(f"{order.order_id}-R1"), result_type=OrderResult)
    await wait_until(first, awaiting_decision)
    cancelled = await cli("cancel", f"{order.order_id}-R1", "--reason", "customer keeps it", address=address, signed=console.of("amy"))
    assert cancelled.returncode == 0, cancelled.stderr
    assert (await settled(first, store)).status == "cancelled"
    assert store.rows("SELECT state FROM returns WHERE return_id = ?", f"{order.order_id}-R1") == [{"state": "cancelled"}]
    assert (await cli("return", order.order_id, "--kind", "refund", "--reason", "quality", address=address)).returncode == 0
    second = client.get_workflow_handle(workflow_id(f"{order.order_id}-R2"), result_type=OrderResult)
    view = await wait_until(second, awaiting_decision)  # assessed: the four teas may come back after all
    assert view.pending_user_tasks[0].node == "approve_return"
    await second.execute_update("cancel", signed(second, "cancel", CancelRequest(reason="test over"), AGENT))
