"""Determinism: every order history this session produced replays on the current code.

Named to run last, after the other modules have filled the server with histories
of every construct (gateways, parallel, user tasks, timeouts, compensation).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.store import Store
from orderops.messages import WORKFLOW_NAME, OrderInput, OrderResult
from tests.conftest import settled
from workflows import OrderWorkflow


async def test_all_session_histories_replay(client: Client, worker, start, store: Store):
    _, handle = await start("retry.yaml")  # at least one history, even when this file runs alone
    await settled(handle, store)
    histories = [
        history
        async for history in client.list_workflows(f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus != 'Running'").map_histories()
    ]
    assert histories, "no finished order in this session to replay"

    async def each():
        for history in histories:
            yield history

    replayer = Replayer(workflows=[OrderWorkflow], data_converter=pydantic_data_converter)
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    failures = {run_id: str(error) for run_id, error in results.replay_failures.items()}
    assert failures == {}


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class TimerFirstOrderWorkflow(OrderWorkflow):
    """A deliberately non-deterministic change: a timer before the first step."""

    @workflow.run
    async def run(self, inp: OrderInput) -> OrderResult:
        await workflow.sleep(1)
        return await super().run(inp)


async def test_a_nondeterministic_change_is_detected(client: Client, worker):
    wf = await anext(aiter(client.list_workflows(f"WorkflowType = '{WORKFLOW_NAME}' AND ExecutionStatus = 'Completed'", limit=1)))
    history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
    replayer = Replayer(workflows=[TimerFirstOrderWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
    assert "Timer" in str(result.replay_failure)
