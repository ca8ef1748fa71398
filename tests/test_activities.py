"""Activities against the real SQLite store: each is safe to deliver more than once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.customer import CustomerActivities
from activities.fulfilment import FulfilmentActivities
from activities.review import ReviewActivities
from activities.stock import StockActivities
from activities.store import Store
from orderops.config import SAMPLES_DIR
from orderops.order import Order
from tests.conftest import order_data


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


def payload(**overrides) -> dict:
    return {"order": Order.model_validate(order_data(**overrides)).as_variable()}


def run(fn, args: dict) -> dict:
    return ActivityEnvironment().run(fn, args)


def test_reservation_is_exactly_once_under_redelivery(store: Store):
    stock = StockActivities(store)
    args = payload()
    first = run(stock.reserve_stock, args)
    second = run(stock.reserve_stock, args)
    assert first["lines"] == second["lines"] and second["repeated"] is True
    assert store.stock_levels()["TEA-001"] == (500, 2)


def test_concurrent_redelivery_reserves_once(store: Store):
    stock = StockActivities(store)
    args = payload()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: run(stock.reserve_stock, args), range(8)))
    assert store.stock_levels()["TEA-001"] == (500, 2)


def test_release_twice_releases_once(store: Store):
    stock = StockActivities(store)
    args = payload()
    run(stock.reserve_stock, args)
    assert run(stock.release_stock, args)["released"] == [{"sku": "MUG-002", "quantity": 1}, {"sku": "TEA-001", "quantity": 2}]
    assert run(stock.release_stock, args)["released"] == []
    assert store.stock_levels()["TEA-001"] == (500, 0)


def test_edited_items_replace_the_reservation(store: Store):
    stock = StockActivities(store)
    args = payload()
    run(stock.reserve_stock, args)
    args["order"]["items"] = [{"sku": "BOOK-006", "quantity": 3, "unit_price": 59.0}]
    run(stock.reserve_stock, args)
    levels = store.stock_levels()
    assert (levels["TEA-001"], levels["MUG-002"], levels["BOOK-006"]) == ((500, 0), (300, 0), (400, 3))


def test_shortage_raises_one_requisition_and_reserves_nothing(store: Store):
    stock = StockActivities(store)
    args = payload(items=[{"sku": "LAMP-007", "quantity": 5, "unit_price": "120"}, {"sku": "TEA-001", "quantity": 1, "unit_price": "68"}])
    for _ in range(2):
        with pytest.raises(ApplicationError) as raised:
            run(stock.reserve_stock, args)
        assert raised.value.type == "OutOfStock" and raised.value.non_retryable
    assert store.rows("SELECT sku, quantity FROM purchase_requisitions") == [{"sku": "LAMP-007", "quantity": 2}]
    assert store.stock_levels()["TEA-001"] == (500, 0)


def test_review_rules_each_give_a_reason_code(store: Store):
    review = ReviewActivities(store)
    clean = run(review.review_order, payload())
    assert clean == {"anomalies": [], "reasons": []}
    bad = payload(customer_id="C-FRAUD", phone="1234", paid=False, items=[{"sku": "NOPE", "quantity": 1, "unit_price": "99999"}])
    bad["order"]["address"]["street"] = "x"
    bad["order"]["address"]["postcode"] = "12"
    result = run(review.review_order, bad)
    assert result["anomalies"] == [
        "unknown_sku",
        "address_incomplete",
        "postcode_invalid",
        "phone_invalid",
        "blacklisted_customer",
        "amount_over_limit",
        "payment_not_confirmed",
    ]


def test_duplicate_order_is_flagged_but_a_rereview_is_not(store: Store):
    review = ReviewActivities(store)
    first = payload()
    assert run(review.review_order, first)["anomalies"] == []
    assert run(review.review_order, first)["anomalies"] == []  # the same order, reviewed again
    twin = {"order": {**first["order"], "order_id": "other-id"}}
    assert run(review.review_order, twin)["anomalies"] == ["duplicate_order"]


def test_review_rules_come_from_the_definition(store: Store):
    review = ReviewActivities(store)
    args = {**payload(), "rules": {"amount_limit": 10, "require_payment": False}}
    assert run(review.review_order, args)["anomalies"] == ["amount_over_limit"]
    with pytest.raises(ApplicationError, match="rules.amount_limt: Extra inputs are not permitted"):
        run(review.review_order, {**payload(), "rules": {"amount_limt": 10}})


def test_pick_pack_handoff_are_idempotent(store: Store):
    stock, fulfil = StockActivities(store), FulfilmentActivities(store)
    args = payload(items=[{"sku": "LIGHTER-005", "quantity": 2, "unit_price": "12"}, {"sku": "OIL-003", "quantity": 1, "unit_price": "32"}])
    run(stock.reserve_stock, args)
    picks = run(fulfil.pick_items, args)
    assert [line["bin"] for line in picks["lines"]] == ["B-01-02", "D-01-01"]  # walk order
    assert run(fulfil.pick_items, args) == picks
    waybill = run(fulfil.pack_order, args)
    assert run(fulfil.pack_order, args) == waybill
    assert waybill["weight_kg"] == pytest.approx(0.2 * 2 + 0.6 + 0.2)
    assert waybill["labels"] == ["HAZARDOUS GOODS", "LIQUID", "THIS SIDE UP"]
    handoff = run(fulfil.handoff_to_courier, args)
    assert handoff["carrier"] == "SafeFreight"  # the only carrier allowed hazardous goods
    assert run(fulfil.handoff_to_courier, args) == handoff
    assert store.stock_levels()["LIGHTER-005"] == (98, 0)


def test_notifications_go_through_the_outbox_once(store: Store):
    customer = CustomerActivities(store)
    args = {**payload(), "kind": "shipped"}
    run(customer.notify_customer, args)
    run(customer.notify_customer, args)
    rows = store.rows("SELECT kind, recipient FROM notifications")
    assert rows == [{"kind": "shipped", "recipient": "13800138001"}]
    with pytest.raises(ApplicationError, match="no notification template 'fax'"):
        run(customer.notify_customer, {**payload(), "kind": "fax"})


def test_invalid_feedback_is_not_retried(store: Store):
    customer = CustomerActivities(store)
    with pytest.raises(ApplicationError) as raised:
        run(customer.record_feedback, {**payload(), "feedback": {"rating": 9}})
    assert raised.value.non_retryable and "feedback.rating" in raised.value.message


def test_a_delay_coupon_is_granted_once_and_only_when_late(store: Store):
    from activities.promise import PromiseActivities
    from orderops.process.lint import load_policy
    from tests.conftest import ROOT

    promises = PromiseActivities(store)
    policy = load_policy(ROOT / "process_defs" / "policies" / "promise.yaml").model_dump(mode="json")
    args = {**payload(), "policy": policy, "accepted_at": "2026-11-18T02:00:00+00:00"}
    promise = run(promises.compute_promise, args)
    late = {**payload(), "promise": promise, "policy": policy, "delivered_at": "2026-11-28T00:00:00+00:00"}
    late["order"]["order_id"] = args["order"]["order_id"]
    first, again = run(promises.grant_delay_compensation, late), run(promises.grant_delay_compensation, late)
    assert first == again == {"granted": True, "amount": "10", "currency": "CNY"}
    assert store.rows("SELECT COUNT(*) AS n FROM delay_compensations") == [{"n": 1}]
    on_time = {**late, "delivered_at": promise["deliver_by"]}
    on_time["order"] = {**late["order"], "order_id": "another"}
    assert run(promises.grant_delay_compensation, on_time) == {"granted": False, "reason": "delivered as promised"}
