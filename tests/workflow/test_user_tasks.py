"""Every user task of the shipped definitions: each outcome, and the timeout, goes where the definition says.

Each case drives a real order on the time-skipping server to one user task, decides it (or lets
its clock run past the task's timeout), and checks the very next step the order takes, then ends
the order and checks what it leaves behind (`settled`). A user task added to `standard.yaml` or
`returns.yaml` fails `test_every_user_task_has_a_driver` until it gets a driver here.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from activities.inputs import ReturnRequest
from activities.store import Store
from orderops.client import OrderClient
from orderops.messages import CancelRequest, ExternalEvent, ReviewDecision
from orderops.order import OrderEdit
from orderops.process.lint import load
from orderops.process.model import End, UserTask
from tests.helpers import KNOWN_ACTIVITIES, ROOT, fast_forward, scan_of, settled, shipped, status, wait_until, waiting_for

PROCESSES = {name: load(ROOT / "process_defs" / f"{name}.yaml", KNOWN_ACTIVITIES) for name in ("standard", "returns")}
NODES = {name: definition.node_map() for name, (definition, _) in PROCESSES.items()}
TIMEOUT = None  # the case where nobody decides


@dataclass
class Ctx:
    env: object
    start: Callable
    store: Store


Driver = Callable[[Ctx], Awaitable[WorkflowHandle]]


async def at_task(handle: WorkflowHandle, node: str) -> WorkflowHandle:
    await wait_until(handle, lambda v: [t.node for t in v.pending_user_tasks] == [node])
    return handle


# -- standard.yaml -------------------------------------------------------------------------


async def at_manual_review(ctx: Ctx) -> WorkflowHandle:
    _, handle = await ctx.start(phone="12345")  # not a mobile number: a person must look
    return await at_task(handle, "manual_review")


async def at_escalated_review(ctx: Ctx) -> WorkflowHandle:
    handle = await at_manual_review(ctx)
    await fast_forward(ctx.env, handle, timedelta(hours=24, minutes=1))
    return await at_task(handle, "escalated_review")


async def at_stock_escalation(ctx: Ctx) -> WorkflowHandle:
    _, handle = await ctx.start(items=[{"sku": "LAMP-007", "quantity": 40, "unit_price": "120.00"}])
    await wait_until(handle, waiting_for("restocked"))
    await fast_forward(ctx.env, handle, timedelta(days=3, hours=1))
    return await at_task(handle, "stock_escalation")


async def at_pick_anomaly(ctx: Ctx) -> WorkflowHandle:
    _, handle = await ctx.start()
    wrong = {"items": [{"sku": "TEA-001", "quantity": 1}, {"sku": "MUG-002", "quantity": 1}], "picker": "p7"}
    for _ in range(2):  # picking.max_scan_mismatches
        await wait_until(handle, waiting_for("scanned"))
        await handle.signal("event", ExternalEvent(name="scanned", data=wrong))
        await wait_until(handle, lambda v: v.steps[-1].node != "await_scan" or v.steps[-1].outcome != "running")
    return await at_task(handle, "pick_anomaly")


async def at_pack_anomaly(ctx: Ctx) -> WorkflowHandle:
    order, handle = await ctx.start()
    await wait_until(handle, waiting_for("scanned"))
    # The pick list drifts from the order (a picker's edit on the floor): the post-pack check must catch it.
    [row] = ctx.store.rows("SELECT rowid, lines FROM pick_lists WHERE order_id = ? AND state = 'open'", order.order_id)
    lines = json.loads(row["lines"])
    lines[0]["quantity"] += 1
    with ctx.store.transaction() as db:
        db.execute("UPDATE pick_lists SET lines = ? WHERE rowid = ?", (json.dumps(lines), row["rowid"]))
    await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(order)))
    return await at_task(handle, "pack_anomaly")


async def at_handoff_failed(ctx: Ctx) -> WorkflowHandle:
    order, handle = await ctx.start(items=[{"sku": "RICE-004", "quantity": 6, "unit_price": "89.00"}])  # 60 kg: no carrier
    await wait_until(handle, waiting_for("scanned"))
    await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(order)))
    return await at_task(handle, "handoff_failed")


async def at_delivery_exception(ctx: Ctx) -> WorkflowHandle:
    _, handle = await ctx.start()
    await shipped(handle)
    for _ in range(3):  # delivery.max_attempts
        await wait_until(handle, waiting_for("delivery_failed"))
        await handle.signal("event", ExternalEvent(name="delivery_failed", data={}))
        await wait_until(handle, lambda v: v.steps[-1].node != "await_tracking" or v.steps[-1].outcome != "running")
    return await at_task(handle, "delivery_exception")


async def at_possibly_lost(ctx: Ctx) -> WorkflowHandle:
    _, handle = await ctx.start()
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="lost", data={"carrier_note": "damaged in sorting centre"}))
    return await at_task(handle, "possibly_lost")


# -- returns.yaml --------------------------------------------------------------------------


async def returned(ctx: Ctx, kind: str, **overrides) -> WorkflowHandle:
    """A delivered order, then its return (as `orderops return` starts it)."""
    order, handle = await ctx.start(**overrides)
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="delivered", data={"signer": "Li Wei"}))
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 4}))
    assert (await settled(handle, ctx.store)).status == "completed"
    request = ReturnRequest(original_order_id=order.order_id, kind=kind, reason="damaged")
    _, snapshot = PROCESSES["returns"]
    _, return_handle = await OrderClient(ctx.env.client).start_return(
        order.order_id, request, {"MUG-002": 1} if not overrides else None, snapshot
    )
    return return_handle


async def at_approve_return(ctx: Ctx) -> WorkflowHandle:
    handle = await returned(ctx, "refund", items=[{"sku": "TEA-001", "quantity": 4, "unit_price": "68.00"}])  # above the threshold
    return await at_task(handle, "approve_return")


async def at_inspection_problem(ctx: Ctx) -> WorkflowHandle:
    handle = await returned(ctx, "refund")
    await wait_until(handle, waiting_for("return_received"))
    # The returns desk reports a SKU that was never part of the return.
    await handle.signal("event", ExternalEvent(name="return_received", data={"items": [{"sku": "LAMP-007", "outcome": "restock"}]}))
    return await at_task(handle, "inspection_problem")


async def exchanged(ctx: Ctx) -> WorkflowHandle:
    handle = await returned(ctx, "exchange")
    await wait_until(handle, waiting_for("return_received"))
    await handle.signal("event", ExternalEvent(name="return_received", data={"items": [{"sku": "MUG-002", "outcome": "restock"}]}))
    return handle


async def at_outbound_problem(ctx: Ctx) -> WorkflowHandle:
    handle = await exchanged(ctx)
    await wait_until(handle, waiting_for("scanned"))
    await fast_forward(ctx.env, handle, timedelta(hours=4, minutes=1))  # nobody scans the replacement
    return await at_task(handle, "outbound_problem")


async def at_delivery_problem(ctx: Ctx) -> WorkflowHandle:
    handle = await exchanged(ctx)
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="lost", data={}))
    return await at_task(handle, "delivery_problem")


DRIVERS: dict[tuple[str, str], Driver] = {
    ("standard", "manual_review"): at_manual_review,
    ("standard", "escalated_review"): at_escalated_review,
    ("standard", "stock_escalation"): at_stock_escalation,
    ("standard", "pick_anomaly"): at_pick_anomaly,
    ("standard", "pack_anomaly"): at_pack_anomaly,
    ("standard", "handoff_failed"): at_handoff_failed,
    ("standard", "delivery_exception"): at_delivery_exception,
    ("standard", "possibly_lost"): at_possibly_lost,
    ("returns", "approve_return"): at_approve_return,
    ("returns", "inspection_problem"): at_inspection_problem,
    ("returns", "outbound_problem"): at_outbound_problem,
    ("returns", "delivery_problem"): at_delivery_problem,
}

CASES = [
    pytest.param(process, task, outcome, id=f"{process}-{task}-{outcome or 'timeout'}")
    for (process, task) in DRIVERS
    for outcome in [*NODES[process][task].outcomes, TIMEOUT]
]


def test_every_user_task_has_a_driver():
    tasks = {(name, node.id) for name, nodes in NODES.items() for node in nodes.values() if isinstance(node, UserTask)}
    assert tasks == set(DRIVERS)


async def decide(handle: WorkflowHandle, task: UserTask, outcome: str) -> None:
    changes = OrderEdit(phone="13722223333") if outcome == "edit" else None
    decision = ReviewDecision(decision=outcome, agent="amy", role=task.role, reason="test", node=task.id, changes=changes)
    await handle.execute_update("review", decision)


async def ended(handle: WorkflowHandle) -> bool:
    return (await handle.describe()).close_time is not None


async def conclude(handle: WorkflowHandle) -> None:
    """End an order still running after the case: cancel it, or finish a delivered one."""
    if await ended(handle):
        return
    try:
        await handle.execute_update("cancel", CancelRequest(reason="test over", by="test"))
    except (WorkflowUpdateFailedError, RPCError):  # refused, or aborted: the order closed as the update arrived
        if await ended(handle) or not (await status(handle)).current_nodes:  # it reached its end meanwhile
            return
        # Past cancel_until: a delivered order finishes with the customer's feedback.
        await wait_until(handle, waiting_for("feedback"))
        await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 4}))


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("process", "task_id", "outcome"), CASES)
async def test_each_user_task_outcome_and_timeout_takes_its_path(ts_env, ts_start, ts_store: Store, process, task_id, outcome):
    task: UserTask = NODES[process][task_id]
    handle = await DRIVERS[(process, task_id)](Ctx(ts_env, ts_start, ts_store))
    steps = (await status(handle)).steps
    at = len(steps) - 1
    assert steps[at].node == task_id

    if outcome is TIMEOUT:
        await fast_forward(ts_env, handle, task.timeout + timedelta(minutes=1))
    else:
        await decide(handle, task, outcome)
    view = await wait_until(
        handle, lambda v: v.steps[at].outcome != "running" and (len(v.steps) > at + 1 or v.end_reason is not None or not v.current_nodes)
    )
    step = view.steps[at]
    if outcome is TIMEOUT:
        assert step.outcome in ("timed_out", "breached"), step
        expected = task.on_breach if step.outcome == "breached" and task.on_breach else task.on_timeout
    else:
        assert (step.outcome, step.detail) == ("completed", f"{outcome} by amy")
        expected = task.outcomes[outcome]

    if isinstance(NODES[process][expected], End):
        result = await settled(handle, ts_store)
        assert result.end_node == expected
        assert [s.node for s in result.steps[at + 1 :] if s.type != "compensation"] == []
    else:
        assert view.steps[at + 1].node == expected
        await conclude(handle)
        await settled(handle, ts_store)
