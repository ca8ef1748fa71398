"""The worker (layer 3): order workflows and their activities on one task queue, after checking the definitions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from activities.envelope import AttemptEnvelope
from activities.store import Store
from orderops.activity_names import ACTIVITY_NAMES
from orderops.messages import TASK_QUEUE
from orderops.process.lint import InvalidDefinition, load_definition
from workflows import OrderWorkflow

log = structlog.get_logger()


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
) -> Worker:
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[OrderWorkflow],
        activities=[*build_activities(store), *extra_activities],
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        interceptors=[AttemptEnvelope()],
    )


async def serve(client: Client, store: Store, process_dir: Path, stop: asyncio.Event | None = None) -> None:
    checked, problems = check_definitions(process_dir)
    if problems:
        raise InvalidDefinition(problems)
    worker = build_worker(client, store)
    log.info(
        "worker started",
        task_queue=TASK_QUEUE,
        namespace=client.namespace,
        definitions_checked=f"{process_dir}: {', '.join(checked)}",
        store=str(store.path),
    )
    async with worker:
        await (stop or asyncio.Event()).wait()
