"""Under a backlog, urgent and express orders are served first (Temporal task priority)."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

from temporalio.api.enums.v1 import EventType
from temporalio.worker import Worker

from activities.envelope import AttemptEnvelope
from orderops.client import OrderClient
from orderops.order import Order
from tests import support
from tests.helpers import definition, finished, order_data
from workflows import OrderWorkflow


async def activity_scheduled(handle) -> bool:
    history = await handle.fetch_history()
    return any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for e in history.events)


async def test_urgent_and_express_orders_jump_a_backlog(client):
    queue = f"backlog-{uuid.uuid4().hex[:8]}"
    snapshot = definition("backlog.yaml")
    kinds = ["normal"] * 8 + ["urgent", "express"]
    # Only workflows run at first: every order's activity waits in the task queue.
    async with Worker(client, task_queue=queue, workflows=[OrderWorkflow]):
        handles = []
        for index, kind in enumerate(kinds):
            overrides = {"order_type": "urgent"} if kind == "urgent" else {"service_level": "express"} if kind == "express" else {}
            order = Order.model_validate(order_data(order_id=f"bk-{queue}-{index:02d}-{kind}", **overrides))
            handles.append(await OrderClient(client, task_queue=queue).start(order, snapshot))
        async with asyncio.timeout(30):
            while not all([await activity_scheduled(h) for h in handles]):
                await asyncio.sleep(0.1)

    # One slot: the worker serves the backlog strictly one task at a time.
    async with Worker(
        client,
        task_queue=queue,
        workflows=[OrderWorkflow],
        activities=[support.journal_step],
        max_concurrent_activities=1,
        activity_executor=ThreadPoolExecutor(max_workers=1),
        interceptors=[AttemptEnvelope()],
    ):
        await asyncio.gather(*(finished(h) for h in handles))
    served = [oid for oid, _ in support.JOURNAL if oid.startswith(f"bk-{queue}")]
    assert len(served) == len(kinds)
    assert sorted(oid.rsplit("-", 1)[1] for oid in served[:2]) == ["express", "urgent"]
