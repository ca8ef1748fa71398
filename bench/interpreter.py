"""Interpreter overhead: OrderWorkflow running seven no-op tasks, against the same seven by hand.

Side A, "interpreted": `OrderWorkflow` (workflows/order.py) running bench/definitions/seven_noops.yaml,
seven sequential `task` nodes each calling the no-op activity `noop`, then an `end`; started as
`OrderClient.start` starts an order (its input `OrderInput` with the definition snapshot, its
initial search attributes, id `order-<id>`). Side B, "hand-written": bench/noop.py's
`SevenNoopsByHand`, a plain `@workflow.defn` calling the same activity seven times in sequence with
the options the interpreter gives a task node that sets none (start_to_close 1 min, retry from 1 s
doubling, no attempt limit), its input the same order as the interpreter's activities see it; no
search attributes. Side C, "local": `OrderWorkflow` running bench/definitions/seven_local_noops.yaml,
the same seven tasks with `local: true` (each a local activity, same options). All three sides'
activities run through the project's AttemptEnvelope interceptor.

One worker process serves both, on two task queues with identical settings: `orderops.worker.
build_worker` (the interpreter's queue, with `noop` added through `extra_activities`), and beside it
in the same process a second `Worker` built from that worker's own `config()` with only
`task_queue` and `workflows` changed (same activities, executor, interceptor, slots, cache and
polls). Rounds run one side at a time, so the idle worker only holds its long polls. The worker
(`bench/interpreter.py --serve`) and an embedded `temporal server start-dev` (ports 7631 / 8631,
database and warehouse store in a temporary directory) are processes of their own, so their CPU is
read alone, from /proc/<pid>/stat (utime + stime, all threads) before and after each batch.

Each round starts N workflows of one side at once, waits for every result, then the other side;
rounds alternate which side goes first, after an unmeasured warm-up of both. Per batch: orders/s
(N / wall time from the first start to the last result), worker, server and this client's CPU ms
per order; per side: one history's events, bytes and workflow tasks. It prints min and median per
side and the ratios interpreted / hand-written, local / hand-written and local / interpreted, with the
load average before and after.
Run: `.venv/bin/python bench/interpreter.py [--orders 200] [--rounds 3] [--warmup 20]`.
A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.helpers for the order, bench.noop for the worker's sandbox

from temporalio.api.enums.v1 import EventType  # noqa: E402
from temporalio.client import Client, WorkflowHandle, WorkflowHistory  # noqa: E402

from bench.devserver import cpu_s, start_dev_server, stop  # noqa: E402
from bench.noop import HAND_WRITTEN, STEPS  # noqa: E402
from orderops.activity_names import ACTIVITY_NAMES  # noqa: E402
from orderops.client import OrderClient  # noqa: E402
from orderops.config import SAMPLES_DIR  # noqa: E402
from orderops.connect import connect  # noqa: E402
from orderops.messages import OrderResult  # noqa: E402
from orderops.order import Order  # noqa: E402
from orderops.process.lint import load_definition  # noqa: E402
from tests.helpers import order_data  # noqa: E402

PORT, UI_PORT = 7631, 8631
DEFINITIONS = {
    "interpreted": ROOT / "bench" / "definitions" / "seven_noops.yaml",
    "local": ROOT / "bench" / "definitions" / "seven_local_noops.yaml",
}
INTERPRETED_QUEUE = "bench-interpreted"
HAND_WRITTEN_QUEUE = "bench-hand-written"
SIDES = ("interpreted", "hand-written", "local")
RATIOS = (("interpreted", "hand-written"), ("local", "hand-written"), ("local", "interpreted"))


# -- the worker process -------------------------------------------------------------------------------


async def serve(address: str, home: Path) -> None:
    from temporalio.worker import Worker

    from activities.store import Store
    from bench.noop import NoopActivities, SevenNoopsByHand
    from orderops.worker import build_worker

    client = await connect(address, "default")
    store = Store(home / "warehouse.db", home / "labels")  # seeded by the benchmark
    interpreted = build_worker(client, store, task_queue=INTERPRETED_QUEUE, extra_activities=[NoopActivities().noop])
    config = interpreted.config()
    config["task_queue"], config["workflows"] = HAND_WRITTEN_QUEUE, [SevenNoopsByHand]
    by_hand = Worker(**config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with interpreted, by_hand:
        (home / "ready").touch()
        await stop.wait()


# -- the benchmark ------------------------------------------------------------------------------------


@dataclass
class Batch:
    side: str
    orders: int
    wall_s: float
    worker_cpu_s: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def per_s(self) -> float:
        return self.orders / self.wall_s

    def ms_per_order(self, cpu: float) -> float:
        return cpu / self.orders * 1e3


@dataclass
class Shape:
    """One workflow's history."""

    events: int
    bytes: int
    kinds: Counter
    task_ms: list[float]  # WorkflowTaskStarted -> Completed, as the server recorded them
    history: WorkflowHistory


