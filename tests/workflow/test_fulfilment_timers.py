"""Fulfilment paths that take hours or days (payment wait, waves, lost parcels, restock limit), in seconds.

Each order's own clock is fast-forwarded on the time-skipping server (conftest `ts_env`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from activities.store import Store
from orderops.messages import ExternalEvent, ReviewDecision
from tests.helpers import (
    awaiting_decision,
    fast_forward,
    fast_forward_to,
    finish,
    scan_of,
    settled,
    shipped,
    status,
    wait_until,
    waiting_for,
)

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden


async def test_an_unpaid_order_is_cancelled_when_the_payment_does_not_come(ts_env, ts_start, ts_store: Store):
    before = ts_store.stock_levels()
    order, handle = await ts_start(paid=False)
    await wait_until(handle, waiting_for("paid"))
    await fast_forward(ts_env, handle, timedelta(minutes=31))
    result = await settled(handle, ts_store)
    assert (result.status, result.end_node, result.reason) == ("cancelled", "unpaid", "payment not confirmed within 30 minutes")
    assert ts_store.stock_levels()["TEA-001"] == before["TEA-001"]
    assert [r["kind"] for r in ts_store.rows("SELECT kind FROM notifications WHERE order_id = ?", order.order_id)] == ["unpaid_cancelled"]


async def test_orders_of_one_warehouse_are_picked_in_one_wave(ts_env, ts_start, ts_store: Store):
    wave = {"picking": {"mode": "wave", "wave_window": "1h", "max_scan_mismatches": 2}}
    started = [await ts_start(items=[{"sku": "BOOK-006", "quantity": n, "unit_price": "59.00"}], variables=wave) for n in (1, 2, 3)]
    for _, handle in started:
        await wait_until(handle, lambda v: "wave_window" in v.current_nodes)
    for _, handle in started:
        await fast_forward(ts_env, handle, timedelta(hours=1, minutes=1))
    for _order, handle in started:
        view = await wait_until(handle, waiting_for("scanned"))
        await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(view.order)))
        await shipped(handle)
        await handle.signal("event", ExternalEvent(name="delivered"))
        assert (await finish(handle, ts_store)).status == "completed"
    results = [await settled(handle, ts_store) for _, handle in started]
    waves = {tuple(w["id"] for w in r.variables["pick_list"]["waves"]) for r in results}
    assert len(waves) == 1  # one wave, released once, for all three
    [walk] = [r.variables["pick_list"]["waves"][0]["walk"] for r in results[:1]]
    assert walk == [{"bin": "A-01-04", "sku": "BOOK-006", "quantity": 6, "orders": sorted(o.order_id for o, _ in started)}]


async def test_a_parcel_not_scanned_for_days_is_possibly_lost_and_reshipped(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start(items=[{"sku": "TEA-001", "quantity": 1, "unit_price": "68.00"}])
    await shipped(handle)
    first = ts_store.rows("SELECT tracking_no FROM carrier_bookings WHERE order_id = ?", order.order_id)
    # Past the promise (recorded; the order keeps waiting from then on), then 5 days without a
    # courier scan, short of the 24 hours support then has to decide.
    view = await wait_until(handle, waiting_for("delivered"))
    await fast_forward_to(ts_env, handle, datetime.fromisoformat(view.promise["deliver_by"]) + timedelta(minutes=1))
    view = await wait_until(handle, lambda v: bool(v.breaches) and "delivered" in v.waiting_for_events)
    await fast_forward_to(ts_env, handle, datetime.fromisoformat(view.breaches[0]["at"]) + timedelta(days=5, hours=1))
    view = await wait_until(handle, awaiting_decision)
    [task] = view.pending_user_tasks
    assert task.node == "possibly_lost" and task.outcomes == ["found", "reship", "refund"]
    await handle.execute_update("review", ReviewDecision(decision="reship", agent="amy", reason="carrier lost it"))
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="delivered"))
    result = await finish(handle, ts_store)
    assert result.status == "completed"
    bookings = ts_store.rows("SELECT round, state, tracking_no FROM carrier_bookings WHERE order_id = ? ORDER BY round", order.order_id)
    assert [(b["round"], b["state"]) for b in bookings] == [(1, "lost"), (2, "delivered")]
    assert bookings[0]["tracking_no"] == first[0]["tracking_no"] != bookings[1]["tracking_no"]
    kinds = [
        r["kind"]
        for r in ts_store.rows("SELECT kind FROM notifications WHERE order_id = ? AND channel = 'sms' ORDER BY id", order.order_id)
    ]
    assert kinds.count("shipped") == 2 and "reshipped" in kinds
    assert ts_store.rows("SELECT state, COUNT(*) AS n FROM reservations WHERE order_id = ? GROUP BY state", order.order_id) == [
        {"state": "shipped", "n": 2}
    ]


async def test_a_lost_parcel_can_be_refunded_instead(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start()
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="lost", data={"carrier_note": "damaged in sorting centre"}))
    await wait_until(handle, awaiting_decision)
    await handle.execute_update("review", ReviewDecision(decision="refund", agent="amy", reason="customer prefers money back"))
    result = await settled(handle, ts_store)
    assert (result.status, result.end_node) == ("cancelled", "refunded")
    assert ts_store.rows("SELECT reason, amount FROM refunds WHERE order_id = ?", order.order_id) == [
        {"reason": "lost_in_transit", "amount": "181.50"}
    ]


async def test_stock_that_never_arrives_goes_to_a_supervisor(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start(items=[{"sku": "LAMP-007", "quantity": 40, "unit_price": "120.00"}])
    await wait_until(handle, waiting_for("restocked"))
    await fast_forward(ts_env, handle, timedelta(days=3, hours=1))
    view = await wait_until(handle, awaiting_decision)
    [task] = view.pending_user_tasks
    assert (task.node, task.role, task.outcomes) == ("stock_escalation", "supervisor", ["wait", "cancel"])
    assert task.details == "LAMP-007 short by 37 at SH"
    await handle.execute_update("review", ReviewDecision(decision="cancel", agent="sam", role="supervisor", reason="supplier out"))
    result = await settled(handle, ts_store)
    assert (result.status, result.end_node) == ("failed", "out_of_stock")
    # Nobody waits for the goods any more: the purchase is called off.
    assert [r["state"] for r in ts_store.rows("SELECT state FROM purchase_requisitions WHERE order_id = ?", order.order_id)] == [
        "cancelled"
    ]
    assert (await status(handle)).status == "failed"
