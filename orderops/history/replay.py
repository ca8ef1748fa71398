"""Replaying histories with the current worker code: the check before deploying a new worker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence

from pydantic import BaseModel
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orderops.history.timeline import HistoryError, build_timeline
from workflows import OrderWorkflow

# The SDK reports the diverging event in several wordings; each names its id.
_EVENT_ID = re.compile(r"HistoryEvent\(id: (\d+)|event(?: id)?[ :#']+(\d+)|\bid: (\d+)", re.IGNORECASE)


class ReplayOutcome(BaseModel):
    workflow_id: str
    source: str
    ok: bool
    event_id: int | None = None
    node: str | None = None
    error: str | None = None


def diverged_event(message: str) -> int | None:
    match = _EVENT_ID.search(message)
    return int(next(g for g in match.groups() if g)) if match else None


async def replay(
    histories: AsyncIterator[tuple[str, WorkflowHistory]],
    workflows: Sequence[type] = (OrderWorkflow,),
    on_each: Callable[[ReplayOutcome], None] = lambda outcome: None,
) -> list[ReplayOutcome]:
    """Replay each history; report where one diverged as an event id and the node the order was at."""
    sources: dict[int, str] = {}

    async def feed() -> AsyncIterator[WorkflowHistory]:
        async for source, history in histories:
            # Each result carries the very history object it replayed: pair them by identity,
            # since two files may hold the same run.
            sources[id(history)] = source
            yield history

    replayer = Replayer(workflows=list(workflows), data_converter=pydantic_data_converter)
    outcomes = []
    async with replayer.workflow_replay_iterator(feed()) as results:
        async for result in results:
            history = result.history
            source = sources[id(history)]
            outcome = ReplayOutcome(workflow_id=history.workflow_id, source=source, ok=result.replay_failure is None)
            if result.replay_failure is not None:
                message = str(result.replay_failure)
                outcome.error = message.splitlines()[0][:500]
                outcome.event_id = diverged_event(message)
                if outcome.event_id is not None:
                    try:
                        outcome.node = build_timeline(history).node_at_event(outcome.event_id)
                    except HistoryError:
                        outcome.node = None
            outcomes.append(outcome)
            on_each(outcome)
    return outcomes
