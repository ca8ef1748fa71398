"""Helpers the tests share: orders, waiting on an order's status, the CLI as a user runs it, time skipping."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from activities import ACTIVITY_NAMES
from activities.store import Store
from orderops import proof
from orderops.codec import default_codec
from orderops.messages import SENDER_FIELD, CancelRequest, ExternalEvent, OrderInput, OrderResult, OrderStatusView, StepRecord
from orderops.order import workflow_id
from orderops.process.lint import lint_text, load_definition
from orderops.process.load import DefinitionSnapshot
from orderops.process.model import ProcessDefinition
from tests import support

ROOT = Path(__file__).resolve().parent.parent
M = TypeVar("M", bound=BaseModel)


DEFINITIONS = Path(__file__).resolve().parent / "definitions"
# Where each test session leaves the histories of its orders for the replay step (tests/replay).
SESSION_HISTORIES = Path(os.environ.get("ORDEROPS_SESSION_HISTORIES", ROOT / ".orderops" / "session-histories"))


KNOWN_ACTIVITIES = ACTIVITY_NAMES | support.TEST_ACTIVITY_NAMES


def order_data(**overrides) -> dict:
    """A clean order that passes automatic review; ids and customers unique per call."""
    unique = uuid.uuid4().hex[:10]
    data = {
        "order_id": f"t-{unique}",
        "customer_id": f"cust-{unique}",
        "customer_name": "Li Wei",
        "phone": "13800138001",
        "address": {"province": "Shanghai", "city": "Shanghai", "district": "Pudong", "street": "88 Century Avenue", "postcode": "200120"},
        "items": [{"sku": "TEA-001", "quantity": 2, "unit_price": "68.00"}, {"sku": "MUG-002", "quantity": 1, "unit_price": "45.50"}],
        "paid": True,
    }
    data.update(overrides)
    return data


def definition(name: str) -> DefinitionSnapshot:
    path = ROOT / "process_defs" / name if name == "standard.yaml" else DEFINITIONS / name
    return load_definition(path, KNOWN_ACTIVITIES)


async def status(handle: WorkflowHandle) -> OrderStatusView:
    return await handle.query("status", result_type=OrderStatusView)


def _where(view: OrderStatusView) -> str:
    pending = [t.node for t in view.pending_user_tasks]
    return f"status {view.status!r} at {view.current_nodes}, waiting for events {view.waiting_for_events}, decisions {pending}"


async def wait_until(handle: WorkflowHandle, predicate: Callable[[OrderStatusView], bool], timeout: float = 30) -> OrderStatusView:
    """Wait on a condition of the order's status, never on the clock alone; fail saying where the order stands."""
    view: OrderStatusView | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                view = await status(handle)
                if predicate(view):
                    return view
                await asyncio.sleep(0.05)
    except TimeoutError:
        where = _where(view) if view else "no status answered"
        pytest.fail(f"{handle.id}: condition not met within {timeout:g}s; {where}")


async def finished(handle: WorkflowHandle, timeout: float = 45) -> OrderResult:
    """The order's result; an order that does not end fails the test in seconds, saying where it stands."""
    try:
        async with asyncio.timeout(timeout):
            return await handle.result()
    except TimeoutError:
        try:
            async with asyncio.timeout(5):
                where = _where(await status(handle))
        except Exception as err:  # the status is for the message only; its failure must not hide the hang
            where = f"status unavailable: {err}"
        pytest.fail(f"{handle.id} did not end within {timeout:g}s; {where}")


async def settled(handle: WorkflowHandle, store: Store, *, failed_undos: Collection[str] = (), timeout: float = 45) -> OrderResult:
    """What every scenario ends with: the order ended, each step is over, the saga undid what it had to, the store is sound.

    - no step is left running;
    - an order that did not complete has an undo recorded for every completed step that has a
      compensation (and none for a completed order), each undo `completed` unless named in
      `failed_undos` (then it must be `failed`, with the error recorded);
    - `Store.inconsistencies` finds nothing for the store as a whole or for this order.
    """
    result = await finished(handle, timeout)
    definition = await _definition_of(handle)
    problems = [f"step {s.node} ({s.type}) left {s.outcome!r}" for s in result.steps if s.outcome == "running" or s.ended_at is None]
    compensable = {n.id for n in definition.nodes if getattr(n, "compensation", None)}
    done = [s for s in result.steps if s.type != "compensation" and s.node in compensable and s.outcome == "completed"]
    undos: dict[str, StepRecord] = {}
    for s in result.steps:
        if s.type == "compensation" and s.outcome != "interrupted":  # an interrupted undo is run again
            undos[s.node] = s
    if result.status == "completed":
        problems += [f"completed order undid {node}" for node in undos]
    else:
        problems += [f"completed step {s.node} was not undone" for s in done if s.node not in undos]
        for node, undo in undos.items():
            expected = "failed" if node in failed_undos else "completed"
            if undo.outcome != expected or (expected == "failed" and not undo.detail):
                problems.append(f"undo of {node}: {undo.outcome!r} ({undo.detail}), expected {expected!r}")
    problems += [f"expected the undo of {node} to fail, but it did not run" for node in failed_undos if node not in undos]
    problems += store.inconsistencies([result.order_id])
    assert not problems, f"{result.order_id} ({result.status} at {result.end_node}): " + "; ".join(problems)
    return result


async def _definition_of(handle: WorkflowHandle) -> ProcessDefinition:
    """The definition the order really ran under, from its start event (not today's YAML)."""
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    payloads = [default_codec().decrypt(p) for p in started.input.payloads]
    [inp] = pydantic_data_converter.payload_converter.from_payloads(payloads, [OrderInput])
    parsed, problems = lint_text(inp.definition.source, known_activities=None)
    assert parsed is not None, problems
    return parsed


