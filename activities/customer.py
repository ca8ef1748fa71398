"""What the customer sees: notifications through the outbox, delivery and feedback records."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.inputs import DeliveryArgs, FeedbackArgs, NotifyArgs, parse
from activities.store import StoreActivities, now_iso

log = structlog.get_logger()

TEMPLATES = {
    "accepted": "Hello {name}, we have received order {order_id} and are preparing it.",
    "shipped": "Order {order_id} is on its way.",
    "delivered": "Order {order_id} was delivered. Thank you!",
    "feedback_request": "How did we do with order {order_id}? Reply with a rating from 1 to 5.",
    "rejected": "We could not accept order {order_id}. Our support team will contact you.",
    "cancelled": "Order {order_id} was cancelled.",
}


class CustomerActivities(StoreActivities):
    @activity.defn(name="notify_customer")
    def notify_customer(self, payload: dict) -> dict:
        """Write to the outbox (transactional-outbox pattern); one message per order and kind."""
        args = parse(NotifyArgs, payload)
        order = args.order
        template = TEMPLATES.get(args.kind)
        if template is None:
            raise ApplicationError(
                f"no notification template {args.kind!r} (known: {', '.join(TEMPLATES)})", type="InvalidInput", non_retryable=True
            )
        message = template.format(name=order.customer_name, order_id=order.order_id)
        recipient = order.phone
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO notifications (order_id, kind, channel, recipient, message, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (order.order_id, args.kind, args.channel, recipient, message, now_iso()),
            )
        log.info("customer notified", kind=args.kind)
        return {"kind": args.kind, "message": message}

    @activity.defn(name="record_delivery")
    def record_delivery(self, payload: dict) -> dict:
        args = parse(DeliveryArgs, payload)
        signer = str(args.delivery.get("signer") or args.order.customer_name)
        with self.store.transaction() as db:
            db.execute(
                "UPDATE handoffs SET delivered_at = COALESCE(delivered_at, ?), signed_by = COALESCE(signed_by, ?) WHERE order_id = ?",
                (args.delivered_at.isoformat(), signer, args.order.order_id),
            )
            row = db.execute("SELECT delivered_at, signed_by FROM handoffs WHERE order_id = ?", (args.order.order_id,)).fetchone()
        # The first record wins: a redelivered activity reports the time first written.
        return {"signed_by": row["signed_by"], "delivered_at": row["delivered_at"]} if row else {"signed_by": signer, "delivered_at": args.delivered_at.isoformat()}

    @activity.defn(name="record_feedback")
    def record_feedback(self, payload: dict) -> dict:
        args = parse(FeedbackArgs, payload)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO feedback VALUES (?, ?, ?, ?)",
                (args.order.order_id, args.feedback.rating, args.feedback.comment, now_iso()),
            )
        return args.feedback.model_dump()
