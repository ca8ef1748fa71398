"""export --query: any workflow id becomes one safe file in --out; one that fails does not stop the rest.

And a --query filter that would leave its parentheses is refused in one line by every command
that takes one. Workflows with hostile ids are started as anyone can, with no input (the
worker fails them at once), on a server of this module's own: the session's server exports
every history it holds when it shuts down, by workflow id.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import unquote

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.store import Store
from orderops import search_attributes as sa
from orderops.cli.history import history_file_name
from orderops.client import OrderClient
from orderops.codec import data_converter
from orderops.messages import TASK_QUEUE, WORKFLOW_NAME, ExternalEvent
from orderops.order import Order
from orderops.server import temporal_binary
from orderops.worker import build_worker
from tests import support
from tests.helpers import cli, definition, finished, order_data


@pytest.fixture(scope="module")
async def own_env(store: Store):
    """A dev server and worker of this module's own (see the docstring), like the session's."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(), search_attributes=sa.ALL, data_converter=data_converter()
    )
    try:
        async with build_worker(environment.client, store, extra_activities=support.extra_activities()):
            yield environment
    finally:
        await environment.shutdown()


async def visible(client: Client, ids: list[str]) -> str:
    """The query naming these ids, once visibility finds all of them."""
    query = "WorkflowId IN (" + ", ".join("'" + i.replace("'", "''") + "'" for i in ids) + ")"
    for _ in range(100):
        found = {wf.id async for wf in client.list_workflows(f"{query} AND WorkflowType = '{WORKFLOW_NAME}'")}
        if found == set(ids):
            return query
        await asyncio.sleep(0.1)
    raise AssertionError(f"visibility did not find {set(ids) - found}")


async def test_hostile_workflow_ids_export_inside_out_and_replay(own_env, tmp_path: Path):
    client: Client = own_env.client
    address = client.service_client.config.target_host
    tag = uuid.uuid4().hex[:8]
    order = Order.model_validate(order_data())
    handle = await OrderClient(client).start(order, definition("early_event.yaml"))
    await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5}))
    assert (await finished(handle)).status == "completed"
    hostile = [
        f"../../{tag}-up",
        f"order-{tag}/../../../escape",
        f"order-{tag}/x",
        f"order-{tag}%2Fx",  # what `/` is written as: still a file of its own
        f"..{tag}",
        f".{tag}",
        f"order-{tag}-訂單 #1",
        f"order-{tag}-" + "z" * 400,  # a name too long for most file systems
    ]
    for wf_id in hostile:
        await client.start_workflow(WORKFLOW_NAME, id=wf_id, task_queue=TASK_QUEUE)
    query = await visible(client, [handle.id, *hostile])

    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    (out / history_file_name(f"order-{tag}/x")).mkdir()  # this one cannot be written
    exported = await cli("export", f"missing-{tag}", "--query", query, "--out", str(out), address=address)

    assert exported.returncode == 1, exported.stderr
    assert "Traceback" not in exported.stderr
    errors = exported.stderr.strip().splitlines()
    assert len(errors) == 3, exported.stderr
    assert errors[0] == f"orderops: export order-missing-{tag}: no order 'missing-{tag}' (no workflow order-missing-{tag})"
    assert errors[1].startswith(f"orderops: export order-{tag}/x: cannot write {out / history_file_name(f'order-{tag}/x')}")
    assert errors[2] == "orderops: 2 of 10 histories not exported"

    written = [Path(line) for line in exported.stdout.splitlines()]
    assert len(written) == 8
    assert all(path.parent == out and path.is_file() for path in written)
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["a", "b", "out", history_file_name(f"order-{tag}/x"), *(p.name for p in written)]
    )
    assert out / f"{handle.id}.json" in written  # plain ids keep their plain name
    names = {path.name: path for path in written}
    for wf_id in [handle.id, *hostile[:2], *hostile[3:7]]:
        name = history_file_name(wf_id)
        assert name in names and unquote(name.removesuffix(".json")) == wf_id
    long_name = history_file_name(hostile[7])
    assert long_name in names and len(long_name) <= 200 and "~" in long_name

    replayed = await cli("replay", str(out))
    assert "Traceback" not in replayed.stdout + replayed.stderr
    assert f"ok        {handle.id}  ({out / f'{handle.id}.json'})" in replayed.stdout
    for path in written:  # every file was read; the ones started without input are invalid, not diverged
        assert f"({path})" in replayed.stdout
    assert replayed.stdout.strip().splitlines()[-1] == "1 ok, 0 diverged, 7 invalid"
    assert replayed.returncode == 1


ESCAPES = [") OR (WorkflowType = 'Other'", "ProcessVersion = 1) OR (1 = 1", "Note = 'open", "a = 1 -- )"]


@pytest.mark.parametrize("command", ["export", "replay"])
@pytest.mark.parametrize("query", ESCAPES)
async def test_an_escaping_query_is_refused_before_connecting(command, query, tmp_path: Path):
    extra = ["--out", str(tmp_path)] if command == "export" else []
    # No server at this address: the refusal comes first, so no connection is tried.
    refused = await cli("--address", "127.0.0.1:9", command, "--query", query, *extra)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("orderops: --query: ")
    assert refused.stdout == "" and list(tmp_path.iterdir()) == []


async def test_report_refuses_an_escaping_query(address):
    refused = await cli("report", "--query", ESCAPES[0], "--json", address=address)
    assert refused.returncode == 2, refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert line == "orderops: --query: ')' at column 1 closes a parenthesis the filter did not open"
    assert refused.stdout == ""
