"""The console's inbox with many orders waiting for a person: how long a page takes, first and deep.

Starts a dev server and a worker of its own (ports 7642/8642, in a temporary directory) and N standard
orders that all stop at manual review, then times the inbox as a support agent sees it
(`orderops.console.inbox.inbox`, 50 rows): the first page, and pages further on, following the
listing's tokens. A page reads each row's findings, customer (masked), amount and deadline from the
order's memo, in the one visibility request. The baseline, in the same run: the same page read the
way it would be without the memo, a status query to each of its 50 orders.

    .venv/bin/python bench/inbox.py                      # 2,000 waiting
    .venv/bin/python bench/inbox.py --orders 10000       # the issue's 10,000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from devserver import stack
from waiting import RPC, all_waiting, order

from orderops.activity_names import ACTIVITY_NAMES
from orderops.client import OrderClient
from orderops.console.inbox import Filters, catalog, inbox
from orderops.order import Order
from orderops.people import Person
from orderops.process.lint import load_definition

ROOT = Path(__file__).resolve().parent.parent
PORT, UI_PORT = 7642, 8642
AGENT = Person(id="bench.agent", name="Bench Agent", roles=["support_agent"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2000, help="orders waiting at manual review")
    parser.add_argument("--pages", type=int, default=20, help="pages walked, one after another")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="orderops-bench-inbox-") as scratch:
        async with stack(Path(scratch) / "home", PORT, UI_PORT, None, args.orders) as running:
            api, gate = OrderClient(running.client), asyncio.Semaphore(RPC)
            snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", ACTIVITY_NAMES)

            async def start(o: Order):
                async with gate:
                    return await api.start(o, snapshot)

            began = time.monotonic()
            await asyncio.gather(*(start(order(i, 0)) for i in range(args.orders)))
            await all_waiting(running.client, "order-w0-", args.orders, timeout=max(600, args.orders / 5))
            print(f"  {args.orders} orders waiting after {time.monotonic() - began:.0f} s", file=sys.stderr)
            tasks = catalog(ROOT / "process_defs").tasks

            page_ms, status_ms, rows, filters = [], [], 0, Filters()
            for _ in range(args.pages):
                began = time.perf_counter()
                waiting, token = await inbox(api, tasks, AGENT, filters)
                page_ms.append((time.perf_counter() - began) * 1000)
                rows += len(waiting)
                assert all(w.memo is not None for w in waiting), "an order without its inbox memo"
                began = time.perf_counter()
                await asyncio.gather(*(api.status(w.order.order_id) for w in waiting))
                status_ms.append((time.perf_counter() - began) * 1000)
                if token is None:
                    break
                filters = filters.after(token)
    print(f"{args.orders} orders waiting at manual review; {len(page_ms)} inbox pages of 50 walked ({rows} rows); {os.cpu_count()} cores")
    print(f"{'':34} {'first':>8} {'median':>8} {'max':>8}")
    for name, values in (("inbox page, from the memo", page_ms), ("baseline: + 50 status queries", status_ms)):
        total = values if name.startswith("inbox") else [p + s for p, s in zip(page_ms, values, strict=True)]
        print(f"{name:34} {total[0]:7.0f}ms {statistics.median(total):7.0f}ms {max(total):7.0f}ms")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    asyncio.run(main())
