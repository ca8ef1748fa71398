"""The warehouse store: SQLite with real transactions.

Temporal delivers activities at least once, so every write here is keyed by
order id and safe to repeat.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from orderops.config import SAMPLES_DIR, home
from orderops.limits import MAX_STOCK

SCHEMA_VERSION = (
    4  # 2: warehouses, bins, rounds, carrier bookings, tracking, returns; 3: delivered, cancelled, closed states; 4: partial receipts
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS warehouses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    distance_km TEXT NOT NULL           -- JSON: destination province -> km, "*" for the rest
);
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    weight_kg REAL NOT NULL CHECK (weight_kg > 0),
    goods_class TEXT NOT NULL CHECK (goods_class IN ('general', 'fragile', 'liquid', 'bulky', 'hazardous')),
    made_to_order INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT NOT NULL REFERENCES products(sku),
    warehouse TEXT NOT NULL REFERENCES warehouses(id),
    bin TEXT NOT NULL,
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    PRIMARY KEY (sku, warehouse, bin)
);
-- A fulfilment round is one attempt to get the goods to the customer; a reship opens the next.
CREATE TABLE IF NOT EXISTS rounds (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    reason TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round)
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    sku TEXT NOT NULL REFERENCES products(sku),
    warehouse TEXT NOT NULL,
    bin TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'released', 'shipped')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round, sku, warehouse, bin)
);
CREATE TABLE IF NOT EXISTS purchase_requisitions (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'received', 'cancelled')),
    created_at TEXT NOT NULL
);
-- One open requisition per order, SKU and warehouse: a repeated reservation raises none twice.
CREATE UNIQUE INDEX IF NOT EXISTS one_open_requisition ON purchase_requisitions (order_id, sku, warehouse) WHERE state = 'open';
CREATE TABLE IF NOT EXISTS orders_seen (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    address_key TEXT NOT NULL,
    items_key TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS blacklist (
    kind TEXT NOT NULL CHECK (kind IN ('customer', 'phone', 'address')),
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE TABLE IF NOT EXISTS waves (
    id INTEGER PRIMARY KEY,
    warehouse TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    release_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'released')),
    walk TEXT                           -- JSON: the wave's one pick walk, in bin order
);
CREATE TABLE IF NOT EXISTS pick_lists (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    warehouse TEXT NOT NULL,
    wave_id INTEGER REFERENCES waves(id),
    lines TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'cancelled')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round, warehouse)
);
CREATE TABLE IF NOT EXISTS scans (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    scan_key TEXT NOT NULL,             -- when the scan reached the order: a redelivery is the same scan
    matched INTEGER NOT NULL,
    detail TEXT NOT NULL,
    scanned_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round, scan_key)
);
CREATE TABLE IF NOT EXISTS waybills (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    warehouse TEXT NOT NULL,
    tracking_no TEXT NOT NULL UNIQUE,
    weight_kg REAL NOT NULL,
    packaging TEXT NOT NULL,
    hazardous INTEGER NOT NULL,
    label_path TEXT NOT NULL,
    address_key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'void')),
    created_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round, warehouse)
);
CREATE TABLE IF NOT EXISTS carrier_bookings (
    order_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    warehouse TEXT NOT NULL,
    carrier TEXT NOT NULL,
    service TEXT NOT NULL,
    tracking_no TEXT NOT NULL,
    day TEXT NOT NULL,                  -- the pickup day the carrier's daily capacity counts against
    cost REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('booked', 'cancelled', 'handed_over', 'delivered', 'intercept_requested', 'lost')),
    courier TEXT,
    handed_over_at TEXT,
    booked_at TEXT NOT NULL,
    PRIMARY KEY (order_id, round, warehouse)
);
-- Ops mark a carrier whose booking system refuses orders; selection falls back to the next.
CREATE TABLE IF NOT EXISTS carrier_outages (
    carrier TEXT PRIMARY KEY,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tracking_events (
    order_id TEXT NOT NULL,
    event_key TEXT NOT NULL,
    round INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (order_id, event_key)
);
CREATE TABLE IF NOT EXISTS deliveries (
    order_id TEXT PRIMARY KEY,
    round INTEGER NOT NULL,
    delivered_at TEXT NOT NULL,
    signed_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedupe_key TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (order_id, dedupe_key)
);
CREATE TABLE IF NOT EXISTS delay_compensations (
    order_id TEXT PRIMARY KEY,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL,
    service_level TEXT NOT NULL,
    promised_by TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    granted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    order_id TEXT PRIMARY KEY,
    rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    amount TEXT NOT NULL,
    refunded_at TEXT NOT NULL,
    PRIMARY KEY (order_id, reason)
);
CREATE TABLE IF NOT EXISTS returns (
    return_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('refund', 'exchange')),
    reason TEXT NOT NULL,
    items TEXT NOT NULL,
    value TEXT NOT NULL,
    label_path TEXT,
    state TEXT NOT NULL CHECK (state IN ('requested', 'label_issued', 'inspected', 'rejected', 'expired', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS return_inspections (
    return_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('restock', 'scrap')),
    warehouse TEXT NOT NULL,
    bin TEXT NOT NULL,
    inspected_at TEXT NOT NULL,
    PRIMARY KEY (return_id, sku)
);
"""


