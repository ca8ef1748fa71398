"""bench/interpreter.py's helpers: the no-op activity, and the hand-written workflow it is compared with.

A module of its own (not the benchmark script) because the worker's sandbox re-imports a workflow's
module for every run: this one is small, as a hand-written workflow's module would be.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ConfigDict

    from activities.defn import activity_defn

NOOP = "noop"
HAND_WRITTEN = "SevenNoopsByHand"
STEPS = 7
# What workflows/order.py's _run_task gives a task node that sets neither `timeouts` nor `retry`
# (orderops/process/model.py: TaskNode.timeouts and RetryPolicy's defaults).
START_TO_CLOSE = timedelta(minutes=1)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=None, maximum_attempts=0)


class NoopArgs(BaseModel):
    """What a task node without `input:` sends: {order: order}; read as a plain mapping, not validated as an Order."""

    model_config = ConfigDict(extra="ignore")

    order: dict[str, Any]


class NoopResult(BaseModel):
    done: bool = True


class NoopActivities:
    """Declared like the project's activities (activities/defn.py): a method, its arguments model, its result model."""

    @activity_defn(NOOP)
    def noop(self, args: NoopArgs) -> NoopResult:
        return NoopResult()


@workflow.defn(name=HAND_WRITTEN)
class SevenNoopsByHand:
    """The same seven steps as bench/definitions/seven_noops.yaml, written out as a Temporal sample would."""

    @workflow.run
    async def run(self, order: dict[str, Any]) -> int:
        for _ in range(STEPS):
            await workflow.execute_activity(
                NOOP,
                {"order": order},
                start_to_close_timeout=START_TO_CLOSE,
                retry_policy=RETRY,
                result_type=dict,
            )
        return STEPS
