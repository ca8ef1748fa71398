"""The business metrics a worker serves on its Prometheus port, beside the SDK's own (`temporal_*`).

Recorded from the order workflow through its metric meter, which is replay-safe: a history being
replayed (after a restart, or by `orderops replay`) records nothing, so every order counts once.
Activity failures are the SDK's `temporal_activity_execution_failed`, by activity type. The gauges
of orders at risk now are the worker's, from visibility (orderops/open_orders.py). Names and
labels: docs/operations.md#metrics.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


class OrderMetrics:
    def __init__(self, process: str):
        meter = workflow.metric_meter().with_additional_attributes({"process": process})
        self._started = meter.create_counter("orderops_orders_started", "orders started")
        self._ended = meter.create_counter("orderops_orders_ended", "orders ended, by status")
        self._steps = meter.create_histogram_timedelta(
            "orderops_step_duration", "a step from its start to its end, by node and outcome", "ms"
        )
        self._decisions = meter.create_counter("orderops_decisions", "decisions taken at user tasks, by node and outcome")
        self._at_risk = meter.create_counter("orderops_orders_at_risk", "orders marked at risk of a deadline, by node")

    def started(self) -> None:
        self._started.add(1)

    def ended(self, status: str) -> None:
        self._ended.add(1, {"status": status})

    def step(self, node: str, outcome: str, took: timedelta) -> None:
        self._steps.record(took, {"node": node, "outcome": outcome})

    def decision(self, node: str, outcome: str) -> None:
        self._decisions.add(1, {"node": node, "outcome": outcome})

    def at_risk(self, node: str) -> None:
        self._at_risk.add(1, {"node": node})
