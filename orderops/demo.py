"""`orderops demo`: the whole system on one machine, driven as its users would drive it.

Starts the dev server unless one answers, runs a worker in this process, submits
the sample orders (samples/demo_orders.json), decides their manual reviews as a
support agent, plays courier and customer, then prints each order's final state
against the state the scenario expects. Exit status 1 if any differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

import worker
from activities import ACTIVITY_NAMES
from orderops import config, server
from orderops.connect import Unreachable, connect
from orderops.messages import CancelRequest, ExternalEvent, OrderResult, OrderStatusView, ReviewDecision
from orderops.order import Order, OrderEdit
from orderops.process.lint import load_definition
from orderops.report import build, facts
from starter import print_report, start_order

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
SERVER_START_TIMEOUT_S = 60
DEMO_TIMEOUT_S = 300


class DemoDecision(BaseModel):
    decision: str
    reason: str
    changes: OrderEdit | None = None


class Scenario(BaseModel):
    scenario: str
    expect: str
    order: Order
    decisions: list[DemoDecision] = []
    cancel_in_transit: str | None = None


@dataclass
class Tracked:
    scenario: Scenario
    handle: WorkflowHandle
    decided: int = 0
    sent: set[str] = field(default_factory=set)
    result: OrderResult | None = None
    seconds: float | None = None
    started_at: datetime | None = None


def load_scenarios(count: int, run_tag: str) -> list[Scenario]:
    """`count` orders from the samples, with ids and customers unique to this run."""
    templates = [Scenario.model_validate(s) for s in json.loads((config.SAMPLES_DIR / "demo_orders.json").read_text())]
    scenarios = []
    for index in range(count):
        template = templates[index % len(templates)]
        cycle = index // len(templates)
        order = template.order.model_copy(
            update={
                "order_id": f"demo-{run_tag}-{cycle}-{template.order.order_id}",
                "customer_id": f"{template.order.customer_id}-{run_tag}-{cycle}",
            }
        )
        scenarios.append(template.model_copy(update={"order": order}))
    return scenarios


async def _client_with_server(address: str, namespace: str):
    try:
        return await connect(address, namespace), None
    except Unreachable:
        if address != config.DEFAULT_ADDRESS:
            raise
    console.print(f"No Temporal server at {address}; starting the embedded one (data in {config.home()}).")
    process = server.start(namespace=namespace)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise Unreachable(f"the dev server exited with status {process.returncode}; see {config.home() / 'temporal-server.log'}")
        try:
            return await connect(address, namespace), process
        except Unreachable:
            if time.monotonic() > deadline:
                process.terminate()
                raise
            await asyncio.sleep(0.5)


async def _advance(tracked: Tracked) -> None:
    """Act as the support agent, courier and customer for one order."""
    handle, scenario = tracked.handle, tracked.scenario
    description = await handle.describe()
    if description.status != WorkflowExecutionStatus.RUNNING:
        tracked.result = await handle.result()
        tracked.seconds = (description.close_time - description.start_time).total_seconds()
        tracked.started_at = description.start_time
        return
    view: OrderStatusView = await handle.query("status", result_type=OrderStatusView)
    if view.pending_user_tasks and tracked.decided < len(scenario.decisions):
        planned = scenario.decisions[tracked.decided]
        await handle.execute_update(
            "review",
            ReviewDecision(decision=planned.decision, agent="demo-agent", reason=planned.reason, changes=planned.changes),
        )
        tracked.decided += 1
    elif "delivered" in view.waiting_for_events and "delivered" not in tracked.sent:
        if scenario.cancel_in_transit:
            await handle.execute_update("cancel", CancelRequest(reason=scenario.cancel_in_transit, by="demo-agent"))
        else:
            await handle.signal("event", ExternalEvent(name="delivered", data={"signer": scenario.order.customer_name}))
        tracked.sent.add("delivered")
    elif "feedback" in view.waiting_for_events and "feedback" not in tracked.sent:
        await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 5, "comment": "arrived on time"}))
        tracked.sent.add("feedback")


async def _wait_reviewed(handle: WorkflowHandle, worker_task: asyncio.Task) -> None:
    """Intake one order at a time, so duplicate detection sees them in sample order."""
    deadline = time.monotonic() + DEMO_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker_task.done():
            worker_task.result()  # surfaces the worker's error
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return
        view: OrderStatusView = await handle.query("status", result_type=OrderStatusView)
        if any(s.node == "auto_review" and s.ended_at for s in view.steps):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"order {handle.id} was not reviewed within {DEMO_TIMEOUT_S}s")


def _summary(tracked: list[Tracked]) -> Table:
    table = Table("order", "scenario", "expected", "final", "seconds", "steps", "decided by", title="Demo orders")
    for t in tracked:
        final = t.result.status if t.result else "unfinished"
        style = "green" if final == t.scenario.expect else "red"
        agents = ", ".join(f"{d.agent}: {d.decision}" for d in t.result.decisions) if t.result else ""
        table.add_row(
            t.scenario.order.order_id,
            t.scenario.scenario,
            t.scenario.expect,
            f"[{style}]{final}[/]",
            f"{t.seconds:.1f}" if t.seconds is not None else "",
            str(len(t.result.steps)) if t.result else "",
            agents,
        )
    return table


async def run(address: str, namespace: str, count: int) -> int:
    client, server_process = await _client_with_server(address, namespace)
    # The progress bars own the terminal; the worker's log lines go to a file.
    log_file = config.home() / "demo.log"
    logging.getLogger().handlers[0].setStream(open(log_file, "a", encoding="utf-8"))
    console.print(f"Worker log: {log_file}")
    stop = asyncio.Event()
    worker_task = asyncio.create_task(worker.serve(client, config.open_store(), config.PROCESS_DIR, stop))
    try:
        return await _drive(client, count, worker_task)
    finally:
        stop.set()
        await worker_task
        if server_process is not None:
            server_process.terminate()
            server_process.wait(timeout=30)
            console.print(
                f"The demo's server has stopped; its orders are kept in {config.home() / 'temporal.db'}. "
                "Run `orderops server` and `orderops worker` to browse them in the Web UI or with `orderops status`."
            )


async def _drive(client: Client, count: int, worker_task: asyncio.Task) -> int:
    snapshot = load_definition(config.DEFAULT_PROCESS, ACTIVITY_NAMES)
    run_tag = datetime.now().strftime("%m%d%H%M%S")
    scenarios = load_scenarios(count, run_tag)
    if client.service_client.config.target_host == config.DEFAULT_ADDRESS:
        console.print(f"Web UI: http://localhost:{config.UI_PORT}/namespaces/{client.namespace}/workflows")
    tracked: list[Tracked] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        intake = progress.add_task("orders started", total=len(scenarios))
        for scenario in scenarios:
            handle = await start_order(client, scenario.order, snapshot)
            tracked.append(Tracked(scenario, handle))
            await _wait_reviewed(handle, worker_task)
            progress.advance(intake)
        finished = progress.add_task("orders finished", total=len(tracked))
        deadline = time.monotonic() + DEMO_TIMEOUT_S
        while any(t.result is None for t in tracked) and time.monotonic() < deadline:
            if worker_task.done():
                worker_task.result()  # surfaces the worker's error
            for t in tracked:
                if t.result is None:
                    await _advance(t)
            progress.update(finished, completed=sum(t.result is not None for t in tracked))
            await asyncio.sleep(0.2)
    console.print(_summary(tracked))
    finished = [t for t in tracked if t.result is not None]
    if finished:
        since, until = min(t.started_at for t in finished), datetime.now(timezone.utc)
        print_report(build([facts(t.result, t.started_at) for t in finished], since, until), title="KPIs of the demo orders")
    mismatched = [t for t in tracked if t.result is None or t.result.status != t.scenario.expect]
    if mismatched:
        console.print(f"[red]{len(mismatched)} order(s) did not end as expected[/]")
        return 1
    console.print(f"[green]All {len(tracked)} orders ended as expected.[/] For one order's story: orderops status {tracked[0].scenario.order.order_id}")
    return 0
