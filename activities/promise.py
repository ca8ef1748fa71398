"""The delivery promise at acceptance, ops notices when it is at risk, and coupons when it is missed."""

from __future__ import annotations

from decimal import Decimal

import structlog
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.defn import activity_defn
from activities.inputs import DelayArgs, OpsNoticeArgs, PromiseArgs
from activities.results import Granted, NotGranted, OpsNotified
from activities.store import StoreActivities, now_iso, outbox
from orderops import promise as promises

log = structlog.get_logger()


def _policy(data: dict) -> promises.PromisePolicy:
    try:
        return promises.PromisePolicy.model_validate(data)
    except ValidationError as err:
        raise ApplicationError(f"invalid promise policy: {err.errors()[0]['msg']}", type="InvalidInput", non_retryable=True) from None


class PromiseActivities(StoreActivities):
    @activity_defn("compute_promise")
    def compute_promise(self, args: PromiseArgs) -> promises.Promise:
        """Promise from the policy, the destination and the catalogue's categories; same input, same promise."""
        order, policy = args.order, _policy(args.policy)
        skus = sorted({item.sku for item in order.items})
        rows = self.store.rows(f"SELECT goods_class, made_to_order FROM products WHERE sku IN ({','.join('?' * len(skus))})", *skus)
        categories = {r["goods_class"] for r in rows} | {"made_to_order" for r in rows if r["made_to_order"]}
        result = promises.compute(
            policy,
            province=order.address.province,
            city=order.address.city,
            postcode=order.address.postcode,
            service_level=order.service_level,
            customer_tier=order.customer_tier,
            categories=categories,
            accepted_at=args.accepted_at,
        )
        log.info("promise made", ship_by=result.ship_by.isoformat(), deliver_by=result.deliver_by.isoformat(), tier=result.tier)
        return result

    @activity_defn("notify_ops")
    def notify_ops(self, args: OpsNoticeArgs) -> OpsNotified:
        """An ops notice in the outbox, once per order and kind."""
        with self.store.transaction() as db:
            outbox(db, args.order.order_id, args.kind, "ops", "ops", args.message)
        log.info("ops notified", kind=args.kind)
        return OpsNotified(kind=args.kind)

    @activity_defn("grant_delay_compensation")
    def grant_delay_compensation(self, args: DelayArgs) -> Granted | NotGranted:
        """A coupon for a missed promise, per the policy's service level: once per order, ever."""
        policy = _policy(args.policy)
        promise = promises.Promise.model_validate(args.promise)
        coupon = policy.compensation.get(promise.service_level)
        if coupon is None:
            return NotGranted(granted=False, reason=f"no compensation configured for {promise.service_level}")
        if args.delivered_at <= promise.deliver_by:
            return NotGranted(granted=False, reason="delivered as promised")
        order = args.order
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO delay_compensations VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    order.order_id,
                    str(coupon.amount),
                    coupon.currency,
                    promise.service_level,
                    promise.deliver_by.isoformat(),
                    args.delivered_at.isoformat(),
                    now_iso(),
                ),
            )
            row = db.execute("SELECT amount, currency FROM delay_compensations WHERE order_id = ?", (order.order_id,)).fetchone()
            outbox(
                db,
                order.order_id,
                "delay_compensation",
                "sms",
                order.phone,
                f"Sorry, order {order.order_id} arrived later than promised. A coupon of {row['amount']} {row['currency']} is yours.",
            )
        log.info("delay compensated", amount=row["amount"], currency=row["currency"])
        return Granted(granted=True, amount=str(Decimal(row["amount"])), currency=row["currency"])
