"""Three `orderops worker` processes on one Temporal server and one PostgreSQL store share 300 orders
that ask for more stock than there is; one worker is killed with SIGKILL part-way through.

Everything is real: a dev server of the test's own (so no other worker takes these orders), three
worker processes with the store at ORDEROPS_STORE_URL, and the orders of tests/definitions/stock_race.yaml,
which reserve at one warehouse or wait for goods (the backorder policy). The kill fires on progress,
never on the clock. Afterwards every order completed or is backordered, and the stock adds up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.store import Store
from orderops import server
from orderops.client import OrderClient
from orderops.codec import Keyring
from orderops.config import SAMPLES_DIR
from orderops.connect import Unreachable, connect
from orderops.order import Order, tally
from tests.helpers import ROOT, definition, free_port, order_data

pytestmark = pytest.mark.timeout(420)

ORDERS = 300
WORKERS = 3
KILL_AFTER = ORDERS // 3  # orders settled before one worker is killed
# Less stock than the orders ask for: 600 tea and 100 mugs wanted, 200 tea and 40 mugs in store.
STOCK = {("TEA-001", "SH"): 120, ("TEA-001", "BJ"): 60, ("TEA-001", "GZ"): 20, ("MUG-002", "SH"): 30, ("MUG-002", "BJ"): 10}
SETTLE_TIMEOUT_S = 300


def order(index: int) -> Order:
    items = [{"sku": "TEA-001", "quantity": 1 + index % 3, "unit_price": "68.00"}]
    if index % 3 == 0:
        items.append({"sku": "MUG-002", "quantity": 1, "unit_price": "45.50"})
    return Order.model_validate(order_data(order_id=f"race-{index:03d}", items=items))


async def own_server(home: Path) -> tuple[subprocess.Popen, Client, str]:
    address = f"127.0.0.1:{free_port()}"
    port = int(address.rsplit(":", 1)[1])
    with open(home / "temporal-server.log", "ab") as log:
        process = subprocess.Popen(
            server.command(port=port, ui_port=free_port(), db=home / "temporal.db"), stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            return process, await connect(address, "default"), address
        except Unreachable:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def start_worker(home: Path, address: str, store_url: str, n: int) -> subprocess.Popen:
    # What a worker on another host is given: the cluster, the store and the codec keys.
    env = {
        **os.environ,
        "ORDEROPS_HOME": str(home),
        "TEMPORAL_ADDRESS": address,
        "ORDEROPS_STORE_URL": store_url,
        **Keyring.load().as_env(),
    }
    with open(home / f"worker-{n}.log", "ab") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "orderops"), "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )


async def settled_count(client: Client) -> int:
    done = await client.count_workflows("ExecutionStatus = 'Completed'")
    waiting = await client.count_workflows("ExecutionStatus = 'Running' AND OrderStatus = 'backordered'")
    return done.count + waiting.count


async def test_three_workers_share_300_orders_for_short_stock_with_one_killed_and_nothing_oversold(postgres_store_url: str, tmp_path: Path):
    store = Store(postgres_store_url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    with store.transaction() as db:
        db.execute("UPDATE stock SET on_hand = 0 WHERE sku IN ('TEA-001', 'MUG-002')")
        for (sku, warehouse), on_hand in STOCK.items():
            db.execute(
                "UPDATE stock SET on_hand = ? WHERE sku = ? AND warehouse = ? AND bin = (SELECT MIN(bin) FROM stock WHERE sku = ? AND warehouse = ?)",
                (on_hand, sku, warehouse, sku, warehouse),
            )
    before = {(r["sku"], r["warehouse"], r["bin"]): r["on_hand"] for r in store.rows("SELECT sku, warehouse, bin, on_hand FROM stock")}

    temporal, client, address = await own_server(tmp_path)
    workers = [start_worker(tmp_path, address, postgres_store_url, n) for n in range(WORKERS)]
    try:
        orders = OrderClient(client)
        snapshot = definition("stock_race.yaml")
        placed = [order(i) for i in range(ORDERS)]
        gate = asyncio.Semaphore(20)

        async def place(o: Order) -> None:
            async with gate:
                await orders.start(o, snapshot)

        await asyncio.gather(*(place(o) for o in placed))

        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        killed = False
        while (count := await settled_count(client)) < ORDERS:
            if not killed and count >= KILL_AFTER:
                workers[0].send_signal(signal.SIGKILL)  # in the middle of its activities and workflow tasks
                workers[0].wait()
                killed = True
            assert time.monotonic() < deadline, f"{count} of {ORDERS} orders settled in {SETTLE_TIMEOUT_S} s"
            assert all(w.poll() is None for w in workers[1:]), "a surviving worker exited"
            await asyncio.sleep(0.5)
        assert killed

        async def status_of(o: Order):
            async with gate:
                return await orders.status(o.order_id)

        views = await asyncio.gather(*(status_of(o) for o in placed))
    finally:
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            w.wait(timeout=30)
        temporal.terminate()
        temporal.wait(timeout=30)

    by_status = Counter(v.status for v in views)
    assert set(by_status) == {"completed", "backordered"}, by_status
    completed = [o for o, v in zip(placed, views, strict=True) if v.status == "completed"]
    backordered = [o for o, v in zip(placed, views, strict=True) if v.status == "backordered"]

    # Each completed order shipped exactly what it asked for, from one warehouse; the others hold nothing.
    shipped = store.rows("SELECT order_id, sku, warehouse, bin, quantity FROM reservations WHERE state = 'shipped'")
    for o in completed:
        lines = [r for r in shipped if r["order_id"] == o.order_id]
        assert tally(lines) == tally(o.items), o.order_id
        assert len({r["warehouse"] for r in lines}) == 1, o.order_id
    assert {r["order_id"] for r in shipped} == {o.order_id for o in completed}
    assert store.rows("SELECT order_id FROM reservations WHERE state = 'active'") == []

    # No unit left twice: each bin's stock went down by exactly what shipped from it, and none is held.
    after = {
        (r["sku"], r["warehouse"], r["bin"]): (r["on_hand"], r["reserved"])
        for r in store.rows("SELECT sku, warehouse, bin, on_hand, reserved FROM stock")
    }
    out = Counter()
    for r in shipped:
        out[(r["sku"], r["warehouse"], r["bin"])] += r["quantity"]
    assert {key: (before[key] - out[key], 0) for key in before} == after
    assert sum(out[key] for key in out if key[0] == "TEA-001") <= sum(v for (sku, _), v in STOCK.items() if sku == "TEA-001")

    # The policy: a backordered order found no warehouse with all it asks for, and even now none has it.
    free = {(sku, warehouse): 0 for sku, warehouse, _ in before}
    for (sku, warehouse, _), (on_hand, reserved) in after.items():
        free[(sku, warehouse)] += on_hand - reserved
    requisitions = store.rows("SELECT order_id, sku, state FROM purchase_requisitions")
    for o in backordered:
        wanted = tally(o.items)
        assert all(any(free.get((sku, w), 0) < n for sku, n in wanted.items()) for w in ("SH", "BJ", "GZ")), o.order_id
        assert [r["state"] for r in requisitions if r["order_id"] == o.order_id], o.order_id
    assert by_status["completed"] > 0 and by_status["backordered"] > 0
    assert store.inconsistencies([o.order_id for o in completed]) == []

    # The work was shared: every worker ran activities, the killed one before it died.
    for n in range(WORKERS):
        assert "stock reserved" in (tmp_path / f"worker-{n}.log").read_text(encoding="utf-8"), f"worker {n} reserved nothing"
    store.close()
