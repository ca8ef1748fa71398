"""The standard process end to end, on the real server and the real warehouse store."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.store import Store
from orderops import search_attributes as sa
from orderops.client import OrderClient
from orderops.messages import AddressChange, CancelRequest, ExternalEvent, OrderResult, ReviewDecision, ReviewReceipt
from orderops.order import Address, OrderEdit
from orderops.process.lint import load_definition
from tests.helpers import (
    KNOWN_ACTIVITIES,
    ROOT,
    awaiting_decision,
    cli,
    deliver,
    scan_of,
    settled,
    shipped,
    status,
    track,
    wait_until,
    waiting_for,
)

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden

NEEDS_REVIEW = {"phone": "12345"}  # an invalid phone: the order waits for a person


def reserved(store: Store, order_id: str) -> dict[str, tuple[int, str]]:
    rows = store.rows("SELECT sku, SUM(quantity) AS quantity, state FROM reservations WHERE order_id = ? GROUP BY sku, state", order_id)
    return {r["sku"]: (r["quantity"], r["state"]) for r in rows}


def column(store: Store, sql: str, *params) -> list:
    return [next(iter(row.values())) for row in store.rows(sql, *params)]


async def test_happy_path_ships_tracks_and_completes(start, store: Store):
    before = store.stock_levels()
    order, handle = await start()
    assert (await shipped(handle)).status == "shipped"
    await track(handle, "in_transit", "out_for_delivery")
    # Each courier scan sets the order's status, as `orderops list --status` sees it.
    await wait_until(handle, lambda v: v.status == "out_for_delivery" and "delivered" in v.waiting_for_events)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.ORDER_STATUS) == "out_for_delivery"
    await track(handle, "delivered")
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5, "comment": "ok"}))
    result: OrderResult = await settled(handle, store)

    assert result.status == "completed" and result.end_node == "completed"
    ran = [s.node for s in result.steps if s.type == "task"]
    assert ran[0] == "promise" and sorted(ran[1:3]) == ["auto_review", "reserve_stock"]
    assert ran[3:] == [
        "pick",
        "verify_scan",
        "pack",
        "book_carrier",
        "handoff",
        "notify_shipped",
        "record_tracking",
        "record_tracking",
        "record_tracking",
        "record_delivery",
        "request_feedback",
        "record_feedback",
    ]
    # The goods left the Shanghai warehouse: on-hand stock dropped, nothing stays reserved.
    assert store.stock_levels()["TEA-001"] == (before["TEA-001"][0] - 2, before["TEA-001"][1])
    assert reserved(store, order.order_id) == {"TEA-001": (2, "shipped"), "MUG-002": (1, "shipped")}
    [waybill] = store.rows("SELECT * FROM waybills WHERE order_id = ?", order.order_id)
    label = Path(waybill["label_path"]).read_text()
    assert label.startswith("^XA") and "FRAGILE" in label and waybill["tracking_no"] in label
    [booking] = store.rows("SELECT * FROM carrier_bookings WHERE order_id = ?", order.order_id)
    assert (booking["carrier"], booking["state"], booking["tracking_no"]) == ("CityCourier", "delivered", waybill["tracking_no"])
    assert booking["courier"] and booking["handed_over_at"]
    assert store.rows("SELECT signed_by FROM deliveries WHERE order_id = ?", order.order_id) == [{"signed_by": "Li Wei"}]
    kinds = column(store, "SELECT kind FROM notifications WHERE order_id = ? ORDER BY id", order.order_id)
    assert kinds == ["shipped", "in_transit", "out_for_delivery", "delivered", "feedback_request"]
    assert store.rows("SELECT rating FROM feedback WHERE order_id = ?", order.order_id) == [{"rating": 5}]
    assert result.variables["scan_check"]["matched"] and result.variables["scan_check"]["mismatches"] == 0


async def test_unpaid_order_waits_for_the_payment_then_goes_on_alone(start, store: Store):
    _order, handle = await start(paid=False)
    view = await wait_until(handle, waiting_for("paid"))
    assert view.status == "awaiting_payment" and not view.pending_user_tasks
    await handle.signal("event", ExternalEvent(name="paid", data={"provider": "alipay"}))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed" and result.decisions == []


async def test_waits_wakes_a_watcher_when_the_order_stops_to_wait_and_ends_when_it_closes(start, client, store: Store):
    _order, handle = await start(paid=False)
    seen: list[bool] = []
    woken = asyncio.Event()

    async def follow() -> None:
        async for closed in OrderClient(client).waits(handle):
            seen.append(closed)
            woken.set()

    follower = asyncio.create_task(follow())
    await asyncio.wait_for(woken.wait(), 30)  # the order stops at the payment
    assert (await status(handle)).waiting_for_events == ["paid"]
    await handle.signal("event", ExternalEvent(name="paid", data={"provider": "alipay"}))
    await deliver(handle)
    await settled(handle, store)
    await asyncio.wait_for(follower, 30)  # the long poll ends with the order
    history = await handle.fetch_history()
    tasks = sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in history.events)
    # Woken at the payment, the scan, the courier's events and the feedback, not after the tasks that start an activity.
    assert seen[-1] is True and True not in seen[:-1]
    assert 4 <= len(seen) - 1 < tasks


async def test_anomalous_order_waits_for_a_person_then_approve(start, store: Store):
    _order, handle = await start(**NEEDS_REVIEW)
    view = await wait_until(handle, awaiting_decision)
    task = view.pending_user_tasks[0]
    assert view.status == "awaiting_review" and task.node == "manual_review"
    assert task.outcomes == ["approve", "edit", "merge", "reject"] and task.role == "support_agent"
    assert task.details == [{"code": "phone_invalid", "reason": "phone '****' is not a valid mobile number"}]

    receipt: ReviewReceipt = await handle.execute_update(
        "review", ReviewDecision(decision="approve", agent="amy", reason="called the customer"), result_type=ReviewReceipt
    )
    assert (receipt.node, receipt.decision, receipt.next) == ("manual_review", "approve", "stock_gate")
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed"
    [decision] = result.decisions
    assert (decision.agent, decision.decision, decision.reason, decision.via) == ("amy", "approve", "called the customer", "update")


async def test_reject_releases_reserved_stock(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(phone="13900000000")  # blacklisted
    view = await wait_until(handle, awaiting_decision)
    assert [f["code"] for f in view.pending_user_tasks[0].details] == ["blacklisted_phone"]
    assert store.stock_levels()["TEA-001"][1] == before["TEA-001"][1] + 2  # held while a person decides

    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy", reason="fraud"))
    result = await settled(handle, store)
    assert result.status == "rejected"
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["release_stock"]
    assert reserved(store, order.order_id) == {"TEA-001": (2, "released"), "MUG-002": (1, "released")}
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
    assert column(store, "SELECT kind FROM notifications WHERE order_id = ?", order.order_id) == ["rejected"]


async def test_review_by_plain_signal(start, store: Store):
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    await handle.signal("review", ReviewDecision(decision="reject", agent="bob", reason="by signal"))
    result = await settled(handle, store)
    assert result.status == "rejected"
    assert [(d.agent, d.via) for d in result.decisions] == [("bob", "signal")]


async def test_invalid_signal_is_ignored_not_applied(start, store: Store):
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    await handle.signal("review", ReviewDecision(decision="ship-it", agent="bob"))
    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy"))
    result = await settled(handle, store)
    assert [(d.agent, d.decision) for d in result.decisions] == [("amy", "reject")]


@pytest.mark.parametrize(
    "decision, message",
    [
        (
            ReviewDecision(decision="ship-it", agent="amy"),
            "'ship-it' is not an outcome of 'manual_review'; allowed: approve, edit, merge, reject",
        ),
        (ReviewDecision(decision="approve", agent="amy", role="warehouse"), "must be decided by role 'support_agent', not 'warehouse'"),
        (ReviewDecision(decision="approve", agent="amy", changes=OrderEdit(phone="13800000000")), "only with the 'edit' decision"),
    ],
)
async def test_validator_rejects_bad_decisions_and_changes_nothing(start, decision, message):
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update("review", decision)
    assert message in raised.value.cause.message
    view = await status(handle)
    assert view.decisions == [] and view.pending_user_tasks[0].node == "manual_review"
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))


async def test_review_when_not_awaiting_is_rejected(start):
    order, handle = await start()
    await shipped(handle)
    with pytest.raises(WorkflowUpdateFailedError) as raised:
        await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
    assert f"order {order.order_id} is not awaiting a decision (status: shipped)" == raised.value.cause.message
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))


async def test_edit_changes_the_order_and_reviews_it_again(start, store: Store):
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    await handle.execute_update("review", ReviewDecision(decision="edit", agent="amy", changes=OrderEdit(phone="13722223333")))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed"
    assert [s.node for s in result.steps].count("auto_review") == 2


# -- cancellation at every stage undoes, in reverse, what was done ----------------------------


async def test_cancel_at_review_releases_the_stock(start, store: Store, address):
    before = store.stock_levels()
    order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind"))
    result = await settled(handle, store)
    assert result.status == "cancelled"
    assert next(s for s in result.steps if s.node == "manual_review").outcome == "cancelled"  # not left "running"
    assert store.stock_levels() == before
    # What support reads: the stock went back, none of it is listed as held.
    shown = await cli("status", order.order_id, address=address)
    assert "stock: released" in shown.stdout and "stock: from" not in shown.stdout, shown.stdout
    with pytest.raises(RPCError, match="completed"):
        await handle.execute_update("cancel", CancelRequest(reason="again"))


async def test_cancel_while_picking_drops_the_pick_list_and_releases_the_stock(start, store: Store):
    before = store.stock_levels()
    order, handle = await start()
    await wait_until(handle, waiting_for("scanned"))
    await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind"))
    result = await settled(handle, store)
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["cancel_pick_list", "release_stock"]
    assert column(store, "SELECT state FROM pick_lists WHERE order_id = ?", order.order_id) == ["cancelled"]
    assert store.stock_levels() == before


async def test_cancel_after_packing_voids_the_waybill_with_no_carrier_booked(start, store: Store):
    before = store.stock_levels()
    order, handle = await start(items=[{"sku": "RICE-004", "quantity": 6, "unit_price": "89.00"}])  # 60 kg: no carrier
    await wait_until(handle, waiting_for("scanned"))
    await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(order)))
    view = await wait_until(handle, awaiting_decision)
    task = view.pending_user_tasks[0]
    assert (task.node, task.outcomes, task.details["type"]) == ("handoff_failed", ["retry", "cancel"], "NoCarrier")
    assert "SafeFreight takes at most 50 kg" in task.details["message"]
    await handle.execute_update("review", ReviewDecision(decision="cancel", agent="amy", reason="too heavy for any carrier"))
    result = await settled(handle, store)
    assert result.status == "cancelled"
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["void_waybill", "cancel_pick_list", "release_stock"]
    assert column(store, "SELECT state FROM waybills WHERE order_id = ?", order.order_id) == ["void"]
    assert store.rows("SELECT * FROM carrier_bookings WHERE order_id = ?", order.order_id) == []
    assert store.stock_levels() == before


async def test_cancel_in_transit_becomes_an_intercept_request(start, store: Store):
    before = store.stock_levels()
    order, handle = await start()
    await shipped(handle)
    await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind", by="amy"))
    result = await settled(handle, store)
    assert result.status == "cancelled" and result.reason == "cancelled by amy: customer changed their mind"
    undo = [(s.node, s.activity) for s in result.steps if s.type == "compensation"]
    assert undo == [
        ("handoff", "intercept_shipment"),
        ("book_carrier", "cancel_booking"),
        ("pack", "void_waybill"),
        ("pick", "cancel_pick_list"),
        ("reserve_stock", "release_stock"),
    ]
    assert column(store, "SELECT state FROM carrier_bookings WHERE order_id = ?", order.order_id) == ["intercept_requested"]
    [request] = store.rows("SELECT channel, recipient FROM notifications WHERE order_id = ? AND kind = 'intercept_request'", order.order_id)
    assert request == {"channel": "carrier", "recipient": "CityCourier"}
    # The parcel is with the carrier: its waybill stays valid and the stock stays out until the intercept returns it.
    assert column(store, "SELECT state FROM waybills WHERE order_id = ?", order.order_id) == ["active"]
    assert column(store, "SELECT state FROM pick_lists WHERE order_id = ?", order.order_id) == ["open"]  # its goods left
    assert store.stock_levels()["TEA-001"][0] == before["TEA-001"][0] - 2


async def test_a_delivered_order_is_returned_not_cancelled(start, store: Store, address: str, console):
    order, handle = await start()
    await shipped(handle)
    await track(handle, "delivered")
    await wait_until(handle, waiting_for("feedback"))
    refused = await cli("cancel", order.order_id, "--reason", "changed my mind", address=address, signed=console.of("amy"))
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith(f"orderops: refused: order {order.order_id} passed 'record_delivery' at ")
    assert refused.stderr.strip().endswith("a delivered order is returned instead (orderops return)")
    assert column(store, "SELECT state FROM carrier_bookings WHERE order_id = ?", order.order_id) == ["delivered"]
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 4}))
    assert (await settled(handle, store)).status == "completed"


async def test_two_courier_scans_in_one_instant_both_count(start, store: Store):
    _order, handle = await start()
    await shipped(handle)
    # Two failed attempts reported together reach the order in the same workflow task.
    await handle.signal("event", ExternalEvent(name="delivery_failed", data={"note": "first"}))
    await handle.signal("event", ExternalEvent(name="delivery_failed", data={"note": "second"}))
    await track(handle, "delivery_failed")
    view = await wait_until(handle, awaiting_decision)
    assert view.pending_user_tasks[0].details == {"status": "delivery_failed", "failed_attempts": 3, "parcels_out": 1}
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))
    await settled(handle, store)


async def test_cancel_while_the_reservation_is_in_flight_still_releases_it(start, store: Store):
    before = store.stock_levels()
    with store.transaction():  # the warehouse is busy (its write lock held): reserve_stock cannot commit yet
        order, handle = await start()
        await wait_until(handle, lambda v: any(s.node == "reserve_stock" and s.outcome == "running" for s in v.steps))
        await handle.execute_update("cancel", CancelRequest(reason="customer changed their mind"))
    result = await settled(handle, store)
    assert result.status == "cancelled"
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]
    assert all(state != "active" for _, state in reserved(store, order.order_id).values())


async def test_temporal_workflow_cancel_compensates_like_orderops_cancel(start, store: Store):
    before = store.stock_levels()
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    await handle.cancel()  # what `temporal workflow cancel` sends
    result = await settled(handle, store)
    assert (result.status, result.reason) == ("cancelled", "cancelled by temporal: workflow cancellation requested")
    assert [s.activity for s in result.steps if s.type == "compensation"] == ["release_stock"]
    assert store.stock_levels()["TEA-001"] == before["TEA-001"]


# -- stock: split, backorder ------------------------------------------------------------------


def stock_by_warehouse(store: Store, *skus: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(sku, warehouse) -> (on hand, reserved), over the warehouse's bins."""
    marks = ", ".join("?" * len(skus))
    rows = store.rows(
        f"SELECT sku, warehouse, SUM(on_hand) AS on_hand, SUM(reserved) AS reserved FROM stock WHERE sku IN ({marks}) GROUP BY sku, warehouse",
        *skus,
    )
    return {(r["sku"], r["warehouse"]): (r["on_hand"], r["reserved"]) for r in rows}


