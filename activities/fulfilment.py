"""Picking, packing with waybill, and courier handoff."""

from __future__ import annotations

import json

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.inputs import OrderArgs, parse
from activities.store import StoreActivities, now_iso

log = structlog.get_logger()

# Material and labels per goods class, from the shipping process document (004).
PACKAGING = {
    "general": ("carton", []),
    "fragile": ("carton with foam and bubble wrap", ["FRAGILE"]),
    "liquid": ("sealed bag in carton", ["THIS SIDE UP", "LIQUID"]),
    "bulky": ("reinforced carton", ["HEAVY"]),
    "hazardous": ("UN-certified packaging", ["HAZARDOUS GOODS"]),
}
PACKAGING_WEIGHT_KG = 0.2


def _no_reservation(order_id: str) -> ApplicationError:
    return ApplicationError(f"order {order_id} holds no active stock reservation", type="NoReservation", non_retryable=True)


class FulfilmentActivities(StoreActivities):
    @activity.defn(name="pick_items")
    def pick_items(self, payload: dict) -> dict:
        """A pick list in bin order, so the picker walks the aisles once."""
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            existing = db.execute("SELECT lines FROM pick_lists WHERE order_id = ? AND state = 'open'", (order.order_id,)).fetchone()
            if existing:
                return {"lines": json.loads(existing["lines"])}
            rows = db.execute(
                "SELECT r.sku, p.name, r.quantity, p.bin FROM reservations r JOIN products p USING (sku)"
                " WHERE r.order_id = ? AND r.state = 'active' ORDER BY p.bin",
                (order.order_id,),
            ).fetchall()
            if not rows:
                raise _no_reservation(order.order_id)
            lines = [dict(r) for r in rows]
            db.execute(
                "INSERT INTO pick_lists VALUES (?, ?, 'open', ?) ON CONFLICT (order_id) DO UPDATE"
                " SET lines = excluded.lines, state = 'open', created_at = excluded.created_at",
                (order.order_id, json.dumps(lines), now_iso()),
            )
        log.info("pick list created", lines=len(lines))
        return {"lines": lines}

    @activity.defn(name="cancel_pick_list")
    def cancel_pick_list(self, payload: dict) -> dict:
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            changed = db.execute(
                "UPDATE pick_lists SET state = 'cancelled' WHERE order_id = ? AND state = 'open'", (order.order_id,)
            ).rowcount
        return {"cancelled": bool(changed)}

    @activity.defn(name="pack_order")
    def pack_order(self, payload: dict) -> dict:
        """Choose packaging by goods class, weigh the parcel, issue the waybill and its label."""
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            existing = db.execute("SELECT * FROM waybills WHERE order_id = ? AND state = 'active'", (order.order_id,)).fetchone()
            if existing:
                return self._waybill(existing)
            rows = db.execute(
                "SELECT r.sku, r.quantity, p.weight_kg, p.goods_class FROM reservations r JOIN products p USING (sku)"
                " WHERE r.order_id = ? AND r.state = 'active'",
                (order.order_id,),
            ).fetchall()
            if not rows:
                raise _no_reservation(order.order_id)
            classes = sorted({r["goods_class"] for r in rows})
            material = "; ".join(sorted({PACKAGING[c][0] for c in classes}))
            labels = sorted({label for c in classes for label in PACKAGING[c][1]})
            weight = round(sum(r["weight_kg"] * r["quantity"] for r in rows) + PACKAGING_WEIGHT_KG, 3)
            sequence = db.execute("SELECT COALESCE(MAX(rowid), 0) + 1 FROM waybills").fetchone()[0]
            tracking = f"OO{sequence:010d}"
            label_path = self.store.labels_dir / f"{tracking}.zpl"
            label_path.write_text(self._zpl(order, tracking, weight, labels), encoding="utf-8")
            db.execute(
                "INSERT INTO waybills VALUES (?, ?, ?, ?, ?, 'active', ?) ON CONFLICT (order_id) DO UPDATE SET"
                " tracking_no = excluded.tracking_no, weight_kg = excluded.weight_kg, packaging = excluded.packaging,"
                " label_path = excluded.label_path, state = 'active', created_at = excluded.created_at",
                (order.order_id, tracking, weight, json.dumps({"material": material, "labels": labels}), str(label_path), now_iso()),
            )
            row = db.execute("SELECT * FROM waybills WHERE order_id = ?", (order.order_id,)).fetchone()
        log.info("parcel packed", tracking_no=tracking, weight_kg=weight)
        return self._waybill(row)

    @activity.defn(name="void_waybill")
    def void_waybill(self, payload: dict) -> dict:
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            changed = db.execute("UPDATE waybills SET state = 'void' WHERE order_id = ? AND state = 'active'", (order.order_id,)).rowcount
        return {"voided": bool(changed)}

    @activity.defn(name="handoff_to_courier")
    def handoff_to_courier(self, payload: dict) -> dict:
        """Book the cheapest carrier able to take the parcel; the stock leaves the warehouse."""
        order = parse(OrderArgs, payload).order
        with self.store.transaction() as db:
            existing = db.execute("SELECT * FROM handoffs WHERE order_id = ?", (order.order_id,)).fetchone()
            if existing:
                return dict(existing)
            waybill = db.execute("SELECT * FROM waybills WHERE order_id = ? AND state = 'active'", (order.order_id,)).fetchone()
            if waybill is None:
                raise ApplicationError(f"order {order.order_id} has no waybill; pack it first", type="NotPacked", non_retryable=True)
            hazardous = db.execute(
                "SELECT COUNT(*) FROM reservations r JOIN products p USING (sku)"
                " WHERE r.order_id = ? AND r.state = 'active' AND p.goods_class = 'hazardous'",
                (order.order_id,),
            ).fetchone()[0]
            carrier = db.execute(
                "SELECT name, base_cost + cost_per_kg * ? AS cost FROM carriers WHERE max_weight_kg >= ?"
                " AND (hazardous_allowed = 1 OR ? = 0) ORDER BY cost, name LIMIT 1",
                (waybill["weight_kg"], waybill["weight_kg"], hazardous),
            ).fetchone()
            if carrier is None:
                raise ApplicationError(
                    f"no carrier takes a {waybill['weight_kg']} kg parcel{' of hazardous goods' if hazardous else ''}",
                    type="NoCarrier",
                    non_retryable=True,
                )
            for line in db.execute("SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'active'", (order.order_id,)).fetchall():
                db.execute(
                    "UPDATE stock SET on_hand = on_hand - ?, reserved = reserved - ? WHERE sku = ?",
                    (line["quantity"], line["quantity"], line["sku"]),
                )
            db.execute("UPDATE reservations SET state = 'shipped', updated_at = ? WHERE order_id = ? AND state = 'active'", (now_iso(), order.order_id))
            db.execute(
                "INSERT INTO handoffs (order_id, carrier, tracking_no, cost, handed_over_at) VALUES (?, ?, ?, ?, ?)",
                (order.order_id, carrier["name"], waybill["tracking_no"], round(carrier["cost"], 2), now_iso()),
            )
            row = db.execute("SELECT * FROM handoffs WHERE order_id = ?", (order.order_id,)).fetchone()
        log.info("handed to courier", carrier=row["carrier"], tracking_no=row["tracking_no"])
        return dict(row)

    @staticmethod
    def _waybill(row) -> dict:
        packaging = json.loads(row["packaging"])
        return {
            "tracking_no": row["tracking_no"],
            "weight_kg": row["weight_kg"],
            "material": packaging["material"],
            "labels": packaging["labels"],
            "label_path": row["label_path"],
        }

    @staticmethod
    def _zpl(order, tracking: str, weight: float, labels: list[str]) -> str:
        a = order.address
        lines = [
            "^XA",
            f"^FO40,40^A0N,40,40^FD{tracking}^FS",
            f"^FO40,100^BCN,100,Y,N,N^FD{tracking}^FS",
            f"^FO40,240^A0N,30,30^FD{order.customer_name} {order.phone}^FS",
            f"^FO40,280^A0N,30,30^FD{a.province} {a.city} {a.district} {a.street} {a.postcode}^FS",
            f"^FO40,330^A0N,30,30^FDOrder {order.order_id}  {weight} kg^FS",
        ]
        lines += [f"^FO40,{380 + 40 * i}^A0N,34,34^FD{label}^FS" for i, label in enumerate(labels)]
        return "\n".join(lines + ["^XZ", ""])
