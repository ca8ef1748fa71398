"""The promise as the clock: deadlines, at-risk, breaches and coupons, over days of virtual time.

Each order starts with time skipping off, runs its quick steps in real time, and
is then fast-forwarded to exactly the moment a test needs.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from activities.store import Store
from orderops import open_orders
from orderops import search_attributes as sa
from orderops.history.timeline import build_timeline
from orderops.messages import ExternalEvent, OrderStatusView, ReviewDecision
from tests.helpers import (
    awaiting_decision,
    definition,
    fast_forward_to,
    finish,
    promise_of,
    settled,
    shipped,
    status,
    wait_until,
)

# `make golden` records the histories of the orders these tests start (tests/golden).
pytestmark = pytest.mark.golden


async def at_signoff(handle) -> OrderStatusView:
    return await shipped(handle)


async def test_promise_is_made_at_acceptance_and_kept(ts_start, ts_store: Store):
    order, handle = await ts_start()
    view = await at_signoff(handle)
    ship_by, deliver_by = promise_of(view)
    assert view.promise["tier"] == "tier1" and view.promise["service_level"] == "standard"
    assert deliver_by > ship_by > datetime.fromisoformat(view.promise["accepted_at"])
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.PROMISE_AT) == deliver_by and attributes.get(sa.SHIP_BY) == ship_by
    assert (attributes.get(sa.REGION), attributes.get(sa.SERVICE_LEVEL)) == ("tier1", "standard")

    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei"}))
    result = await finish(handle, ts_store)
    assert result.status == "completed"
    assert (result.at_risk, result.breaches, result.variables["delay_compensation"]) == ([], [], None)
    assert ts_store.rows("SELECT * FROM delay_compensations WHERE order_id = ?", order.order_id) == []


async def test_late_delivery_breaches_the_receive_at_the_promise_and_is_compensated_once(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start()
    view = await at_signoff(handle)
    _ship_by, deliver_by = promise_of(view)

    assert await fast_forward_to(ts_env, handle, deliver_by + timedelta(hours=6))
    view = await wait_until(handle, lambda v: v.breaches and "delivered" in v.waiting_for_events)
    # The receive timed out at the promise, not after its own 5 days without a scan.
    [breach] = view.breaches
    assert (breach["node"], breach["expression"]) == ("await_tracking", "promise.deliver_by")
    assert abs(datetime.fromisoformat(breach["at"]) - deliver_by) < timedelta(seconds=5)
    assert [r["node"] for r in view.at_risk_log] == ["await_tracking"]
    attributes = (await handle.describe()).typed_search_attributes
    # Breached now; no longer "at risk" of it: the flag is cleared when the step ends.
    assert attributes.get(sa.BREACHED) is True and attributes.get(sa.AT_RISK) is False
    await counted(ts_env.client, "orderops_orders_breached_now", handle, 1)
    await counted(ts_env.client, "orderops_orders_at_risk_now", handle, 0)

    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei"}))
    result = await finish(handle, ts_store)
    assert result.status == "completed"
    assert result.variables["delay_compensation"] == {"granted": True, "amount": "10", "currency": "CNY"}
    [row] = ts_store.rows("SELECT amount, service_level FROM delay_compensations WHERE order_id = ?", order.order_id)
    assert row == {"amount": "10", "service_level": "standard"}
    kinds = {(r["kind"], r["channel"]) for r in ts_store.rows("SELECT kind, channel FROM notifications WHERE order_id = ?", order.order_id)}
    assert {("at_risk", "ops"), ("deliver_by_missed", "ops"), ("delay_compensation", "sms")} <= kinds

    # The audit timeline shows the promise, when the order went at risk and when it breached.
    history = await handle.fetch_history()
    timeline = build_timeline(history)
    assert timeline.promise["deliver_by"] == view.promise["deliver_by"]
    assert (
        timeline.process.promise_policy_sha256 == definition("standard.yaml").promise_policy_sha256
        and len(timeline.process.promise_policy_sha256) == 64
    )
    assert timeline.at_risk_at < timeline.breached_at
    assert abs(timeline.breached_at - deliver_by) < timedelta(seconds=5)
    # At risk, the later activities ran with the top task priority.
    priorities = {
        e.activity_task_scheduled_event_attributes.activity_id.rsplit("-", 1)[
            0
        ]: e.activity_task_scheduled_event_attributes.priority.priority_key
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert priorities["pick"] == 3 and priorities["record_delivery"] == 1


@pytest.mark.parametrize("cause", ["address_changed", "delivery_rescheduled", "delivery_refused"])
async def test_no_coupon_when_the_customer_caused_the_delay(ts_env, ts_start, ts_store: Store, cause: str):
    order, handle = await ts_start()
    view = await at_signoff(handle)
    _, deliver_by = promise_of(view)
    await handle.signal("event", ExternalEvent(name=cause, data={}))
    await fast_forward_to(ts_env, handle, deliver_by + timedelta(hours=6))
    await wait_until(handle, lambda v: v.breaches and "delivered" in v.waiting_for_events)
    await handle.signal("event", ExternalEvent(name="delivered"))
    result = await finish(handle, ts_store)
    assert result.breaches and result.variables["delay_compensation"] is None
    assert "compensate_delay" not in [s.node for s in result.steps]
    assert ts_store.rows("SELECT * FROM delay_compensations WHERE order_id = ?", order.order_id) == []


async def test_a_decision_past_ship_by_takes_the_breach_path(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start("deadlines.yaml")
    view = await wait_until(handle, awaiting_decision)
    ship_by, _ = promise_of(view)
    assert view.pending_user_tasks[0].deadline == ship_by  # its own 10 days are cut to the promise

    await fast_forward_to(ts_env, handle, ship_by + timedelta(minutes=5))
    result = await settled(handle, ts_store)
    assert [(b["node"], b["expression"]) for b in result.breaches] == [("approve", "promise.ship_by")]
    assert [s.node for s in result.steps] == ["promise", "approve", "late_notice", "pack"]
    assert next(s for s in result.steps if s.node == "approve").outcome == "breached"
    # Once missed, the deadline is not enforced again: `pack` ran instead of breaching at once.
    assert next(s for s in result.steps if s.node == "pack").outcome == "completed"
    assert (await handle.describe()).typed_search_attributes.get(sa.BREACHED) is True
    kinds = {r["kind"] for r in ts_store.rows("SELECT kind FROM notifications WHERE order_id = ?", order.order_id)}
    assert kinds == {"at_risk", "ship_by_missed"}


async def counted(client: Client, gauge: str, handle, expected: int) -> None:
    """Whether the gauge's visibility query counts this order, once visibility has caught up."""
    deadline = time.monotonic() + 10
    while (found := (await client.count_workflows(f"{open_orders.query(gauge)} AND WorkflowId = '{handle.id}'")).count) != expected:
        assert time.monotonic() < deadline, f"{gauge} counts {found} for {handle.id}, not {expected}"
        await asyncio.sleep(0.1)


