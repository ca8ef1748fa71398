"""Definitions built to exhaust the reader get one line at the place they pass a cap, from lint and
from start, and nothing is started."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError

from orderops.messages import TASK_QUEUE, WORKFLOW_NAME
from orderops.server import temporal_binary
from tests.helpers import ROOT, order_data, run_cli

_LAUGHS = "id: x\nversion: 1\nstart: a\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
_NODE = "  - id: n{i}\n    type: task\n    activity: notify_ops\n    next: n{j}\n"

HOSTILE = [
    ("laughs", _LAUGHS, "8:1: the definition holds more than 20,000 values (an alias counts as all it repeats)"),
    (
        "deep",
        "id: d\nversion: 1\nstart: a\nnodes: " + "[" * 50_000 + "]" * 50_000 + "\n",
        "4:71: the YAML is nested more than 64 levels deep",
    ),
    (
        "wide",
        "id: w\nversion: 1\nstart: n0\nnodes:\n" + "".join(_NODE.format(i=i, j=i + 1) for i in range(5_000)),
        "8889:9: the definition holds more than 20,000 values (an alias counts as all it repeats)",
    ),
    ("long", "id: l\n# " + "x" * 2_000_000 + "\n", "1:1: the definition is longer than 1,048,576 characters, the most that is read"),
]


@pytest.mark.parametrize(("name", "text", "problem"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_lint_and_start_refuse_a_hostile_definition_in_one_line(tmp_path: Path, name: str, text: str, problem: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    linted = run_cli("lint", str(path))
    assert (linted.returncode, linted.stdout.strip(), linted.stderr) == (1, f"{path}:{problem}", "")
    # start reads the definition before it connects: the unreachable address is never tried.
    started = run_cli("--address", "127.0.0.1:1", "start", str(ROOT / "samples" / "orders.json"), "--process", str(path))
    assert (started.returncode, started.stderr.strip(), started.stdout) == (1, f"{path}:{problem}", "")


async def test_a_workflow_started_around_lint_with_a_hostile_definition_fails_at_once(client: Client, worker, address: str):
    """Whoever starts OrderWorkflow with the raw temporal CLI skips lint; the worker's own reading of
    the definition must still stop at the cap instead of expanding it until the worker dies."""
    definition = {"id": "x", "version": 1, "path": "laughs.yaml", "source": _LAUGHS, "sha256": hashlib.sha256(_LAUGHS.encode()).hexdigest()}
    workflow_id = "order-hostile-definition-laughs"
    sent = await asyncio.to_thread(
        subprocess.run,
        [
            temporal_binary(),
            "workflow",
            "start",
            "--address",
            address,
            "--type",
            WORKFLOW_NAME,
            "--task-queue",
            TASK_QUEUE,
            "--workflow-id",
            workflow_id,
            "--input",
            json.dumps({"order": order_data(), "definition": definition}),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    handle = client.get_workflow_handle(workflow_id)
    with pytest.raises(WorkflowFailureError) as failure:
        await asyncio.wait_for(handle.result(), 30)
    assert "laughs.yaml:8:1: the definition holds more than 20,000 values" in str(failure.value.cause)
    history = await handle.fetch_history()
    assert not [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
