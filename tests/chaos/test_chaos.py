"""Chaos: 60 orders of the standard process driven to their end while the worker is killed with SIGKILL
four times and the server once (`make chaos`; docs/testing.md, "The chaos test").

Everything is real: `temporal server start-dev` on a SQLite file of its own (a killed server comes back
with its state), `orderops worker` as a child process (a SIGKILL is a real crash, in the middle of
activities and workflow tasks), and the SQLite warehouse store in a temporary ORDEROPS_HOME. The test
plays the people and systems around the orders: the picker's scanner, the courier, the customer, a
support agent approving manual reviews, an agent cancelling orders on their way. The kills fire on
progress (so many events recorded or orders ended since the last restart), never on the clock.

Afterwards: every order ended as its scenario expects, each step is over and a cancelled order undid
what it had done (`settled`), `Store.inconsistencies` finds nothing, and no effect happened twice: one
reservation per order line, stock taken once per shipped line, one pick list and one matched scan, one
waybill and one booking per parcel, one tracking event per courier scan, one delivery and one feedback,
each customer message once, each event once in the order's own record.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import SignalWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from activities.store import Store
from orderops import server
from orderops.client import ClientError, OrderClient
from orderops.codec import Keyring
from orderops.config import SAMPLES_DIR
from orderops.connect import Unreachable, connect
from orderops.messages import CancelReceipt, CancelRequest, ExternalEvent, OrderResult, OrderStatusView, ReviewDecision, ReviewReceipt
from orderops.order import Order, workflow_id
from orderops.process.lint import load_definition
from tests.helpers import KNOWN_ACTIVITIES, ROOT, free_port, order_data, scan_of, settled

pytestmark = [
    pytest.mark.skipif(not os.environ.get("ORDEROPS_CHAOS"), reason="the chaos test runs on its own: make chaos"),
    pytest.mark.timeout(300),
]

ORDERS = 60
KILLS = ("worker", "worker", "server", "worker", "worker")
PROGRESS_STEP = 15  # events recorded or orders ended between two kills
DRIVE_TIMEOUT_S = 240  # all orders ended; a stuck one fails the test with its position, well before pytest's limit
SERVER_START_TIMEOUT_S = 60
RPC_TIMEOUT = timedelta(seconds=10)
POLL_S = 0.25

# Where the orders go and what they hold: several warehouses, carriers and goods classes.
DESTINATIONS: list[tuple[dict, list[tuple[str, int, str]]]] = [
    (
        {"province": "Shanghai", "city": "Shanghai", "district": "Pudong", "street": "88 Century Avenue", "postcode": "200120"},
        [("TEA-001", 2, "68.00"), ("MUG-002", 1, "45.50")],
    ),
    (
        {"province": "Beijing", "city": "Beijing", "district": "Chaoyang", "street": "1 Jianguo Road", "postcode": "100022"},
        [("OIL-003", 1, "32.00"), ("BOOK-006", 1, "59.00")],
    ),
    (
        {"province": "Guangdong", "city": "Guangzhou", "district": "Tianhe", "street": "208 Tianhe Road", "postcode": "510620"},
        [("KETTLE-010", 1, "199.00"), ("TEA-001", 1, "68.00")],
    ),
    (
        {"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "street": "18 Wensan Road", "postcode": "310013"},
        [("BOOK-006", 2, "59.00")],
    ),
    (
        {"province": "Sichuan", "city": "Chengdu", "district": "Wuhou", "street": "9 Renmin South Road", "postcode": "610041"},
        [("TEA-001", 1, "68.00"), ("MUG-002", 2, "45.50")],
    ),
]

Kind = Literal["plain", "review", "cancel"]
# What the customer is told, in order, by the end of each scenario.
CUSTOMER_MESSAGES: dict[Kind, list[str]] = {
    "plain": ["shipped", "in_transit", "delivered", "feedback_request"],
    "review": ["shipped", "in_transit", "delivered", "feedback_request"],
    "cancel": ["shipped", "in_transit"],
}


@dataclass
class Scenario:
    order: Order
    kind: Kind
    events: list[ExternalEvent]
    recorded: int = 0  # of `events`, how many the order has recorded (its status says so)
    result: OrderResult | None = None
    failure: str | None = None
    last_error: str | None = None
    view: OrderStatusView | None = None

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def expect(self) -> str:
        return "cancelled" if self.kind == "cancel" else "completed"

    @property
    def done(self) -> bool:
        return self.result is not None or self.failure is not None


def scenario(index: int, tag: str) -> Scenario:
    """Every tenth order from the fourth needs a manual review, every tenth from the eighth is cancelled on its way."""
    kind: Kind = "review" if index % 10 == 3 else "cancel" if index % 10 == 7 else "plain"
    address, lines = DESTINATIONS[index % len(DESTINATIONS)]
    order = Order.model_validate(
        order_data(
            order_id=f"chaos-{tag}-{index:02d}",
            customer_id=f"chaos-{tag}-c{index:02d}",
            address=address,
            items=[{"sku": sku, "quantity": quantity, "unit_price": price} for sku, quantity, price in lines],
            phone="12345" if kind == "review" else "13800138001",  # an invalid phone: a support agent calls
        )
    )
    events = [ExternalEvent(name="scanned", data=scan_of(order)), ExternalEvent(name="in_transit")]
    if kind != "cancel":
        events += [
            ExternalEvent(name="delivered", data={"signer": order.customer_name}),
            ExternalEvent(name="feedback", data={"rating": 5}),
        ]
    return Scenario(order, kind, events)


@dataclass
class Cluster:
    """The dev server and the worker as child processes, on ports of their own, killed and restarted at will."""

    home: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    server: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    workers_started: int = 0
    unexpected_worker_exits: list[int] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start_server(self) -> Client:
        command = server.command(port=self.port, ui_port=self.ui_port, db=self.home / "temporal.db")
        with open(self.home / "temporal-server.log", "ab") as log:
            self.server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if self.server.poll() is not None:
                raise AssertionError(f"the dev server exited with {self.server.returncode}: {self.tail('temporal-server.log')}")
            try:
                return await connect(self.address, "default")
            except Unreachable:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def start_worker(self) -> None:
        self.workers_started += 1
        # The same codec keys as this test's client, as a worker on another host would be given them.
        env = {**os.environ, "ORDEROPS_HOME": str(self.home), "TEMPORAL_ADDRESS": self.address, **Keyring.load().as_env()}
        with open(self.home / "worker.log", "ab") as log:
            self.worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "orderops"), "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
            )

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait()

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()

    def watch_worker(self) -> None:
        """A worker that died on its own is restarted (and reported): the orders need one."""
        if self.worker is not None and self.worker.poll() is not None:
            self.unexpected_worker_exits.append(self.worker.returncode)
            self.start_worker()

    def stop(self) -> None:
        for process in (self.worker, self.server):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.home / name
        return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


async def signal_once(client: Client, order_id: str, event: ExternalEvent, request_id: str) -> None:
    """The `event` signal under a request id of our own: a send repeated because the server died
    mid-call (or because the order had not yet recorded it) is recorded once, as one courier scan is."""
    request = SignalWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id(order_id)),
        signal_name="event",
        identity="chaos-test",
        request_id=request_id,
    )
    request.input.payloads.extend(await client.data_converter.encode([event]))
    await client.workflow_service.signal_workflow_execution(request, retry=True, timeout=RPC_TIMEOUT)


class Unexpected(Exception):
    """The order went where none of its scenario's actors can take it further."""