class Bench:
    def __init__(self, folder: Path):
        self.folder = folder
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.client: Client
        self.snapshots = {side: load_definition(path, ACTIVITY_NAMES | {"noop"}) for side, path in DEFINITIONS.items()}
        self.serial = 0

    async def start(self) -> None:
        self.server, self.client = await start_dev_server(PORT, UI_PORT, self.folder / "temporal.db", self.folder / "temporal-server.log")
        from activities.store import Store

        home = self.folder / "home"
        (home / "labels").mkdir(parents=True)
        Store(home / "warehouse.db", home / "labels").seed(SAMPLES_DIR / "warehouse.yaml")
        env = {**os.environ, "ORDEROPS_HOME": str(home)}
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", "--address", f"127.0.0.1:{PORT}", "--home", str(home)]
        with open(self.folder / "worker.log", "ab") as log:
            self.worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not (home / "ready").exists():
            if self.worker.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the worker did not start; see {self.folder / 'worker.log'}:\n{(self.folder / 'worker.log').read_text()[-2000:]}")
            await asyncio.sleep(0.1)

    def orders(self, count: int) -> list[Order]:
        self.serial += 1
        return [
            Order.model_validate(order_data(order_id=f"b{self.serial}-{i:04d}", customer_id=f"b{self.serial}-c{i:04d}"))
            for i in range(count)
        ]

    async def batch(self, side: str, count: int) -> tuple[Batch, WorkflowHandle]:
        orders = self.orders(count)  # built before the clock starts
        if side in self.snapshots:
            client, snapshot = OrderClient(self.client, task_queue=INTERPRETED_QUEUE), self.snapshots[side]

            async def one(order: Order) -> WorkflowHandle:
                handle = await client.start(order, snapshot)
                result: OrderResult = await handle.result()
                assert result.status == "completed", result
                return handle
        else:
            inputs = {order.order_id: order.as_variable() for order in orders}  # the order as the interpreter's activities get it

            async def one(order: Order) -> WorkflowHandle:
                handle = await self.client.start_workflow(
                    HAND_WRITTEN, inputs[order.order_id], id=f"hand-{order.order_id}", task_queue=HAND_WRITTEN_QUEUE, result_type=int
                )
                assert await handle.result() == STEPS
                return handle

        assert self.worker is not None and self.server is not None
        worker0, server0, client0 = cpu_s(self.worker.pid), cpu_s(self.server.pid), time.process_time()
        began = time.perf_counter()
        handles = await asyncio.gather(*(one(order) for order in orders))
        wall = time.perf_counter() - began
        worker1, server1, client1 = cpu_s(self.worker.pid), cpu_s(self.server.pid), time.process_time()
        return Batch(side, count, wall, worker1 - worker0, server1 - server0, client1 - client0), handles[0]

    @staticmethod
    async def shape(handle: WorkflowHandle) -> Shape:
        history = await handle.fetch_history()
        started: dict[int, float] = {}
        task_ms = []
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started[e.event_id] = e.event_time.ToDatetime().timestamp()
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                begun = started[e.workflow_task_completed_event_attributes.started_event_id]
                task_ms.append((e.event_time.ToDatetime().timestamp() - begun) * 1e3)
        kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower() for e in history.events)
        return Shape(len(history.events), sum(e.ByteSize() for e in history.events), kinds, task_ms, history)


async def replay_ms(shapes: dict[str, Shape], copies: int) -> dict[tuple[str, str], float]:
    """Milliseconds per history of replaying each side's history in this process: its workflow code alone."""
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from bench.noop import SevenNoopsByHand
    from orderops.codec import data_converter
    from workflows import OrderWorkflow

    async def copies_of(history: WorkflowHistory, n: int):
        for _ in range(n):
            yield history

    costs = {}
    for runner in ("sandboxed", "unsandboxed"):
        extra = {"workflow_runner": UnsandboxedWorkflowRunner()} if runner == "unsandboxed" else {}
        replayer = Replayer(workflows=[OrderWorkflow, SevenNoopsByHand], data_converter=data_converter(), **extra)
        for side in SIDES:
            await replayer.replay_workflows(copies_of(shapes[side].history, 3))  # warm
            began = time.perf_counter()
            await replayer.replay_workflows(copies_of(shapes[side].history, copies))
            costs[side, runner] = (time.perf_counter() - began) / copies * 1e3
    return costs


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


