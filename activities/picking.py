"""Picking: pick lists by bin, by order or in waves, and scan verification of what was picked."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import structlog
from temporalio.exceptions import ApplicationError

from activities.defn import activity_defn
from activities.inputs import OrderArgs, ScanArgs, WaveArgs
from activities.results import Cancelled, PickLists, ScanVerified, WaveJoined, WaveReleased
from activities.stock import active_lines, shipments
from activities.store import StoreActivities, current_round, event_key, now_iso, outbox
from orderops.order import tally

log = structlog.get_logger()


def _no_reservation(order_id: str) -> ApplicationError:
    return ApplicationError(f"order {order_id} holds no active stock reservation", type="NoReservation", non_retryable=True)


def _open_lists(db, order_id: str, round_no: int) -> list[dict]:
    rows = db.execute(
        "SELECT warehouse, wave_id, lines FROM pick_lists WHERE order_id = ? AND round = ? AND state = 'open' ORDER BY warehouse",
        (order_id, round_no),
    ).fetchall()
    return [{"warehouse": r["warehouse"], "wave_id": r["wave_id"], "lines": json.loads(r["lines"])} for r in rows]


class PickingActivities(StoreActivities):
    @activity_defn("pick_items")
    def pick_items(self, args: OrderArgs) -> PickLists:
        """One pick list per warehouse, in bin order so the picker walks the aisles once."""
        order = args.order
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            lists = _open_lists(db, order.order_id, round_no) or self._create_lists(db, order.order_id, round_no, wave_for=None)
        log.info("pick lists created", warehouses=[p["warehouse"] for p in lists])
        return PickLists.model_validate({"mode": "order", "lists": lists})

    @activity_defn("join_wave")
    def join_wave(self, args: WaveArgs) -> WaveJoined:
        """Put the order's lines into the open wave of each warehouse it ships from; a wave opens if none is."""
        order = args.order
        window = args.picking.wave_window
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            lists = _open_lists(db, order.order_id, round_no)
            if not lists:
                now = datetime.now(UTC)

                def wave_for(warehouse: str) -> int:
                    row = db.execute(
                        "SELECT id FROM waves WHERE warehouse = ? AND state = 'open' AND release_at > ? ORDER BY id LIMIT 1",
                        (warehouse, now.isoformat()),
                    ).fetchone()
                    if row:
                        return row["id"]
                    release_at = (now + window).isoformat(timespec="seconds")
                    return db.execute(
                        "INSERT INTO waves (warehouse, opened_at, release_at, state) VALUES (?, ?, ?, 'open') RETURNING id",
                        (warehouse, now_iso(), release_at),
                    ).fetchone()["id"]

                lists = self._create_lists(db, order.order_id, round_no, wave_for=wave_for)
            waves = [w["wave_id"] for w in lists]
            release_at = db.execute(f"SELECT MAX(release_at) FROM waves WHERE id IN ({','.join('?' * len(waves))})", waves).fetchone()[0]
        log.info("joined wave", waves=waves, release_at=release_at)
        return WaveJoined(mode="wave", waves=waves, release_at=release_at)

    @activity_defn("release_wave")
    def release_wave(self, args: OrderArgs) -> WaveReleased:
        """Close the order's waves: one pick walk per wave, over every order in it, in bin order."""
        order = args.order
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            lists = _open_lists(db, order.order_id, round_no)
            if not lists:
                raise _no_reservation(order.order_id)
            waves = []
            for wave_id in sorted({p["wave_id"] for p in lists}):
                wave = db.execute("SELECT * FROM waves WHERE id = ?", (wave_id,)).fetchone()
                if wave["state"] == "open":
                    walk: dict[tuple[str, str], dict] = {}
                    members = db.execute(
                        "SELECT order_id, lines FROM pick_lists WHERE wave_id = ? AND state = 'open' ORDER BY order_id", (wave_id,)
                    ).fetchall()
                    for member in members:
                        for line in json.loads(member["lines"]):
                            stop = walk.setdefault(
                                (line["bin"], line["sku"]), {"bin": line["bin"], "sku": line["sku"], "quantity": 0, "orders": []}
                            )
                            stop["quantity"] += line["quantity"]
                            stop["orders"].append(member["order_id"])
                    db.execute(
                        "UPDATE waves SET state = 'released', walk = ? WHERE id = ?",
                        (json.dumps([walk[k] for k in sorted(walk)]), wave_id),
                    )
                    wave = db.execute("SELECT * FROM waves WHERE id = ?", (wave_id,)).fetchone()
                stops = json.loads(wave["walk"])
                orders = sorted({o for stop in stops for o in stop["orders"]})
                waves.append({"id": wave_id, "warehouse": wave["warehouse"], "orders": orders, "walk": stops})
        log.info("wave released", waves=[(w["id"], len(w["orders"])) for w in waves])
        return WaveReleased.model_validate({"mode": "wave", "waves": waves, "lists": lists})

    @activity_defn("cancel_pick_list")
    def cancel_pick_list(self, args: OrderArgs) -> Cancelled:
        """Compensation for picking (by order or wave); an order cancelled before its wave is released leaves the walk."""
        order = args.order
        with self.store.transaction() as db:
            # Lists whose goods already left with the courier were done, not cancelled.
            changed = db.execute(
                "UPDATE pick_lists SET state = 'cancelled' WHERE order_id = ? AND state = 'open' AND NOT EXISTS"
                " (SELECT 1 FROM carrier_bookings b WHERE b.order_id = pick_lists.order_id AND b.round = pick_lists.round"
                "  AND b.warehouse = pick_lists.warehouse AND b.state IN ('handed_over', 'delivered', 'intercept_requested', 'lost'))",
                (order.order_id,),
            ).rowcount
        return Cancelled(cancelled=changed)

    @activity_defn("verify_scan")
    def verify_scan(self, args: ScanArgs) -> ScanVerified:
        """Compare the scanned SKUs and quantities with what the order holds; every scan is kept for the KPIs."""
        order = args.order
        scanned = tally(args.scan.items)
        with self.store.transaction() as db:
            round_no = current_round(db, order.order_id)
            expected = tally(active_lines(db, order.order_id, round_no))
            if not expected:
                raise _no_reservation(order.order_id)
            differences = [
                f"{sku}: expected {expected.get(sku, 0)}, scanned {scanned.get(sku, 0)}"
                for sku in sorted(set(expected) | set(scanned))
                if expected.get(sku, 0) != scanned.get(sku, 0)
            ]
            db.execute(
                "INSERT INTO scans VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    order.order_id,
                    round_no,
                    event_key(args.scan.model_dump()),
                    int(not differences),
                    "; ".join(differences) or "match",
                    now_iso(),
                ),
            )
            counts = db.execute(
                "SELECT COUNT(*) AS scans, SUM(CASE WHEN matched = 0 THEN 1 ELSE 0 END) AS mismatches FROM scans WHERE order_id = ? AND round = ?",
                (order.order_id, round_no),
            ).fetchone()
            if differences:
                outbox(
                    db,
                    order.order_id,
                    "repick",
                    "warehouse",
                    args.scan.picker or "picking",
                    f"Re-pick order {order.order_id}: {'; '.join(differences)}",
                    key=f"repick:{round_no}:{event_key(args.scan.model_dump())}",
                )
        log.info("scan verified", matched=not differences, differences=differences)
        return ScanVerified(matched=not differences, differences=differences, scans=counts["scans"], mismatches=counts["mismatches"] or 0)

    @staticmethod
    def _create_lists(db, order_id: str, round_no: int, wave_for) -> list[dict]:
        parts = shipments(active_lines(db, order_id, round_no))
        if not parts:
            raise _no_reservation(order_id)
        lists = []
        for part in parts:
            lines = sorted(part["lines"], key=lambda line: (line["bin"], line["sku"]))
            wave_id = wave_for(part["warehouse"]) if wave_for else None
            db.execute(
                "INSERT INTO pick_lists VALUES (?, ?, ?, ?, ?, 'open', ?) ON CONFLICT (order_id, round, warehouse) DO UPDATE"
                " SET wave_id = excluded.wave_id, lines = excluded.lines, state = 'open', created_at = excluded.created_at",
                (order_id, round_no, part["warehouse"], wave_id, json.dumps(lines), now_iso()),
            )
            lists.append({"warehouse": part["warehouse"], "wave_id": wave_id, "lines": lines})
        return lists