def awaiting_decision(view: OrderStatusView) -> bool:
    return bool(view.pending_user_tasks)


def waiting_for(event: str) -> Callable[[OrderStatusView], bool]:
    return lambda view: event in view.waiting_for_events


# The tests' scanners, couriers, customers and agents, signed for as the console signs, with the session
# home's key: orders the CLI starts trust it, and orders started without keys take the message all the same.
EVENT_SOURCE = proof.Actor(id="test-source", name="the tests' event sources", roles=[], via="test")
AGENT = proof.Actor(id="amy", name="Amy", roles=["support_agent", "support_supervisor"], via="test")


def signed(handle: WorkflowHandle, name: str, message: M, actor: proof.Actor = EVENT_SOURCE) -> M:
    sender = SENDER_FIELD.get(name)
    if sender:
        message = message.model_copy(update={sender: actor.id})
    return message.model_copy(update={"proof": proof.signer().sign(handle.id, name, message, actor, datetime.now(UTC))})


def from_source(handle: WorkflowHandle, event: ExternalEvent) -> ExternalEvent:
    return signed(handle, "event", event)


def scan_of(order) -> dict:
    """What a picker's scanner reports for a correctly picked order."""
    totals: dict[str, int] = {}
    for item in order.items:
        totals[item.sku] = totals.get(item.sku, 0) + item.quantity
    return {"items": [{"sku": sku, "quantity": quantity} for sku, quantity in totals.items()], "picker": "test-picker"}


async def shipped(handle: WorkflowHandle, timeout: float = 30) -> OrderStatusView:
    """Play the picker's scanner (a correct scan), then wait until the order waits for courier scans."""
    view = await wait_until(handle, lambda v: "scanned" in v.waiting_for_events or "delivered" in v.waiting_for_events, timeout)
    if "scanned" in view.waiting_for_events:
        await handle.signal("event", from_source(handle, ExternalEvent(name="scanned", data=scan_of(view.order))))
        view = await wait_until(handle, waiting_for("delivered"), timeout)
    return view


async def cli(
    *args: str, address: str | None = None, signed: dict[str, str] | None = None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """run_cli without blocking the event loop that this session's worker runs on."""
    return await asyncio.to_thread(run_cli, *args, address=address, signed=signed, extra_env=extra_env)


def run_cli(
    *args: str,
    address: str | None = None,
    stdin: str | None = None,
    signed: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it; `signed` is a person's sign-in (SignIns.of)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ORDEROPS_TOKEN", "ORDEROPS_CONSOLE")} | (signed or {}) | (extra_env or {})
    if address:
        env["TEMPORAL_ADDRESS"] = address
    return subprocess.run(
        [str(Path(sys.executable).parent / "orderops"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class SignIns:
    """`orderops console` running for the session, and a token for each of its people (what `orderops login` keeps)."""

    url: str
    tokens: dict[str, str]

    def of(self, person_id: str) -> dict[str, str]:
        """The environment a deciding command signed in as the person runs with."""
        return {"ORDEROPS_CONSOLE": self.url, "ORDEROPS_TOKEN": self.tokens[person_id]}


async def fast_forward_to(ts_env, handle, when: datetime) -> bool:
    """Advance this order's virtual clock to `when` (its own clock; other orders keep theirs).

    False if the order ended before its clock got there."""
    info = await ts_env.get_time_skipping_info(handle)
    # An order whose clock never skipped yet keeps the real one.
    now = info.current_time.ToDatetime().replace(tzinfo=UTC) if info is not None and info.HasField("current_time") else datetime.now(UTC)
    return await ts_env.fast_forward(handle, when - now)


async def finish(handle, store: Store) -> OrderResult:
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", from_source(handle, ExternalEvent(name="feedback", data={"rating": 4})))
    return await settled(handle, store)


def promise_of(view: OrderStatusView) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(view.promise["ship_by"]), datetime.fromisoformat(view.promise["deliver_by"])


async def fast_forward(ts_env, handle, delta: timedelta) -> None:
    """Move this order's clock `delta` past its current time."""
    info = await ts_env.get_time_skipping_info(handle)
    now = info.current_time.ToDatetime().replace(tzinfo=UTC) if info is not None and info.HasField("current_time") else datetime.now(UTC)
    await fast_forward_to(ts_env, handle, now + delta)


async def track(handle, *events: str, signer: str = "Li Wei") -> None:
    for name in events:
        await wait_until(handle, waiting_for(name))
        await handle.signal("event", from_source(handle, ExternalEvent(name=name, data={"signer": signer} if name == "delivered" else {})))


async def deliver(handle, rating: int = 5) -> None:
    await shipped(handle)
    await track(handle, "delivered")
    await wait_until(handle, waiting_for("feedback"))
    await handle.signal("event", from_source(handle, ExternalEvent(name="feedback", data={"rating": rating, "comment": "ok"})))


async def exists(client: Client, order_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id(order_id)).describe()
        return True
    except RPCError:
        return False


async def cancel_while_stubborn_step_runs(order_id: str, handle: WorkflowHandle) -> None:
    """Cancel the order once its `stubborn_step` (tests/support.py) has started, then let the step finish."""
    async with asyncio.timeout(30):
        while "stubborn_step:started" not in support.journal_for(order_id):
            await asyncio.sleep(0.05)
    await handle.execute_update("cancel", CancelRequest(reason="customer called"))
    support.release(order_id)
