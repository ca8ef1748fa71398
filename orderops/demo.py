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
import secrets
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import uvicorn
from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from activities.inputs import ReturnRequest
from activities.store import Store, open_store
from orderops import config, proof, server
from orderops.activity_names import ACTIVITY_NAMES
from orderops.cli.decisions import item_specs
from orderops.cli.report import print_report
from orderops.client import OrderClient
from orderops.connect import Unreachable, connect
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.messages import AddressChange, CancelRequest, ExternalEvent, OrderResult, OrderStatusView, ReviewDecision
from orderops.order import Address, Order, OrderEdit, tally
from orderops.people import open_people
from orderops.process.lint import load_definition
from orderops.proof import Actor
from orderops.report import build, facts
from orderops.worker import serve

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
SERVER_START_TIMEOUT_S = 60
DEMO_TIMEOUT_S = 300


class DemoDecision(BaseModel):
    decision: str
    reason: str
    role: str = "support_agent"
    changes: OrderEdit | None = None


class DemoReturn(BaseModel):
    kind: str
    reason: str
    items: list[str] | None = None
    inspection: list[dict] = []


class Scenario(BaseModel):
    """One sample order and how the people and systems around it behave (samples/demo_orders.json)."""

    scenario: str
    expect: str
    order: Order
    decisions: list[DemoDecision] = []
    pay: bool = False  # the payment provider confirms while the order waits
    restock: dict | None = None  # purchasing receives {sku, warehouse, quantity}
    scans: list[Literal["right", "short"]] = ["right"]  # what the picker's scanner reports, in turn
    tracking: list[str] = ["in_transit", "out_for_delivery", "delivered"]
    change_address: Address | None = None  # the customer moves the delivery before handoff
    cancel_in_transit: str | None = None
    merge_into: str | None = None  # sample order id of the same customer's other order
    hold_for_merge: bool = False  # wait for the other order to be merged in first
    picking: dict | None = None  # picking settings for this order (e.g. waves)
    carrier_outage: str | None = None  # this carrier's booking system is down while it books
    return_: DemoReturn | None = Field(None, alias="return")  # once completed, the customer sends this back
    inspection: list[dict] = []  # a return: what the returns desk finds, per SKU


@dataclass
class Tracked:
    scenario: Scenario
    handle: WorkflowHandle
    decided: int = 0
    scanned: int = 0
    tracked: int = 0
    done: set[str] = field(default_factory=set)
    result: OrderResult | None = None
    seconds: float | None = None
    started_at: datetime | None = None
    moved: asyncio.Event = field(default_factory=asyncio.Event)  # set when it moved or a merge partner acted

    def finished(self) -> tuple[OrderResult, datetime]:
        """The result of a finished order and when it started."""
        assert self.result is not None and self.started_at is not None  # advance() sets both together
        return self.result, self.started_at


def load_scenarios(count: int | None, run_tag: str) -> list[Scenario]:
    """`count` orders from the samples (default: each once), with ids and customers unique to this run."""
    templates = [Scenario.model_validate(s) for s in json.loads((config.SAMPLES_DIR / "demo_orders.json").read_text())]
    scenarios = []
    for index in range(count or len(templates)):
        template = templates[index % len(templates)]
        cycle = index // len(templates)
        prefix = f"demo-{run_tag}-{cycle}-"
        order = template.order.model_copy(
            update={"order_id": prefix + template.order.order_id, "customer_id": f"{template.order.customer_id}-{run_tag}-{cycle}"}
        )
        merge_into = prefix + template.merge_into if template.merge_into else None
        scenarios.append(template.model_copy(update={"order": order, "merge_into": merge_into}))
    # A merge needs both orders: with only one of a pair started, it is reviewed like any other.
    ids = {s.order.order_id for s in scenarios}
    merging = {s.merge_into for s in scenarios if s.merge_into in ids}
    return [
        s.model_copy(
            update={
                "merge_into": s.merge_into if s.merge_into in ids else None,
                "hold_for_merge": s.hold_for_merge and s.order.order_id in merging,
            }
        )
        for s in scenarios
    ]


