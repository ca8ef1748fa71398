"""Stock reservation across warehouses and bins, its release, and the rounds a reship opens.

Each call is one transaction and keyed by order and round, so Temporal's
at-least-once delivery reserves, releases and requisitions exactly once.
"""

from __future__ import annotations

import json
from collections import defaultdict

import structlog

from activities.database import Db
from activities.defn import activity_defn
from activities.inputs import OrderArgs, ReserveArgs
from activities.results import Cancelled, Released, Reserved, RoundOpened, Short
from activities.store import StoreActivities, current_round, now_iso
from orderops.order import tally

log = structlog.get_logger()


def _nearest_first(db: Db, province: str) -> list[str]:
    """Warehouses by distance to the destination province; ties by id."""

    def distance(row) -> float:
        table = json.loads(row["distance_km"])
        return float(table.get(province, table.get("*", float("inf"))))

    return [r["id"] for r in sorted(db.execute("SELECT id, distance_km FROM warehouses ORDER BY id"), key=distance)]


def _free(db: Db) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(sku, warehouse) -> [(bin, free quantity)] in bin order."""
    free: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for r in db.execute("SELECT sku, warehouse, bin, on_hand - reserved AS free FROM stock WHERE on_hand > reserved ORDER BY bin"):
        free[(r["sku"], r["warehouse"])].append((r["bin"], r["free"]))
    return free


def _available(free, sku: str, warehouse: str) -> int:
    return sum(quantity for _, quantity in free.get((sku, warehouse), []))


def _plan(wanted: dict[str, int], warehouses: list[str], free, split: bool) -> dict[str, dict[str, int]] | None:
    """warehouse -> {sku: quantity}: the nearest warehouse able to serve everything, else (if allowed) a split."""
    for warehouse in warehouses:
        if all(_available(free, sku, warehouse) >= quantity for sku, quantity in wanted.items()):
            return {warehouse: dict(wanted)}
    if not split or any(sum(_available(free, sku, w) for w in warehouses) < q for sku, q in wanted.items()):
        return None
    plan: dict[str, dict[str, int]] = {}
    left = dict(wanted)
    for warehouse in warehouses:  # nearest first, as much as each can give
        for sku, quantity in left.items():
            take = min(quantity, _available(free, sku, warehouse))
            if take:
                plan.setdefault(warehouse, {})[sku] = take
                left[sku] = quantity - take
        left = {sku: q for sku, q in left.items() if q}
    return plan


def _from_bins(quantity: int, bins: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """[(bin, quantity)]: what to take from each of a warehouse's bins, in bin order, until `quantity` is met.

    A plain function rather than part of the activity, so mutation testing (mutmut) reaches it.
    """
    takes = []
    for bin_, available in bins:
        take = min(quantity, available)
        if not take:
            continue
        takes.append((bin_, take))
        quantity -= take
        if not quantity:
            break
    return takes


def active_lines(db: Db, order_id: str, round_no: int) -> list[dict]:
    rows = db.execute(
        "SELECT r.warehouse, r.sku, p.name, r.bin, r.quantity FROM reservations r JOIN products p USING (sku)"
        " WHERE r.order_id = ? AND r.round = ? AND r.state = 'active' ORDER BY r.warehouse, r.bin, r.sku",
        (order_id, round_no),
    ).fetchall()
    return [dict(r) for r in rows]


def shipments(lines: list[dict]) -> list[dict]:
    by_warehouse: dict[str, list[dict]] = defaultdict(list)
    for line in lines:
        by_warehouse[line["warehouse"]].append({k: line[k] for k in ("sku", "bin", "quantity")})
    return [{"warehouse": w, "lines": ls} for w, ls in sorted(by_warehouse.items())]


class StockActivities(StoreActivities):
    @activity_defn("reserve_stock")
    def reserve_stock(self, args: ReserveArgs) -> Reserved | Short:
        """Reserve the order's items; short stock raises purchase requisitions and reserves nothing.

        Returns status `reserved` (with one shipment per warehouse) or `short` (with
        the requisitions); a repeat returns the reservation already held.
        """
        order = args.order
        wanted = tally(order.items)

        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            if tally(active_lines(db, order.order_id, round_no)) == wanted:
                return self._reserved(db, order.order_id, round_no, repeated=True)
            # An agent's edit changed the items: give back the old hold before taking the new one.
            self._release(db, order.order_id)
            warehouses = _nearest_first(db, order.address.province)
            free = _free(db)
            plan = _plan(wanted, warehouses, free, split=args.policy.when_no_single_warehouse == "split")
            if plan is None:
                return self._requisition(db, order.order_id, wanted, warehouses[0], free)
            for warehouse, lines in plan.items():
                for sku, quantity in lines.items():
                    for bin_, take in _from_bins(quantity, free[(sku, warehouse)]):
                        db.execute(
                            "UPDATE stock SET reserved = reserved + ? WHERE sku = ? AND warehouse = ? AND bin = ?",
                            (take, sku, warehouse, bin_),
                        )
                        db.execute(
                            "INSERT INTO reservations VALUES (?, ?, ?, ?, ?, ?, 'active', ?)"
                            " ON CONFLICT (order_id, round, sku, warehouse, bin) DO UPDATE"
                            " SET quantity = excluded.quantity, state = 'active', updated_at = excluded.updated_at",
                            (order.order_id, round_no, sku, warehouse, bin_, take, now_iso()),
                        )
            # Whatever a backorder asked purchasing for is no longer needed by this order.
            self._cancel_requisitions(db, order.order_id)
            result = self._reserved(db, order.order_id, round_no, repeated=False)
        log.info("stock reserved", warehouses=[s.warehouse for s in result.shipments])
        return result

    @activity_defn("release_stock")
    def release_stock(self, args: OrderArgs) -> Released:
        """Compensation for reserve_stock; releasing twice releases once. Shipped goods stay shipped."""
        order = args.order
        with self.store.transaction() as db:
            released = self._release(db, order.order_id)
        log.info("stock released", lines=len(released))
        return Released.model_validate({"released": released})

    @activity_defn("open_round")
    def open_round(self, args: OrderArgs) -> RoundOpened:
        """A reship: the parcels of the current round are lost; the next round starts from reservation."""
        order = args.order
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            # A fresh round books nothing until it ships: seeing one means this call already ran.
            if (
                round_no > 1
                and not db.execute("SELECT 1 FROM carrier_bookings WHERE order_id = ? AND round = ?", (order.order_id, round_no)).fetchone()
            ):
                return RoundOpened(round=round_no, lost=[])
            lost = [
                r["tracking_no"]
                for r in db.execute(
                    "SELECT tracking_no FROM carrier_bookings WHERE order_id = ? AND round = ? AND state = 'handed_over'",
                    (order.order_id, round_no),
                )
            ]
            db.execute(
                "UPDATE carrier_bookings SET state = 'lost' WHERE order_id = ? AND round = ? AND state = 'handed_over'",
                (order.order_id, round_no),
            )
            db.execute(
                "INSERT INTO rounds VALUES (?, ?, ?, ?)",
                (order.order_id, round_no + 1, f"reship of {', '.join(lost) or 'round ' + str(round_no)}", now_iso()),
            )
        log.info("reship opened", round=round_no + 1, lost=lost)
        return RoundOpened(round=round_no + 1, lost=lost)

    @staticmethod
    def _release(db: Db, order_id: str) -> list[dict]:
        rows = db.execute(
            "SELECT sku, warehouse, bin, quantity FROM reservations WHERE order_id = ? AND state = 'active' ORDER BY sku, warehouse, bin",
            (order_id,),
        ).fetchall()
        for row in rows:
            db.execute(
                "UPDATE stock SET reserved = reserved - ? WHERE sku = ? AND warehouse = ? AND bin = ?",
                (row["quantity"], row["sku"], row["warehouse"], row["bin"]),
            )
        db.execute(
            "UPDATE reservations SET state = 'released', updated_at = ? WHERE order_id = ? AND state = 'active'", (now_iso(), order_id)
        )
        return [dict(r) for r in rows]

    @activity_defn("cancel_requisitions")
    def cancel_requisitions(self, args: OrderArgs) -> Cancelled:
        """Compensation for a backorder: purchasing need not buy for an order that no longer wants the goods."""
        with self.store.transaction() as db:
            return Cancelled(cancelled=self._cancel_requisitions(db, args.order.order_id))

    @staticmethod
    def _cancel_requisitions(db: Db, order_id: str) -> int:
        return db.execute(
            "UPDATE purchase_requisitions SET state = 'cancelled' WHERE order_id = ? AND state = 'open'", (order_id,)
        ).rowcount

    @staticmethod
    def _reserved(db: Db, order_id: str, round_no: int, repeated: bool) -> Reserved:
        parts = shipments(active_lines(db, order_id, round_no))
        return Reserved.model_validate(
            {"status": "reserved", "round": round_no, "shipments": parts, "split": len(parts) > 1, "repeated": repeated}
        )

    @staticmethod
    def _requisition(db: Db, order_id: str, wanted: dict[str, int], warehouse: str, free) -> Short:
        """Ask purchasing for what the nearest warehouse lacks; the order waits for `restocked`."""
        short = []
        for sku, quantity in sorted(wanted.items()):
            missing = quantity - _available(free, sku, warehouse)
            if missing > 0:
                db.execute(
                    "INSERT INTO purchase_requisitions (order_id, sku, warehouse, quantity, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (order_id, sku, warehouse, missing, now_iso()),
                )
                short.append({"sku": sku, "warehouse": warehouse, "missing": missing})
        log.info("stock short; purchase requisition raised", short=short)
        summary = ", ".join(f"{s['sku']} short by {s['missing']} at {warehouse}" for s in short)
        return Short.model_validate({"status": "short", "short": short, "summary": summary})
