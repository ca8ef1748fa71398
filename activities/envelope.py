"""Wraps every activity result with the attempt that produced it, and binds log context.

The workflow cannot see attempt numbers, yet `orderops status` and auditors
need them; the activity side knows, so it reports them alongside the result.
"""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor


def log_context(info: activity.Info) -> dict[str, Any]:
    """order_id, node and attempt for every log line of an activity."""
    # Activity ids are <node>-<n>, and undo-<node>-<n> for compensations (workflows/order.py).
    node = info.activity_id.rsplit("-", 1)[0]
    assert info.workflow_id is not None  # orderops activities are scheduled by OrderWorkflow only
    context: dict[str, Any] = {
        "order_id": info.workflow_id.removeprefix("order-"),
        "node": node.removeprefix("undo-"),
        "attempt": info.attempt,
        "activity": info.activity_type,
    }
    if node.startswith("undo-"):
        context["compensation"] = True
    return context


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(**log_context(info)):
            result = await super().execute_activity(input)
        return {"result": result, "attempt": info.attempt}


class AttemptEnvelope(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(super().intercept_activity(next))
