"""The KPIs read a definition's own `kpi:` marks, not the standard process's node names."""

from __future__ import annotations

from orderops.messages import ReviewDecision
from orderops.report import build, facts
from tests.helpers import awaiting_decision, settled, wait_until


async def decide(handle, node: str, decision: str, role: str = "support_agent") -> None:
    await wait_until(handle, lambda v: any(t.node == node for t in v.pending_user_tasks))
    await handle.execute_update("review", ReviewDecision(decision=decision, agent="amy", role=role, node=node, reason="checked"))


async def test_a_newcomers_review_tasks_count_as_manual_reviews(start, store):
    _, reviewed = await start("four_checks.yaml", items=[{"sku": "TEA-001", "quantity": 3, "unit_price": "68.00"}])
    _, straight = await start("four_checks.yaml", items=[{"sku": "MUG-002", "quantity": 1, "unit_price": "45.50"}])
    await decide(reviewed, "check_fraud", "approve")
    await decide(reviewed, "check_customer", "approve")
    for handle in (reviewed, straight):
        await decide(handle, "pack_check", "verified", role="warehouse_supervisor")
    results = [await settled(handle, store) for handle in (reviewed, straight)]

    assert [r.kpi_nodes for r in results] == [{"review": ["check_fraud", "check_customer"], "shipment": ["ship"], "delivery": []}] * 2
    described = [await handle.describe() for handle in (reviewed, straight)]
    order_facts = [facts(r, d.start_time) for r, d in zip(results, described, strict=True)]
    # pack_check is a user task too, but not a review: only the order that went to check_fraud counts.
    assert [f.manual_review for f in order_facts] == [True, False]
    assert all(f.shipped_at is not None for f in order_facts)
    since = min(d.start_time for d in described)
    until = max(d.close_time for d in described if d.close_time)
    assert build(order_facts, since, until).overall.manual_review_rate == 0.5


async def test_a_user_task_without_a_status_shows_awaiting_decision(start):
    _, handle = await start("decide_or_timeout.yaml")
    view = await wait_until(handle, awaiting_decision)
    assert view.status == "awaiting_decision"
