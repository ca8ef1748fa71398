"""Wraps every activity result with the attempt that produced it, and binds log context.

The workflow cannot see attempt numbers, yet `orderops status` and auditors
need them; the activity side knows, so it reports them alongside the result.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        order_id = info.workflow_id.removeprefix("order-")
        # Activity ids are <node>-<n>, and undo-<node>-<n> for compensations (workflows/order.py).
        node_part, compensation = info.activity_id.rsplit("-", 1)[0], info.activity_id.startswith("undo-")
        node = node_part.removeprefix("undo-")
        context = dict(order_id=order_id, node=node, attempt=info.attempt, activity=info.activity_type)
        if compensation:
            context["compensation"] = True
        with structlog.contextvars.bound_contextvars(**context):
            result = await super().execute_activity(input)
        return {"result": result, "attempt": info.attempt}


class AttemptEnvelope(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(super().intercept_activity(next))