def _scan(order: Order, kind: str) -> dict:
    """The picker's scanner: right, or one item short."""
    lines: list[dict[str, Any]] = [{"sku": sku, "quantity": quantity} for sku, quantity in tally(order.items).items()]
    if kind == "short":
        lines[0]["quantity"] -= 1
        lines = [line for line in lines if line["quantity"]] or [{"sku": lines[0]["sku"], "quantity": 2}]
    return {"items": lines, "picker": "demo-picker"}


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


# The demo's parts, each a service account of its own: with a signing key, what each sends is signed as it
# (docs/security.md), and its orders refuse anything unsigned.
PARTS = {
    "agent": Actor(
        id="demo-agent", name="demo support agent", roles=["support_agent", "warehouse_supervisor", "supervisor"], via="service"
    ),
    "payments": Actor(id="demo-pay", name="demo payment provider", roles=[], via="service"),
    "purchasing": Actor(id="demo-purchasing", name="demo purchasing", roles=[], via="service"),
    "picker": Actor(id="demo-picker", name="demo picker's scanner", roles=[], via="service"),
    "carrier": Actor(id="demo-carrier", name="demo carrier", roles=[], via="service"),
    "customer": Actor(id="demo-customer", name="demo customer", roles=[], via="service"),
    "returns": Actor(id="demo-desk", name="demo returns desk", roles=[], via="service"),
}


