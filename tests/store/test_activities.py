"""Customer and promise activities against the real SQLite store: each is safe to deliver more than once.

Stock, picking, packing, carriers and returns: test_warehouse.py; review rules: test_review_rules.py.
"""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.customer import CustomerActivities
from activities.store import Store
from tests.store_helpers import payload, run


def test_notifications_go_through_the_outbox_once(store: Store):
    customer = CustomerActivities(store)
    args = {**payload(), "kind": "shipped"}
    run(customer.notify_customer, args)
    run(customer.notify_customer, args)
    rows = store.rows("SELECT kind, recipient, dedupe_key FROM notifications")
    assert rows == [{"kind": "shipped", "recipient": "13800138001", "dedupe_key": "shipped:1"}]
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
    from tests.helpers import ROOT

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
