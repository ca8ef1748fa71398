"""Every limit of the review rules, the promise and the KPIs: exactly at it, just below and just above.

Each table row is one boundary. Where a doc states the rule, the comment above the table quotes it and
the rows test what the doc says; a row where the code disagrees is an `xfail(strict=True)` naming the bug.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from activities.carrier import _cannot_carry, _too_slow
from activities.promise import PromiseActivities
from activities.store import Store
from orderops.messages import OrderResult, ProcessRef
from orderops.order import Order
from orderops.process.expressions import evaluate
from orderops.process.lint import load
from orderops.process.model import End, ExclusiveGateway, ProcessDefinition, Receive, TaskNode
from orderops.promise import PromisePolicy
from orderops.report import OrderFacts, _histogram, build, facts, kpis
from orderops.settings import Carrier, ReviewRules
from tests.helpers import KNOWN_ACTIVITIES, ROOT, order_data
from tests.promise_helpers import POLICY, SHANGHAI, promise
from tests.store_helpers import codes
from tests.store_helpers import run as run_activity

# --- review rules ---------------------------------------------------------------------------------------

ANCHOR = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
"""When the order under test was first reviewed: the end of its duplicate and velocity windows."""
US = timedelta(microseconds=1)
S = timedelta(seconds=1)


def _first_reviewed(store: Store, order_id: str, when: datetime, timespec: str = "microseconds") -> None:
    with store.transaction() as db:
        updated = db.execute("UPDATE orders_seen SET seen_at = ? WHERE order_id = ?", (when.isoformat(timespec=timespec), order_id))
        assert updated.rowcount == 1


@pytest.fixture
def history(review, store: Store):
    """One customer's orders, each first reviewed at a chosen instant before ANCHOR.

    `earlier(before)` reviews an order and dates its first review `before` ANCHOR; `at_anchor(rules)` reviews
    the order under test, dates its first review at ANCHOR, and returns its re-review, which
    (docs/review-rules.md) "keeps that time": its windows end at ANCHOR, whatever the wall clock says.
    """
    unique = uuid.uuid4().hex[:8]
    customer = f"C-{unique}"

    def earlier(before: timedelta, *, order_id: str | None = None, timespec: str = "microseconds", **order) -> str:
        order_id = order_id or f"e-{uuid.uuid4().hex[:10]}"
        review({}, order_id=order_id, customer_id=customer, **order)
        _first_reviewed(store, order_id, ANCHOR - before, timespec)
        return order_id

    def at_anchor(rules: dict, *, order_id: str | None = None, **order) -> dict:
        order_id = order_id or f"n-{uuid.uuid4().hex[:10]}"
        review(rules, order_id=order_id, customer_id=customer, **order)
        _first_reviewed(store, order_id, ANCHOR)
        return review(rules, order_id=order_id, customer_id=customer, **order)

    return SimpleNamespace(customer=customer, unique=unique, earlier=earlier, at_anchor=at_anchor)


# docs/review-rules.md, velocity: "counting this order, more than `max_orders` orders of the same customer were
# first reviewed within `window`"; "with `max_orders: 5`, the sixth order of the day is flagged, not the first five".
@pytest.mark.parametrize(
    "max_orders, earlier_orders, flagged",
    [
        (1, 0, False),  # 1 order, at most 1
        (1, 1, True),  # 2 orders
        (3, 2, False),  # exactly 3: at the limit
        (3, 3, True),  # 4: one above
        (3, 4, True),
        (5, 4, False),  # the fifth order of the day
        (5, 5, True),  # the sixth
    ],
)
def test_velocity_flags_only_more_than_max_orders_counting_this_one(history, max_orders, earlier_orders, flagged):
    for n in range(earlier_orders):
        history.earlier(timedelta(minutes=5 + n))
    result = history.at_anchor({"velocity": {"max_orders": max_orders, "window": "1h"}, "duplicate": None})
    assert ("velocity_exceeded" in codes(result)) is flagged
    if flagged:
        total = earlier_orders + 1
        assert result["reasons"] == [f"{total} orders from customer {history.customer} within 1 h (at most {max_orders})"]


WINDOW_EDGES = [
    pytest.param(timedelta(hours=6) - S, True, id="1s-inside"),
    pytest.param(timedelta(hours=6) - US, True, id="1us-inside"),
    pytest.param(timedelta(hours=6), True, id="exactly-at-the-window"),
    pytest.param(timedelta(hours=6) + US, False, id="1us-outside"),
    pytest.param(timedelta(hours=6) + S, False, id="1s-outside"),
    pytest.param(-S, False, id="first-reviewed-after-this-one"),
]


# "within `window` before this one": an order exactly `window` before is within it; "only orders first reviewed
# before this one count".
@pytest.mark.parametrize("before, counted", WINDOW_EDGES)
def test_the_velocity_window_ends_at_the_first_review_and_includes_its_start(history, before, counted):
    history.earlier(before)
    result = history.at_anchor({"velocity": {"max_orders": 1, "window": "6h"}, "duplicate": None})
    assert ("velocity_exceeded" in codes(result)) is counted


@pytest.mark.parametrize("before, counted", WINDOW_EDGES)
def test_the_duplicate_window_ends_at_the_first_review_and_includes_its_start(history, before, counted):
    twin = history.earlier(before)
    result = history.at_anchor({"duplicate": {"window": "6h"}, "velocity": None})
    expected = [{"code": "duplicate_order", "reason": f"same customer, address and items as order {twin}"}] if counted else []
    assert result["findings"] == expected


@pytest.mark.parametrize(
    "rules, before, flagged",
    [
        pytest.param({}, timedelta(hours=24) - S, True, id="default-24h-1s-inside"),
        pytest.param({}, timedelta(hours=24), True, id="default-24h-exactly"),
        pytest.param({}, timedelta(hours=24) + S, False, id="default-24h-1s-outside"),
        pytest.param({"duplicate": {"window": "30m"}}, timedelta(minutes=30), True, id="30m-exactly"),
        pytest.param({"duplicate": {"window": "30m"}}, timedelta(minutes=30) + S, False, id="30m-1s-outside"),
        # The flat key of the first format: hours.
        pytest.param({"duplicate_window_hours": 2}, timedelta(hours=2), True, id="legacy-2h-exactly"),
        pytest.param({"duplicate_window_hours": 2}, timedelta(hours=2) + S, False, id="legacy-2h-1s-outside"),
        pytest.param({"duplicate_window_hours": 0.5}, timedelta(minutes=30), True, id="legacy-half-hour-exactly"),
        pytest.param({"duplicate_window_hours": 0}, timedelta(0) + S, False, id="legacy-0-means-off"),
    ],
)
def test_duplicate_window_lengths(history, rules, before, flagged):
    history.earlier(before)
    result = history.at_anchor({**rules, "velocity": None})
    assert ("duplicate_order" in codes(result)) is flagged


@pytest.mark.parametrize(
    "earlier_suffix, counted",
    [
        pytest.param("a", True, id="same-microsecond-smaller-order-id-counts"),
        pytest.param("c", False, id="same-microsecond-larger-order-id-does-not"),
    ],
)
def test_orders_first_reviewed_in_the_same_microsecond_are_ordered_by_order_id(history, earlier_suffix, counted):
    # "orders reviewed in the same microsecond are ordered by order id"
    history.earlier(timedelta(0), order_id=f"{history.unique}-{earlier_suffix}")
    result = history.at_anchor({"velocity": {"max_orders": 1}, "duplicate": None}, order_id=f"{history.unique}-b")
    assert ("velocity_exceeded" in codes(result)) is counted


# Rows in whole seconds ('...T06:00:00+00:00') are what orderops wrote before reviews carried microseconds.
@pytest.mark.parametrize("rule", ["velocity", "duplicate"])
def test_an_order_stored_in_whole_seconds_exactly_at_the_window_start_still_counts(history, rule):
    history.earlier(timedelta(hours=6), timespec="seconds")
    rules, code = {
        "velocity": ({"velocity": {"max_orders": 1, "window": "6h"}, "duplicate": None}, "velocity_exceeded"),
        "duplicate": ({"duplicate": {"window": "6h"}, "velocity": None}, "duplicate_order"),
    }[rule]
    assert codes(history.at_anchor(rules)) == [code]


def _items(*lines: tuple[int, str]) -> list[dict]:
    return [{"sku": "TEA-001", "quantity": quantity, "unit_price": price} for quantity, price in lines]


STANDARD_AMOUNT = {"amount": {"limit": 20000, "tier_limits": {"vip": 50000}}}  # process_defs/standard.yaml


# docs/review-rules.md, amount: "the order's amount (derived from its items) is above the limit for the customer's
# tier"; "An amount exactly at the limit passes"; "`null` = no limit for that tier".
@pytest.mark.parametrize(
    "rules, tier, items, reason",
    [
        pytest.param({}, "regular", _items((1, "19999.99")), None, id="default-1-cent-below"),
        pytest.param({}, "regular", _items((1, "20000.00")), None, id="default-exactly"),
        pytest.param({}, "regular", _items((1, "20000.01")), "amount 20000.01 is above the limit 20000", id="default-1-cent-above"),
        pytest.param(STANDARD_AMOUNT, "vip", _items((1, "49999.99")), None, id="vip-1-cent-below"),
        pytest.param(STANDARD_AMOUNT, "vip", _items((1, "50000.00")), None, id="vip-exactly"),
        pytest.param(
            STANDARD_AMOUNT,
            "vip",
            _items((1, "50000.01")),
            "amount 50000.01 is above the limit 50000 for vip customers",
            id="vip-1-cent-above",
        ),
        pytest.param(
            STANDARD_AMOUNT, "regular", _items((1, "20000.01")), "amount 20000.01 is above the limit 20000", id="vip-limit-not-for-regular"
        ),
        pytest.param({"amount": {"tier_limits": {"new": 100}}}, "new", _items((1, "100.00")), None, id="lower-tier-limit-exactly"),
        pytest.param(
            {"amount": {"tier_limits": {"new": 100}}},
            "new",
            _items((1, "100.01")),
            "amount 100.01 is above the limit 100 for new customers",
            id="lower-tier-limit-1-cent-above",
        ),
        pytest.param(
            {"amount": {"tier_limits": {"corporate": None}}}, "corporate", _items((1, "9999999999.99")), None, id="null-tier-limit"
        ),
        pytest.param({"amount": {"limit": 500.5}}, "regular", _items((1, "500.50")), None, id="fractional-limit-exactly"),
        pytest.param(
            {"amount": {"limit": 500.5}},
            "regular",
            _items((1, "500.51")),
            "amount 500.51 is above the limit 500.5",
            id="fractional-limit-above",
        ),
        pytest.param({}, "regular", _items((2, "10000.00")), None, id="quantity-times-price-exactly"),
        pytest.param({}, "regular", _items((2, "10000.01")), "amount 20000.02 is above the limit 20000", id="quantity-times-price-above"),
        pytest.param({}, "regular", _items((1, "19999.99"), (1, "0.01")), None, id="sum-of-items-exactly"),
        pytest.param(
            {}, "regular", _items((1, "19999.99"), (1, "0.02")), "amount 20000.01 is above the limit 20000", id="sum-of-items-above"
        ),
    ],
)
def test_amount_limit_per_tier(review, rules, tier, items, reason):
    result = review({**rules, "unknown_sku": None}, items=items, customer_tier=tier)
    assert result["findings"] == ([{"code": "amount_over_limit", "reason": reason}] if reason else [])


# docs/review-rules.md, address: "the street (trimmed) is shorter than `min_street_length`" (default 4).
@pytest.mark.parametrize(
    "minimum, street, flagged",
    [
        (None, "abc", True),  # 3 < 4
        (None, "abcd", False),  # 4: at the minimum
        (None, "abcde", False),
        (None, "  abc  ", True),  # trimmed: 3
        (None, " abcd ", False),
        (None, "中山路", True),  # characters, not bytes
        (None, "人民路8号", False),
        (1, "a", False),
        (1, "   ", True),  # trimmed to nothing
        (10, "123456789", True),
        (10, "1234567890", False),
    ],
)
def test_street_length_boundary(review, minimum, street, flagged):
    rules = {} if minimum is None else {"address": {"min_street_length": minimum}}
    assert ("address_incomplete" in codes(review(rules, address={"street": street}))) is flagged


FULL_WIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))  # what a Chinese IME types


# docs/review-rules.md, postcode: "a postcode is given and does not match `pattern`, or none is given and `required`";
# patterns "must match the **whole** value (`re.fullmatch`)"; default `\d{6}`, "6 digits".
@pytest.mark.parametrize(
    "postcode, required, reason",
    [
        ("12345", False, "postcode '12345' is not 6 digits"),
        ("123456", False, None),
        ("1234567", False, "postcode '1234567' is not 6 digits"),
        ("12345a", False, "postcode '12345a' is not 6 digits"),
        (" 123456 ", False, None),  # surrounding spaces are trimmed
        ("", False, None),
        ("   ", False, None),
        ("", True, "the postcode is missing"),
        ("   ", True, "the postcode is missing"),
        ("200120", True, None),
        pytest.param(
            "200120".translate(FULL_WIDTH),
            False,
            f"postcode '{'200120'.translate(FULL_WIDTH)}' is not 6 digits",
            id="full-width-digits",
        ),
    ],
)
def test_postcode_pattern_boundary(review, postcode, required, reason):
    result = review({"postcode": {"required": required}}, address={"postcode": postcode})
    assert result["findings"] == ([{"code": "postcode_invalid", "reason": reason}] if reason else [])


# docs/review-rules.md, phone: default `^1[3-9]\d{9}$` (mainland mobiles: 11 digits, 13x-19x), whole value.
@pytest.mark.parametrize(
    "phone, flagged",
    [
        ("13800138001", False),
        ("1380013800", True),  # 10 digits
        ("138001380012", True),  # 12 digits
        ("10800138001", True),
        ("12800138001", True),
        ("13000000000", False),  # lowest second digit
        ("19999999999", False),  # highest
        (" 13800138001", True),  # not trimmed
        ("+8613800138001", True),
        pytest.param(
            "13" + "800138001".translate(FULL_WIDTH),
            True,
            id="full-width-digits",
        ),
    ],
)
def test_phone_pattern_boundary(review, phone, flagged):
    assert ("phone_invalid" in codes(review(phone=phone))) is flagged


# docs/review-rules.md, blacklists: the store's table "is matched exactly"; values in the rules' lists "are compared
# ignoring case and repeated spaces".
@pytest.mark.parametrize(
    "rules, customer, flagged",
    [
        ({}, "C-FRAUD", True),
        ({}, "c-fraud", False),  # the store: exact
        ({}, "C-FRAUD2", False),
        ({"blacklist": {"customers": ["C-Bad  Actor"]}}, "c-bad actor", True),
        ({"blacklist": {"customers": ["C-Bad  Actor"]}}, "  C-BAD   ACTOR ", True),
        ({"blacklist": {"customers": ["C-Bad  Actor"]}}, "C-BadActor", False),
        ({"blacklist": {"customers": ["C-Bad  Actor"]}}, "C-Bad Actors", False),
    ],
)
def test_blacklist_matching_boundary(review, rules, customer, flagged):
    result = review({**rules, "duplicate": None, "velocity": None}, customer_id=customer)
    assert ("blacklisted_customer" in codes(result)) is flagged


@pytest.mark.parametrize("paid, flagged", [(True, False), (False, True)])
def test_payment_confirmed_or_not(review, paid, flagged):
    assert ("payment_not_confirmed" in codes(review(paid=paid))) is flagged


# Parameter limits: "a bad value (a negative limit, a broken regular expression, a duration like `soon`)" is an error;
# durations "must be more than zero and at most 3650 days" (docs/process-language.md).
@pytest.mark.parametrize(
    "rules, valid",
    [
        ({"amount": {"limit": 0}}, False),
        ({"amount": {"limit": "0.01"}}, True),
        ({"amount": {"tier_limits": {"vip": 0}}}, False),
        ({"amount": {"tier_limits": {"vip": "0.01"}}}, True),
        ({"velocity": {"max_orders": 0}}, False),
        ({"velocity": {"max_orders": 1}}, True),
        ({"address": {"min_street_length": 0}}, False),
        ({"address": {"min_street_length": 1}}, True),
        ({"address": {"min_street_length": 500}}, True),
        ({"address": {"min_street_length": 501}}, False),
        ({"velocity": {"window": 0}}, False),
        ({"velocity": {"window": "1s"}}, True),
        ({"velocity": {"window": "3650d"}}, True),
        ({"velocity": {"window": "3650d1s"}}, False),
        ({"duplicate": {"window": -1}}, False),
        ({"duplicate_window_hours": -1}, False),
        ({"duplicate_window_hours": 87600}, True),  # 3650 days
        ({"duplicate_window_hours": 87601}, False),
    ],
)
def test_rule_parameter_limits(rules, valid):
    if valid:
        ReviewRules.model_validate(rules)
    else:
        with pytest.raises(ValidationError):
            ReviewRules.model_validate(rules)


def test_duplicate_window_hours_zero_switches_the_rule_off_and_one_hour_does_not():
    assert ReviewRules.model_validate({"duplicate_window_hours": 0}).duplicate.enabled is False
    one_hour = ReviewRules.model_validate({"duplicate_window_hours": 1}).duplicate
    assert (one_hour.enabled, one_hour.window) == (True, timedelta(hours=1))


# --- the payment wait (process_defs/standard.yaml) ------------------------------------------------------


def _route(node: ExclusiveGateway, variables: dict) -> str:
    """docs/process-language.md: "The first branch whose condition is true is taken; otherwise `default`"."""
    return next((b.next for b in node.branches if evaluate(b.when, variables) is True), node.default)


@pytest.fixture(scope="module")
def standard() -> ProcessDefinition:
    definition, _ = load(ROOT / "process_defs" / "standard.yaml", KNOWN_ACTIVITIES)
    return definition


def test_the_payment_wait_is_thirty_minutes_then_cancels(standard):
    # docs/review-rules.md: "unpaid after 30 minutes, the order is cancelled".
    nodes = standard.node_map()
    wait = nodes["await_payment"]
    assert isinstance(wait, Receive) and wait.events == ["paid"]
    assert wait.timeout == timedelta(minutes=30)
    node = nodes[wait.on_timeout]
    while isinstance(node, TaskNode):
        node = nodes[node.next]
    assert isinstance(node, End) and node.status == "cancelled"


@pytest.mark.parametrize(
    "anomalies, received, payment_gate, route_review",
    [
        (["payment_not_confirmed"], [], "await_payment", "stock_gate"),  # waits for the provider, then skips manual review
        (["payment_not_confirmed"], ["paid"], "route_review", "stock_gate"),  # "a `paid` already received counts"
        (["payment_not_confirmed", "phone_invalid"], ["paid"], "route_review", "manual_review"),
        (["phone_invalid"], [], "route_review", "manual_review"),
        ([], [], "route_review", "stock_gate"),
    ],
)
def test_a_payment_only_finding_waits_and_once_paid_skips_manual_review(standard, anomalies, received, payment_gate, route_review):
    # docs/review-rules.md: "Any other finding sends the order to `manual_review`; a payment-only finding, once paid, skips it."
    variables = {"review": {"anomalies": anomalies}, "received_events": received}
    nodes = standard.node_map()
    assert _route(nodes["payment_gate"], variables) == payment_gate
    if payment_gate == "await_payment":
        assert nodes["await_payment"].next == "route_review"
        variables["received_events"] = [*received, "paid"]
    assert _route(nodes["route_review"], variables) == route_review


# --- the promise --------------------------------------------------------------------------------------

WED = datetime(2026, 11, 18, tzinfo=SHANGHAI)  # a Wednesday; Sunday 22 is the day off


def _at(day: datetime, hours: int, minutes: int = 0, seconds: int = 0, micro: int = 0) -> datetime:
    return day + timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=micro)


def _day(offset: int) -> datetime:
    return WED + timedelta(days=offset)


# docs/promises.md: "orders accepted at or after this local time (no offset) count from the next working day";
# "1. Start. The acceptance time in the policy's time zone, or, if that is after the cut-off or on a day off,
# 00:00 of the next working day".
@pytest.mark.parametrize(
    "accepted, counts_from",
    [
        pytest.param(_at(WED, 15, 59), _at(WED, 15, 59), id="1-minute-before"),
        pytest.param(_at(WED, 15, 59, 59), _at(WED, 15, 59, 59), id="1-second-before"),
        pytest.param(_at(WED, 15, 59, 59, 999_999), _at(WED, 15, 59, 59, 999_999), id="1-microsecond-before"),
        pytest.param(_at(WED, 16), _day(1), id="exactly-at-the-cutoff"),
        pytest.param(_at(WED, 16, 0, 1), _day(1), id="1-second-after"),
        pytest.param(_at(WED, 16, 1), _day(1), id="1-minute-after"),
        pytest.param(_at(WED, 23, 59, 59), _day(1), id="last-second-of-the-day"),
        pytest.param(_day(1), _day(1), id="midnight-is-before-the-cutoff"),
        pytest.param(_at(_day(3), 15, 59, 59), _at(_day(3), 15, 59, 59), id="saturday-is-a-working-day"),
        pytest.param(_at(_day(3), 16), _day(5), id="saturday-at-cutoff-skips-sunday"),
        pytest.param(_day(4), _day(5), id="sunday-midnight-is-a-day-off"),
        pytest.param(_at(_day(4), 15, 59, 59), _day(5), id="sunday-before-cutoff-is-still-off"),
        pytest.param(_at(_day(4), 23, 59, 59), _day(5), id="sunday-last-second"),
        pytest.param(_day(5), _day(5), id="monday-midnight"),
    ],
)
def test_cut_off_and_day_boundaries(accepted, counts_from):
    p = promise(accepted=accepted)
    assert p.counts_from == counts_from
    start_day = counts_from.astimezone(SHANGHAI).date()
    assert p.deliver_by == datetime.combine(start_day + timedelta(days=2), time(23, 59, 59), SHANGHAI)


# The cut-off is a local time in the policy's zone: the instant's local time there decides, whatever offset it came with.
@pytest.mark.parametrize(
    "zone, accepted, moved",
    [
        pytest.param("Asia/Shanghai", datetime(2026, 11, 18, 7, 59, 59, tzinfo=UTC), False, id="shanghai-15:59:59-given-in-utc"),
        pytest.param("Asia/Shanghai", datetime(2026, 11, 18, 8, 0, tzinfo=UTC), True, id="shanghai-16:00-given-in-utc"),
        pytest.param(
            "Asia/Shanghai",
            datetime(2026, 11, 18, 2, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
            False,
            id="shanghai-15:59:59-given-at-minus-5",
        ),
        pytest.param(
            "Asia/Shanghai", datetime(2026, 11, 18, 3, 0, tzinfo=timezone(timedelta(hours=-5))), True, id="shanghai-16:00-given-at-minus-5"
        ),
        pytest.param("Europe/London", datetime(2026, 7, 15, 14, 59, 59, tzinfo=UTC), False, id="london-summer-15:59:59-bst"),
        pytest.param("Europe/London", datetime(2026, 7, 15, 15, 0, tzinfo=UTC), True, id="london-summer-16:00-bst"),
        pytest.param("Europe/London", datetime(2026, 11, 18, 15, 59, 59, tzinfo=UTC), False, id="london-winter-15:59:59-gmt"),
        pytest.param("Europe/London", datetime(2026, 11, 18, 16, 0, tzinfo=UTC), True, id="london-winter-16:00-gmt"),
    ],
)
def test_the_cut_off_is_local_to_the_policy_time_zone(zone, accepted, moved):
    policy = POLICY.model_copy(update={"timezone": zone})
    p = promise(accepted=accepted, policy=policy)
    local = accepted.astimezone(ZoneInfo(zone))
    expected = datetime.combine(local.date() + timedelta(days=1), time(0, 0), ZoneInfo(zone)) if moved else accepted
    assert p.counts_from == expected


def test_the_local_date_not_the_utc_date_starts_the_delivery_days():
    accepted = datetime(2026, 11, 17, 16, 0, tzinfo=UTC)  # Tuesday in UTC, Wednesday 00:00 in Shanghai
    p = promise(accepted=accepted)
    assert p.counts_from == accepted
    assert p.deliver_by == datetime(2026, 11, 20, 23, 59, 59, tzinfo=SHANGHAI)  # Wednesday + 2 days
    one_earlier = promise(accepted=accepted - S)  # Tuesday 23:59:59 in Shanghai: after the cut-off, from Wednesday
    assert (one_earlier.counts_from, one_earlier.deliver_by) == (p.counts_from, p.deliver_by)


def _policy(**change) -> PromisePolicy:
    return PromisePolicy.model_validate(POLICY.model_dump(mode="json") | change)


# docs/promises.md step 3: "a fixed number, or the tier's days minus `faster_by_days`, at least 1 ... VIP days are
# subtracted (not below 1, or 0 for same day); the longest category lead time is added".
@pytest.mark.parametrize(
    "services, customer_tiers, service, customer, categories, days",
    [
        pytest.param({"express": {"faster_by_days": 1}}, {}, "express", "regular", (), 1, id="tier1-2-minus-1"),
        pytest.param({"express": {"faster_by_days": 2}}, {}, "express", "regular", (), 1, id="faster-by-all-its-days-floors-at-1"),
        pytest.param({"express": {"faster_by_days": 3}}, {}, "express", "regular", (), 1, id="faster-by-more-floors-at-1"),
        pytest.param({}, {"vip": 1}, "standard", "vip", (), 1, id="vip-2-minus-1"),
        pytest.param({}, {"vip": 2}, "standard", "vip", (), 1, id="vip-to-zero-floors-at-1"),
        pytest.param({}, {"vip": 5}, "standard", "vip", (), 1, id="vip-below-zero-floors-at-1"),
        pytest.param({"same_day": {"days": 0}}, {"vip": 1}, "same_day", "vip", (), 0, id="same-day-stays-0"),
        pytest.param({"same_day": {"days": 0}}, {}, "same_day", "regular", ("hazardous",), 1, id="same-day-plus-category"),
        pytest.param({"next_day": {"days": 1}}, {"vip": 1}, "next_day", "vip", (), 1, id="fixed-1-day-vip-floors-at-1"),
        pytest.param({}, {}, "standard", "regular", ("hazardous", "made_to_order"), 5, id="longest-category-only"),
        pytest.param({}, {}, "standard", "regular", ("general",), 2, id="unlisted-category-adds-0"),
    ],
)
def test_delivery_days_floors(services, customer_tiers, service, customer, categories, days):
    policy = _policy(services={"standard": {}, **services}, customer_tiers=customer_tiers)
    p = promise(policy=policy, service=service, customer=customer, categories=categories)
    assert p.delivery_days == days
    assert p.deliver_by == datetime.combine((WED + timedelta(days=days)).date(), time(23, 59, 59), SHANGHAI)


# docs/promises.md step 4: "ship_by = start + `ship_within` of elapsed time ..., moved to the same time of the next
# working day if it falls on a day off, and never after deliver_by".
@pytest.mark.parametrize(
    "accepted, ship_within, service, ship_by",
    [
        pytest.param(_at(WED, 10), "24h", "standard", _at(_day(1), 10), id="24h-later"),
        pytest.param(_at(_day(2), 15, 59, 59), "24h", "standard", _at(_day(3), 15, 59, 59), id="friday-to-saturday-a-working-day"),
        pytest.param(_at(_day(3), 0), "24h", "standard", _at(_day(5), 0), id="saturday-midnight-lands-on-sunday-midnight"),
        pytest.param(_at(_day(3), 15, 59, 59), "24h", "standard", _at(_day(5), 15, 59, 59), id="saturday-last-second-before-cutoff"),
        pytest.param(_at(_day(2), 23, 59, 59), "24h", "standard", _at(_day(5), 0), id="friday-after-cutoff-starts-saturday"),
        pytest.param(_at(WED, 10), "13h59m58s", "same_day", _at(WED, 23, 59, 58), id="1-second-before-deliver-by"),
        pytest.param(_at(WED, 10), "13h59m59s", "same_day", _at(WED, 23, 59, 59), id="exactly-deliver-by"),
        pytest.param(_at(WED, 10), "14h", "same_day", _at(WED, 23, 59, 59), id="1-second-after-deliver-by-is-capped"),
    ],
)
def test_ship_by_boundaries(accepted, ship_within, service, ship_by):
    p = promise(accepted=accepted, service=service, policy=_policy(ship_within=ship_within))
    assert p.ship_by == ship_by
    assert p.ship_by <= p.deliver_by


def test_ship_by_is_never_after_deliver_by_when_daylight_saving_ends_at_midnight():
    santiago = _policy(timezone="America/Santiago", working_days=["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ship_within="14h")
    accepted = datetime(2026, 4, 4, 10, 0, tzinfo=ZoneInfo("America/Santiago"))  # Saturday; clocks go back at 24:00
    p = promise(accepted=accepted, service="same_day", province="Shanghai", policy=santiago)
    assert p.ship_by <= p.deliver_by


CARRIER = Carrier(
    name="CityCourier",
    regions=["Shanghai"],
    services={"standard": {"tier1": 2, "*": 4}},
    base_cost=5,
    cost_per_kg=1,
    max_weight_kg=10,
    daily_capacity=10,
)
DELIVER_BY = datetime(2026, 11, 20, 23, 59, 59, tzinfo=SHANGHAI)


# docs/warehouse.md, carriers: "the cheapest whose transit days bring the parcel by `promise.deliver_by`"; days per
# promise tier, "`*` for the other tiers".
@pytest.mark.parametrize(
    "tier, booked_before_deliver_by, too_slow",
    [
        pytest.param("tier1", timedelta(days=2) + S, False, id="tier1-1s-to-spare"),
        pytest.param("tier1", timedelta(days=2), False, id="tier1-arrives-exactly-at-deliver-by"),
        pytest.param("tier1", timedelta(days=2) - S, True, id="tier1-1s-late"),
        pytest.param("remote", timedelta(days=4), False, id="other-tiers-exactly"),
        pytest.param("remote", timedelta(days=4) - S, True, id="other-tiers-1s-late"),
    ],
)
def test_carrier_transit_days_against_deliver_by(tier, booked_before_deliver_by, too_slow):
    promise_ = {"service_level": "standard", "tier": tier, "deliver_by": DELIVER_BY.isoformat()}
    reason = _too_slow(CARRIER, promise_, DELIVER_BY - booked_before_deliver_by)
    days = 2 if tier == "tier1" else 4
    assert reason == (f"needs {days} days, later than the promise {DELIVER_BY.isoformat()}" if too_slow else None)


# docs/warehouse.md: a carrier is out if it "takes less than the parcel's weight".
@pytest.mark.parametrize("weight, refused", [(9.999, False), (10.0, False), (10.001, True)])
def test_carrier_weight_limit(weight, refused):
    reason = _cannot_carry(CARRIER, {"weight_kg": weight, "hazardous": False}, "Shanghai", "standard")
    assert (reason is not None) is refused


# docs/promises.md: `at_risk_fraction`, "share of a deadline's window after which the order is at risk": a share, so
# strictly between 0 and 1.
@pytest.mark.parametrize(
    "fraction, valid",
    [(0, False), (1e-9, True), (0.5, True), (0.8, True), (0.999999, True), (1, False), (1.5, False), (-0.1, False)],
)
def test_at_risk_fraction_limits_and_it_travels_with_the_promise(fraction, valid):
    if not valid:
        with pytest.raises(ValidationError, match="at_risk_fraction"):
            _policy(at_risk_fraction=fraction)
        return
    assert promise(policy=_policy(at_risk_fraction=fraction)).at_risk_fraction == fraction


@pytest.mark.parametrize(
    "change, valid",
    [
        ({"ship_within": 0}, False),
        ({"ship_within": "1s"}, True),
        ({"ship_within": "3650d"}, True),
        ({"ship_within": "3650d1s"}, False),
        ({"tiers": {"tier1": 60, "tier2": 3, "remote": 5}}, True),
        ({"tiers": {"tier1": 61, "tier2": 3, "remote": 5}}, False),
        ({"tiers": {"tier1": -1, "tier2": 3, "remote": 5}}, False),
        ({"tiers": {"tier1": 0, "tier2": 3, "remote": 5}}, True),
        ({"working_days": []}, False),
        ({"working_days": ["sun"]}, True),
    ],
)
def test_policy_value_limits(change, valid):
    if valid:
        _policy(**change)
    else:
        with pytest.raises(ValidationError):
            _policy(**change)


# --- KPIs -----------------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # accepted
PROMISED_SHIP = T0 + timedelta(hours=24)
PROMISED_DELIVERY = T0 + timedelta(hours=48)


def _facts(oid: str = "A", *, shipped: datetime | None = None, delivered: datetime | None = None, **update) -> OrderFacts:
    """A finished order accepted at T0, promised to ship in 24 h and arrive in 48 h."""
    fields = dict(
        order_id=oid,
        status="completed",
        tier="tier1",
        service="standard",
        accepted_at=T0,
        shipped_at=shipped,
        delivered_at=delivered,
        ship_by=PROMISED_SHIP,
        deliver_by=PROMISED_DELIVERY,
        manual_review=False,
        feedback=None,
        compensation=None,
    )
    return OrderFacts(**(fields | update))


# docs/promises.md: on-time delivery = "delivered orders that arrived by `deliver_by`"; promise attainment = "delivered
# orders that shipped by `ship_by` and arrived by `deliver_by`". "By" includes the instant itself.
@pytest.mark.parametrize(
    "delivered, on_time",
    [
        pytest.param(PROMISED_DELIVERY - S, 1.0, id="1s-early"),
        pytest.param(PROMISED_DELIVERY, 1.0, id="exactly-at-the-promise"),
        pytest.param(PROMISED_DELIVERY + US, 0.0, id="1us-late"),
        pytest.param(PROMISED_DELIVERY + S, 0.0, id="1s-late"),
    ],
)
def test_a_delivery_exactly_at_the_promise_is_kept(delivered, on_time):
    k = kpis([_facts(shipped=PROMISED_SHIP, delivered=delivered)])
    assert (k.delivered, k.on_time_delivery, k.promise_attainment) == (1, on_time, on_time)


@pytest.mark.parametrize(
    "shipped, attained",
    [
        pytest.param(PROMISED_SHIP - S, 1.0, id="1s-early"),
        pytest.param(PROMISED_SHIP, 1.0, id="exactly-at-ship-by"),
        pytest.param(PROMISED_SHIP + S, 0.0, id="1s-late"),
    ],
)
def test_shipping_exactly_at_ship_by_keeps_the_promise(shipped, attained):
    k = kpis([_facts(shipped=shipped, delivered=PROMISED_DELIVERY)])
    assert (k.on_time_delivery, k.promise_attainment) == (1.0, attained)


def test_a_delivery_exactly_at_the_promise_is_zero_hours_in_the_report():
    report = build([_facts(shipped=PROMISED_SHIP, delivered=PROMISED_DELIVERY)], T0, T0 + timedelta(days=3))
    assert report.delivery_vs_promise_hours == [0.0]


def _nearest_rank_p90(values: list[float]) -> float:
    """The definition: the smallest value v such that at least 90% of the values are <= v (exact fractions)."""
    return min(v for v in values if Fraction(sum(1 for x in values if x <= v), len(values)) >= Fraction(9, 10))


# docs/promises.md: "order-to-ship hours: acceptance to courier handoff: average and p90 (nearest rank)".
@pytest.mark.parametrize(
    "hours, p90, average",
    [
        pytest.param([7], 7, 7, id="1-value"),
        pytest.param([9, 3], 9, 6, id="2-values-the-larger"),
        pytest.param([5, 30, 1], 30, 12, id="3-values-the-largest"),  # 0.9 * 3 = 2.7 -> rank 3
        pytest.param([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 9, 5.5, id="10-values-the-ninth-not-the-max"),  # rank 9
        pytest.param(list(range(11, 0, -1)), 10, 6, id="11-values-the-tenth"),  # 9.9 -> rank 10
        pytest.param(list(range(1, 21)), 18, 10.5, id="20-values-the-eighteenth"),
        pytest.param([4, 4, 4], 4, 4, id="ties"),
        pytest.param([1, 1, 2], 2, 1.33, id="average-rounded-to-2-places"),
        pytest.param([0.25, 0.5], 0.5, 0.38, id="fractions-of-an-hour"),  # 0.375 -> 0.38
    ],
)
def test_order_to_ship_p90_is_the_nearest_rank_and_the_average_is_the_mean(hours, p90, average):
    assert _nearest_rank_p90(hours) == p90  # the table agrees with the definition
    orders = [_facts(f"o{i}", shipped=T0 + timedelta(hours=h)) for i, h in enumerate(hours)]
    k = kpis(orders)
    assert (k.order_to_ship_hours_p90, k.order_to_ship_hours_avg) == (p90, average)


def test_rates_with_a_zero_denominator_are_none_not_zero():
    empty = kpis([])
    assert (empty.orders, empty.delivered, empty.compensations, empty.compensation_total, empty.returns) == (0, 0, 0, Decimal(0), 0)
    for name in (
        "promise_attainment",
        "on_time_delivery",
        "order_to_ship_hours_avg",
        "order_to_ship_hours_p90",
        "manual_review_rate",
        "order_error_rate",
        "feedback_avg",
        "satisfaction",
        "picking_accuracy",
    ):
        assert getattr(empty, name) is None, name
    # One order, not delivered, not shipped, no feedback, no scans: only the per-order rates have a denominator.
    undelivered = kpis([_facts()])
    assert (undelivered.manual_review_rate, undelivered.order_error_rate) == (0.0, 0.0)
    assert (undelivered.on_time_delivery, undelivered.promise_attainment, undelivered.order_to_ship_hours_p90) == (None, None, None)
    assert (undelivered.feedback_avg, undelivered.picking_accuracy) == (None, None)
    # A return alone is no order: its mistake has no orders to be a rate of.
    only_return = kpis([_facts("A-R1", return_of="A", our_mistake=True)])
    assert (only_return.orders, only_return.returns, only_return.order_error_rate) == (0, 1, None)


@pytest.mark.parametrize(
    "in_time, total, rate",
    [(0, 3, 0.0), (1, 3, 0.3333), (2, 3, 0.6667), (3, 3, 1.0), (6, 7, 0.8571)],
)
def test_on_time_rate_is_rounded_to_four_places(in_time, total, rate):
    orders = [
        _facts(f"o{i}", shipped=PROMISED_SHIP, delivered=PROMISED_DELIVERY + (timedelta(0) if i < in_time else S)) for i in range(total)
    ]
    assert kpis(orders).on_time_delivery == rate


@pytest.mark.parametrize(
    "status, end_node, error",
    [
        ("completed", "completed", False),
        ("rejected", "rejected", False),  # "a `rejected` order is no error"
        ("cancelled", "cancelled", True),
        ("failed", "step_failed", True),
        ("cancelled", "merged", False),  # "not those merged into another order"
        ("cancelled", "unpaid", False),  # "or cancelled unpaid"
    ],
)
def test_which_ends_count_as_order_errors(status, end_node, error):
    assert kpis([_facts(status=status, end_node=end_node)]).order_error_rate == (1.0 if error else 0.0)


def test_the_order_error_rate_never_exceeds_one():
    orders = [
        _facts("A", shipped=PROMISED_SHIP, delivered=PROMISED_DELIVERY),
        _facts("A-R1", return_of="A", our_mistake=True),
        _facts("A-R2", return_of="A", our_mistake=True),
    ]
    assert kpis(orders).order_error_rate <= 1.0


def _result(rating) -> OrderResult:
    return OrderResult(
        order_id="A",
        status="completed",
        end_node="completed",
        reason=None,
        process=ProcessRef(id="standard", version=4, sha256="0" * 64, path="standard.yaml"),
        steps=[],
        decisions=[],
        variables={"feedback": {"rating": rating}},
    )


# docs/promises.md: "feedback: average rating 1-5; satisfaction = average / 5".
@pytest.mark.parametrize("rating, kept", [(0, None), (1, 1), (5, 5), (6, None), (-1, None), ("5", None), (4.5, None)])
def test_feedback_ratings_outside_one_to_five_are_left_out(rating, kept):
    assert facts(_result(rating), T0).feedback == kept


@pytest.mark.parametrize(
    "ratings, average, satisfaction", [([1], 1.0, 0.2), ([5], 5.0, 1.0), ([4, 5], 4.5, 0.9), ([5, 4, 4], 4.33, 0.8667)]
)
def test_feedback_average_and_satisfaction(ratings, average, satisfaction):
    k = kpis([_facts(f"o{i}", feedback=r) for i, r in enumerate(ratings)])
    assert (k.feedback_avg, k.satisfaction) == (average, satisfaction)


# The report's chart (docs/promises.md: "hours early or late"); report.py: "at or before the promise counts as on time".
@pytest.mark.parametrize(
    "hours, bucket",
    [
        (-72.01, "more than 3 days early"),
        (-72, "more than 3 days early"),
        (-71.99, "72h to 48h early"),
        (-12, "24h to 12h early"),
        (-11.99, "12h to 0h early"),
        (0, "12h to 0h early"),
        (0.01, "0h to 12h late"),
        (12, "0h to 12h late"),
        (12.01, "12h to 24h late"),
        (48, "24h to 48h late"),
        (48.01, "more than 2 days late"),
    ],
)
def test_delivery_chart_buckets(hours, bucket):
    counts = dict(_histogram([hours]))
    assert counts[bucket] == 1.0
    assert sum(counts.values()) == 1.0


# --- the coupon for a missed promise (activities/promise.py) ---------------------------------------------------


@pytest.fixture
def grant(store: Store):
    activities = PromiseActivities(store)
    policy = _policy(compensation={"standard": {"amount": 10}})

    def run(delivered_at: datetime) -> dict:
        order = Order.model_validate(order_data())
        p = promise(accepted=_at(WED, 10), policy=policy)
        payload = {
            "order": order.as_variable(),
            "promise": p.model_dump(mode="json"),
            "policy": policy.model_dump(mode="json"),
            "delivered_at": delivered_at.isoformat(),
        }
        return run_activity(activities.grant_delay_compensation, payload), p

    return run


# docs/promises.md: check_promise "compares the delivery time ... with `promise.deliver_by`. If late, ... grants the coupon".
@pytest.mark.parametrize("offset, granted", [(-S, False), (timedelta(0), False), (US, True), (S, True)])
def test_a_coupon_only_for_a_delivery_after_the_promise(grant, offset, granted):
    deliver_by = promise(accepted=_at(WED, 10)).deliver_by
    result, p = grant(deliver_by + offset)
    assert p.deliver_by == deliver_by
    assert result["granted"] is granted
    if granted:
        assert (result["amount"], result["currency"]) == ("10", "CNY")
    else:
        assert result["reason"] == "delivered as promised"
