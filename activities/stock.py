"""Stock reservation and its compensation, exactly once per order."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.inputs import OrderArgs, parse
from activities.store import StoreActivities, now_iso

log = structlog.get_logger()


class StockActivities(StoreActivities):
    @activity.defn(name="reserve_stock")
    def reserve_stock(self, payload: dict) -> dict:
        """Reserve the order's current items; a repeat returns the existing reservation."""
        order = parse(OrderArgs, payload).order
        wanted: dict[str, int] = {}
        for item in order.items:
            wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity

        with self.store.transaction() as db:
            held = {
                r["sku"]: r["quantity"]
                for r in db.execute("SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'active'", (order.order_id,))
            }
            if held == wanted:
                return self._lines(db, order.order_id, repeated=True)
            # An agent's edit changed the items: give back the old hold before taking the new one.
            self._release(db, order.order_id)
            shortages = []
            for sku, quantity in wanted.items():
                row = db.execute("SELECT on_hand - reserved AS free FROM stock WHERE sku = ?", (sku,)).fetchone()
                free = row["free"] if row else 0
                if free < quantity:
                    shortages.append((sku, quantity - free))
            if not shortages:
                for sku, quantity in wanted.items():
                    db.execute("UPDATE stock SET reserved = reserved + ? WHERE sku = ?", (quantity, sku))
                    db.execute(
                        "INSERT INTO reservations VALUES (?, ?, ?, 'active', ?) ON CONFLICT (order_id, sku) DO UPDATE"
                        " SET quantity = excluded.quantity, state = 'active', updated_at = excluded.updated_at",
                        (order.order_id, sku, quantity, now_iso()),
                    )
                log.info("stock reserved", lines=len(wanted))
                return self._lines(db, order.order_id, repeated=False)
            for sku, missing in shortages:
                db.execute(
                    "INSERT OR IGNORE INTO purchase_requisitions (order_id, sku, quantity, created_at) VALUES (?, ?, ?, ?)",
                    (order.order_id, sku, missing, now_iso()),
                )
        # Raised after the commit, so the purchase requisitions are kept.
        summary = ", ".join(f"{sku} short by {missing}" for sku, missing in shortages)
        raise ApplicationError(f"not enough stock: {summary}; purchase requisition raised", type="OutOfStock", non_retryable=True)

    @activity.defn(name="release_stock")
    def release_stock(self, payload: dict) -> dict:
        """Compensation for reserve_stock; releasing twice releases once."""
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            released = self._release(db, order.order_id)
        log.info("stock released", lines=len(released))
        return {"released": released}

    @staticmethod
    def _release(db, order_id: str) -> list[dict]:
        rows = db.execute(
            "SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'active' ORDER BY sku", (order_id,)
        ).fetchall()
        for row in rows:
            db.execute("UPDATE stock SET reserved = reserved - ? WHERE sku = ?", (row["quantity"], row["sku"]))
        db.execute(
            "UPDATE reservations SET state = 'released', updated_at = ? WHERE order_id = ? AND state = 'active'",
            (now_iso(), order_id),
        )
        return [{"sku": r["sku"], "quantity": r["quantity"]} for r in rows]

    @staticmethod
    def _lines(db, order_id: str, repeated: bool) -> dict:
        rows = db.execute(
            "SELECT r.sku, r.quantity, p.bin FROM reservations r JOIN products p USING (sku)"
            " WHERE r.order_id = ? AND r.state = 'active' ORDER BY r.sku",
            (order_id,),
        ).fetchall()
        return {"lines": [dict(r) for r in rows], "repeated": repeated}