async def test_at_risk_near_the_deadline_then_cleared_when_the_step_ends_in_time(ts_env, ts_start, ts_store: Store):
    order, handle = await ts_start("deadlines.yaml")
    view = await wait_until(handle, awaiting_decision)
    ship_by, _ = promise_of(view)
    accepted = datetime.fromisoformat(view.promise["accepted_at"])
    window = ship_by - accepted

    assert await fast_forward_to(ts_env, handle, accepted + window * 0.75)
    assert (await status(handle)).at_risk is None  # 75% of the window: not yet
    assert await fast_forward_to(ts_env, handle, accepted + window * 0.85)
    view = await wait_until(handle, lambda v: v.at_risk is not None)
    assert view.at_risk["node"] == "approve"
    assert (await handle.describe()).typed_search_attributes.get(sa.AT_RISK) is True
    await counted(ts_env.client, "orderops_orders_at_risk_now", handle, 1)  # the worker's gauge of orders at risk now
    await wait_until(
        handle, lambda v: bool(ts_store.rows("SELECT 1 FROM notifications WHERE order_id = ? AND kind = 'at_risk'", order.order_id))
    )

    await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
    result = await settled(handle, ts_store)
    # `pack` starts past 80% of the same window, so it is at risk from its start, and clears too.
    assert (result.status, result.breaches, [r["node"] for r in result.at_risk]) == ("completed", [], ["approve", "pack"])
    assert (await handle.describe()).typed_search_attributes.get(sa.AT_RISK) is False
    await counted(ts_env.client, "orderops_orders_at_risk_now", handle, 0)


async def test_a_task_whose_retries_would_outlast_its_deadline_breaches(start, store: Store):
    _order, handle = await start("retry_deadline.yaml")
    result = await settled(handle, store)
    assert (result.status, result.end_node) == ("failed", "late")  # the breach path, not on_error
    assert [b["node"] for b in result.breaches] == ["flaky"]
