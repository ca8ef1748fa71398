"""Automatic order review: each rule yields a reason code for the support agent."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone

import structlog
from temporalio import activity

from activities.inputs import ReviewArgs, parse
from activities.store import StoreActivities, now_iso
from orderops.order import Order

log = structlog.get_logger()


def _key(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _address_text(order: Order) -> str:
    a = order.address
    return " ".join(p for p in (a.province, a.city, a.district, a.street) if p)


class ReviewActivities(StoreActivities):
    @activity.defn(name="review_order")
    def review_order(self, payload: dict) -> dict:
        args = parse(ReviewArgs, payload)
        order, rules = args.order, args.rules
        findings: list[tuple[str, str]] = []
        address = _address_text(order)
        address_key = _key(address.lower())
        items_key = _key(sorted((i.sku, i.quantity) for i in order.items))
        since = (datetime.now(timezone.utc) - timedelta(hours=rules.duplicate_window_hours)).isoformat()

        with self.store.transaction() as db:
            known = {r["sku"] for r in db.execute("SELECT sku FROM products")}
            for item in order.items:
                if item.sku not in known:
                    findings.append(("unknown_sku", f"item {item.sku} is not in the catalogue"))
            if len(order.address.street.strip()) < 4:
                findings.append(("address_incomplete", f"street {order.address.street!r} is too short to deliver to"))
            if order.address.postcode and not re.fullmatch(r"\d{6}", order.address.postcode):
                findings.append(("postcode_invalid", f"postcode {order.address.postcode!r} is not 6 digits"))
            if not re.fullmatch(rules.phone_pattern, order.phone):
                findings.append(("phone_invalid", f"phone {order.phone!r} is not a valid mobile number"))
            duplicate = db.execute(
                "SELECT order_id FROM orders_seen WHERE customer_id = ? AND address_key = ? AND items_key = ?"
                " AND order_id != ? AND seen_at >= ?",
                (order.customer_id, address_key, items_key, order.order_id, since),
            ).fetchone()
            if duplicate:
                findings.append(("duplicate_order", f"same customer, address and items as order {duplicate[0]}"))
            for kind, value in (("customer", order.customer_id), ("phone", order.phone), ("address", address)):
                hit = db.execute("SELECT reason FROM blacklist WHERE kind = ? AND value = ?", (kind, value)).fetchone()
                if hit:
                    findings.append((f"blacklisted_{kind}", f"{kind} is blacklisted: {hit[0]}"))
            if float(order.amount) > rules.amount_limit:
                findings.append(("amount_over_limit", f"amount {order.amount} is above the limit {rules.amount_limit:g}"))
            if rules.require_payment and not order.paid:
                findings.append(("payment_not_confirmed", "payment has not been confirmed"))
            # Re-review after an edit replaces the earlier fingerprint of this order.
            db.execute(
                "INSERT INTO orders_seen VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET"
                " address_key = excluded.address_key, items_key = excluded.items_key",
                (order.order_id, order.customer_id, address_key, items_key, now_iso()),
            )

        codes = [code for code, _ in findings]
        log.info("order reviewed", anomalies=codes)
        return {"anomalies": codes, "reasons": [text for _, text in findings]}
