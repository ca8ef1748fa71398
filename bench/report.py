"""`orderops report` and `orderops list` over N closed orders: this tree against an older revision, on the same orders.

N orders of bench/definitions/promise_only.yaml (the promise as a local task, then an end) are started
and run to their end on an embedded dev server of the benchmark's own (ports 7671 / 8671) with a worker
of this tree, so each has written its KPI facts to its memo (engine 3). Then, in interleaved rounds,
each tree's command line runs as a fresh process (the baseline exported with `git archive` and run with
this virtualenv, its folder first on sys.path):
- `orderops report --json` over every closed order: wall time, and whether both trees print the same
  KPIs (they must: the memo holds what the result would give);
- `orderops list --limit N`: wall time, and the time until its first row reaches stdout.
The default baseline, 50a8f01, fetches each order's result for the report and draws the whole list
as one table at the end.
Run: `.venv/bin/python bench/report.py [--orders 10000] [--rounds 3] [--baseline REV]`.
A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.helpers for the orders, bench.devserver

from bench.devserver import stack  # noqa: E402
from bench.startup import export  # noqa: E402
from orderops.activity_names import ACTIVITY_NAMES  # noqa: E402
from orderops.client import OrderClient  # noqa: E402
from orderops.order import Order  # noqa: E402
from orderops.process.lint import load_definition  # noqa: E402
from tests.helpers import order_data  # noqa: E402

PORT, UI_PORT = 7671, 8671
DEFINITION = ROOT / "bench" / "definitions" / "promise_only.yaml"
STARTS_AT_ONCE = 200
LAUNCH = "import sys, starter; sys.argv[0] = 'orderops'; starter.main()"


async def make_orders(client, count: int) -> float:
    """Start `count` orders, wait until visibility lists them all as completed; returns the seconds it took."""
    orders = OrderClient(client)
    snapshot = load_definition(DEFINITION, ACTIVITY_NAMES)
    began = time.perf_counter()
    for first in range(0, count, STARTS_AT_ONCE):
        batch = [
            Order.model_validate(order_data(order_id=f"r{i:05d}", customer_id=f"c{i:05d}"))
            for i in range(first, min(first + STARTS_AT_ONCE, count))
        ]
        await asyncio.gather(*(orders.start(order, snapshot) for order in batch))
    while (await client.count_workflows("ExecutionStatus = 'Completed'")).count < count:
        await asyncio.sleep(1)
    return time.perf_counter() - began


def timed(tree: Path, args: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """(wall s, s until the first line after the header, stdout) of one command of `tree`."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    header = process.stdout.readline()
    first = process.stdout.readline()
    first_at = time.perf_counter() - began
    rest = process.stdout.read()
    stderr = process.stderr.read() if process.stderr else b""
    if process.wait() != 0:
        sys.exit(f"{' '.join(args)} in {tree} failed: {stderr.decode()[-500:]}")
    return time.perf_counter() - began, first_at, header + first + rest


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} s"


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        trees = {"now": ROOT, args.baseline: export(args.baseline, Path(folder) / "baseline")}
        async with stack(Path(folder) / "home", PORT, UI_PORT, tree=None, stock=1) as bench:
            made = await make_orders(bench.client, args.orders)
            print(f"{args.orders} orders run to their end in {made:.0f} s")
            env = {**os.environ, "TEMPORAL_ADDRESS": f"127.0.0.1:{PORT}", "ORDEROPS_HOME": str(Path(folder) / "home")}
            commands = {
                "report": ["report", "--json", "--since", "2000-01-01"],
                "list": ["list", "--limit", str(args.orders)],
            }
            load_before = os.getloadavg()[0]
            wall: dict[tuple[str, str], list[float]] = {}
            first_row: dict[tuple[str, str], list[float]] = {}
            reports: dict[str, dict] = {}
            for round_ in range(args.rounds):
                for name in trees if round_ % 2 == 0 else reversed(trees):
                    for command, argv in commands.items():
                        seconds, first_at, out = timed(trees[name], argv, env)
                        wall.setdefault((name, command), []).append(seconds)
                        first_row.setdefault((name, command), []).append(first_at)
                        if command == "report":
                            reports[name] = {k: v for k, v in json.loads(out).items() if k != "until"}  # "until" is now
            load_after = os.getloadavg()[0]
    orders = {name: report["overall"]["orders"] for name, report in reports.items()}
    print(f"\n{args.rounds} interleaved rounds; load average {load_before:.2f} before, {load_after:.2f} after")
    print(
        f"orders counted by each report: {orders}; same KPIs: {'yes' if len({json.dumps(r, sort_keys=True) for r in reports.values()}) == 1 else 'NO'}"
    )
    print(f"{'tree':<10} {'report: min / median':<24} {'list: min / median':<24} {'list first row: min / median':<30}")
    for name in trees:
        print(f"{name:<10} {spread(wall[(name, 'report')]):<24} {spread(wall[(name, 'list')]):<24} {spread(first_row[(name, 'list')]):<30}")
    now, old = "now", args.baseline
    median = statistics.median
    print(
        f"now / {old} (medians): report {median(wall[(now, 'report')]) / median(wall[(old, 'report')]):.2f}x the time, "
        f"list {median(wall[(now, 'list')]) / median(wall[(old, 'list')]):.2f}x, "
        f"list's first row {median(first_row[(now, 'list')]) / median(first_row[(old, 'list')]):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="closed orders to report on")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of each tree's commands")
    parser.add_argument("--baseline", metavar="REV", default="50a8f01", help="the revision whose commands are timed beside these")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