@dataclass
class Receipt:
    woken: list[str]  # orders whose requisition the goods completed: they can be told `restocked`
    still_open: list[str]  # requisitions the goods did not complete, with what has come so far


class StaleStore(Exception):
    """A store written by an older orderops; its layout cannot serve this version."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: Path, labels_dir: Path):
        self.path = path
        self.labels_dir = labels_dir
        path.parent.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        db = self.connect()
        try:
            tables = {r["name"] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if "meta" in tables else None
            if ("stock" in tables and version is None) or (version is not None and int(version[0]) != SCHEMA_VERSION):
                raise StaleStore(
                    f"{path} was written by another orderops version (store layout {version[0] if version else 1}, this one reads "
                    f"{SCHEMA_VERSION}); move it away or run `make clean` to start a fresh store"
                )
            db.executescript(SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        finally:
            db.close()

    def connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, so check-then-write is atomic."""
        db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def seed(self, seed_file: Path) -> bool:
        """Load warehouses, products with their stock per bin, and the blacklist, once, into an empty store."""
        data = yaml.safe_load(seed_file.read_text(encoding="utf-8"))
        with self.transaction() as db:
            if db.execute("SELECT COUNT(*) FROM products").fetchone()[0]:
                return False
            for w in data["warehouses"]:
                db.execute("INSERT INTO warehouses VALUES (?, ?, ?)", (w["id"], w["name"], json.dumps(w["distance_km"])))
            for p in data["products"]:
                db.execute(
                    "INSERT INTO products VALUES (?, ?, ?, ?, ?)",
                    (p["sku"], p["name"], p["weight_kg"], p["goods_class"], int(p.get("made_to_order", False))),
                )
                for s in p["stock"]:
                    db.execute(
                        "INSERT INTO stock (sku, warehouse, bin, on_hand) VALUES (?, ?, ?, ?)",
                        (p["sku"], s["warehouse"], s["bin"], s["on_hand"]),
                    )
            for entry in data.get("blacklist", []):
                db.execute("INSERT INTO blacklist VALUES (?, ?, ?)", (entry["kind"], entry["value"], entry["reason"]))
        return True

    def receive_stock(self, sku: str, warehouse: str, quantity: int, bin: str | None = None) -> Receipt:
        """Goods in (a purchase arrived): stock up and count them against the open requisitions, oldest first."""
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM products WHERE sku = ?", (sku,)).fetchone() is None:
                raise KeyError(f"unknown SKU {sku!r}")
            if db.execute("SELECT 1 FROM warehouses WHERE id = ?", (warehouse,)).fetchone() is None:
                raise KeyError(f"unknown warehouse {warehouse!r}")
            if bin is not None and not bin.strip():
                raise KeyError("--bin must name a bin")
            bins = [r["bin"] for r in db.execute("SELECT bin FROM stock WHERE sku = ? AND warehouse = ? ORDER BY bin", (sku, warehouse))]
            if bin is None and not bins:
                raise KeyError(f"{sku} has no bin in {warehouse}; name one with --bin")
            if bin is not None and bins and bin not in bins:
                raise KeyError(f"{sku} is kept in {', '.join(bins)} at {warehouse}, not {bin}")
            bin = bin or bins[0]
            row = db.execute("SELECT on_hand FROM stock WHERE sku = ? AND warehouse = ? AND bin = ?", (sku, warehouse, bin)).fetchone()
            on_hand = row["on_hand"] if row else 0
            if not 0 < quantity <= MAX_STOCK - on_hand:
                raise KeyError(f"{sku} at {warehouse} {bin} holds {on_hand:,}; it can take 1 to {MAX_STOCK - on_hand:,} more")
            db.execute(
                "INSERT INTO stock (sku, warehouse, bin, on_hand) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sku, warehouse, bin) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
                (sku, warehouse, bin, quantity),
            )
            # Oldest first, as far as the goods go; a requisition is closed once all it asked for has come.
            orders, left, still_open = [], quantity, []
            for req in db.execute(
                "SELECT id, order_id, quantity, received FROM purchase_requisitions WHERE sku = ? AND warehouse = ? AND state = 'open' ORDER BY id",
                (sku, warehouse),
            ).fetchall():
                take = min(left, req["quantity"] - req["received"])
                left -= take
                if req["received"] + take >= req["quantity"]:
                    db.execute("UPDATE purchase_requisitions SET received = quantity, state = 'received' WHERE id = ?", (req["id"],))
                    orders.append(req["order_id"])
                else:
                    db.execute("UPDATE purchase_requisitions SET received = received + ? WHERE id = ?", (take, req["id"]))
                    still_open.append(
                        f"requisition {req['id']} (order {req['order_id']}): {req['received'] + take} of {req['quantity']} received"
                    )
        return Receipt(orders, still_open)

    def set_carrier_outage(self, carrier: str, reason: str | None) -> None:
        """Mark a carrier whose booking system refuses orders (bookings fall back to the next), or clear it with None."""
        with self.transaction() as db:
            if reason is None:
                db.execute("DELETE FROM carrier_outages WHERE carrier = ?", (carrier,))
            else:
                db.execute("INSERT OR REPLACE INTO carrier_outages VALUES (?, ?)", (carrier, reason))

    def inconsistencies(self, finished_orders: list[str] | None = None) -> list[str]:
        """What would be wrong with the warehouse: reserved counts that disagree with the reservations,
        finished orders still holding stock, a notification written twice. Empty when all is well."""
        problems = [
            f"stock {r['sku']} at {r['warehouse']} {r['bin']}: on_hand {r['on_hand']!r} and reserved {r['reserved']!r}"
            f" are not whole numbers with 0 <= reserved <= on_hand <= {MAX_STOCK:,}"
            for r in self.rows(
                "SELECT sku, warehouse, bin, on_hand, reserved FROM stock WHERE typeof(on_hand) != 'integer'"
                " OR typeof(reserved) != 'integer' OR reserved < 0 OR reserved > on_hand OR on_hand > ?",
                MAX_STOCK,
            )
        ]
        problems += [
            f"stock {r['sku']} at {r['warehouse']} {r['bin']}: reserved {r['reserved']} but reservations hold {r['held']}"
            for r in self.rows(
                "SELECT s.sku, s.warehouse, s.bin, s.reserved, COALESCE(SUM(r.quantity), 0) AS held FROM stock s"
                " LEFT JOIN reservations r ON r.sku = s.sku AND r.warehouse = s.warehouse AND r.bin = s.bin AND r.state = 'active'"
                " GROUP BY s.sku, s.warehouse, s.bin HAVING s.reserved != held"
            )
        ]
        for order_id in finished_orders or []:
            held = self.rows("SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'active'", order_id)
            problems += [f"order {order_id} has ended but still holds {r['quantity']} x {r['sku']}" for r in held]
        # Each notification has one cause: a tracking scan, a mismatched pick scan, or a kind once per fulfilment round.
        problems += [
            f"order {r['order_id']}: {r['n']} {r['kind']!r} notifications for {r['causes']} cause(s)"
            for r in self.rows(
                "SELECT n.order_id, n.kind, COUNT(*) AS n, CASE"
                "  WHEN n.kind IN ('in_transit', 'out_for_delivery', 'delivery_failed', 'delivered', 'lost') THEN"
                "   (SELECT COUNT(*) FROM tracking_events t WHERE t.order_id = n.order_id AND t.status = n.kind)"
                "  WHEN n.kind = 'repick' THEN (SELECT COUNT(*) FROM scans s WHERE s.order_id = n.order_id AND s.matched = 0)"
                "  WHEN n.kind = 'intercept_request' THEN"
                "   (SELECT COUNT(*) FROM carrier_bookings b WHERE b.order_id = n.order_id AND b.state = 'intercept_requested')"
                "  WHEN n.kind = 'refunded' THEN (SELECT COUNT(*) FROM refunds f WHERE f.order_id = n.order_id)"
                "  ELSE (SELECT COALESCE(MAX(round), 1) FROM rounds r WHERE r.order_id = n.order_id) END AS causes"
                " FROM notifications n GROUP BY n.order_id, n.kind HAVING n > causes"
            )
        ]
        return problems

    def stock_levels(self) -> dict[str, tuple[int, int]]:
        """sku -> (on_hand, reserved), over every warehouse and bin."""
        return {
            r["sku"]: (r["on_hand"], r["reserved"])
            for r in self.rows("SELECT sku, SUM(on_hand) AS on_hand, SUM(reserved) AS reserved FROM stock GROUP BY sku")
        }

    def rows(self, sql: str, *params) -> list[dict]:
        db = self.connect()
        try:
            return [dict(r) for r in db.execute(sql, params)]
        finally:
            db.close()