async def test_no_single_warehouse_splits_the_order_into_two_parcels(start, store: Store):
    before = stock_by_warehouse(store, "LIGHTER-005", "VASE-009")
    order, handle = await start(
        items=[{"sku": "LIGHTER-005", "quantity": 1, "unit_price": "12.00"}, {"sku": "VASE-009", "quantity": 1, "unit_price": "260.00"}]
    )
    await shipped(handle)
    first, second = column(store, "SELECT tracking_no FROM waybills WHERE order_id = ? ORDER BY warehouse", order.order_id)
    # Each parcel is signed for on its own: the order is delivered when both are.
    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei", "tracking_no": first}))
    view = await wait_until(handle, lambda v: v.steps[-1].node == "await_tracking" and v.steps[-2].node == "tracking_gate")
    assert "record_delivery" not in [s.node for s in view.steps]
    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei", "tracking_no": second}))
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5}))
    result = await settled(handle, store)
    assert result.status == "completed" and result.variables["reservation"]["split"] is True
    bookings = store.rows("SELECT warehouse, carrier, state FROM carrier_bookings WHERE order_id = ? ORDER BY warehouse", order.order_id)
    assert bookings == [
        {"warehouse": "BJ", "carrier": "CityCourier", "state": "delivered"},
        {"warehouse": "GZ", "carrier": "SafeFreight", "state": "delivered"},  # hazardous: only SafeFreight may
    ]
    assert len(set(column(store, "SELECT tracking_no FROM waybills WHERE order_id = ?", order.order_id))) == 2
    # Each parcel's goods left the warehouse that shipped it, and no other.
    expected = dict(before)
    for key in (("LIGHTER-005", "GZ"), ("VASE-009", "BJ")):
        expected[key] = (before[key][0] - 1, before[key][1])
    assert stock_by_warehouse(store, "LIGHTER-005", "VASE-009") == expected


