"""The worker (layer 3): order workflows and their activities on one task queue, after checking the definitions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

import structlog
from temporalio.client import Client
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import build_activities
from activities.envelope import AttemptEnvelope
from activities.store import Store
from orderops.activity_names import ACTIVITY_NAMES
from orderops.messages import TASK_QUEUE
from orderops.open_orders import watch_open_orders
from orderops.process.lint import InvalidDefinition, load_definition
from orderops.proof import SANDBOX_PASSTHROUGH
from workflows import OrderWorkflow

log = structlog.get_logger()

# Workflow tasks share one GIL: after a restart with 150 orders in flight the SDK's 100 slots made a task's p99
# 15.7 s (129 timed out at 10 s); 8 slots, p99 1.6 s and none (docs/performance.md, "Recovery after a worker restart").
MAX_CONCURRENT_WORKFLOW_TASKS = 8
# At least the orders in flight: 100 cached for 150 replayed evicted orders between tasks, 81 s to recover not 50 (same section).
MAX_CACHED_WORKFLOWS = 1000
# The SDK's 5, kept: polls wait for a free slot anyway; not varied by the benchmark (same section).
MAX_CONCURRENT_WORKFLOW_TASK_POLLS = 5
# The sandbox re-imported workflows/order.py for every order it started or brought back into the cache: most of
# the interpreter's extra CPU per order and of a cached order's memory (docs/performance.md, "Interpreter
# overhead"). The module holds only immutable constants, so one import can serve every order; `orderops replay`
# and the golden tests keep the SDK's default sandbox, which still re-imports it and refuses clocks and I/O.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows", *SANDBOX_PASSTHROUGH)
)


class WorkerLimits(TypedDict, total=False):
    """build_worker's limits, any of them set."""

    max_concurrent_workflow_tasks: int
    max_cached_workflows: int
    max_concurrent_workflow_task_polls: int


# The environment variables that override them, for bench/recovery.py (read by `orderops worker`).
LIMIT_ENV = {
    "max_concurrent_workflow_tasks": "ORDEROPS_MAX_CONCURRENT_WORKFLOW_TASKS",
    "max_cached_workflows": "ORDEROPS_MAX_CACHED_WORKFLOWS",
    "max_concurrent_workflow_task_polls": "ORDEROPS_MAX_CONCURRENT_WORKFLOW_TASK_POLLS",
}


def limits_from_env(env: Mapping[str, str]) -> WorkerLimits:
    """The worker limits set in the environment (LIMIT_ENV), as build_worker's keyword arguments."""
    limits = WorkerLimits()
    for name, variable in LIMIT_ENV.items():
        if env.get(variable):
            try:
                limits[name] = int(env[variable])  # type: ignore[literal-required]
            except ValueError:
                raise ValueError(f"{variable}={env[variable]!r} is not a whole number") from None
    return limits


def check_definitions(process_dir: Path, known_activities: frozenset[str] = ACTIVITY_NAMES) -> tuple[list[str], list[str]]:
    """Lint every definition the worker may be asked to run: (the files checked, the problems)."""
    checked, problems = [], []
    for path in sorted(process_dir.glob("*.yaml")):
        checked.append(path.name)
        try:
            load_definition(path, known_activities)
        except InvalidDefinition as err:
            problems += err.messages
    return checked, problems


def build_worker(
    client: Client,
    store: Store,
    task_queue: str = TASK_QUEUE,
    extra_activities: Sequence[Callable] = (),
    *,
    max_concurrent_workflow_tasks: int = MAX_CONCURRENT_WORKFLOW_TASKS,
    max_cached_workflows: int = MAX_CACHED_WORKFLOWS,
    max_concurrent_workflow_task_polls: int = MAX_CONCURRENT_WORKFLOW_TASK_POLLS,
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=[*build_activities(store), *extra_activities],
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        max_cached_workflows=max_cached_workflows,
        workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(maximum=max_concurrent_workflow_task_polls),
        interceptors=[AttemptEnvelope()],
        workflow_runner=WORKFLOW_RUNNER,
    )


async def serve(
    client: Client,
    store: Store,
    process_dir: Path,
    stop: asyncio.Event | None = None,
    limits: WorkerLimits | None = None,
    gauges: bool = False,
) -> None:
    """Run the worker until `stop`; with `gauges`, also keep the open-order gauges of --metrics current."""
    checked, problems = check_definitions(process_dir)
    if problems:
        raise InvalidDefinition(problems)
    limits = limits or WorkerLimits()
    worker = build_worker(client, store, **limits)
    log.info(
        "worker started",
        task_queue=TASK_QUEUE,
        namespace=client.namespace,
        definitions_checked=f"{process_dir}: {', '.join(checked)}",
        store=store.where,
        **limits,
    )
    async with worker:
        watcher = asyncio.create_task(watch_open_orders(client)) if gauges else None
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            if watcher:
                watcher.cancel()