class Actors:
    """The support agent, picker, purchasing, carrier, customer and returns desk of the demo."""

    def __init__(self, orders: OrderClient, store: Store, tracked: list[Tracked], trusted_keys: dict[str, str] | None = None):
        self.orders, self.store, self.tracked, self.trusted_keys = orders, store, tracked, trusted_keys
        self.part = {name: orders.acting_as(actor) if orders.signer else orders for name, actor in PARTS.items()}
        self.followers: set[asyncio.Task] = set()
        self.returns_snapshot = load_definition(config.PROCESS_DIR / "returns.yaml", ACTIVITY_NAMES)

    def find(self, order_id: str) -> Tracked:
        return next(t for t in self.tracked if t.scenario.order.order_id == order_id)

    def follow(self, tracked: Tracked) -> None:
        """Act on the order each time it moves, until it has ended."""
        self.followers.add(asyncio.create_task(self._follow(tracked), name=f"follow {tracked.handle.id}"))

    async def finish(self, on_progress: Callable[[], None]) -> None:
        """Until every order followed, and every return they start, has ended."""
        while self.followers:
            ended, _ = await asyncio.wait(self.followers, return_when=asyncio.FIRST_COMPLETED)
            self.followers -= ended
            for task in ended:
                task.result()  # surfaces a follower's error
            on_progress()

    def stop(self) -> None:
        for task in self.followers:
            task.cancel()

    async def _follow(self, tracked: Tracked) -> None:
        watch = asyncio.create_task(self._watch(tracked))
        try:
            while tracked.result is None:
                await tracked.moved.wait()
                tracked.moved.clear()
                await self.advance(tracked)
                for partner in self._merge_partners(tracked):
                    partner.moved.set()  # what this order did may unblock its merge partner, which has not moved
        finally:
            watch.cancel()

    async def _watch(self, tracked: Tracked) -> None:
        tracked.moved.set()  # it waits already: act on where it stands
        async for _ in self.orders.waits(tracked.handle):
            tracked.moved.set()

    def _merge_partners(self, tracked: Tracked) -> list[Tracked]:
        order_id, into = tracked.scenario.order.order_id, tracked.scenario.merge_into
        return [t for t in self.tracked if t.scenario.order.order_id == into or t.scenario.merge_into == order_id]

    async def advance(self, tracked: Tracked) -> None:
        handle, scenario = tracked.handle, tracked.scenario
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            tracked.result = await handle.result()
            assert description.close_time is not None  # the workflow is no longer running
            tracked.seconds = (description.close_time - description.start_time).total_seconds()
            tracked.started_at = description.start_time
            if scenario.return_ and tracked.result.status == "completed":
                await self.start_return(tracked)
            return
        view: OrderStatusView = await handle.query("status", result_type=OrderStatusView)
        waiting = set(view.waiting_for_events)
        if view.pending_user_tasks:
            await self.decide(tracked, view)
        elif "paid" in waiting and scenario.pay:
            await self._send(tracked, "payments", ExternalEvent(name="paid", data={"provider": "demo-pay"}))
        elif "restocked" in waiting and scenario.restock and "restocked" not in tracked.done:
            tracked.done.add("restocked")
            await self.part["purchasing"].restock(self.store, **scenario.restock)
        elif "scanned" in waiting:
            await self.pick(tracked, view)
        elif "delivered" in waiting:
            await self.carry(tracked)
        elif "feedback" in waiting:
            await self._send(tracked, "customer", ExternalEvent(name="feedback", data={"rating": 5, "comment": "arrived on time"}))
        elif "return_received" in waiting:
            inspected = ExternalEvent(name="return_received", data={"items": scenario.inspection, "inspector": "demo-desk"})
            await self._send(tracked, "returns", inspected)

    async def _send(self, tracked: Tracked, part: str, event: ExternalEvent) -> None:
        """The event, signed as the part that sends it: straight to the order, which the caller saw waiting for it."""
        await tracked.handle.signal("event", self.part[part].signed(tracked.scenario.order.order_id, "event", event))

    async def decide(self, tracked: Tracked, view: OrderStatusView) -> None:
        scenario = tracked.scenario
        if scenario.merge_into and "merged" not in tracked.done:
            target = self.find(scenario.merge_into)
            target_view: OrderStatusView = await target.handle.query("status", result_type=OrderStatusView)
            if target_view.pending_user_tasks:
                tracked.done.add("merged")
                await self.part["agent"].merge(scenario.order.order_id, scenario.merge_into, "demo-agent", "same customer, one parcel")
                target.done.add("merged")  # only now: the target's own follower must not decide it while its items are added
            return
        if scenario.hold_for_merge and "merged" not in tracked.done:
            return
        if tracked.decided < len(scenario.decisions):
            planned = scenario.decisions[tracked.decided]
            tracked.decided += 1
            await self.part["agent"].decide(
                scenario.order.order_id,
                ReviewDecision(
                    decision=planned.decision, agent="demo-agent", role=planned.role, reason=planned.reason, changes=planned.changes
                ),
            )

    async def pick(self, tracked: Tracked, view: OrderStatusView) -> None:
        scenario = tracked.scenario
        if scenario.change_address and "address" not in tracked.done:
            tracked.done.add("address")
            await self.part["customer"].change_address(
                scenario.order.order_id, AddressChange(address=scenario.change_address, by="customer", reason="moved")
            )
        if scenario.carrier_outage and "outage" not in tracked.done:
            tracked.done.add("outage")
            self.store.set_carrier_outage(scenario.carrier_outage, "demo: booking system down")
        kind = scenario.scans[tracked.scanned] if tracked.scanned < len(scenario.scans) else "right"
        tracked.scanned += 1
        assert view.order is not None  # the workflow's status query always carries the order
        await self._send(tracked, "picker", ExternalEvent(name="scanned", data=_scan(view.order, kind)))

    async def carry(self, tracked: Tracked) -> None:
        scenario = tracked.scenario
        if scenario.carrier_outage and "outage" in tracked.done and "outage cleared" not in tracked.done:
            tracked.done.add("outage cleared")
            self.store.set_carrier_outage(scenario.carrier_outage, None)
        if scenario.cancel_in_transit:
            if "cancel" not in tracked.done:
                tracked.done.add("cancel")
                await self.part["agent"].cancel(scenario.order.order_id, CancelRequest(reason=scenario.cancel_in_transit, by="demo-agent"))
            return
        name = scenario.tracking[tracked.tracked] if tracked.tracked < len(scenario.tracking) else "delivered"
        tracked.tracked += 1
        await self._send(
            tracked, "carrier", ExternalEvent(name=name, data={"signer": scenario.order.customer_name} if name == "delivered" else {})
        )

    async def start_return(self, tracked: Tracked) -> None:
        spec = tracked.scenario.return_
        assert spec is not None  # advance() starts a return only for a scenario that has one
        if "return" in tracked.done:
            return
        tracked.done.add("return")
        request = ReturnRequest(original_order_id=tracked.scenario.order.order_id, kind=spec.kind, reason=spec.reason)
        order, handle = await self.orders.start_return(
            request.original_order_id, request, item_specs(spec.items), self.returns_snapshot, trusted_keys=self.trusted_keys
        )
        scenario = Scenario(
            scenario=f"return of {request.original_order_id}: {spec.kind}, {spec.reason}",
            expect="completed",
            order=order,
            inspection=spec.inspection,
        )
        returned = Tracked(scenario, handle)
        self.tracked.append(returned)
        self.follow(returned)