async def test_short_stock_backorders_until_restocked(start, store: Store, address: str):
    [free] = store.rows(
        "SELECT on_hand - reserved AS n FROM stock WHERE sku = 'LAMP-007' AND warehouse = 'SH'"
    )  # other tests restock lamps
    order, handle = await start(items=[{"sku": "LAMP-007", "quantity": free["n"] + 2, "unit_price": "120.00"}])
    view = await wait_until(handle, waiting_for("restocked"))
    assert view.status == "backordered"
    assert store.rows("SELECT sku, warehouse, quantity, state FROM purchase_requisitions WHERE order_id = ?", order.order_id) == [
        {"sku": "LAMP-007", "warehouse": "SH", "quantity": 2, "state": "open"}
    ]
    assert column(store, "SELECT kind FROM notifications WHERE order_id = ?", order.order_id) == ["backorder"]

    received = await cli("restock", "LAMP-007", "SH", "10", address=address)
    assert received.returncode == 0, received.stderr
    assert f"order {order.order_id}: restocked event sent" in received.stdout
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed"
    assert column(store, "SELECT state FROM purchase_requisitions WHERE order_id = ?", order.order_id) == ["received"]
    assert [s.node for s in result.steps if s.node in ("reserve_stock", "re_reserve")] == ["reserve_stock", "re_reserve"]


