"""The full standard process, driven as the demo drives it: orders/s and CPU per order, against a baseline.

Each trial starts a dev server of its own (ports 7651/8651, in a temporary directory), a worker
process of the tree under test, and N paid, in-stock orders of that tree's
process_defs/standard.yaml, all at once. The demo's own actors (`orderops.demo.Actors`: the picker's
scan, the courier's tracking, the customer's feedback) drive every order to its end as `orderops demo`
does: each order is followed through a long poll on its history and, each time it moves, its status
is queried and the event it waits for is sent.
Per trial: orders/s (N / wall time from the first start to the last result), worker and server CPU
per order from /proc/<pid>/stat, and one order's history (events, workflow tasks, search-attribute
upserts, timers, markers). Three baselines, trials interleaved: "polling driver", this tree driven as
the demo drove it before (every 0.2 s, each order's describe and status query); "all regular", this tree with every
`local: true` taken out of standard.yaml (the gain of local tasks alone), and an older revision run
the same way (`git archive`, with this virtualenv).

    .venv/bin/python bench/standard.py                            # 100 orders, vs cf1a748
    .venv/bin/python bench/standard.py --orders 200 --rounds 2 --baseline 566a5d2

A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from devserver import cpu_s, stack
from startup import export  # bench/startup.py: a revision's tree, for the baseline
from temporalio.api.enums.v1 import EventType
from waiting import order as waiting_order

from orderops.activity_names import ACTIVITY_NAMES
from orderops.client import OrderClient
from orderops.demo import Actors, Scenario, Tracked
from orderops.order import Order
from orderops.process.lint import load_definition

ROOT = Path(__file__).resolve().parent.parent
PORT, UI_PORT = 7651, 8651
TIMEOUT_S = 900


@dataclass
class Trial:
    tree: str
    orders: int
    wall_s: float
    worker_cpu_s: float
    server_cpu_s: float
    kinds: Counter

    @property
    def per_s(self) -> float:
        return self.orders / self.wall_s


def order(index: int, trial: int) -> Order:
    """bench/waiting.py's order with a valid phone, so the automatic review passes it."""
    return waiting_order(index, trial).model_copy(update={"order_id": f"s{trial}-{index:05d}", "phone": "13812345678"})


async def trial(
    index: int, tree_name: str, tree: Path | None, orders: int, folder: Path, *, all_regular: bool = False, polling: bool = False
) -> Trial:
    home = folder / f"trial-{index}"
    async with stack(home, PORT, UI_PORT, tree, orders) as running:
        dev, client, worker, store = running.dev, running.client, running.worker, running.store
        definition = (tree or ROOT) / "process_defs" / "standard.yaml"
        if all_regular:  # a copy of the folder, for the promise policy the definition names beside it
            shutil.copytree(definition.parent, home / "defs")
            definition = home / "defs" / "standard.yaml"
            definition.write_text(definition.read_text().replace("    local: true\n", ""))
        snapshot = load_definition(definition, ACTIVITY_NAMES)
        api = OrderClient(client)
        wanted = [order(i, index) for i in range(orders)]
        await api.start(order(orders, index), snapshot)  # the worker's start-up and first order: not measured
        worker0, server0 = cpu_s(worker.pid), cpu_s(dev.pid)
        began = time.perf_counter()
        handles = await asyncio.gather(*(api.start(o, snapshot) for o in wanted))
        tracked = [Tracked(Scenario(scenario="bench", expect="completed", order=o), h) for o, h in zip(wanted, handles, strict=True)]
        actors = Actors(api, store, tracked)
        if polling:
            await poll(actors, tracked, worker, home)
        else:
            for t in tracked:
                actors.follow(t)
            try:
                await asyncio.wait_for(actors.finish(lambda: None), TIMEOUT_S)
            except TimeoutError:
                sys.exit(f"the orders did not finish within {TIMEOUT_S} s; see {home / 'worker.log'}")
            finally:
                actors.stop()
        wall = time.perf_counter() - began
        worker_cpu, server_cpu = cpu_s(worker.pid) - worker0, cpu_s(dev.pid) - server0
        ended = Counter(t.result.status for t in tracked if t.result)
        if ended != Counter({"completed": orders}):
            sys.exit(f"not every order completed: {dict(ended)}; see {home / 'worker.log'}")
        history = await handles[0].fetch_history()
        kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_").lower() for e in history.events)
        kinds["events"] = len(history.events)
        return Trial(tree_name, orders, wall, worker_cpu, server_cpu, kinds)


async def poll(actors: Actors, tracked: list[Tracked], worker, home: Path) -> None:
    """The demo's driver before it followed each order's history: every 0.2 s, each order's describe and status query."""
    deadline = time.monotonic() + TIMEOUT_S
    while any(t.result is None for t in tracked):
        if time.monotonic() > deadline or worker.poll() is not None:
            sys.exit(f"the orders did not finish within {TIMEOUT_S} s; see {home / 'worker.log'}")
        for t in tracked:
            if t.result is None:
                await actors.advance(t)
        await asyncio.sleep(0.2)


def spread(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f}"


def report(results: list[Trial], trees: list[str]) -> None:
    def column(tree: str, value) -> list[float]:
        return [value(t) for t in results if t.tree == tree]

    columns = {
        "orders/s": lambda t: t.per_s,
        "worker CPU ms/order": lambda t: t.worker_cpu_s / t.orders * 1e3,
        "server CPU ms/order": lambda t: t.server_cpu_s / t.orders * 1e3,
    }
    shown = ("events", "workflow_task_completed", "upsert_workflow_search_attributes", "timer_started", "marker_recorded")
    print("| Tree | " + " | ".join(f"{c}: min / median" for c in columns) + " | One order: " + ", ".join(shown) + " |")
    print("|---" * (len(columns) + 2) + "|")
    for tree in trees:
        kinds = next(t.kinds for t in results if t.tree == tree)
        cells = [spread(column(tree, value), 1) for value in columns.values()]
        print(f"| {tree} | " + " | ".join(cells) + " | " + ", ".join(str(kinds[k]) for k in shown) + " |")
    now = trees[0]
    for base in trees[1:]:
        ratios = [f"{statistics.median(column(now, v)) / statistics.median(column(base, v)):.2f}x" for v in columns.values()]
        print(f"| {now} / {base} (medians) | " + " | ".join(ratios) + " | |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100, help="orders started at once in each trial")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of now and the baseline")
    parser.add_argument("--baseline", default="cf1a748", help="the revision compared against")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="orderops-bench-standard-") as scratch:
        folder = Path(scratch)
        baseline = export(args.baseline, folder / "baseline")
        trees: list[tuple[str, Path | None]] = [("now", None), ("polling driver", None), ("all regular", None), (args.baseline, baseline)]
        index = 0
        for round_ in range(args.rounds):
            for name, tree in trees if round_ % 2 == 0 else trees[::-1]:
                index += 1
                results.append(
                    await trial(index, name, tree, args.orders, folder, all_regular=name == "all regular", polling=name == "polling driver")
                )
                t = results[-1]
                print(f"  trial {index} ({name}): {t.per_s:.2f} orders/s", file=sys.stderr)
    print(f"{args.orders} standard orders per trial, driven as the demo drives them, {args.rounds} round(s), {os.cpu_count()} cores")
    report(results, [name for name, _ in trees])
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    asyncio.run(main())
