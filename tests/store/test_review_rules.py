"""The review rules, one by one, on the real SQLite store: each fires, stays quiet, tunes and switches off."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from temporalio.exceptions import ApplicationError

from activities.store import Store
from orderops.settings import ReviewRules
from tests.helpers import ROOT
from tests.store_helpers import codes


def age(store: Store, order_id: str, hours: float) -> None:
    """Pretend the order was first reviewed `hours` ago."""
    seen = (datetime.now(UTC) - timedelta(hours=hours)).isoformat(timespec="seconds")
    with store.transaction() as db:
        db.execute("UPDATE orders_seen SET seen_at = ? WHERE order_id = ?", (seen, order_id))


def invalid(review, rules: dict) -> str:
    with pytest.raises(ApplicationError) as raised:
        review(rules)
    assert raised.value.type == "InvalidInput" and raised.value.non_retryable
    return raised.value.message


# --- the result ---------------------------------------------------------------------------------


def test_a_clean_order_passes_with_the_default_rules(review):
    assert review() == {"anomalies": [], "reasons": [], "findings": []}
    assert review({}) == {"anomalies": [], "reasons": [], "findings": []}
    assert review(None) == {"anomalies": [], "reasons": [], "findings": []}


def test_findings_pair_each_code_with_its_reason(review):
    result = review(phone="1234", paid=False)
    assert result["anomalies"] == ["phone_invalid", "payment_not_confirmed"]
    assert result["findings"] == [
        {"code": "phone_invalid", "reason": "phone '****' is not a valid mobile number"},
        {"code": "payment_not_confirmed", "reason": "payment has not been confirmed"},
    ]
    assert result["reasons"] == [f["reason"] for f in result["findings"]]


def test_every_rule_can_be_switched_off_with_null_false_or_enabled_false(review):
    everything_wrong = dict(
        customer_id="C-FRAUD",
        phone="13900000000x",
        paid=False,
        items=[{"sku": "NOPE", "quantity": 1, "unit_price": "0"}, {"sku": "TEA-001", "quantity": 1, "unit_price": "99999"}],
        address={"street": "x", "postcode": "12", "district": ""},
    )
    rules = {"zero_price": True, "address": {"require_district": True}}
    assert codes(review(rules, **everything_wrong)) == [
        "unknown_sku",
        "item_price_zero",
        "address_incomplete",
        "postcode_invalid",
        "phone_invalid",
        "blacklisted_customer",
        "amount_over_limit",
        "payment_not_confirmed",
    ]
    names = list(ReviewRules.model_fields)
    for off in (None, False, {"enabled": False}):
        assert codes(review(dict.fromkeys(names, off), **everything_wrong)) == []


def test_true_or_an_empty_mapping_runs_a_rule_with_its_defaults(review):
    assert codes(review({"phone": True}, phone="1234")) == ["phone_invalid"]
    assert codes(review({"phone": {}}, phone="1234")) == ["phone_invalid"]


# --- unknown_sku, item_price_zero ---------------------------------------------------------------------


def test_unknown_sku(review):
    items = [{"sku": "NOPE", "quantity": 1, "unit_price": "5"}, {"sku": "TEA-001", "quantity": 1, "unit_price": "68"}]
    result = review(items=items)
    assert result["findings"] == [{"code": "unknown_sku", "reason": "item NOPE is not in the catalogue"}]
    assert codes(review()) == []
    assert codes(review({"unknown_sku": None}, items=items)) == []


def test_item_price_zero_is_off_by_default_and_exempts_promotions(review):
    items = [{"sku": "TEA-001", "quantity": 1, "unit_price": "0"}, {"sku": "MUG-002", "quantity": 1, "unit_price": "45"}]
    assert codes(review(items=items)) == []
    result = review({"zero_price": {}}, items=items)
    assert result["findings"] == [{"code": "item_price_zero", "reason": "item TEA-001 has a price of 0"}]
    assert codes(review({"zero_price": {}}, items=items, order_type="promotion")) == []  # a free gift
    assert codes(review({"zero_price": {"exempt_order_types": []}}, items=items, order_type="promotion")) == ["item_price_zero"]
    assert codes(review({"zero_price": {}})) == []


# --- address_incomplete, postcode_invalid, phone_invalid ----------------------------------------------


def test_address_incomplete(review):
    result = review(address={"street": "x"})
    assert result["findings"] == [{"code": "address_incomplete", "reason": "street 'x' is too short to deliver to"}]
    assert codes(review(address={"street": "No 8"})) == []  # 4 characters: the default minimum
    assert codes(review({"address": {"min_street_length": 20}})) == ["address_incomplete"]  # '88 Century Avenue'
    assert codes(review({"address": False}, address={"street": "x"})) == []


def test_a_district_is_required_only_when_configured(review):
    assert codes(review(address={"district": ""})) == []
    result = review({"address": {"require_district": True}}, address={"district": " ", "street": "x"})
    assert result["findings"] == [
        {"code": "address_incomplete", "reason": "street 'x' is too short to deliver to; the district is missing"}
    ]
    assert codes(review({"address": {"require_district": True}})) == []


def test_postcode_invalid(review):
    result = review(address={"postcode": "12"})
    assert result["findings"] == [{"code": "postcode_invalid", "reason": "postcode '12' is not 6 digits"}]
    assert codes(review(address={"postcode": "200120"})) == []
    assert codes(review(address={"postcode": ""})) == []  # optional unless required
    assert review({"postcode": {"required": True}}, address={"postcode": ""})["reasons"] == ["the postcode is missing"]
    assert codes(review({"postcode": None}, address={"postcode": "12"})) == []


def test_the_postcode_pattern_is_tunable(review):
    hong_kong = {"postcode": {"pattern": r"\d{6}|999077", "expected": "a mainland postcode or 999077"}}
    assert codes(review(hong_kong, address={"postcode": "999077"})) == []
    assert review(hong_kong, address={"postcode": "99907"})["reasons"] == ["postcode '99907' is not a mainland postcode or 999077"]


def test_phone_invalid(review):
    assert review(phone="1234")["findings"] == [{"code": "phone_invalid", "reason": "phone '****' is not a valid mobile number"}]
    assert codes(review(phone="13800138001")) == []
    assert codes(review(phone="12800138001")) == ["phone_invalid"]  # no mainland mobile starts 12
    assert codes(review({"phone": {"enabled": False}}, phone="1234")) == []


def test_the_phone_pattern_is_tunable(review):
    landlines_too = {"phone": {"pattern": r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$", "expected": "a mobile or landline number"}}
    assert codes(review(landlines_too, phone="021-12345678")) == []
    assert review(landlines_too, phone="12345")["reasons"] == ["phone '****' is not a mobile or landline number"]


# --- duplicate_order ---------------------------------------------------------------------------------


def test_duplicate_order_same_customer_address_and_items(review):
    first = review(order_id="dup-1", customer_id="C-1")
    assert codes(first) == []
    twin = review(order_id="dup-2", customer_id="C-1")
    assert twin["findings"] == [{"code": "duplicate_order", "reason": "same customer, address and items as order dup-1"}]
    other_items = [{"sku": "BOOK-006", "quantity": 1, "unit_price": "59"}]
    assert codes(review(order_id="dup-3", customer_id="C-1", items=other_items)) == []
    assert codes(review(order_id="dup-4", customer_id="C-1", address={"street": "1 Nanjing Road"})) == []
    assert codes(review(order_id="dup-5", customer_id="C-2")) == []  # another customer
    assert codes(review({"duplicate": None}, order_id="dup-6", customer_id="C-1")) == []


def test_a_retried_review_is_not_its_own_duplicate_and_gives_the_same_answer(review):
    assert codes(review(order_id="r-1", customer_id="C-1")) == []
    assert codes(review(order_id="r-1", customer_id="C-1")) == []  # redelivered: the same order again
    assert codes(review(order_id="r-2", customer_id="C-1")) == ["duplicate_order"]
    assert codes(review(order_id="r-2", customer_id="C-1")) == ["duplicate_order"]
    # The earlier order, reviewed again (an edit), is not a duplicate of the one that came after it.
    assert codes(review(order_id="r-1", customer_id="C-1")) == []


def test_the_duplicate_window_is_tunable(review, store: Store):
    review(order_id="w-1", customer_id="C-1")
    age(store, "w-1", hours=30)
    assert codes(review(order_id="w-2", customer_id="C-1")) == []  # outside the default 24 h
    assert codes(review({"duplicate": {"window": "2d"}}, order_id="w-3", customer_id="C-1")) == ["duplicate_order"]


# --- velocity_exceeded -------------------------------------------------------------------------------


def _distinct(n: int) -> list[dict]:
    """Items that differ per order, so only velocity (not duplicate_order) can fire."""
    return [{"sku": "TEA-001", "quantity": n, "unit_price": "68"}]


def test_velocity_exceeded_after_max_orders(review):
    rules = {"velocity": {"max_orders": 2, "window": "1h"}}
    assert codes(review(rules, order_id="v-1", customer_id="C-V", items=_distinct(1))) == []
    assert codes(review(rules, order_id="v-2", customer_id="C-V", items=_distinct(2))) == []
    third = review(rules, order_id="v-3", customer_id="C-V", items=_distinct(3))
    assert third["findings"] == [{"code": "velocity_exceeded", "reason": "3 orders from customer C-V within 1 h (at most 2)"}]
    assert codes(review(rules, order_id="o-1", customer_id="C-OTHER", items=_distinct(1))) == []
    assert codes(review({"velocity": None}, order_id="v-4", customer_id="C-V", items=_distinct(4))) == []


def test_the_default_velocity_allows_five_orders_a_day(review):
    results = [review(order_id=f"d-{n}", customer_id="C-D", items=_distinct(n)) for n in range(1, 7)]
    assert [codes(r) for r in results] == [[], [], [], [], [], ["velocity_exceeded"]]
    assert results[-1]["reasons"] == ["6 orders from customer C-D within 24 h (at most 5)"]


def test_a_retried_review_does_not_count_itself_twice_for_velocity(review):
    rules = {"velocity": {"max_orders": 2}}
    assert codes(review(rules, order_id="t-1", customer_id="C-T", items=_distinct(1))) == []
    for _ in range(3):  # redelivered, again and again
        assert codes(review(rules, order_id="t-2", customer_id="C-T", items=_distinct(2))) == []
    third = [review(rules, order_id="t-3", customer_id="C-T", items=_distinct(3)) for _ in range(2)]
    assert third[0] == third[1] and codes(third[0]) == ["velocity_exceeded"]
    assert third[0]["reasons"] == ["3 orders from customer C-T within 24 h (at most 2)"]
    # An earlier order reviewed again (after an edit) counts only the orders before it.
    assert codes(review(rules, order_id="t-2", customer_id="C-T", items=_distinct(5))) == []


def test_orders_outside_the_velocity_window_do_not_count(review, store: Store):
    rules = {"velocity": {"max_orders": 1, "window": "6h"}}
    review(rules, order_id="old-1", customer_id="C-O", items=_distinct(1))
    age(store, "old-1", hours=7)
    assert codes(review(rules, order_id="new-1", customer_id="C-O", items=_distinct(2))) == []
    assert codes(review(rules, order_id="new-2", customer_id="C-O", items=_distinct(3))) == ["velocity_exceeded"]


# --- blacklisted_customer / _phone / _address --------------------------------------------------------


def test_the_stores_blacklist(review):
    result = review(customer_id="C-FRAUD", phone="13900000000")
    assert result["findings"] == [
        {"code": "blacklisted_customer", "reason": "customer is blacklisted: repeated fraudulent orders"},
        {"code": "blacklisted_phone", "reason": "phone is blacklisted: chargeback fraud in 2025"},
    ]
    assert codes(review(customer_id="C-HONEST")) == []
    not_twins = {"duplicate": None}  # the same customer again would be a duplicate order
    assert codes(review({"blacklist": {"use_store": False}, **not_twins}, customer_id="C-FRAUD", phone="13900000000")) == []
    assert codes(review({"blacklist": None, **not_twins}, customer_id="C-FRAUD")) == []


def test_a_blacklist_in_the_rules_yaml(review):
    rules = yaml.safe_load(
        """
        blacklist:
          customers: [C-BAD]
          phones:
            - {value: "13812345678", reason: abusive calls}
          addresses:
            - {value: "  shanghai shanghai PUDONG   88 century avenue ", reason: parcel-forwarding scam}
        """
    )
    result = review(rules, customer_id="C-BAD", phone="13812345678")
    assert result["findings"] == [
        {"code": "blacklisted_customer", "reason": "customer is blacklisted: listed in the review rules"},
        {"code": "blacklisted_phone", "reason": "phone is blacklisted: abusive calls"},
        {"code": "blacklisted_address", "reason": "address is blacklisted: parcel-forwarding scam"},  # case and spaces ignored
    ]
    assert codes(review(rules, address={"street": "1 Nanjing Road"})) == []
    # The store's list still applies next to the YAML one.
    assert codes(review(rules, customer_id="C-FRAUD", address={"street": "1 Nanjing Road"})) == ["blacklisted_customer"]
    assert codes(review({"blacklist": {**rules["blacklist"], "enabled": False}, "duplicate": None}, customer_id="C-BAD")) == []


# --- amount_over_limit -------------------------------------------------------------------------------


def _amount(total: str) -> list[dict]:
    return [{"sku": "TEA-001", "quantity": 1, "unit_price": total}]


def test_amount_over_limit(review):
    result = review(items=_amount("20000.01"))
    assert result["findings"] == [{"code": "amount_over_limit", "reason": "amount 20000.01 is above the limit 20000"}]
    assert codes(review(items=_amount("20000.00"))) == []  # at the limit is fine
    assert codes(review({"amount": {"limit": 500.5}}, items=_amount("500.51"))) == ["amount_over_limit"]
    assert codes(review({"amount": None}, items=_amount("99999"))) == []


def test_amount_limits_per_customer_tier(review):
    rules = {"amount": {"limit": 1000, "tier_limits": {"vip": 5000, "partner": None}}}
    assert codes(review(rules, items=_amount("3000"))) == ["amount_over_limit"]  # regular: 1000
    assert codes(review(rules, items=_amount("3000"), customer_tier="vip")) == []
    result = review(rules, items=_amount("6000"), customer_tier="vip")
    assert result["reasons"] == ["amount 6000.00 is above the limit 5000 for vip customers"]
    assert codes(review(rules, items=_amount("99999"), customer_tier="partner")) == []  # null: no limit


# --- payment_not_confirmed ---------------------------------------------------------------------------


def test_payment_not_confirmed(review):
    assert review(paid=False)["findings"] == [{"code": "payment_not_confirmed", "reason": "payment has not been confirmed"}]
    assert codes(review(paid=True)) == []
    assert codes(review({"payment": {"enabled": False}}, paid=False)) == []


# --- the YAML: typos, bad values, the earlier flat keys ----------------------------------------------


@pytest.mark.parametrize(
    "rules, where, message",
    [
        ({"velocty": {"max_orders": 3}}, "rules.velocty", "Extra inputs are not permitted"),
        ({"velocity": {"max_order": 3}}, "rules.velocity.max_order", "Extra inputs are not permitted"),
        ({"amount_limt": 10}, "rules.amount_limt", "Extra inputs are not permitted"),
        ({"blacklist": {"phones": [{"value": "1", "reson": "x"}]}}, "rules.blacklist.phones.0.reson", "Extra inputs are not permitted"),
        ({"velocity": {"max_orders": 0}}, "rules.velocity.max_orders", "greater than or equal to 1"),
        ({"amount": {"limit": -5}}, "rules.amount.limit", "greater than 0"),
        ({"amount": {"tier_limits": {"VIP": 10}}}, "rules.amount.tier_limits.VIP.[key]", "should match pattern"),
        ({"duplicate": {"window": "soon"}}, "rules.duplicate.window", "invalid duration 'soon'"),
        ({"phone": {"pattern": "(1[3-9]"}}, "rules.phone.pattern", "not a valid regular expression"),
        ({"payment": "yes please"}, "rules.payment", "valid dictionary"),
        ({"amount_limit": 10, "amount": {"limit": 20}}, "rules", "amount_limit and amount both given"),
    ],
)
def test_a_mistake_in_the_rules_is_a_non_retryable_invalid_input_naming_the_field(review, rules, where, message):
    text = invalid(review, rules)
    assert text.startswith(f"invalid activity input at {where}: "), text
    assert message in text


def test_the_flat_keys_of_the_first_format_still_work(review, store: Store):
    """Orders in flight carry their definition: its old `review_rules` must keep meaning what it meant."""
    legacy = {"amount_limit": 20000, "duplicate_window_hours": 24, "require_payment": True}
    assert ReviewRules.model_validate(legacy) == ReviewRules()
    assert codes(review({"amount_limit": 10, "require_payment": False}, paid=False)) == ["amount_over_limit"]
    assert codes(review({"phone_pattern": r"\d{4}"}, phone="1234")) == []
    review(order_id="l-1", customer_id="C-L")
    age(store, "l-1", hours=3)
    assert codes(review({"duplicate_window_hours": 2}, order_id="l-2", customer_id="C-L")) == []
    assert codes(review({"duplicate_window_hours": 4}, order_id="l-3", customer_id="C-L")) == ["duplicate_order"]
    assert codes(review({"duplicate_window_hours": 0}, order_id="l-4", customer_id="C-L")) == []  # 0 meant off


def test_the_standard_definitions_rules_are_valid():
    definition = yaml.safe_load((ROOT / "process_defs" / "standard.yaml").read_text(encoding="utf-8"))
    ReviewRules.model_validate(definition["variables"]["review_rules"])


def test_the_documented_examples_are_valid():
    text = (ROOT / "docs" / "review-rules.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "review_rules:" in b]
    assert blocks
    for block in blocks:
        data = yaml.safe_load(block)
        rules = data["variables"]["review_rules"] if "variables" in data else data["review_rules"]
        ReviewRules.model_validate(rules)
