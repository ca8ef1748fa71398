"""The review rules' own parts: the first rule format read as today's, and the fingerprint that finds duplicates.

Each rule firing and staying quiet is in test_review_rules.py, its limits in test_boundaries.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from pydantic import ValidationError

from activities.review import _fingerprint
from orderops.order import Order
from orderops.settings import ReviewRules
from tests.helpers import order_data


def test_all_four_flat_keys_of_the_first_format_are_read_at_once():
    rules = ReviewRules.model_validate(
        {"amount_limit": 100, "duplicate_window_hours": 2, "phone_pattern": r"^\d{11}$", "require_payment": False}
    )
    assert rules.amount.limit == 100
    assert (rules.duplicate.enabled, rules.duplicate.window) == (True, timedelta(hours=2))
    assert rules.phone.pattern == r"^\d{11}$"
    assert rules.payment.enabled is False


def test_a_legacy_window_written_as_a_duration_text_is_the_window():
    assert ReviewRules.model_validate({"duplicate_window_hours": "90m"}).duplicate.window == timedelta(minutes=90)


def test_a_legacy_window_too_long_for_a_duration_is_refused_by_name():
    with pytest.raises(ValidationError) as raised:
        ReviewRules.model_validate({"duplicate_window_hours": 1e300})
    assert raised.value.errors()[0]["msg"] == "Value error, duplicate_window_hours 1e+300 is too long"


def test_a_flat_key_and_its_rule_together_are_refused():
    with pytest.raises(ValidationError) as raised:
        ReviewRules.model_validate({"phone_pattern": r"^\d+$", "phone": {"expected": "digits"}})
    assert raised.value.errors()[0]["msg"] == "Value error, phone_pattern and phone both given; write phone.pattern only"


@pytest.mark.parametrize("value", [None, 5, "strict"])
def test_rules_that_are_not_a_mapping_are_a_validation_error(value):
    with pytest.raises(ValidationError, match="valid dictionary"):
        ReviewRules.model_validate(value)


@pytest.mark.parametrize("value, enabled", [(None, False), (False, False), (True, True), ({}, True), ({"enabled": False}, False)])
def test_a_rule_is_switched_off_by_null_or_false_and_on_with_its_defaults_by_true(value, enabled: bool):
    rules = ReviewRules.model_validate({"velocity": value})
    assert rules.velocity.enabled is enabled
    assert rules.velocity.max_orders == 5


def test_the_fingerprint_of_an_order_is_the_format_stored_in_orders_seen():
    """Rows written by earlier runs must still match: the address lower-cased, the items as sorted (sku, quantity)."""
    order = Order.model_validate(
        order_data(
            address={"province": "Shanghai", "city": "Shanghai", "district": "", "street": "88 Century AVENUE", "postcode": "200120"},
            items=[{"sku": "TEA-001", "quantity": 2, "unit_price": "68.00"}, {"sku": "MUG-002", "quantity": 1, "unit_price": "45.50"}],
        )
    )

    def key(value) -> str:
        return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]

    assert _fingerprint(order) == (key("shanghai shanghai 88 century avenue"), key([["MUG-002", 1], ["TEA-001", 2]]))
