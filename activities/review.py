"""Automatic order review: each rule yields a reason code for the support agent.

The rules and their parameters come from the process definition
(`variables.review_rules`, handed to the activity as `rules`; the model is
orderops.settings.ReviewRules); docs/review-rules.md describes each one. A rule
set to `null`, `false` or `{enabled: false}` is off.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import structlog

from activities.database import Db
from activities.defn import activity_defn
from activities.inputs import ReviewArgs
from activities.results import Finding, ReviewResult
from activities.store import StoreActivities
from orderops.order import Order, mask_phone
from orderops.settings import ReviewRules

log = structlog.get_logger()


def _key(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint(order: Order) -> tuple[str, str]:
    """(address key, items key): what makes two orders of one customer the same order."""
    return _key(_address_text(order).lower()), _key(sorted((i.sku, i.quantity) for i in order.items))


def _address_text(order: Order) -> str:
    a = order.address
    return " ".join(p for p in (a.province, a.city, a.district, a.street) if p)


def _normal(text: str) -> str:
    return " ".join(text.split()).casefold()


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _hours(window: timedelta) -> str:
    hours = window.total_seconds() / 3600
    return f"{hours:g} h"


def findings(db: Db, order: Order, rules: ReviewRules, anchor: str) -> list[tuple[str, str]]:
    """(code, reason) for each rule the order breaks; reads the store, writes nothing.

    A plain function rather than the body of the activity: mutation testing (mutmut)
    does not mutate decorated functions, and these rules are what it must check.
    `anchor` is when the order was first reviewed: the windows end there.
    """
    found: list[tuple[str, str]] = []
    address = _address_text(order)
    address_key, items_key = _fingerprint(order)

    def since(window: timedelta) -> str:
        return (datetime.fromisoformat(anchor) - window).isoformat(timespec="microseconds")

    # seen_at as written since reviews carried microseconds: rows from before, in whole seconds
    # ('...T06:00:00+00:00'), would sort before the same instant in microseconds.
    seen_at = "CASE WHEN length(seen_at) = 25 THEN substr(seen_at, 1, 19) || '.000000' || substr(seen_at, 20) ELSE seen_at END"
    earlier = f"customer_id = ? AND {seen_at} >= ? AND ({seen_at} < ? OR ({seen_at} = ? AND order_id < ?))"

    if rules.unknown_sku.enabled:
        known = {r["sku"] for r in db.execute("SELECT sku FROM products")}
        for item in order.items:
            if item.sku not in known:
                found.append(("unknown_sku", f"item {item.sku} is not in the catalogue"))
    if rules.zero_price.enabled and order.order_type not in rules.zero_price.exempt_order_types:
        for item in order.items:
            if item.unit_price == 0:
                found.append(("item_price_zero", f"item {item.sku} has a price of 0"))
    if rules.address.enabled:
        problems = []
        if len(order.address.street.strip()) < rules.address.min_street_length:
            problems.append(f"street {order.address.street!r} is too short to deliver to")
        if rules.address.require_district and not order.address.district.strip():
            problems.append("the district is missing")
        if problems:
            found.append(("address_incomplete", "; ".join(problems)))
    if rules.postcode.enabled:
        postcode = order.address.postcode.strip()
        if not postcode and rules.postcode.required:
            found.append(("postcode_invalid", "the postcode is missing"))
        # ASCII: `\d` would also take full-width (IME) digits, which carriers' systems cannot read.
        elif postcode and not re.fullmatch(rules.postcode.pattern, postcode, re.ASCII):
            found.append(("postcode_invalid", f"postcode {order.address.postcode!r} is not {rules.postcode.expected}"))
    if rules.phone.enabled and not re.fullmatch(rules.phone.pattern, order.phone, re.ASCII):
        # Masked: the finding is shown to anyone who may decide, and logged; the number itself is in the encrypted order.
        found.append(("phone_invalid", f"phone {mask_phone(order.phone)!r} is not {rules.phone.expected}"))
    if rules.duplicate.enabled:
        duplicate = db.execute(
            f"SELECT order_id FROM orders_seen WHERE {earlier} AND address_key = ? AND items_key = ? ORDER BY {seen_at} DESC, order_id DESC",
            (order.customer_id, since(rules.duplicate.window), anchor, anchor, order.order_id, address_key, items_key),
        ).fetchone()
        if duplicate:
            found.append(("duplicate_order", f"same customer, address and items as order {duplicate[0]}"))
    if rules.velocity.enabled:
        velocity = rules.velocity
        before = db.execute(
            f"SELECT COUNT(*) FROM orders_seen WHERE {earlier}",
            (order.customer_id, since(velocity.window), anchor, anchor, order.order_id),
        ).fetchone()[0]
        if before + 1 > velocity.max_orders:
            text = f"{before + 1} orders from customer {order.customer_id} within {_hours(velocity.window)}"
            found.append(("velocity_exceeded", f"{text} (at most {velocity.max_orders})"))
    if rules.blacklist.enabled:
        listed = {"customer": rules.blacklist.customers, "phone": rules.blacklist.phones, "address": rules.blacklist.addresses}
        for kind, value in (("customer", order.customer_id), ("phone", order.phone), ("address", address)):
            hit = None
            if rules.blacklist.use_store:
                row = db.execute("SELECT reason FROM blacklist WHERE kind = ? AND value = ?", (kind, value)).fetchone()
                hit = row[0] if row else None
            if hit is None:
                hit = next((e.reason for e in listed[kind] if _normal(e.value) == _normal(value)), None)
            if hit is not None:
                found.append((f"blacklisted_{kind}", f"{kind} is blacklisted: {hit}"))
    if rules.amount.enabled:
        tier = order.customer_tier
        limit = rules.amount.tier_limits.get(tier, rules.amount.limit)
        if limit is not None and order.amount > limit:
            whose = f" for {tier} customers" if tier in rules.amount.tier_limits else ""
            found.append(("amount_over_limit", f"amount {order.amount:.2f} is above the limit {_number(limit)}{whose}"))
    if rules.payment.enabled and not order.paid:
        found.append(("payment_not_confirmed", "payment has not been confirmed"))
    return found


class ReviewActivities(StoreActivities):
    @activity_defn("review_order")
    def review_order(self, args: ReviewArgs) -> ReviewResult:
        """Check the order against the review rules; each rule that fires gives a reason code and a sentence."""
        order = args.order
        with self.store.transaction() as db:
            # Windows end at the order's first review, not at this attempt: a retry, or a
            # re-review after an edit, sees the same earlier orders and never counts itself.
            # Microseconds order reviews within a second; ISO-8601 UTC texts sort as times
            # (rows written with whole seconds too).
            row = db.execute("SELECT seen_at FROM orders_seen WHERE order_id = ?", (order.order_id,)).fetchone()
            first = datetime.fromisoformat(row["seen_at"]) if row else datetime.now(UTC)
            anchor = first.isoformat(timespec="microseconds")
            found = findings(db, order, args.rules, anchor)
            # Re-review after an edit replaces the earlier fingerprint of this order, keeping its first seen_at.
            db.execute(
                "INSERT INTO orders_seen VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET"
                " address_key = excluded.address_key, items_key = excluded.items_key",
                (order.order_id, order.customer_id, *_fingerprint(order), anchor),
            )

        codes = [code for code, _ in found]
        log.info("order reviewed", anomalies=codes)
        return ReviewResult(
            anomalies=codes,
            reasons=[text for _, text in found],
            findings=[Finding(code=code, reason=text) for code, text in found],
        )
