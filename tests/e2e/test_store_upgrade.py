"""A layout-4 SQLite store, as orderops left it before Alembic, with orders in flight: the worker
refuses it in one line, `orderops store upgrade` brings it to the current layout, and the orders
finish on it with nothing lost."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from activities.store import LAYOUT, Store
from orderops.client import OrderClient
from orderops.config import SAMPLES_DIR
from orderops.messages import ReviewDecision
from orderops.order import Order
from orderops.worker import build_worker
from tests import support
from tests.helpers import (
    AGENT,
    awaiting_decision,
    cli,
    definition,
    deliver,
    free_port,
    order_data,
    settled,
    signed,
    wait_until,
    waiting_for,
)
from tests.store_helpers import as_layout_4

HELD = "SELECT order_id, sku, warehouse, bin, quantity, state FROM reservations ORDER BY order_id, sku, warehouse, bin"


async def test_a_layout_4_store_with_live_orders_is_upgraded_in_place_and_they_finish(client: Client, address: str, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    store = Store(url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    [free] = store.rows("SELECT on_hand - reserved AS n FROM stock WHERE sku = 'LAMP-007' AND warehouse = 'SH'")
    queue = f"upgrade-{free_port()}"
    orders = OrderClient(client, task_queue=queue)
    async with build_worker(client, store, task_queue=queue, extra_activities=support.extra_activities()):
        reviewed = await orders.start(Order.model_validate(order_data(phone="12345")), definition("standard.yaml"))
        picking = await orders.start(Order.model_validate(order_data()), definition("standard.yaml"))
        short = await orders.start(
            Order.model_validate(order_data(items=[{"sku": "LAMP-007", "quantity": free["n"] + 2, "unit_price": "120.00"}])),
            definition("standard.yaml"),
        )
        await wait_until(reviewed, awaiting_decision)
        await wait_until(picking, waiting_for("scanned"))
        await wait_until(short, waiting_for("restocked"))
    held = store.rows(HELD)
    # In flight: two orders hold stock, the third waits for goods on an open requisition.
    assert {f"order-{r['order_id']}" for r in held} == {reviewed.id, picking.id}
    assert [f"order-{r['order_id']}" for r in store.rows("SELECT order_id FROM purchase_requisitions WHERE state = 'open'")] == [short.id]
    store.close()
    as_layout_4(url)

    env = {"ORDEROPS_STORE_URL": url}
    # No server at that address: the store is checked first, and a worker that failed to refuse it would not poll.
    refused = await cli("worker", address=f"127.0.0.1:{free_port()}", extra_env=env)
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[-1] == (
        f"orderops: {url} is at store layout 4 and this orderops reads {LAYOUT}: run `orderops store upgrade`"
    ), refused.stderr
    upgraded = await cli("store", "upgrade", extra_env=env)
    assert (upgraded.returncode, upgraded.stdout) == (0, f"{url}: upgraded from store layout 4 to {LAYOUT}, its data kept\n"), (
        upgraded.stderr
    )
    status = await cli("store", "status", extra_env=env)
    assert status.stdout == f"{url}: store layout {LAYOUT}, the one this orderops reads\n"

    store = Store(url, tmp_path / "labels")
    assert store.rows(HELD) == held
    async with build_worker(client, store, task_queue=queue, extra_activities=support.extra_activities()):
        await reviewed.execute_update("review", signed(reviewed, "review", ReviewDecision(decision="approve", agent="amy"), AGENT))
        told = await orders.restock(store, "LAMP-007", "SH", 10)
        assert told.told == [(short.id.removeprefix("order-"), None)]
        for handle in (reviewed, picking, short):
            await deliver(handle)
        for handle in (reviewed, picking, short):
            assert (await settled(handle, store)).status == "completed"
    assert store.inconsistencies([h.id.removeprefix("order-") for h in (reviewed, picking, short)]) == []
    store.close()