async def _reviewed(orders: OrderClient, handle: WorkflowHandle) -> None:
    """Until the order's automatic review has ended (or the order has)."""
    async for closed in orders.waits(handle):
        if closed:
            return
        view: OrderStatusView = await handle.query("status", result_type=OrderStatusView)
        if any(s.node == "auto_review" and s.ended_at for s in view.steps):
            return


async def _unless_worker_fails(work: Awaitable[None], worker_task: asyncio.Task) -> bool:
    """Whether `work` finished within the demo's time; the worker's error if the worker stopped first."""
    task = asyncio.ensure_future(work)
    await asyncio.wait({task, worker_task}, timeout=DEMO_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if not task.done():
        task.cancel()
        if worker_task.done():
            worker_task.result()
        return False
    task.result()
    return True


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


async def run(address: str, namespace: str, count: int | None, console_port: int | None = None) -> int:
    if console_port is not None:
        _check_free(console_port)  # before anything starts: a taken port is one line, not a half-run demo
    client, server_process = await _client_with_server(address, namespace)
    # The progress bars own the terminal; the worker's log lines go to a file.
    log_file = config.home() / "demo.log"
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)  # the one logs.configure installs
    handler.setStream(open(log_file, "a", encoding="utf-8"))  # noqa: SIM115 -- the handler writes to it until the process exits
    console.print(f"Worker log: {log_file}")
    stop = asyncio.Event()
    store = open_store()
    worker_task = asyncio.create_task(serve(client, store, config.PROCESS_DIR, stop))
    try:
        code = await _drive(client, store, count, worker_task)
        if console_port is not None:
            await _console_for_people(client, console_port, worker_task)
        return code
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


# The people of `make run`: the console's sign-ins, with passwords new at every run (printed once).
DEMO_PEOPLE = (
    ("demo.agent", "Demo Agent", ["support_agent"]),
    ("demo.supervisor", "Demo Supervisor", ["support_agent", "support_supervisor", "warehouse_supervisor", "supervisor"]),
)
FOR_PEOPLE = 3  # orders left waiting at manual review for the people to decide in the console


def _check_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise Unreachable(f"port {port} is taken: the console needs it (choose another with --console-port)") from None


