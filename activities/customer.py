"""What the customer sees: notifications through the outbox, delivery, feedback and refunds."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio.exceptions import ApplicationError

from activities.defn import activity_defn
from activities.inputs import DeliveryArgs, Feedback, FeedbackArgs, NotifyArgs, RefundArgs
from activities.results import CustomerNotified, DeliveryRecorded, Refunded
from activities.store import StoreActivities, current_round, now_iso, outbox
from orderops.order import Order

log = structlog.get_logger()

# Built-in texts; a definition overrides any of them with `templates:` (standard.yaml, `notifications`).
TEMPLATES = {
    "accepted": "Hello {name}, we have received order {order_id} and are preparing it.",
    "shipped": "Order {order_id} is on its way.",
    "in_transit": "Order {order_id} is in transit.",
    "out_for_delivery": "Order {order_id} is out for delivery today.",
    "delivery_failed": "We could not deliver order {order_id}; the courier will try again.",
    "delivered": "Order {order_id} was delivered. Thank you!",
    "lost": "The carrier cannot find the parcel of order {order_id}; we are on it and will contact you today.",
    "feedback_request": "How did we do with order {order_id}? Reply with a rating from 1 to 5.",
    "rejected": "We could not accept order {order_id}. Our support team will contact you.",
    "cancelled": "Order {order_id} was cancelled.",
    "unpaid_cancelled": "Order {order_id} was cancelled because its payment did not arrive.",
    "refunded": "Order {order_id}: your refund of {amount} is on its way.",
    "reshipped": "Order {order_id}: your parcel was lost in transit, so we are sending it again.",
    "return_label": "Return {order_id}: print the return label we sent and hand the parcel to any courier.",
    "return_rejected": "Return {order_id} was not accepted. Our support team will contact you.",
}


def render(kind: str, order: Order, templates: dict[str, str], extra: dict[str, Any] | None = None) -> str:
    template = templates.get(kind) or TEMPLATES.get(kind)
    if template is None:
        raise ApplicationError(
            f"no notification template {kind!r} (known: {', '.join(sorted(set(TEMPLATES) | set(templates)))})",
            type="InvalidInput",
            non_retryable=True,
        )
    fields = _Fields(name=order.customer_name, order_id=order.order_id, amount=f"{order.amount:.2f}", **(extra or {}))
    try:
        return template.format_map(fields)
    except (IndexError, ValueError) as err:
        if kind not in TEMPLATES or template == TEMPLATES[kind]:
            raise ApplicationError(f"template {kind!r} is malformed: {err}", type="InvalidInput", non_retryable=True) from None
        # A broken custom text must not stop the customer hearing: the built-in one goes instead.
        log.warning("notification template malformed; built-in text used", kind=kind, error=str(err))
        return TEMPLATES[kind].format_map(fields)


class _Fields(dict):
    """A template naming a field the event lacks keeps its placeholder: the customer still hears, ops see the gap."""

    def __missing__(self, key: str) -> str:
        log.warning("notification template field missing", field=key)
        return "{" + key + "}"


class CustomerActivities(StoreActivities):
    @activity_defn("notify_customer")
    def notify_customer(self, args: NotifyArgs) -> CustomerNotified:
        """Write to the outbox (transactional-outbox pattern); once per order, kind and fulfilment round."""
        order = args.order
        message = render(args.kind, order, args.templates)
        with self.store.transaction() as db:
            outbox(
                db, order.order_id, args.kind, args.channel, order.phone, message, key=f"{args.kind}:{current_round(db, order.order_id)}"
            )
        log.info("customer notified", kind=args.kind)
        return CustomerNotified(kind=args.kind, message=message)

    @activity_defn("record_delivery")
    def record_delivery(self, args: DeliveryArgs) -> DeliveryRecorded:
        """The sign-off; the first record wins, so a redelivered activity reports the time first written."""
        signer = str(args.delivery.get("signer") or args.order.customer_name)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO deliveries VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (args.order.order_id, current_round(db, args.order.order_id), args.delivered_at.isoformat(), signer),
            )
            row = db.execute("SELECT delivered_at, signed_by FROM deliveries WHERE order_id = ?", (args.order.order_id,)).fetchone()
        return DeliveryRecorded(signed_by=row["signed_by"], delivered_at=row["delivered_at"])

    @activity_defn("record_feedback")
    def record_feedback(self, args: FeedbackArgs) -> Feedback:
        """The customer's rating and comment, kept once per order; returns them as given."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO feedback VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (args.order.order_id, args.feedback.rating, args.feedback.comment, now_iso()),
            )
        return args.feedback

    @activity_defn("refund_order")
    def refund_order(self, args: RefundArgs) -> Refunded:
        """Refund the order's amount, once per order and reason, and tell the customer."""
        order = args.order
        amount = f"{order.amount:.2f}"
        with self.store.transaction() as db:
            db.execute("INSERT INTO refunds VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", (order.order_id, args.reason, amount, now_iso()))
            outbox(db, order.order_id, "refunded", "sms", order.phone, render("refunded", order, {}), key=f"refunded:{args.reason}")
        log.info("refunded", amount=amount, reason=args.reason)
        return Refunded(amount=amount, reason=args.reason)
