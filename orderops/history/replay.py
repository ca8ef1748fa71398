"""Replaying histories with the current worker code: the check before deploying a new worker."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import contextmanager

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from orderops.codec import CodecError, data_converter, default_codec
from orderops.history.timeline import HistoryError, build_timeline, workflow_id_of
from orderops.messages import WORKFLOW_NAME, read_input
from orderops.payloads import Refused

# The SDK words a divergence several ways; each names the event by id, or by the activity it scheduled.
_MESSAGE = re.compile(r'message: "(.*?)", source')
_BY_EVENT_ID = (re.compile(r"HistoryEvent\(id: (\d+)"), re.compile(r"event id:? (\d+)", re.IGNORECASE), re.compile(r"\bevent:? (\d+)"))
_BY_ACTIVITY_ID = re.compile(r"Activity id of scheduled event '([^']+)'")
_BY_ACTIVITY_TYPE = re.compile(r"Activity type of scheduled event '([^']+)'")

# Replaying a diverging history makes the SDK's core log warnings to the terminal; the outcome
# below already says what went wrong, so only its errors are shown.
QUIET = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))


# The SDK logs each failed workflow activation with its traceback; replay reports it in one line instead.
_ACTIVATIONS = logging.getLogger("temporalio.worker._workflow_instance")


class _FailedActivations(logging.Handler):
    """Why each workflow's activation failed during replay, as one line per workflow id."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_workflow: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        details = getattr(record, "temporal_workflow", None) or {}
        error = record.exc_info[1] if record.exc_info else None
        if error is None or "workflow_id" not in details:
            return
        cause = error.__cause__ or error.__context__ or error
        first = str(cause).strip().splitlines()
        self.by_workflow.setdefault(details["workflow_id"], f"{error}: {' '.join(line.strip() for line in first[:3])}"[:500])


@contextmanager
def _captured_activation_failures():
    handler = _FailedActivations()
    propagate = _ACTIVATIONS.propagate
    _ACTIVATIONS.addHandler(handler)
    _ACTIVATIONS.propagate = False
    try:
        yield handler
    finally:
        _ACTIVATIONS.removeHandler(handler)
        _ACTIVATIONS.propagate = propagate


class ReplayOutcome(BaseModel):
    workflow_id: str
    source: str
    ok: bool
    invalid: bool = False
    event_id: int | None = None
    node: str | None = None
    error: str | None = None


def diverged_event(message: str, history: WorkflowHistory) -> int | None:
    for pattern in _BY_EVENT_ID:
        if match := pattern.search(message):
            return int(match.group(1))
    scheduled = [
        (e.event_id, e.activity_task_scheduled_event_attributes)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    if match := _BY_ACTIVITY_ID.search(message):
        return next((event_id for event_id, a in scheduled if a.activity_id == match.group(1)), None)
    if match := _BY_ACTIVITY_TYPE.search(message):
        return next((event_id for event_id, a in scheduled if a.activity_type.name == match.group(1)), None)
    return None


def problem_with(history: WorkflowHistory) -> str | None:
    """Why this is not an order history the Replayer can take, or None."""
    if not history.events:
        return "the history has no events"
    first = history.events[0]
    if first.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        return "the history does not begin with the workflow's start event"
    kind = first.workflow_execution_started_event_attributes.workflow_type.name
    if kind != WORKFLOW_NAME:
        return f"a {kind!r} workflow, not an order ({WORKFLOW_NAME})"
    try:
        codec = default_codec()
        read_input([codec.decrypt(p) for p in first.workflow_execution_started_event_attributes.input.payloads])
    except CodecError as err:
        return f"its input cannot be decrypted here ({err})"
    except Refused as err:
        # Not a divergence of the code: today's workflow would refuse this input before its first step.
        return f"a payload no longer decodes ({err})"
    return None


async def replay(
    histories: AsyncIterator[tuple[str, WorkflowHistory | Exception]],
    workflows: Sequence[type],
    on_each: Callable[[ReplayOutcome], None] = lambda outcome: None,
    sandboxed: bool = True,
) -> list[ReplayOutcome]:
    """Replay each history on these workflow classes; report where one diverged as an event id and the node the order was at.

    Unsandboxed, the commands are compared all the same, 2.5x as fast (docs/performance.md), but a
    call the worker's sandbox refuses (a clock, I/O) on a path only old histories take goes unseen."""
    sources: dict[int, str] = {}
    outcomes: list[ReplayOutcome] = []

    async def feed() -> AsyncIterator[WorkflowHistory]:
        async for source, history in histories:
            problem: str | None
            if isinstance(history, Exception):  # the file could not be read as a history at all
                problem, name = str(history).removeprefix(f"{source}: "), source.rsplit("/", 1)[-1].removesuffix(".json")
            else:
                problem, name = problem_with(history), history.workflow_id
            if problem is not None:
                outcome = ReplayOutcome(workflow_id=name, source=source, ok=False, invalid=True, error=problem)
                outcomes.append(outcome)
                on_each(outcome)
                continue
            assert not isinstance(history, Exception)  # an unreadable file has its problem, handled above
            # Each result carries the very history object it replayed: pair them by identity,
            # since two files may hold the same run.
            sources[id(history)] = source
            yield history

    runner = SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()
    replayer = Replayer(workflows=list(workflows), data_converter=data_converter(), runtime=QUIET, workflow_runner=runner)
    with _captured_activation_failures() as failed:
        async with replayer.workflow_replay_iterator(feed()) as results:
            async for result in results:
                history = result.history
                outcome = _outcome(history, sources[id(history)], result.replay_failure)
                undecodable = failed.by_workflow.get(history.workflow_id)
                if outcome.error == "Failed decoding arguments" and undecodable:
                    # Not a divergence of the code: the history holds a payload today's models cannot read.
                    outcome.invalid, outcome.error = True, f"a payload no longer decodes ({undecodable})"
                outcomes.append(outcome)
                on_each(outcome)
    return outcomes


def _outcome(history: WorkflowHistory, source: str, failure: Exception | None) -> ReplayOutcome:
    outcome = ReplayOutcome(workflow_id=workflow_id_of(history), source=source, ok=failure is None)
    if failure is not None:
        text = str(failure)
        message = _MESSAGE.search(text)
        outcome.error = (message.group(1) if message else text.splitlines()[0])[:500]
        outcome.event_id = diverged_event(text, history)
        if outcome.event_id is not None:
            # Only a diverged history needs reading through, to name the node it was at.
            try:
                outcome.node = build_timeline(history).node_at_event(outcome.event_id)
            except HistoryError:
                outcome.node = None
    return outcome