# -- picking: scan verification ----------------------------------------------------------------


async def test_scan_mismatch_is_repicked_then_a_second_one_goes_to_a_person(start, store: Store):
    order, handle = await start()
    wrong = {"items": [{"sku": "TEA-001", "quantity": 1}, {"sku": "MUG-002", "quantity": 1}], "picker": "p7"}
    await wait_until(handle, waiting_for("scanned"))
    await handle.signal("event", ExternalEvent(name="scanned", data=wrong))
    await wait_until(handle, lambda v: "scanned" in v.waiting_for_events and v.steps[-1].node == "await_scan")
    await handle.signal("event", ExternalEvent(name="scanned", data=wrong))
    view = await wait_until(handle, awaiting_decision)
    [task] = view.pending_user_tasks
    assert (task.node, task.role) == ("pick_anomaly", "warehouse_supervisor")
    assert task.details["differences"] == ["TEA-001: expected 2, scanned 1"] and task.details["mismatches"] == 2
    assert len(column(store, "SELECT id FROM notifications WHERE order_id = ? AND kind = 'repick'", order.order_id)) == 2
    await handle.execute_update("review", ReviewDecision(decision="rescan", agent="lin", role="warehouse_supervisor", reason="recounted"))
    await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(order)))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed" and result.variables["scan_check"] == {
        "matched": True,
        "differences": [],
        "scans": 3,
        "mismatches": 2,
    }


