"""Automatic order review: each rule yields a reason code for the support agent.

The rules and their parameters come from the process definition
(`variables.review_rules`, handed to the activity as `rules`); docs/review-rules.md
describes each one. A rule set to `null`, `false` or `{enabled: false}` is off.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import structlog
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from temporalio import activity

from activities.inputs import OrderArgs, parse
from activities.store import StoreActivities
from orderops.durations import Duration
from orderops.order import Order

log = structlog.get_logger()


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise ValueError(f"not a valid regular expression: {err}") from None
    return value


Tier = Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")]
OrderType = Annotated[str, Field(pattern=r"^[a-z][a-z_]*$")]
Pattern = Annotated[str, Field(min_length=1), AfterValidator(_regex)]


class Rule(BaseModel):
    """One check. `enabled: false` (or the rule set to `null`/`false`) switches it off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True


class UnknownSkuRule(Rule):
    """unknown_sku: every item must be in the catalogue (`products`)."""


class ZeroPriceRule(Rule):
    """item_price_zero: an item priced 0 is a data error, except in the exempt order types (gifts)."""

    exempt_order_types: list[OrderType] = Field(default_factory=lambda: ["promotion"])


class AddressRule(Rule):
    """address_incomplete: the street must be long enough to deliver to; optionally a district."""

    min_street_length: int = Field(4, ge=1, le=500)
    require_district: bool = False


class PostcodeRule(Rule):
    """postcode_invalid: a postcode, when given (or always, if required), must match the pattern."""

    pattern: Pattern = r"\d{6}"
    expected: str = Field("6 digits", description="What a valid postcode is, for the reason text")
    required: bool = False


class PhoneRule(Rule):
    """phone_invalid: the phone must match the pattern."""

    pattern: Pattern = Field(r"^1[3-9]\d{9}$", description="Mainland mobile numbers by default")
    expected: str = "a valid mobile number"


class DuplicateRule(Rule):
    """duplicate_order: same customer, address and items as an order reviewed shortly before."""

    window: Duration = timedelta(hours=24)


class VelocityRule(Rule):
    """velocity_exceeded: more than `max_orders` orders from one customer within `window`."""

    max_orders: int = Field(5, ge=1)
    window: Duration = timedelta(hours=24)


class BlacklistEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: Annotated[str, Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1)] = "listed in the review rules"

    @model_validator(mode="before")
    @classmethod
    def _plain_value(cls, data: Any) -> Any:
        return {"value": data} if isinstance(data, str) else data


class BlacklistRule(Rule):
    """blacklisted_customer / blacklisted_phone / blacklisted_address: the store's table and these lists."""

    use_store: bool = True
    customers: list[BlacklistEntry] = Field(default_factory=list)
    phones: list[BlacklistEntry] = Field(default_factory=list)
    addresses: list[BlacklistEntry] = Field(default_factory=list)


class AmountRule(Rule):
    """amount_over_limit: the order's amount above the limit for the customer's tier."""

    limit: Decimal = Field(Decimal(20000), gt=0)
    tier_limits: dict[Tier, Annotated[Decimal, Field(gt=0)] | None] = Field(
        default_factory=dict, description="Limit per customer tier; null = no limit for that tier"
    )


class PaymentRule(Rule):
    """payment_not_confirmed: the payment provider has not confirmed payment."""


# The flat keys of the first rule format; definitions (and orders in flight) that use them still work.
_LEGACY = {
    "amount_limit": ("amount", "limit"),
    "duplicate_window_hours": ("duplicate", "window"),
    "phone_pattern": ("phone", "pattern"),
    "require_payment": ("payment", "enabled"),
}


