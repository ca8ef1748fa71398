"""`make run`: the demo drives every sample scenario to its expected end, logging as documented."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.envelope import log_context
from activities.store import Store
from orderops.messages import OrderResult
from tests.helpers import cli


async def test_demo_ends_every_order_in_its_expected_state_and_leaves_the_store_consistent(
    address, client, worker, home: Path, store: Store
):
    log = home / "demo.log"
    log.unlink(missing_ok=True)
    result = await cli("--log-format", "json", "demo", address=address)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "All 23 orders and returns ended as expected." in result.stdout
    assert "Warehouse store consistent" in result.stdout
    for final in ("completed", "rejected", "cancelled"):
        assert f"│ {final}" in result.stdout
    # The KPIs of the demo's own orders follow: 22 orders; the in-transit cancellation and the damaged return are errors.
    kpi_rows = [line for line in result.stdout.splitlines() if line.startswith("│ all ")]
    assert kpi_rows and "│ 22 " in kpi_rows[0] and "9.1%" in kpi_rows[0] and "95.0%" in kpi_rows[0]

    # The store after the demo, checked independently of the demo's own check.
    demo = "demo-%"
    [tag] = {
        row["order_id"].split("-")[1]
        for row in store.rows("SELECT order_id FROM reservations WHERE order_id LIKE ? ORDER BY updated_at DESC LIMIT 1", demo)
    }
    mine = f"demo-{tag}-%"
    # Every reservation either shipped or released: no finished order holds stock.
    assert {r["state"] for r in store.rows("SELECT state FROM reservations WHERE order_id LIKE ?", mine)} == {"shipped", "released"}
    # No notification written twice: each has one cause (a courier scan, a pick scan, or once per parcel round).
    assert store.inconsistencies() == []
    kinds = [
        r["kind"]
        for r in store.rows("SELECT kind FROM notifications WHERE order_id = ? AND channel = 'sms' ORDER BY id", f"demo-{tag}-0-01")
    ]
    assert kinds == ["shipped", "in_transit", "out_for_delivery", "delivered", "feedback_request"]
    reshipped = [
        r["kind"]
        for r in store.rows("SELECT kind FROM notifications WHERE order_id = ? AND channel = 'sms' ORDER BY id", f"demo-{tag}-0-17")
    ]
    assert reshipped == ["shipped", "in_transit", "lost", "reshipped", "shipped", "in_transit", "delivered", "feedback_request"]
    # The paths the samples promise really ran.
    assert len(store.rows("SELECT DISTINCT warehouse FROM carrier_bookings WHERE order_id = ?", f"demo-{tag}-0-11")) == 2  # split
    [wave] = [
        json.loads(r["walk"])
        for r in store.rows(
            "SELECT walk FROM waves w WHERE EXISTS (SELECT 1 FROM pick_lists p WHERE p.wave_id = w.id AND p.order_id = ?)",
            f"demo-{tag}-0-12",
        )
    ]
    assert {o for stop in wave for o in stop["orders"]} == {f"demo-{tag}-0-{n}" for n in ("12", "13", "14")}
    assert [r["state"] for r in store.rows("SELECT state FROM carrier_bookings WHERE order_id = ? ORDER BY round", f"demo-{tag}-0-17")] == [
        "lost",
        "delivered",
    ]
    assert store.rows("SELECT state FROM carrier_bookings WHERE order_id = ?", f"demo-{tag}-0-10") == [{"state": "intercept_requested"}]
    assert store.rows("SELECT state FROM purchase_requisitions WHERE order_id = ?", f"demo-{tag}-0-09") == [{"state": "received"}]
    assert store.rows("SELECT matched FROM scans WHERE order_id = ? ORDER BY scanned_at, matched", f"demo-{tag}-0-15") == [
        {"matched": 0},
        {"matched": 1},
    ]
    assert store.rows("SELECT outcome FROM return_inspections WHERE return_id = ?", f"demo-{tag}-0-22-R1") == [{"outcome": "restock"}]
    assert [r["carrier"] for r in store.rows("SELECT carrier FROM carrier_bookings WHERE order_id = ?", f"demo-{tag}-0-21")] == [
        "SwiftExpress"
    ]

    # Every order trusted the demo's key and took only what its parts signed (docs/security.md).
    results = [
        await client.get_workflow_handle(wf.id, result_type=OrderResult).result()
        async for wf in client.list_workflows(f"WorkflowId STARTS_WITH 'order-demo-{tag}-'")
    ]
    assert len(results) == 23
    decisions = [d for r in results for d in r.decisions]
    assert len(decisions) >= 5 and all(d.proven_by and d.agent == "demo-agent" for d in decisions)
    assert all(e.sent_by for r in results for e in r.events if e.name in ("paid", "scanned", "delivered", "feedback", "return_received"))
    assert [r.refused_signals for r in results if r.refused_signals] == []

    # Worker log lines are JSON, each activity line with the order, node and attempt. (The demo's
    # worker shares the task queue with the session's, so it logs only the activities it ran.)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    activity_lines = [line for line in lines if "activity" in line]
    assert activity_lines
    assert all({"order_id", "node", "attempt", "timestamp", "level"} <= line.keys() for line in activity_lines)


def test_compensation_log_lines_name_the_node_they_undo():
    info = dataclasses.replace(
        ActivityEnvironment().info, activity_id="undo-reserve_stock-7", workflow_id="order-A1", attempt=2, activity_type="release_stock"
    )
    assert log_context(info) == {"order_id": "A1", "node": "reserve_stock", "attempt": 2, "activity": "release_stock", "compensation": True}
