"""Orders waiting for a person: the worker's memory per cached order, and how fast a decision is taken.

Each trial starts a dev server of its own (ports 7641/8641, in a temporary directory), a worker
process of the tree under test, and N standard orders that all stop at manual review (an invalid
phone). When every one waits, it reads the worker's resident memory, then decides K of them one
after another (`review` updates, approve) and times each receipt: first the K started last, which
the worker's cache holds; then, when N is more than the cache holds (`MAX_CACHED_WORKFLOWS`, 1,000),
the K started first, which it has evicted and must replay. The baseline is an older revision run
the same way (`git archive`, with this virtualenv), trials interleaved.

    .venv/bin/python bench/waiting.py                             # 500 orders, 100 decisions, vs cf1a748
    .venv/bin/python bench/waiting.py --orders 2000 --rounds 2 --baseline cf1a748
    .venv/bin/python bench/waiting.py --orders 10000 --baseline e4af25a     # the issue's 10,000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devserver import stack
from startup import export  # bench/startup.py: a revision's tree, for the baseline
from temporalio.client import Client

from orderops.activity_names import ACTIVITY_NAMES
from orderops.client import OrderClient
from orderops.messages import ReviewDecision
from orderops.order import Order
from orderops.process.lint import load_definition
from orderops.worker import MAX_CACHED_WORKFLOWS

ROOT = Path(__file__).resolve().parent.parent
PORT, UI_PORT = 7641, 8641
RPC = 32  # requests in flight at once


@dataclass
class Trial:
    tree: str
    idle_mb: float
    waiting_mb: float
    orders: int
    cached_ms: list[float]
    evicted_ms: list[float]

    @property
    def kib_per_order(self) -> float:
        return (self.waiting_mb - self.idle_mb) * 1024 / self.orders


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def order(index: int, trial: int) -> Order:
    unique = f"w{trial}-{index:05d}"
    return Order.model_validate(
        {
            "order_id": unique,
            "customer_id": f"c-{unique}",
            "customer_name": "Li Wei",
            "phone": "12345",  # invalid: the automatic review sends the order to a person
            "address": {
                "province": "Shanghai",
                "city": "Shanghai",
                "district": "Pudong",
                "street": "88 Century Avenue",
                "postcode": "200120",
            },
            "items": [{"sku": "TEA-001", "quantity": 1, "unit_price": "68.00"}],
            "paid": True,
        }
    )


async def all_waiting(client: Client, prefix: str, count: int, timeout: float = 600) -> None:
    query = f"WorkflowType = 'OrderWorkflow' AND OrderStatus = 'awaiting_review' AND WorkflowId STARTS_WITH '{prefix}'"
    deadline = time.monotonic() + timeout
    while (await client.count_workflows(query)).count < count:
        if time.monotonic() > deadline:
            sys.exit(f"not every order reached manual review within {timeout:g} s")
        await asyncio.sleep(0.5)


async def trial(index: int, tree_name: str, tree: Path | None, orders: int, decisions: int, folder: Path) -> Trial:
    async with stack(folder / f"trial-{index}", PORT, UI_PORT, tree, orders) as running:
        client, worker = running.client, running.worker
        # The tree's own definition: a baseline worker may not read a newer one (standard v5's local tasks).
        snapshot = load_definition((tree or ROOT) / "process_defs" / "standard.yaml", ACTIVITY_NAMES)
        api, gate = OrderClient(client), asyncio.Semaphore(RPC)

        async def start(o: Order):
            async with gate:
                return await api.start(o, snapshot)

        wanted = [order(i, index) for i in range(orders)]
        # The worker's memory once it has started, before any order: what the orders add is measured from here.
        await start(wanted[0])
        await all_waiting(client, f"order-w{index}-", 1)
        idle = rss_mb(worker.pid)
        await asyncio.gather(*(start(o) for o in wanted[1:]))
        await all_waiting(client, f"order-w{index}-", orders, timeout=max(600, orders / 5))
        waiting = rss_mb(worker.pid)

        async def receipts(chosen: list[Order]) -> list[float]:
            times = []
            for o in chosen:
                began = time.perf_counter()
                await api.decide(o.order_id, ReviewDecision(decision="approve", agent="bench", reason="benchmark"))
                times.append((time.perf_counter() - began) * 1000)
            return times

        cached = await receipts(wanted[-decisions:])
        evicted = await receipts(wanted[1 : decisions + 1]) if orders - decisions > MAX_CACHED_WORKFLOWS else []
        return Trial(tree_name, idle, waiting, orders - 1, cached, evicted)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=500, help="orders waiting at manual review in each trial")
    parser.add_argument("--decisions", type=int, default=100, help="orders decided, one after another, in each trial")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of now and the baseline")
    parser.add_argument("--baseline", default="cf1a748", help="the revision compared against")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="orderops-bench-waiting-") as scratch:
        folder = Path(scratch)
        baseline = export(args.baseline, folder / "baseline")
        trees: list[tuple[str, Path | None]] = [("now", None), (args.baseline, baseline)]
        index = 0
        for _ in range(args.rounds):
            for name, tree in trees:
                index += 1
                results.append(await trial(index, name, tree, args.orders, args.decisions, folder))
                print(f"  trial {index} ({name}) done", file=sys.stderr)
    print(
        f"{args.orders} orders waiting at manual review, {args.decisions} decided in a row, {args.rounds} round(s), {os.cpu_count()} cores"
    )
    print(f"{'tree':10} {'RSS idle':>9} {'RSS waiting':>12} {'KiB/order':>10} {'cached p50':>11} {'p99':>7} {'evicted p50':>12} {'p99':>7}")
    for t in results:
        cells = [
            f"{statistics.median(ms):9.0f}ms {percentile(ms, 0.99):5.0f}ms" if ms else f"{'-':>11} {'-':>7}"
            for ms in (t.cached_ms, t.evicted_ms)
        ]
        print(f"{t.tree:10} {t.idle_mb:8.0f}M {t.waiting_mb:11.0f}M {t.kib_per_order:10.0f} {cells[0]} {cells[1]}")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    asyncio.run(main())