async def _console_for_people(client: Client, port: int, worker_task: asyncio.Task) -> None:
    """The console beside the demo, with orders that wait for a person, until Ctrl-C."""
    people = open_people()
    password = secrets.token_urlsafe(12)
    for person_id, name, roles in DEMO_PEOPLE:
        if people.get(person_id) is None:
            people.add(person_id, name, roles, password)
        else:
            people.set_password(person_id, password)
            people.set_disabled(person_id, False)
    orders, keys = OrderClient(client, signer=proof.signer()), proof.trusted_keys()
    snapshot = load_definition(config.DEFAULT_PROCESS, ACTIVITY_NAMES)
    template = load_scenarios(1, "")[0].order
    run_tag = datetime.now().strftime("%m%d%H%M%S")
    for number in range(1, FOR_PEOPLE + 1):
        order_id = f"people-{run_tag}-{number}"
        waiting = template.model_copy(update={"order_id": order_id, "customer_id": f"c-{order_id}", "phone": "12345"})
        await orders.start(waiting, snapshot, trusted_keys=keys)  # the invalid phone sends it to manual review
    app = create_app(orders, people, catalog(config.PROCESS_DIR), secure_cookies=False)
    server_ = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    console.print(f"Console: http://127.0.0.1:{port}  ({FOR_PEOPLE} orders wait there for a person's review)")
    for person_id, _, roles in DEMO_PEOPLE:
        console.print(f"  sign in as {person_id} / {password}  ({', '.join(roles)})")
    console.print(
        f"Web UI http://127.0.0.1:{config.UI_PORT}: payloads are encrypted; signed in here as demo.agent, turn on "
        '"Include cross-origin credentials" in the UI\'s codec settings to read them'
    )
    console.print("Ctrl-C stops the console, the worker and the server.")
    sys.stdout.flush()
    serving = asyncio.create_task(server_.serve())
    await asyncio.wait({serving, worker_task}, return_when=asyncio.FIRST_COMPLETED)
    server_.should_exit = True
    await serving
    if worker_task.done():
        worker_task.result()  # surfaces the worker's error


async def _drive(client: Client, store: Store, count: int | None, worker_task: asyncio.Task) -> int:
    snapshot = load_definition(config.DEFAULT_PROCESS, ACTIVITY_NAMES)
    run_tag = datetime.now().strftime("%m%d%H%M%S")
    scenarios = load_scenarios(count, run_tag)
    if client.service_client.config.target_host == config.DEFAULT_ADDRESS:
        console.print(f"Web UI: http://127.0.0.1:{config.UI_PORT}/namespaces/{client.namespace}/workflows")
    tracked: list[Tracked] = []
    orders, keys = OrderClient(client, signer=proof.signer()), proof.trusted_keys()
    actors = Actors(orders, store, tracked, keys)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as progress:
        intake = progress.add_task("orders started", total=len(scenarios))
        for scenario in scenarios:
            # A scenario's own picking settings (waves) travel in the order's input, so its history shows them.
            variables = {"picking": scenario.picking} if scenario.picking else None
            handle = await orders.start(scenario.order, snapshot, variables=variables, trusted_keys=keys)
            tracked.append(Tracked(scenario, handle))
            # One at a time, so duplicate detection sees them in sample order.
            if not await _unless_worker_fails(_reviewed(orders, handle), worker_task):
                raise TimeoutError(f"order {handle.id} was not reviewed within {DEMO_TIMEOUT_S}s")
            progress.advance(intake)
        finished = progress.add_task("orders and returns finished", total=len(tracked))
        for t in tracked:
            actors.follow(t)

        def show() -> None:
            progress.update(finished, total=len(tracked), completed=sum(t.result is not None for t in tracked))

        try:
            await _unless_worker_fails(actors.finish(show), worker_task)
        finally:
            actors.stop()
    console.print(_summary(tracked))
    done = [t for t in tracked if t.result is not None]
    if done:
        ended = [t.finished() for t in done]
        since, until = min(started_at for _, started_at in ended), datetime.now(UTC)
        print_report(build([facts(result, started_at) for result, started_at in ended], since, until), title="KPIs of the demo orders")
    problems = store.inconsistencies([t.scenario.order.order_id for t in done])
    for problem in problems:
        console.print(f"[red]store: {problem}[/]")
    if not problems:
        console.print("Warehouse store consistent: every finished order's stock shipped or released, no notification written twice.")
    mismatched = [t for t in tracked if t.result is None or t.result.status != t.scenario.expect]
    if mismatched:
        console.print(f"[red]{len(mismatched)} order(s) did not end as expected[/]")
    if mismatched or problems:
        return 1
    console.print(
        f"[green]All {len(tracked)} orders and returns ended as expected.[/] For one order's story: orderops status {tracked[0].scenario.order.order_id}"
    )
    return 0
