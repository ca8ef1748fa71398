"""KPIs: exact figures on a known set of orders, and the report command over real finished orders."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from activities.store import Store
from orderops import report
from orderops.client import OrderClient, OrderQuery
from orderops.messages import ExternalEvent
from orderops.report import OrderFacts, build, facts, from_memo, kpis, to_html
from tests.helpers import cli, fast_forward_to, finish, promise_of, settled, shipped, wait_until

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def order(
    oid,
    tier,
    service,
    ship_h,
    deliver_h,
    promised_ship_h=24,
    promised_deliver_h=48,
    status="completed",
    review=False,
    feedback=None,
    coupon=None,
):
    return OrderFacts(
        order_id=oid,
        status=status,
        tier=tier,
        service=service,
        accepted_at=T0,
        shipped_at=T0 + timedelta(hours=ship_h) if ship_h is not None else None,
        delivered_at=T0 + timedelta(hours=deliver_h) if deliver_h is not None else None,
        ship_by=T0 + timedelta(hours=promised_ship_h),
        deliver_by=T0 + timedelta(hours=promised_deliver_h),
        manual_review=review,
        feedback=feedback,
        compensation=Decimal(coupon) if coupon else None,
    )


KNOWN = [
    order("A", "tier1", "standard", ship_h=10, deliver_h=30, feedback=5),
    order("B", "tier1", "express", ship_h=30, deliver_h=60, review=True, feedback=3, coupon="20"),
    order("C", "tier2", "standard", ship_h=None, deliver_h=None, status="cancelled"),
    order("D", "tier2", "standard", ship_h=26, deliver_h=40, feedback=4),
]


def test_kpis_on_a_known_set():
    k = kpis(KNOWN)
    assert (k.orders, k.delivered) == (4, 3)
    assert k.on_time_delivery == 0.6667  # A and D of three delivered
    assert k.promise_attainment == 0.3333  # only A also shipped on time
    assert (k.order_to_ship_hours_avg, k.order_to_ship_hours_p90) == (22.0, 30.0)
    assert (k.manual_review_rate, k.order_error_rate) == (0.25, 0.25)
    assert (k.feedback_avg, k.satisfaction) == (4.0, 0.8)
    assert (k.compensations, k.compensation_total) == (1, Decimal("20"))


def test_picking_accuracy_and_returns_caused_by_mistakes():
    scanned = [
        KNOWN[0].model_copy(update={"scans": 1}),
        KNOWN[1].model_copy(update={"scans": 3, "scan_mismatches": 2}),
        KNOWN[3].model_copy(update={"scans": 1}),
        # Merged or unpaid orders are closed, not failed; a return for a damaged item is our mistake, one for a change of mind is not.
        order("E", "tier1", "standard", None, None, status="cancelled").model_copy(update={"end_node": "merged"}),
        order("F", "tier1", "standard", None, None, status="failed").model_copy(update={"end_node": "out_of_stock"}),
        order("A-R1", None, None, None, None).model_copy(update={"return_of": "A", "our_mistake": True}),
        order("D-R1", None, None, None, None).model_copy(update={"return_of": "D", "our_mistake": False}),
    ]
    k = kpis(scanned)
    assert (k.orders, k.returns) == (5, 2)
    assert k.picking_accuracy == 0.6  # 3 of 5 scans matched the first time
    assert k.order_error_rate == 0.4  # the failed order and the damaged return; the merged order is no error


def test_report_groups_by_tier_and_service_and_charts_the_spread():
    report = build(KNOWN, T0, T0 + timedelta(days=30))
    assert set(report.by_tier) == {"tier1", "tier2"} and set(report.by_service) == {"standard", "express"}
    assert report.by_tier["tier1"].on_time_delivery == 0.5
    assert report.by_service["standard"].orders == 3
    assert report.delivery_vs_promise_hours == [-18.0, -8.0, 12.0]
    page = to_html(report)
    assert page.count("<svg") == 2 and "Promise attainment by region tier" in page and "<script" not in page


async def delivered_order(ts_start, store: Store):
    """An order shipped, delivered and given its feedback: (order, handle)."""
    order, handle = await ts_start()
    await shipped(handle)
    await handle.signal("event", ExternalEvent(name="delivered"))
    await finish(handle, store)
    return order, handle


async def cancelled_after_shipping(ts_start, store: Store):
    """An order cancelled by the customer once shipped, settled: (order, handle)."""
    order, handle = await ts_start()
    await shipped(handle)
    await handle.execute_update("cancel", {"reason": "customer changed their mind"})
    await settled(handle, store)
    return order, handle


async def test_report_command_over_finished_orders(ts_env, ts_start, tmp_path: Path, ts_store: Store):
    on_time_order, _ = await delivered_order(ts_start, ts_store)

    late_order, late = await ts_start(service_level="express")
    _, deliver_by = promise_of(await shipped(late))
    assert await fast_forward_to(ts_env, late, deliver_by + timedelta(hours=3))
    await wait_until(late, lambda v: v.breaches and "delivered" in v.waiting_for_events)
    await late.signal("event", ExternalEvent(name="delivered"))
    await finish(late, ts_store)

    cancelled_order, _ = await cancelled_after_shipping(ts_start, ts_store)

    ids = ", ".join(f"'order-{o.order_id}'" for o in (on_time_order, late_order, cancelled_order))
    address = ts_env.client.service_client.config.target_host
    page = tmp_path / "kpis.html"
    report = None
    for _ in range(100):  # visibility is eventually consistent
        result = await cli(
            "report",
            "--since",
            "2000-01-01",
            "--until",
            "2100-01-01",
            "--query",
            f"WorkflowId IN ({ids})",
            "--json",
            "--html",
            str(page),
            address=address,
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        if report["overall"]["orders"] == 3:
            break
        await asyncio.sleep(0.2)
    overall = report["overall"]
    assert (overall["orders"], overall["delivered"]) == (3, 2)
    assert (overall["on_time_delivery"], overall["promise_attainment"]) == (0.5, 0.5)
    assert (overall["order_error_rate"], overall["compensations"], overall["compensation_total"]) == (0.3333, 1, "20")
    assert overall["feedback_avg"] == 4.0
    assert report["by_service"]["express"]["on_time_delivery"] == 0.0
    assert page.read_text().startswith("<!doctype html>")


async def test_an_order_writes_its_facts_to_its_memo_and_older_orders_are_read_from_their_result(
    ts_env, ts_start, ts_store: Store, monkeypatch
):
    _, delivered = await delivered_order(ts_start, ts_store)
    _, cancelled = await cancelled_after_shipping(ts_start, ts_store)

    derived = {}
    for handle in (delivered, cancelled):
        description = await handle.describe()
        written = from_memo(await description.memo())
        derived[handle.id] = facts(await handle.result(), description.start_time)
        assert written == derived[handle.id]
    assert {f.status for f in derived.values()} == {"completed", "cancelled"}

    orders = OrderClient(ts_env.client)
    query = OrderQuery().running(False).raw(f"WorkflowId IN ('{delivered.id}', '{cancelled.id}')")

    async def listed() -> list[OrderFacts]:
        for _ in range(100):  # visibility is eventually consistent
            found = await orders.facts(query)
            if len(found) == 2:
                return sorted(found, key=lambda f: f.order_id)
            await asyncio.sleep(0.2)
        raise AssertionError(f"visibility did not list both orders: {found}")

    expected = sorted(derived.values(), key=lambda f: f.order_id)
    assert await listed() == expected
    # Facts of another version (what an order of an older engine has: none) are derived again from the result.
    monkeypatch.setattr(report, "FACTS_VERSION", report.FACTS_VERSION + 1)
    assert [from_memo(await (await h.describe()).memo()) for h in (delivered, cancelled)] == [None, None]
    assert await listed() == expected
