"""The orderops worker: runs order workflows and their activities.

Run it with `orderops worker` or `python worker.py`. It refuses to start while
any definition under process_defs/ fails lint, with the same messages.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import ACTIVITY_NAMES, build_activities
from activities.envelope import AttemptEnvelope
from activities.store import Store
from orderops.messages import TASK_QUEUE
from orderops.process.lint import InvalidDefinition, load_definition
from workflows import OrderWorkflow

log = structlog.get_logger()


def check_definitions(process_dir: Path, known_activities=ACTIVITY_NAMES) -> list[str]:
    """Lint every definition the worker may be asked to run; return the problems."""
    problems = []
    for path in sorted(process_dir.glob("*.yaml")):
        try:
            load_definition(path, known_activities)
        except InvalidDefinition as err:
            problems += err.messages
    return problems


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
    problems = check_definitions(process_dir)
    if problems:
        raise InvalidDefinition(problems)
    worker = build_worker(client, store)
    log.info("worker started", task_queue=TASK_QUEUE, namespace=client.namespace)
    async with worker:
        await (stop or asyncio.Event()).wait()


def main() -> None:
    from starter import main as cli  # imported here: the command line imports this module

    cli(["worker", *sys.argv[1:]])


if __name__ == "__main__":
    main()