def open_store() -> Store:
    """The warehouse store under ORDEROPS_HOME, seeded with the sample catalogue the first time."""
    store = Store(home() / "warehouse.db", home() / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


def current_round(db: sqlite3.Connection, order_id: str) -> int:
    """The order's fulfilment round: 1 until a reship opens the next."""
    return db.execute("SELECT COALESCE(MAX(round), 1) FROM rounds WHERE order_id = ?", (order_id,)).fetchone()[0]


def next_number(db: sqlite3.Connection, name: str) -> int:
    """A store-wide sequence, never reused (tracking numbers): advanced in the caller's transaction."""
    db.execute("INSERT INTO meta VALUES (?, '0') ON CONFLICT (key) DO NOTHING", (name,))
    db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (name,))
    return int(db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()[0])


def event_key(event: dict) -> str:
    """Which delivery of an event this is: when it reached the order, and its place among the order's events."""
    return f"{event.get('received_at')}#{event.get('seq', '')}"


def outbox(db: sqlite3.Connection, order_id: str, kind: str, channel: str, recipient: str, message: str, key: str | None = None) -> bool:
    """Write a notification in the caller's transaction (transactional outbox); once per order and key."""
    return bool(
        db.execute(
            "INSERT OR IGNORE INTO notifications (order_id, kind, dedupe_key, channel, recipient, message, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (order_id, kind, key or kind, channel, recipient, message, now_iso()),
        ).rowcount
    )


class StoreActivities:
    """Base of the activity classes: each works on the one warehouse store it is given."""

    def __init__(self, store: Store):
        self.store = store
