"""The standard process end to end, on the real server and the real warehouse store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.store import Store
from orderops.messages import CancelRequest, ExternalEvent, OrderResult, ReviewDecision, ReviewReceipt
from orderops.order import OrderEdit
from orderops.process.lint import load_definition
from tests.conftest import KNOWN_ACTIVITIES, ROOT, awaiting_decision, status, wait_until, waiting_for


async def deliver(handle, rating: int = 5) -> None:
    await wait_until(handle, waiting_for("delivered"))
    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei"}))
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": rating, "comment": "ok"}))


def reserved(store: Store, order_id: str) -> dict[str, tuple[int, str]]:
    rows = store.rows("SELECT sku, quantity, state FROM reservations WHERE order_id = ?", order_id)
    return {r["sku"]: (r["quantity"], r["state"]) for r in rows}


async def test_happy_path_ships_and_completes(start, store: Store):
    before = store.stock_levels()
    order, handle = await start()
    await deliver(handle)
    result: OrderResult = await handle.result()

    assert result.status == "completed" and result.end_node == "completed"
    ran = [s.node for s in result.steps if s.type == "task"]
    assert ran[0] == "promise"
    assert sorted(ran[1:3]) == ["auto_review", "reserve_stock"]
    assert ran[3:] == ["pick", "pack", "handoff", "notify_shipped", "record_delivery", "request_feedback", "record_feedback"]
    assert all(s.attempt == 1 for s in result.steps if s.type == "task")
    # The goods left the warehouse: on-hand stock dropped, nothing stays reserved.
    after = store.stock_levels()
    assert after["TEA-001"][0] == before["TEA-001"][0] - 2
    assert reserved(store, order.order_id) == {"TEA-001": (2, "shipped"), "MUG-002": (1, "shipped")}
    waybill = store.rows("SELECT * FROM waybills WHERE order_id = ?", order.order_id)[0]
    assert Path(waybill["label_path"]).read_text().startswith("^XA")
    assert "FRAGILE" in Path(waybill["label_path"]).read_text()
    handoff = store.rows("SELECT * FROM handoffs WHERE order_id = ?", order.order_id)[0]
    assert handoff["signed_by"] == "Li Wei" and handoff["tracking_no"] == waybill["tracking_no"]
    kinds = {r["kind"] for r in store.rows("SELECT kind FROM notifications WHERE order_id = ?", order.order_id)}
    assert kinds == {"shipped", "feedback_request"}
    assert store.rows("SELECT rating FROM feedback WHERE order_id = ?", order.order_id) == [{"rating": 5}]


async def test_anomalous_order_waits_for_a_person_then_approve(start):
    order, handle = await start(paid=False)
    view = await wait_until(handle, awaiting_decision)
    task = view.pending_user_tasks[0]
    assert view.status == "awaiting_review" and task.node == "manual_review"
    assert task.outcomes == ["approve", "edit", "reject"] and task.role == "support_agent"
    assert task.details == ["payment has not been confirmed"]

    receipt: ReviewReceipt = await handle.execute_update(
        "review", ReviewDecision(decision="approve", agent="amy", reason="paid by transfer"), result_type=ReviewReceipt
    )
    assert (receipt.node, receipt.decision, receipt.next) == ("manual_review", "approve", "pick")
    await deliver(handle)
    result = await handle.result()
    assert result.status == "completed"
    [decision] = result.decisions
    assert (decision.agent, decision.decision, decision.reason, decision.via) == ("amy", "approve", "paid by transfer", "update")


async def test_reject_releases_reserved_stock(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(phone="13900000000")  # blacklisted
    view = await wait_until(handle, awaiting_decision)
    assert any("blacklisted" in reason for reason in view.pending_user_tasks[0].details)
    assert store.stock_levels()["TEA-001"][1] == before["TEA-001"][1] + 2  # held while a person decides

    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy", reason="fraud"))
    result = await handle.result()
    assert result.status == "rejected"
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["release_stock"]
    assert reserved(store, order.order_id) == {"TEA-001": (2, "released"), "MUG-002": (1, "released")}
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
    assert store.rows("SELECT kind FROM notifications WHERE order_id = ?", order.order_id) == [{"kind": "rejected"}]


async def test_review_by_plain_signal(start):
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    await handle.signal("review", ReviewDecision(decision="reject", agent="bob", reason="by signal"))
    result = await handle.result()
    assert result.status == "rejected"
    assert [(d.agent, d.via) for d in result.decisions] == [("bob", "signal")]


async def test_invalid_signal_is_ignored_not_applied(start):
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    await handle.signal("review", ReviewDecision(decision="ship-it", agent="bob"))
    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy"))
    result = await handle.result()
    assert [(d.agent, d.decision) for d in result.decisions] == [("amy", "reject")]


@pytest.mark.parametrize(
    "decision, message",
    [
        (ReviewDecision(decision="ship-it", agent="amy"), "'ship-it' is not an outcome of 'manual_review'; allowed: approve, edit, reject"),
        (ReviewDecision(decision="approve", agent="amy", role="warehouse"), "must be decided by role 'support_agent', not 'warehouse'"),
        (ReviewDecision(decision="approve", agent="amy", changes=OrderEdit(phone="13800000000")), "only with the 'edit' decision"),
    ],
)
async def test_validator_rejects_bad_decisions_and_changes_nothing(start, decision, message):
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update("review", decision)
    assert message in raised.value.cause.message
    view = await status(handle)
    assert view.decisions == [] and view.pending_user_tasks[0].node == "manual_review"
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))


async def test_review_when_not_awaiting_is_rejected(start):
    order, handle = await start()
    await wait_until(handle, waiting_for("delivered"))
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
    assert f"order {order.order_id} is not awaiting a decision (status: in_transit)" == raised.value.cause.message
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))


async def test_edit_changes_the_order_and_reviews_it_again(start):
    order, handle = await start(phone="12345")
    view = await wait_until(handle, awaiting_decision)
    assert view.pending_user_tasks[0].details == ["phone '12345' is not a valid mobile number"]
    await handle.execute_update(
        "review", ReviewDecision(decision="edit", agent="amy", changes=OrderEdit(phone="13722223333"))
    )
    await deliver(handle)
    result = await handle.result()
    assert result.status == "completed"
    assert [s.node for s in result.steps].count("auto_review") == 2


async def test_cancel_midway_undoes_completed_steps_in_reverse(start, store: Store):
    before = store.stock_levels()
    order, handle = await start()
    await wait_until(handle, waiting_for("delivered"))
    await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind", by="amy"))
    result = await handle.result()
    assert result.status == "cancelled"
    assert result.reason == "cancelled by amy: customer changed their mind"
    undo = [(s.node, s.activity) for s in result.steps if s.type == "compensation"]
    assert undo == [("pack", "void_waybill"), ("pick", "cancel_pick_list"), ("reserve_stock", "release_stock")]
    assert store.rows("SELECT state FROM waybills WHERE order_id = ?", order.order_id) == [{"state": "void"}]
    assert store.rows("SELECT state FROM pick_lists WHERE order_id = ?", order.order_id) == [{"state": "cancelled"}]
    # Handed over already: the stock physically left, so nothing is put back on the shelf.
    assert store.stock_levels()["TEA-001"][0] == before["TEA-001"][0] - 2


async def test_cancel_while_awaiting_review_releases_stock(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    await handle.execute_update("cancel", CancelRequest(reason="duplicate payment issue"))
    result = await handle.result()
    assert result.status == "cancelled"
    assert next(s for s in result.steps if s.node == "manual_review").outcome == "cancelled"  # not left "running"
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
    with pytest.raises(RPCError, match="completed"):
        await handle.execute_update("cancel", CancelRequest(reason="again"))


async def test_out_of_stock_fails_and_raises_a_requisition(start, store: Store):
    order, handle = await start(items=[{"sku": "LAMP-007", "quantity": 50, "unit_price": "120.00"}])
    result = await handle.result()
    assert (result.status, result.end_node) == ("failed", "out_of_stock")
    assert store.rows("SELECT sku, quantity FROM purchase_requisitions WHERE order_id = ?", order.order_id) == [
        {"sku": "LAMP-007", "quantity": 47}
    ]


async def test_editing_the_yaml_does_not_change_an_order_in_flight(start, tmp_path: Path):
    shutil.copytree(ROOT / "process_defs", tmp_path / "defs")
    path = tmp_path / "defs" / "standard.yaml"
    original = load_definition(path, KNOWN_ACTIVITIES)
    order, handle = await start(original, paid=False)
    await wait_until(handle, awaiting_decision)

    # An ops engineer now makes approval go straight to rejection, as a new version.
    path.write_text(path.read_text().replace("version: 3", "version: 4").replace("      approve: pick\n      edit", "      approve: rejected\n      edit"))
    assert load_definition(path, KNOWN_ACTIVITIES).sha256 != original.sha256

    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
    await deliver(handle)
    result = await handle.result()
    assert result.status == "completed"
    assert (result.process.version, result.process.sha256) == (3, original.sha256)


async def test_cancel_while_the_reservation_is_in_flight_still_releases_it(start, store: Store):
    before = store.stock_levels()
    blocker = store.connect()
    blocker.execute("BEGIN IMMEDIATE")  # the warehouse is busy: reserve_stock cannot commit yet
    try:
        order, handle = await start()
        await wait_until(handle, lambda v: any(s.node == "reserve_stock" and s.outcome == "running" for s in v.steps))
        await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    result = await handle.result()
    assert result.status == "cancelled"
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
    assert all(state != "active" for _, state in reserved(store, order.order_id).values())


async def test_no_carrier_goes_to_a_person_and_cancel_releases_stock(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(items=[{"sku": "RICE-004", "quantity": 6, "unit_price": "89.00"}])  # 60 kg
    view = await wait_until(handle, awaiting_decision)
    task = view.pending_user_tasks[0]
    assert (task.node, task.outcomes) == ("handoff_failed", ["retry", "cancel"])
    assert task.details["type"] == "NoCarrier"
    await handle.execute_update("review", ReviewDecision(decision="cancel", agent="amy", reason="too heavy for any carrier"))
    result = await handle.result()
    assert result.status == "cancelled"
    assert store.stock_levels()["RICE-004"] == before["RICE-004"]


async def test_workflow_side_validation_of_a_raw_update_payload(start, client):
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("review", {"decision": "approve", "agent": "   "})
    await handle.signal("review", {"decision": "approve", "agent": "   "})
    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy"))
    result = await handle.result()
    assert [(d.agent, d.decision) for d in result.decisions] == [("amy", "reject")]


async def test_temporal_workflow_cancel_compensates_like_orderops_cancel(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(paid=False)
    await wait_until(handle, awaiting_decision)
    await handle.cancel()  # what `temporal workflow cancel` sends
    result = await handle.result()
    assert (result.status, result.reason) == ("cancelled", "cancelled by temporal: workflow cancellation requested")
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["release_stock"]
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