# -- carriers ----------------------------------------------------------------------------------


async def test_a_carrier_refusing_bookings_falls_back_to_the_next(start, store: Store, address: str):
    down = await cli("carrier-outage", "CityCourier", "--reason", "booking API down", address=address)
    assert down.returncode == 0, down.stderr
    try:
        order, handle = await start()
        await shipped(handle)
    finally:
        assert (await cli("carrier-outage", "CityCourier", "--clear", address=address)).returncode == 0
    await deliver(handle)
    result = await settled(handle, store)
    [booking] = result.variables["booking"]["bookings"]
    assert booking["carrier"] == "SwiftExpress" and booking["meets_promise"] is True
    assert "CityCourier booking refused: booking API down" in booking["refused"]
    assert column(store, "SELECT carrier FROM carrier_bookings WHERE order_id = ?", order.order_id) == ["SwiftExpress"]
    text = (await cli("status", order.order_id, address=address)).stdout
    assert (
        f"carrier: SwiftExpress for {booking['tracking_no']}" in text
        and "passed over: CityCourier booking refused: booking API down" in text
    )


# -- delivery ----------------------------------------------------------------------------------


async def test_failed_deliveries_are_reattempted_then_go_to_a_person(start, store: Store):
    order, handle = await start()
    await shipped(handle)
    await track(handle, "delivery_failed", "delivery_failed")
    view = await wait_until(handle, lambda v: "delivered" in v.waiting_for_events and v.steps[-1].node == "await_tracking")
    assert not view.pending_user_tasks  # two failures: the courier tries again
    await track(handle, "delivery_failed")
    view = await wait_until(handle, awaiting_decision)
    [task] = view.pending_user_tasks
    assert task.node == "delivery_exception" and task.details == {"status": "delivery_failed", "failed_attempts": 3, "parcels_out": 1}
    await handle.execute_update("review", ReviewDecision(decision="reattempt", agent="amy", reason="customer home tomorrow"))
    await track(handle, "delivered")
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 3}))
    assert (await settled(handle, store)).status == "completed"
    kinds = column(store, "SELECT kind FROM notifications WHERE order_id = ? AND channel = 'sms' ORDER BY id", order.order_id)
    assert kinds.count("delivery_failed") == 3 and kinds.count("delivered") == 1


