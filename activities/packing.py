"""Packing by goods class, the post-pack check, and the waybill with its printable label."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC, datetime

import structlog
from temporalio.exceptions import ApplicationError

from activities.defn import activity_defn
from activities.inputs import OrderArgs, PackArgs
from activities.results import Packed, Voided
from activities.stock import active_lines
from activities.store import StoreActivities, current_round, next_number, now_iso
from orderops.order import Order, tally

log = structlog.get_logger()


def address_key(order: Order) -> str:
    return hashlib.sha256(order.address.model_dump_json().encode()).hexdigest()[:16]


def zpl_text(value: str) -> str:
    """Field data printed as written: a ^ or ~ in it would otherwise start a ZPL command on the printer."""
    escaped = value.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E")
    return f"^FH^FD{escaped}"  # ^FH: _ followed by two hex digits is the byte they name


def zpl_label(order: Order, tracking: str, weight: float, labels: list[str], warehouse: str) -> str:
    """A 4x6 in. ZPL label, as thermal printers at the packing bench take it."""
    a = order.address
    lines = [
        "^XA",
        "^CI28",  # the file is UTF-8; undeclared, the printer reads its bytes as code page 850
        f"^FO40,40^A0N,40,40^FD{tracking}^FS",
        f"^FO40,100^BCN,100,Y,N,N^FD{tracking}^FS",
        f"^FO40,240^A0N,30,30{zpl_text(f'{order.customer_name} {order.phone}')}^FS",
        f"^FO40,280^A0N,30,30{zpl_text(f'{a.province} {a.city} {a.district} {a.street} {a.postcode}')}^FS",
        f"^FO40,330^A0N,30,30{zpl_text(f'Order {order.order_id}  {weight} kg  from {warehouse}')}^FS",
    ]
    lines += [f"^FO40,{380 + 40 * i}^A0N,34,34{zpl_text(label)}^FS" for i, label in enumerate(labels)]
    return "\n".join([*lines, "^XZ", ""])


class PackingActivities(StoreActivities):
    @activity_defn("pack_order")
    def pack_order(self, args: PackArgs) -> Packed:
        """One parcel per warehouse: checked against the order, packed per goods class, weighed, labelled."""
        order, rules = args.order, args.packing
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            lines = active_lines(db, order.order_id, round_no)
            if not lines:
                raise ApplicationError(
                    f"order {order.order_id} holds no active stock reservation", type="NoReservation", non_retryable=True
                )
            self._check(db, order, round_no, lines)
            by_warehouse: dict[str, list[dict]] = defaultdict(list)
            for line in lines:
                by_warehouse[line["warehouse"]].append(line)
            parcels = []
            for warehouse, parcel_lines in sorted(by_warehouse.items()):
                row = db.execute(
                    "SELECT * FROM waybills WHERE order_id = ? AND round = ? AND warehouse = ? AND state = 'active'",
                    (order.order_id, round_no, warehouse),
                ).fetchone() or self._waybill(db, order, round_no, warehouse, parcel_lines, rules)
                parcels.append(self.parcel(row))
        log.info("parcels packed", parcels=[(p["tracking_no"], p["weight_kg"]) for p in parcels])
        return Packed.model_validate({"parcels": parcels})

    @activity_defn("void_waybill")
    def void_waybill(self, args: OrderArgs) -> Voided:
        """Compensation for packing; a parcel already with the carrier keeps its waybill (the intercept needs it)."""
        order = args.order
        with self.store.transaction() as db:
            changed = db.execute(
                "UPDATE waybills SET state = 'void' WHERE order_id = ? AND state = 'active' AND tracking_no NOT IN"
                " (SELECT tracking_no FROM carrier_bookings WHERE order_id = ? AND state IN ('handed_over', 'delivered', 'intercept_requested', 'lost'))",
                (order.order_id, order.order_id),
            ).rowcount
        return Voided(voided=changed)

    def _waybill(self, db, order: Order, round_no: int, warehouse: str, lines: list[dict], rules):
        products = {
            r["sku"]: r
            for r in db.execute(
                f"SELECT sku, weight_kg, goods_class FROM products WHERE sku IN ({','.join('?' * len(lines))})",
                [line["sku"] for line in lines],
            )
        }
        classes = sorted({products[line["sku"]]["goods_class"] for line in lines})
        missing = [c for c in classes if c not in rules.classes]
        if missing:
            raise ApplicationError(f"no packing rule for goods class {', '.join(missing)}", type="InvalidInput", non_retryable=True)
        material = "; ".join(sorted({rules.classes[c].material for c in classes}))
        labels = sorted({label for c in classes for label in rules.classes[c].labels})
        weight = round(sum(products[line["sku"]]["weight_kg"] * line["quantity"] for line in lines) + rules.box_weight_kg, 3)
        # Unique across the store and never reused, even after a void: a date plus a store-wide sequence.
        tracking = f"OO{datetime.now(UTC):%y%m%d}{next_number(db, 'waybill'):08d}"
        label_path = self.store.labels_dir / f"{tracking}.zpl"
        label_path.write_text(zpl_label(order, tracking, weight, labels, warehouse), encoding="utf-8")
        db.execute(
            "INSERT INTO waybills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'active', ?) ON CONFLICT (order_id, round, warehouse) DO UPDATE SET"
            " tracking_no = excluded.tracking_no, weight_kg = excluded.weight_kg, packaging = excluded.packaging,"
            " hazardous = excluded.hazardous, label_path = excluded.label_path, address_key = excluded.address_key,"
            " state = 'active', created_at = excluded.created_at",
            (
                order.order_id,
                round_no,
                warehouse,
                tracking,
                weight,
                json.dumps({"material": material, "labels": labels}),
                int("hazardous" in classes),
                str(label_path),
                address_key(order),
                now_iso(),
            ),
        )
        return db.execute("SELECT * FROM waybills WHERE tracking_no = ?", (tracking,)).fetchone()

    @staticmethod
    def _check(db, order: Order, round_no: int, lines: list[dict]) -> None:
        """Post-pack check: what was picked, what is reserved and what was ordered must agree."""
        ordered, reserved = tally(order.items), tally(lines)
        picked = tally(
            line
            for row in db.execute(
                "SELECT lines FROM pick_lists WHERE order_id = ? AND round = ? AND state = 'open'", (order.order_id, round_no)
            )
            for line in json.loads(row["lines"])
        )
        problems = [
            f"{sku}: ordered {ordered.get(sku, 0)}, reserved {reserved.get(sku, 0)}, picked {picked.get(sku, 0)}"
            for sku in sorted(set(ordered) | set(reserved) | set(picked))
            if not ordered.get(sku, 0) == reserved.get(sku, 0) == picked.get(sku, 0)
        ]
        if problems:
            raise ApplicationError("post-pack check failed: " + "; ".join(problems), type="PackCheckFailed", non_retryable=True)

    @staticmethod
    def parcel(row) -> dict:
        """A waybill row as a parcel (results.Parcel), also what carrier selection reads."""
        packaging = json.loads(row["packaging"])
        return {
            "warehouse": row["warehouse"],
            "tracking_no": row["tracking_no"],
            "weight_kg": row["weight_kg"],
            "hazardous": bool(row["hazardous"]),
            "material": packaging["material"],
            "labels": packaging["labels"],
            "label_path": row["label_path"],
        }