async def advance(orders: OrderClient, s: Scenario) -> None:
    """One look at the order and, if it waits for one, the next thing its actors do (each at most once)."""
    handle = orders.temporal.get_workflow_handle(workflow_id(s.order_id), result_type=OrderResult)
    description = await orders.describe(s.order_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        try:
            s.result = await handle.result()
        except WorkflowFailureError as err:
            s.failure = f"workflow {description.status.name if description.status else '?'}: {err.cause or err}"
        return
    view = s.view = await orders.status(s.order_id, description)
    s.recorded = view.event_count
    if view.pending_user_tasks:
        task = view.pending_user_tasks[0]
        if s.kind != "review" or task.node != "manual_review":
            raise Unexpected(f"{s.order_id} waits for a {task.role} at {task.node}: {task.details}")
        decision = ReviewDecision(decision="approve", agent="chaos-agent", reason="called the customer")
        # An update id of our own: repeated after a lost answer, the server gives the first outcome back.
        await handle.execute_update("review", decision, id=f"{s.order_id}-review", result_type=ReviewReceipt, rpc_timeout=RPC_TIMEOUT)
        return
    if s.recorded < len(s.events):
        upcoming = s.events[s.recorded]
        if upcoming.name in view.waiting_for_events:
            await signal_once(orders.temporal, s.order_id, upcoming, request_id=f"{s.order_id}-event-{s.recorded}")
        return
    if s.kind == "cancel" and "delivered" in view.waiting_for_events:
        request = CancelRequest(reason="customer_cancelled", by="chaos-agent")
        await handle.execute_update("cancel", request, id=f"{s.order_id}-cancel", result_type=CancelReceipt, rpc_timeout=RPC_TIMEOUT)


def progress(scenarios: list[Scenario]) -> int:
    return sum(s.recorded + s.done for s in scenarios)


def where(s: Scenario) -> str:
    if s.view is None:
        return f"{s.order_id}: no status yet ({s.last_error})"
    v = s.view
    pending = [t.node for t in v.pending_user_tasks]
    return (
        f"{s.order_id} ({s.kind}): {v.status!r} at {v.current_nodes}, waiting for {v.waiting_for_events}, decisions {pending},"
        f" events {[e.name for e in v.events]}; last error: {s.last_error}"
    )


async def drive(orders: OrderClient, scenarios: list[Scenario], cluster: Cluster, helpers: list[asyncio.Task]) -> None:
    """Poll every open order and act, until all have ended; fail with where each open order stands."""
    gate = asyncio.Semaphore(12)

    async def step(s: Scenario) -> None:
        async with gate:
            try:
                async with asyncio.timeout(RPC_TIMEOUT.total_seconds() * 2):
                    await advance(orders, s)
            except (RPCError, ClientError, TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as err:
                s.last_error = f"{type(err).__name__}: {err}"  # server or worker down: look again next round

    deadline = time.monotonic() + DRIVE_TIMEOUT_S
    while not all(s.done for s in scenarios):
        for task in helpers:
            if task.done():
                task.result()  # a kill or restart that went wrong fails the test at once
        if time.monotonic() > deadline:
            stuck = "\n".join(where(s) for s in scenarios if not s.done)
            pytest.fail(f"orders not ended within {DRIVE_TIMEOUT_S}s:\n{stuck}\nworker log:\n{cluster.tail('worker.log')}")
        await asyncio.gather(*(step(s) for s in scenarios if not s.done))
        await asyncio.sleep(POLL_S)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = DRIVE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(0.1)


async def chaos(cluster: Cluster, scenarios: list[Scenario], kills: list[tuple[str, int, float]], started: float) -> None:
    """Each kill after PROGRESS_STEP more progress since the last restart, the worker back at once."""
    for target in KILLS:
        mark = progress(scenarios)

        def moved_on(mark: int = mark) -> bool:
            return progress(scenarios) >= mark + PROGRESS_STEP or all(s.done for s in scenarios)

        await wait_for(moved_on, f"progress {mark} + {PROGRESS_STEP} before killing the {target}")
        in_flight = sum(not s.done for s in scenarios)
        if not in_flight:
            return
        if target == "worker":
            cluster.kill_worker()
            cluster.start_worker()
        else:
            cluster.kill_server()
            await cluster.start_server()
        kills.append((target, in_flight, round(time.monotonic() - started, 1)))


async def watchdog(cluster: Cluster, scenarios: list[Scenario]) -> None:
    while not all(s.done for s in scenarios):
        cluster.watch_worker()
        await asyncio.sleep(0.2)


def effects_problems(store: Store, scenarios: list[Scenario], stock_before: dict[tuple[str, str, str], int]) -> list[str]:
    """Every effect the orders had, counted: what happened twice (or not at all)."""
    problems: list[str] = []
    like = f"{scenarios[0].order_id.rsplit('-', 1)[0]}-%"

    def per_order(sql: str) -> dict[str, list[dict]]:
        found: dict[str, list[dict]] = {}
        for row in store.rows(sql, like):
            found.setdefault(row["order_id"], []).append(row)
        return found

    reservations = per_order("SELECT order_id, round, sku, state, quantity FROM reservations WHERE order_id LIKE ?")
    pick_lists = per_order("SELECT order_id, state FROM pick_lists WHERE order_id LIKE ?")
    scans = per_order("SELECT order_id, matched FROM scans WHERE order_id LIKE ?")
    waybills = per_order("SELECT order_id, state FROM waybills WHERE order_id LIKE ?")
    bookings = per_order("SELECT order_id, state FROM carrier_bookings WHERE order_id LIKE ?")
    tracking = per_order("SELECT order_id, status FROM tracking_events WHERE order_id LIKE ? ORDER BY recorded_at")
    deliveries = per_order("SELECT order_id FROM deliveries WHERE order_id LIKE ?")
    feedback = per_order("SELECT order_id FROM feedback WHERE order_id LIKE ?")
    customer = per_order("SELECT order_id, kind FROM notifications WHERE order_id LIKE ? AND channel = 'sms' ORDER BY id")
    carrier = per_order("SELECT order_id, kind FROM notifications WHERE order_id LIKE ? AND channel = 'carrier' ORDER BY id")
    refunds = per_order("SELECT order_id FROM refunds WHERE order_id LIKE ?")

    for s in scenarios:
        oid, completed = s.order_id, s.kind != "cancel"
        ordered = Counter({item.sku: item.quantity for item in s.order.items})
        held: Counter[str] = Counter()
        for r in reservations.get(oid, []):
            if r["round"] != 1 or r["state"] != "shipped":
                problems.append(f"{oid}: reservation of {r['sku']} round {r['round']} {r['state']!r}")
            held[r["sku"]] += r["quantity"]
        if held != ordered:
            problems.append(f"{oid}: reserved and shipped {dict(held)}, ordered {dict(ordered)}")

        assert s.result is not None
        # A parcel cancelled on its way keeps its pick list and waybill (the intercept needs them).
        counted = {
            "pick lists": ([r["state"] for r in pick_lists.get(oid, [])], ["open"]),
            "scans matched": ([r["matched"] for r in scans.get(oid, [])], [1]),
            "waybills": ([r["state"] for r in waybills.get(oid, [])], ["active"]),
            "carrier bookings": ([r["state"] for r in bookings.get(oid, [])], ["delivered" if completed else "intercept_requested"]),
            "tracking events": ([r["status"] for r in tracking.get(oid, [])], ["in_transit", "delivered"] if completed else ["in_transit"]),
            "deliveries": (len(deliveries.get(oid, [])), 1 if completed else 0),
            "feedback": (len(feedback.get(oid, [])), 1 if completed else 0),
            "refunds": (len(refunds.get(oid, [])), 0),
            "customer messages": ([r["kind"] for r in customer.get(oid, [])], CUSTOMER_MESSAGES[s.kind]),
            "carrier messages": ([r["kind"] for r in carrier.get(oid, [])], [] if completed else ["intercept_request"]),
            "events recorded": ([e.name for e in s.result.events], [e.name for e in s.events]),
            "refused signals": (s.result.refused_signal_count, 0),
        }
        problems += [f"{oid}: {name} {got}, expected {want}" for name, (got, want) in counted.items() if got != want]

    # Stock: each bin gave exactly what shipped from it, once; nothing is still reserved.
    shipped: Counter[tuple[str, str, str]] = Counter()
    for r in store.rows("SELECT sku, warehouse, bin, quantity FROM reservations WHERE state = 'shipped'"):
        shipped[(r["sku"], r["warehouse"], r["bin"])] += r["quantity"]
    for r in store.rows("SELECT sku, warehouse, bin, on_hand, reserved FROM stock"):
        key = (r["sku"], r["warehouse"], r["bin"])
        if stock_before[key] - r["on_hand"] != shipped[key] or r["reserved"]:
            problems.append(f"stock {key}: on hand {stock_before[key]} -> {r['on_hand']}, shipped {shipped[key]}, reserved {r['reserved']}")
    return problems


async def test_orders_end_right_while_the_worker_and_the_server_are_killed(tmp_path: Path):
    started = time.monotonic()
    cluster = Cluster(tmp_path)
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    stock_before = {
        (r["sku"], r["warehouse"], r["bin"]): r["on_hand"] for r in store.rows("SELECT sku, warehouse, bin, on_hand FROM stock")
    }
    snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", KNOWN_ACTIVITIES)
    tag = uuid.uuid4().hex[:8]
    scenarios = [scenario(i, tag) for i in range(ORDERS)]
    kills: list[tuple[str, int, float]] = []
    try:
        orders = OrderClient(await cluster.start_server())
        cluster.start_worker()
        for s in scenarios:
            await orders.start(s.order, snapshot)
        tasks = [asyncio.create_task(chaos(cluster, scenarios, kills, started)), asyncio.create_task(watchdog(cluster, scenarios))]
        try:
            await drive(orders, scenarios, cluster, tasks)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        driven = time.monotonic() - started

        failed = [f"{s.order_id}: {s.failure}" for s in scenarios if s.failure]
        assert not failed, "\n".join(failed)
        ended = {s.order_id: (s.result.status if s.result else None, s.expect) for s in scenarios}
        wrong = {oid: f"{got}, expected {want}" for oid, (got, want) in ended.items() if got != want}
        assert not wrong, wrong
        assert [target for target, _, _ in kills] == list(KILLS), f"kills done while orders were in flight: {kills}"
        assert cluster.unexpected_worker_exits == [], f"the worker died on its own: exit statuses {cluster.unexpected_worker_exits}"

        # Each order settled (no step left running, a cancelled order's completed steps undone), the store sound.
        for s in scenarios:
            await settled(orders.temporal.get_workflow_handle(workflow_id(s.order_id), result_type=OrderResult), store)
        assert store.inconsistencies([s.order_id for s in scenarios]) == []
        problems = effects_problems(store, scenarios, stock_before)
        assert not problems, "\n".join(problems)

        retried = sum(1 for s in scenarios if s.result for step in s.result.steps if (step.attempt or 1) > 1)
        print(
            f"\nchaos: {ORDERS} orders ended as expected in {driven:.0f}s; kills (target, orders in flight, seconds in): {kills};"
            f" {cluster.workers_started} workers started; {retried} steps took more than one attempt"
        )
    finally:
        cluster.stop()
