"""Gauges a worker serves beside the workflow's metrics: the running orders at risk of a deadline now,
and past one, as visibility counts them (search attributes AtRisk and Breached).

Counters from inside the workflow cannot say how many orders are at risk *now*; visibility can.
Every worker with --metrics reports the same counts, so a dashboard takes their max.
"""

from __future__ import annotations

import asyncio

import structlog
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from orderops.messages import WORKFLOW_NAME

log = structlog.get_logger()


GAUGES = {
    "orderops_orders_at_risk_now": ("running orders at risk of a deadline now", "AtRisk = true"),
    "orderops_orders_breached_now": ("running orders past a deadline now", "Breached = true"),
}
EVERY_S = 15.0


def query(gauge: str) -> str:
    """The visibility query whose count the gauge shows."""
    return f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus = 'Running' AND {GAUGES[gauge][1]}"


async def open_order_counts(client: Client) -> dict[str, int]:
    return {name: (await client.count_workflows(query(name))).count for name in GAUGES}


async def watch_open_orders(client: Client, every: float = EVERY_S) -> None:
    """Keep the open-order gauges current on the client's runtime (the one serving --metrics), until cancelled."""
    meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
    gauges = {name: meter.create_gauge(name, description) for name, (description, _) in GAUGES.items()}
    while True:
        try:
            for name, count in (await open_order_counts(client)).items():
                gauges[name].set(count)
        except RPCError as err:  # the server is away for a moment: the gauges keep their last value
            log.warning("open-order gauges not updated", reason=str(err).splitlines()[0][:200])
        await asyncio.sleep(every)
