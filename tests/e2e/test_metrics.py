"""A worker's Prometheus endpoint, scraped while orders run: the SDK's runtime metrics and the business ones."""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from activities.store import Store
from orderops.client import OrderClient
from orderops.connect import Unreachable, connect
from orderops.messages import ReviewDecision
from orderops.open_orders import GAUGES, open_order_counts, watch_open_orders
from orderops.order import Order
from orderops.worker import build_worker
from tests import support
from tests.helpers import AGENT, awaiting_decision, definition, deliver, free_port, order_data, run_cli, settled, signed, wait_until


def samples(text: str, name: str) -> dict[str, float]:
    """Each sample of a metric, by its labels as Prometheus prints them."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


async def test_a_workers_metrics_count_orders_steps_decisions_and_the_sdks_own(address, store: Store, tmp_path):
    bound = f"127.0.0.1:{free_port()}"
    client = await connect(address, "default", metrics=bound)
    queue = f"metrics-{free_port()}"
    orders = OrderClient(client, task_queue=queue)
    async with build_worker(client, store, task_queue=queue, extra_activities=support.extra_activities()):
        plain = await orders.start(Order.model_validate(order_data()), definition("standard.yaml"))
        anomalous = await orders.start(Order.model_validate(order_data(phone="12345")), definition("standard.yaml"))
        flaky = await orders.start(Order.model_validate(order_data()), definition("retry.yaml"))  # fails twice, then succeeds
        await wait_until(anomalous, awaiting_decision)
        await anomalous.execute_update("review", signed(anomalous, "review", ReviewDecision(decision="reject", agent="amy"), AGENT))
        await deliver(plain)
        assert (await settled(plain, store)).status == "completed"
        assert (await settled(anomalous, store)).status == "rejected"
        assert (await settled(flaky, store)).status == "completed"

        text, deadline = "", time.monotonic() + 30
        while time.monotonic() < deadline:  # the exporter serves what the core has aggregated so far
            text = httpx.get(f"http://{bound}/metrics", timeout=5).text
            if sum(samples(text, "orderops_orders_ended_total").values()) >= 3:
                break
            await asyncio.sleep(0.2)
    started = samples(text, "orderops_orders_started_total")
    assert sum(v for labels, v in started.items() if 'process="standard"' in labels) == 2
    assert sum(v for labels, v in started.items() if 'process="test-retry"' in labels) == 1
    ended = samples(text, "orderops_orders_ended_total")
    assert sum(v for labels, v in ended.items() if 'status="completed"' in labels) == 2
    assert [v for labels, v in ended.items() if 'status="rejected"' in labels] == [1.0]
    decisions = samples(text, "orderops_decisions_total")
    assert [v for labels, v in decisions.items() if 'node="manual_review"' in labels and 'outcome="reject"' in labels] == [1.0]
    steps = samples(text, "orderops_step_duration_count")
    assert any('node="pick"' in labels and 'outcome="completed"' in labels for labels in steps)
    # The SDK's runtime metrics beside them, activity failures among them.
    assert sum(samples(text, "temporal_workflow_completed_total").values()) >= 3
    failed = samples(text, "temporal_activity_execution_failed_total")
    assert sum(v for labels, v in failed.items() if 'activity_type="flaky_step"' in labels) == 2


async def test_a_worker_serves_gauges_of_the_running_orders_at_risk_and_past_a_deadline_now(address):
    bound = f"127.0.0.1:{free_port()}"
    client = await connect(address, "default", metrics=bound)
    watcher = asyncio.create_task(watch_open_orders(client, every=0.2))
    try:
        deadline = time.monotonic() + 30
        while True:  # the gauges show what visibility counts, once the watcher has read it
            served = {name: samples(httpx.get(f"http://{bound}/metrics", timeout=5).text, name) for name in GAUGES}
            counts = await open_order_counts(client)
            if all(list(served[name].values()) == [float(counts[name])] for name in GAUGES):
                break
            assert time.monotonic() < deadline, f"served {served}, visibility counts {counts}"
            await asyncio.sleep(0.2)
    finally:
        watcher.cancel()


async def test_a_metrics_address_that_cannot_be_served_is_one_line(address):
    try:
        await connect(address, "default", metrics="not an address")
    except Unreachable as err:
        assert str(err).startswith("--metrics 'not an address': cannot serve Prometheus metrics there")
    else:
        raise AssertionError("a bad metrics address was accepted")
    refused = run_cli("worker", "--metrics", "999.1.1.1:1", address=address)
    assert refused.returncode == 1 and refused.stderr.startswith("orderops: --metrics '999.1.1.1:1'"), refused.stderr
