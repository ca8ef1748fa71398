"""The warehouse store's speed on each backend: reservations per second, one thread and many.

Each case seeds a fresh store and runs `reserve_stock` then `release_stock` (two write transactions,
the store's write lock held in each) for distinct orders, from 1 and from 8 threads, in one run:

- SQLite, on this tree (SQLAlchemy Core);
- PostgreSQL, on this tree (the machine's server, a database of the run's own, dropped after);
- with `--baseline REV`, SQLite on that revision's store (before issue 15: the sqlite3 module).

    .venv/bin/python bench/store.py [--orders N] [--baseline REV]

Each case runs in a process of its own, so a baseline tree's modules never meet this one's.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from startup import export  # bench/startup.py: a revision's tree, from git archive

ROOT = Path(__file__).resolve().parent.parent
THREADS = (1, 8)


def child(store_arg: str, orders: int, scratch: Path) -> None:
    """Runs in the tree first on sys.path: that tree's Store and StockActivities."""
    import structlog
    from temporalio.testing import ActivityEnvironment

    from activities.stock import StockActivities
    from activities.store import Store
    from orderops.config import SAMPLES_DIR
    from orderops.order import Order
    from tests.helpers import order_data

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # the activities' info lines are not the work
    results = {}
    for threads in THREADS:
        store = Store(Path(store_arg) if store_arg.startswith("/") else store_arg, scratch / "labels")  # the old Store takes a path
        store.seed(SAMPLES_DIR / "warehouse.yaml")
        stock = StockActivities(store)
        env = ActivityEnvironment()
        prepared = [Order.model_validate(order_data(order_id=f"bench-{threads}-{i}")) for i in range(orders)]

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(functools.partial(reserve_and_release, env, stock), prepared))
        elapsed = time.perf_counter() - started
        assert store.inconsistencies() == [], store.inconsistencies()
        results[threads] = orders / elapsed
    print(json.dumps(results))


def reserve_and_release(env, stock, order) -> None:
    from activities.inputs import OrderArgs, ReserveArgs

    policy = {"when_no_single_warehouse": "split"}
    env.run(stock.reserve_stock, ReserveArgs.model_validate({"order": order.as_variable(), "policy": policy}))
    env.run(stock.release_stock, OrderArgs.model_validate({"order": order.as_variable()}))


def run_case(tree: Path, store_arg: str, orders: int, scratch: Path) -> dict[str, float]:
    scratch.mkdir()
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); sys.path.insert(1, {str(ROOT / 'bench')!r}); import store as bench; bench.child({store_arg!r}, {orders}, __import__('pathlib').Path({str(scratch)!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, env={**os.environ, "ORDEROPS_HOME": str(scratch)}
    )
    if done.returncode != 0:
        sys.exit(f"case in {tree} on {store_arg} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=400, help="orders reserved and released per case")
    parser.add_argument("--baseline", metavar="REV", help="a git revision whose SQLite store is timed beside this one")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests import postgres

    with tempfile.TemporaryDirectory() as folder, postgres.run_database() as database:
        scratch = Path(folder)
        cases = {
            "SQLite (SQLAlchemy Core)": (ROOT, str(scratch / "sqlite.db")),
            "PostgreSQL (SQLAlchemy Core, psycopg 3)": (ROOT, database),
        }
        if args.baseline:
            cases[f"SQLite at {args.baseline} (sqlite3)"] = (export(args.baseline, scratch / "baseline"), str(scratch / "old.db"))
        results = {}
        for index, (name, (tree, store_arg)) in enumerate(cases.items()):
            if store_arg == database:
                store_arg = postgres.fresh_schema(database)
            results[name] = run_case(tree, store_arg, args.orders, scratch / f"case-{index}")
    print(f"{os.cpu_count()} cores; {args.orders} orders reserved and released per case (two write transactions each)")
    for name, rates in results.items():
        print(f"{name:44s} " + "   ".join(f"{threads} thread(s): {rate:7.1f} orders/s" for threads, rate in rates.items()))


if __name__ == "__main__":
    main()
