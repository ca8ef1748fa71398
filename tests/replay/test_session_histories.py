"""Determinism: every order history the last test session produced replays on the current code.

`make test` runs the other levels first; their servers export each finished order's history
to SESSION_HISTORIES (tests/conftest.py), filled with every construct: gateways, parallel
branches, user tasks, timeouts, compensation, deadlines on virtual clocks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.common import RawValue
from temporalio.worker import Replayer

from orderops.codec import Keyring, data_converter
from orderops.history.timeline import load_history_file
from orderops.messages import OrderResult
from tests.helpers import SESSION_HISTORIES
from workflows import OrderWorkflow

FILES = sorted(SESSION_HISTORIES.glob("*/*.json"))
KEYS = SESSION_HISTORIES / "codec-keys"  # the session's own, copied beside its histories

# `make test` sets this: its replay step must find the histories of the run before it.
if not FILES and not os.environ.get("ORDEROPS_REQUIRE_SESSION_HISTORIES"):
    pytest.skip(f"no session histories in {SESSION_HISTORIES}: run the other tests first (make test does)", allow_module_level=True)


def histories(paths: list[Path]) -> list[WorkflowHistory]:
    return [load_history_file(path) for path in paths]


def completed(history: WorkflowHistory) -> bool:
    return history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_all_session_histories_replay():
    assert len(FILES) >= 100, f"only {len(FILES)} histories in {SESSION_HISTORIES}; did the test run before this one finish?"

    async def each():
        for history in histories(FILES):
            yield history

    replayer = Replayer(workflows=[OrderWorkflow], data_converter=data_converter(Keyring.load(KEYS)))
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures = {run_id: str(error) for run_id, error in results.replay_failures.items()}
    assert failures == {}


@workflow.defn(dynamic=True, sandboxed=False)
class TimerFirstOrderWorkflow(OrderWorkflow):
    """A deliberately non-deterministic change: a timer before the first step."""

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> OrderResult:
        await workflow.sleep(1)
        return await super().run(args)


async def test_a_nondeterministic_change_is_detected():
    history = next(h for h in histories(FILES) if completed(h))
    replayer = Replayer(workflows=[TimerFirstOrderWorkflow], data_converter=data_converter(Keyring.load(KEYS)))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
    # Core names what no longer matches: the engine marker the new timer now comes before.
    assert "[TMPRL1100] Nondeterminism error: Non-deprecated patch marker encountered for change engine-3" in str(result.replay_failure)
