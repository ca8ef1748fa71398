"""Returns and exchanges: assess the request, issue a return label, inspect and restock or scrap."""

from __future__ import annotations

import json

import structlog
from temporalio.exceptions import ApplicationError

from activities.customer import render
from activities.defn import activity_defn
from activities.inputs import CloseReturnArgs, InspectArgs, ReturnArgs
from activities.packing import zpl_text
from activities.results import Assessed, Inspected, ReturnClosed, ReturnLabel
from activities.store import StoreActivities, now_iso, outbox
from orderops.order import tally

log = structlog.get_logger()


class ReturnActivities(StoreActivities):
    @activity_defn("assess_return")
    def assess_return(self, args: ReturnArgs) -> Assessed:
        """The items must have been shipped to the customer and not be returned already; the value decides approval."""
        order, request = args.order, args.request
        with self.store.transaction() as db:
            existing = db.execute("SELECT * FROM returns WHERE return_id = ?", (order.order_id,)).fetchone()
            if existing is None:
                # What reached the customer: shipped in a round whose parcels were not lost (a reship replaced those).
                shipped = tally(
                    db.execute(
                        "SELECT r.sku, r.quantity FROM reservations r WHERE r.order_id = ? AND r.state = 'shipped' AND NOT EXISTS"
                        " (SELECT 1 FROM carrier_bookings b WHERE b.order_id = r.order_id AND b.round = r.round"
                        "  AND b.warehouse = r.warehouse AND b.state = 'lost')",
                        (request.original_order_id,),
                    )
                )
                # Returns still under way or done; each stores its items as {sku: quantity}.
                returned = tally(
                    {"sku": sku, "quantity": quantity}
                    for r in db.execute(
                        "SELECT items FROM returns WHERE order_id = ? AND state NOT IN ('rejected', 'expired', 'cancelled')",
                        (request.original_order_id,),
                    )
                    for sku, quantity in json.loads(r["items"]).items()
                )
                wanted = tally(order.items)
                problems = [
                    f"{sku}: {quantity} asked, {shipped.get(sku, 0) - returned.get(sku, 0)} shipped and not yet returned"
                    for sku, quantity in sorted(wanted.items())
                    if quantity > shipped.get(sku, 0) - returned.get(sku, 0)
                ]
                if problems:
                    raise ApplicationError(
                        f"order {request.original_order_id} cannot take this return: " + "; ".join(problems),
                        type="InvalidReturn",
                        non_retryable=True,
                    )
                db.execute(
                    "INSERT INTO returns VALUES (?, ?, ?, ?, ?, ?, NULL, 'requested', ?)",
                    (
                        order.order_id,
                        request.original_order_id,
                        request.kind,
                        request.reason,
                        json.dumps(dict(wanted)),
                        f"{order.amount:.2f}",
                        now_iso(),
                    ),
                )
                existing = db.execute("SELECT * FROM returns WHERE return_id = ?", (order.order_id,)).fetchone()
        log.info("return assessed", value=existing["value"], kind=existing["kind"])
        return Assessed(value=float(existing["value"]), kind=existing["kind"], our_mistake=request.our_mistake)

    @activity_defn("issue_return_label")
    def issue_return_label(self, args: ReturnArgs) -> ReturnLabel:
        """A prepaid return label (ZPL), addressed back to the warehouse the goods came from."""
        order = args.order
        with self.store.transaction() as db:
            row = db.execute("SELECT label_path FROM returns WHERE return_id = ?", (order.order_id,)).fetchone()
            if row is None:
                raise ApplicationError(f"return {order.order_id} was not assessed", type="InvalidReturn", non_retryable=True)
            if row["label_path"] is None:
                warehouse = db.execute(
                    "SELECT w.name FROM reservations r JOIN warehouses w ON w.id = r.warehouse WHERE r.order_id = ? AND r.state = 'shipped'"
                    " ORDER BY r.round DESC, r.warehouse LIMIT 1",
                    (args.request.original_order_id,),
                ).fetchone()
                path = self.store.labels_dir / f"RT-{order.order_id}.zpl"
                path.write_text(
                    "\n".join(
                        [
                            "^XA",
                            "^CI28",  # UTF-8, as packing's labels
                            f"^FO40,40^A0N,40,40^FDRETURN RT-{order.order_id}^FS",
                            f"^FO40,100^BCN,100,Y,N,N^FDRT-{order.order_id}^FS",
                            f"^FO40,240^A0N,30,30{zpl_text(f'From {order.customer_name} {order.phone}')}^FS",
                            f"^FO40,280^A0N,30,30{zpl_text('To ' + (warehouse['name'] if warehouse else 'returns desk'))}^FS",
                            "^XZ",
                            "",
                        ]
                    ),
                    encoding="utf-8",
                )
                db.execute("UPDATE returns SET label_path = ?, state = 'label_issued' WHERE return_id = ?", (str(path), order.order_id))
                outbox(db, order.order_id, "return_label", "sms", order.phone, render("return_label", order, {}))
                row = {"label_path": str(path)}
        return ReturnLabel(label_path=row["label_path"])

    @activity_defn("close_return")
    def close_return(self, args: CloseReturnArgs) -> ReturnClosed:
        """A rejected or expired return gives its items back to what the customer may still return."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE returns SET state = ? WHERE return_id = ? AND state IN ('requested', 'label_issued')",
                (args.outcome, args.order.order_id),
            )
            row = db.execute("SELECT state FROM returns WHERE return_id = ?", (args.order.order_id,)).fetchone()
        return ReturnClosed(state=row["state"] if row else None)

    @activity_defn("inspect_return")
    def inspect_return(self, args: InspectArgs) -> Inspected:
        """Each returned SKU is restocked into the bin it left from, or scrapped; once per return and SKU."""
        order = args.order
        outcomes = {line.sku: line.outcome for line in args.inspection.items}
        unknown = sorted(set(outcomes) - {item.sku for item in order.items})
        if unknown:
            raise ApplicationError(
                f"inspection names SKUs not in the return: {', '.join(unknown)}", type="InvalidInput", non_retryable=True
            )
        quantities = tally(order.items)
        result = []
        with self.store.transaction() as db:
            for sku, quantity in quantities.items():
                origin = db.execute(
                    "SELECT warehouse, bin FROM reservations WHERE order_id = ? AND sku = ? AND state = 'shipped'"
                    " ORDER BY round DESC, warehouse, bin LIMIT 1",
                    (args.request.original_order_id, sku),
                ).fetchone()
                if origin is None:
                    raise ApplicationError(
                        f"{sku} was never shipped for order {args.request.original_order_id}", type="InvalidReturn", non_retryable=True
                    )
                outcome = outcomes.get(sku, "restock")
                inserted = db.execute(
                    "INSERT INTO return_inspections VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (order.order_id, sku, quantity, outcome, origin["warehouse"], origin["bin"], now_iso()),
                ).rowcount
                if inserted and outcome == "restock":
                    db.execute(
                        "UPDATE stock SET on_hand = on_hand + ? WHERE sku = ? AND warehouse = ? AND bin = ?",
                        (quantity, sku, origin["warehouse"], origin["bin"]),
                    )
                result.append({"sku": sku, "quantity": quantity, "outcome": outcome, "warehouse": origin["warehouse"]})
            db.execute("UPDATE returns SET state = 'inspected' WHERE return_id = ?", (order.order_id,))
        log.info("return inspected", lines=result)
        return Inspected.model_validate(
            {"lines": result, "restocked": sum(line["quantity"] for line in result if line["outcome"] == "restock")}
        )