class ReviewRules(BaseModel):
    """`variables.review_rules`: one key per rule; omitted rules run with their defaults."""

    model_config = ConfigDict(extra="forbid")

    unknown_sku: UnknownSkuRule = UnknownSkuRule()
    zero_price: ZeroPriceRule = ZeroPriceRule(enabled=False)
    address: AddressRule = AddressRule()
    postcode: PostcodeRule = PostcodeRule()
    phone: PhoneRule = PhoneRule()
    duplicate: DuplicateRule = DuplicateRule()
    velocity: VelocityRule = VelocityRule()
    blacklist: BlacklistRule = BlacklistRule()
    amount: AmountRule = AmountRule()
    payment: PaymentRule = PaymentRule()

    # The validators' logic lives in plain functions, which mutation testing (mutmut) can mutate.
    @model_validator(mode="before")
    @classmethod
    def _legacy_keys(cls, data: Any) -> Any:
        return _upgrade_legacy(data)

    @field_validator("*", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return _switched(value)


def _upgrade_legacy(data: Any) -> Any:
    """The flat keys of the first rule format, rewritten as the rules they set."""
    if not isinstance(data, dict) or not any(key in data for key in _LEGACY):
        return data
    data = dict(data)
    for old, (rule, param) in _LEGACY.items():
        if old not in data:
            continue
        if rule in data:
            raise ValueError(f"{old} and {rule} both given; write {rule}.{param} only")
        value = data.pop(old)
        if old == "duplicate_window_hours":
            # Hours, as numbers; a zero window found nothing but same-second twins: it meant "off".
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    data[rule] = {"enabled": False} if value == 0 else {param: timedelta(hours=value)}
                except OverflowError:
                    raise ValueError(f"{old} {value} is too long") from None
            else:
                data[rule] = {param: value}
        else:
            data[rule] = {param: value}
    return data


def _switched(value: Any) -> Any:
    """`null` or `false` switches a rule off; `true` (or `{}`) runs it with its defaults."""
    if value is None or value is False:
        return {"enabled": False}
    if value is True:
        return {}
    return value


class ReviewArgs(OrderArgs):
    rules: ReviewRules = Field(default_factory=ReviewRules)

    @field_validator("rules", mode="before")
    @classmethod
    def _no_rules(cls, value: Any) -> Any:
        return {} if value is None else value


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


def findings(db: sqlite3.Connection, order: Order, rules: ReviewRules, anchor: str) -> list[tuple[str, str]]:
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

    earlier = "customer_id = ? AND seen_at >= ? AND (seen_at < ? OR (seen_at = ? AND order_id < ?))"

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
        found.append(("phone_invalid", f"phone {order.phone!r} is not {rules.phone.expected}"))
    if rules.duplicate.enabled:
        duplicate = db.execute(
            f"SELECT order_id FROM orders_seen WHERE {earlier} AND address_key = ? AND items_key = ? ORDER BY seen_at DESC, order_id DESC",
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
    @activity.defn(name="review_order")
    def review_order(self, payload: dict) -> dict:
        args = parse(ReviewArgs, payload)
        order = args.order
        with self.store.transaction() as db:
            # Windows end at the order's first review, not at this attempt: a retry, or a
            # re-review after an edit, sees the same earlier orders and never counts itself.
            # Microseconds order reviews within a second; ISO-8601 UTC texts sort as times
            # (rows written with whole seconds too).
            row = db.execute("SELECT seen_at FROM orders_seen WHERE order_id = ?", (order.order_id,)).fetchone()
            anchor = row["seen_at"] if row else datetime.now(UTC).isoformat(timespec="microseconds")
            found = findings(db, order, args.rules, anchor)
            # Re-review after an edit replaces the earlier fingerprint of this order, keeping its first seen_at.
            db.execute(
                "INSERT INTO orders_seen VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO UPDATE SET"
                " address_key = excluded.address_key, items_key = excluded.items_key",
                (order.order_id, order.customer_id, *_fingerprint(order), anchor),
            )

        codes = [code for code, _ in found]
        log.info("order reviewed", anomalies=codes)
        return {
            "anomalies": codes,
            "reasons": [text for _, text in found],
            "findings": [{"code": code, "reason": text} for code, text in found],
        }