# -- changes -----------------------------------------------------------------------------------


async def test_address_change_is_accepted_until_handoff_and_refused_after(start, store: Store, address: str, console):
    order, handle = await start()
    await wait_until(handle, waiting_for("scanned"))
    changed = await cli(
        "change-address",
        order.order_id,
        "--province",
        "Zhejiang",
        "--city",
        "Hangzhou",
        "--street",
        "1 West Lake Road",
        "--postcode",
        "310000",
        address=address,
        signed=console.of("amy"),
    )
    assert changed.returncode == 0, changed.stderr
    assert "delivery address is now Zhejiang Hangzhou 1 West Lake Road 310000" in changed.stdout
    view = await shipped(handle)
    assert view.order.address.city == "Hangzhou" and "address_changed" in [e.name for e in view.events]
    [waybill] = store.rows("SELECT label_path FROM waybills WHERE order_id = ?", order.order_id)
    assert "Hangzhou" in Path(waybill["label_path"]).read_text()

    late = await cli(
        "change-address",
        order.order_id,
        "--province",
        "Beijing",
        "--city",
        "Beijing",
        "--street",
        "2 Chang'an Avenue",
        address=address,
        signed=console.of("amy"),
    )
    assert late.returncode == 1 and late.stderr.count("\n") == 1
    assert "reached 'handoff'" in late.stderr and "ask the carrier to redirect it" in late.stderr
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("change_address", AddressChange(address=Address(province="X", city="Y", street="Z street"), by="c"))
    await handle.execute_update("cancel", CancelRequest(reason="test cleanup"))
    assert (await settled(handle, store)).status == "cancelled"


async def test_orders_of_one_customer_waiting_at_review_merge(start, store: Store, address: str, console):
    keep, keep_handle = await start(**NEEDS_REVIEW)
    other, other_handle = await start(
        phone="12345", customer_id=keep.customer_id, items=[{"sku": "BOOK-006", "quantity": 1, "unit_price": "59.00"}]
    )
    for handle in (keep_handle, other_handle):
        await wait_until(handle, awaiting_decision)
    merged = await cli("merge", other.order_id, "--into", keep.order_id, address=address, signed=console.of("amy"))
    assert merged.returncode == 0, merged.stderr
    result = await settled(other_handle, store)
    assert (result.status, result.end_node) == ("cancelled", "merged")
    assert all(state == "released" for _, state in reserved(store, other.order_id).values())
    view = await wait_until(keep_handle, awaiting_decision)  # reviewed again: the phone is still wrong
    assert sorted((i.sku, i.quantity) for i in view.order.items) == [("BOOK-006", 1), ("MUG-002", 1), ("TEA-001", 2)]
    assert reserved(store, keep.order_id)["BOOK-006"] == (1, "active")
    await keep_handle.execute_update("cancel", CancelRequest(reason="test cleanup"))
    assert (await settled(keep_handle, store)).status == "cancelled"


# -- definitions in flight -------------------------------------------------------------------------


async def test_editing_the_yaml_does_not_change_an_order_in_flight(start, tmp_path: Path, store: Store):
    shutil.copytree(ROOT / "process_defs", tmp_path / "defs")
    path = tmp_path / "defs" / "standard.yaml"
    original = load_definition(path, KNOWN_ACTIVITIES)
    _order, handle = await start(original, **NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)

    # An ops engineer now makes approval go straight to rejection, as a new version.
    path.write_text(
        path.read_text()
        .replace("version: 5", "version: 6")
        .replace("      approve: stock_gate\n      edit", "      approve: rejected\n      edit")
    )
    assert load_definition(path, KNOWN_ACTIVITIES).sha256 != original.sha256

    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed"
    assert (result.process.version, result.process.sha256) == (5, original.sha256)


async def test_workflow_side_validation_of_a_raw_update_payload(start, client, store: Store):
    _order, handle = await start(**NEEDS_REVIEW)
    await wait_until(handle, awaiting_decision)
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("review", {"decision": "approve", "agent": "   "})
    await handle.signal("review", {"decision": "approve", "agent": "   "})
    await handle.execute_update("review", ReviewDecision(decision="reject", agent="amy"))
    result = await settled(handle, store)
    assert [(d.agent, d.decision) for d in result.decisions] == [("amy", "reject")]