def report(batches: list[Batch], shapes: dict[str, Shape], replays: dict[tuple[str, str], float]) -> None:
    columns: list[tuple[str, int, bool]] = [  # heading, digits, higher is better
        ("orders/s", 1, True),
        ("worker CPU ms/order", 2, False),
        ("server CPU ms/order", 2, False),
        ("client CPU ms/order", 2, False),
    ]

    def values(side: str, column: str) -> list[float]:
        mine = [b for b in batches if b.side == side]
        if column == "orders/s":
            return [b.per_s for b in mine]
        cpu = {"worker": "worker_cpu_s", "server": "server_cpu_s", "client": "client_cpu_s"}[column.split()[0]]
        return [b.ms_per_order(getattr(b, cpu)) for b in mine]

    print("| Side | " + " | ".join(f"{heading}: min / median" for heading, _, _ in columns) + " | History: events, KB, workflow tasks |")
    print("|---" * (len(columns) + 2) + "|")
    for side in SIDES:
        s = shapes[side]
        cells = [spread(values(side, heading), digits) for heading, digits, _ in columns]
        print(f"| {side} | " + " | ".join(cells) + f" | {s.events}, {s.bytes / 1024:.1f}, {len(s.task_ms)} |")
    for a, b in RATIOS:
        ratios = [f"{statistics.median(values(a, heading)) / statistics.median(values(b, heading)):.2f}x" for heading, _, _ in columns]
        history_ratio = f"{shapes[a].events / shapes[b].events:.2f}x, {shapes[a].bytes / shapes[b].bytes:.2f}x"
        print(f"| {a} / {b} (medians) | " + " | ".join(ratios) + f" | {history_ratio} |")
    print()
    for side in SIDES:
        s = shapes[side]
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(s.kinds.items(), key=lambda kv: -kv[1]))
        print(f"{side} history: {kinds}")
        rest = (
            f", then median {statistics.median(s.task_ms[1:]):.1f} ms, max {max(s.task_ms[1:]):.1f} ms"
            if s.task_ms[1:]
            else " (the only one)"
        )
        print(f"  workflow task run (server-recorded): first {s.task_ms[0]:.1f} ms{rest}")
    print()
    print("Replaying one history in this process (its workflow code alone, no server), ms per workflow:")
    print("| Side | sandboxed (as orderops replay runs) | unsandboxed |")
    print("|---|---|---|")
    for side in SIDES:
        print(f"| {side} | {replays[side, 'sandboxed']:.1f} | {replays[side, 'unsandboxed']:.1f} |")


async def run(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="orderops-interpreter-") as folder:
        bench = Bench(Path(folder))
        try:
            began = time.monotonic()
            await bench.start()
            for side in SIDES:  # the sandbox's first imports, connections, caches: not measured
                await bench.batch(side, args.warmup)
            batches: list[Batch] = []
            handles: dict[str, WorkflowHandle] = {}
            for round_ in range(args.rounds):
                for side in SIDES if round_ % 2 == 0 else SIDES[::-1]:
                    batch, handles[side] = await bench.batch(side, args.orders)
                    batches.append(batch)
                    print(
                        f"round {round_ + 1} {side:<12} {batch.per_s:7.1f} orders/s, worker {batch.ms_per_order(batch.worker_cpu_s):6.2f}"
                        f" server {batch.ms_per_order(batch.server_cpu_s):6.2f} client {batch.ms_per_order(batch.client_cpu_s):6.2f} CPU ms/order",
                        file=sys.stderr,
                    )
            shapes = {side: await bench.shape(handle) for side, handle in handles.items()}
            load_after = os.getloadavg()
            replays = await replay_ms(shapes, args.replays)
        finally:
            stop(bench.worker, timeout=20)
            stop(bench.server, timeout=20)
    print(
        f"{os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after;"
        f" {args.orders} workflows per batch, {args.rounds} interleaved rounds, {time.monotonic() - began:.0f} s"
    )
    bytecode = "off (PYTHONDONTWRITEBYTECODE is set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"bytecode cache: {bytecode}; the worker passes workflows/ through its sandbox, bench/noop.py is re-imported per workflow")
    report(batches, shapes, replays)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="workflows started at once per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of both sides")
    parser.add_argument("--warmup", type=int, default=20, help="workflows of each side run first, not measured")
    parser.add_argument("--replays", type=int, default=50, help="copies of each side's history replayed, after the rounds")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the worker process
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.address, args.home))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
