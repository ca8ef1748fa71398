"""The warehouse store: SQLite with real transactions.

Temporal delivers activities at least once, so every write here is keyed by
order id and safe to repeat.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import yaml

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    weight_kg REAL NOT NULL CHECK (weight_kg > 0),
    goods_class TEXT NOT NULL CHECK (goods_class IN ('general', 'fragile', 'liquid', 'bulky', 'hazardous')),
    bin TEXT NOT NULL,
    made_to_order INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY REFERENCES products(sku),
    on_hand INTEGER NOT NULL CHECK (on_hand >= 0),
    reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand)
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL REFERENCES products(sku),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    state TEXT NOT NULL CHECK (state IN ('active', 'released', 'shipped')),
    updated_at TEXT NOT NULL,
    PRIMARY KEY (order_id, sku)
);
CREATE TABLE IF NOT EXISTS purchase_requisitions (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (order_id, sku)
);
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
CREATE TABLE IF NOT EXISTS pick_lists (
    order_id TEXT PRIMARY KEY,
    lines TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS carriers (
    name TEXT PRIMARY KEY,
    base_cost REAL NOT NULL,
    cost_per_kg REAL NOT NULL,
    max_weight_kg REAL NOT NULL,
    hazardous_allowed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS waybills (
    order_id TEXT PRIMARY KEY,
    tracking_no TEXT NOT NULL UNIQUE,
    weight_kg REAL NOT NULL,
    packaging TEXT NOT NULL,
    label_path TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'void')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS handoffs (
    order_id TEXT PRIMARY KEY,
    carrier TEXT NOT NULL REFERENCES carriers(name),
    tracking_no TEXT NOT NULL,
    cost REAL NOT NULL,
    handed_over_at TEXT NOT NULL,
    delivered_at TEXT,
    signed_by TEXT
);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (order_id, kind)
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
"""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Store:
    def __init__(self, path: Path, labels_dir: Path):
        self.path = path
        self.labels_dir = labels_dir
        path.parent.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        db = self.connect()
        try:
            db.executescript(SCHEMA)
            # Stores created before made-to-order products existed gain the column, defaulting to 0.
            columns = {row["name"] for row in db.execute("PRAGMA table_info(products)")}
            if "made_to_order" not in columns:
                db.execute("ALTER TABLE products ADD COLUMN made_to_order INTEGER NOT NULL DEFAULT 0")
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
        """Load products, stock, carriers and the blacklist, once, into an empty store."""
        data = yaml.safe_load(seed_file.read_text(encoding="utf-8"))
        with self.transaction() as db:
            if db.execute("SELECT COUNT(*) FROM products").fetchone()[0]:
                return False
            for p in data["products"]:
                db.execute(
                    "INSERT INTO products (sku, name, weight_kg, goods_class, bin, made_to_order) VALUES (?, ?, ?, ?, ?, ?)",
                    (p["sku"], p["name"], p["weight_kg"], p["goods_class"], p["bin"], int(p.get("made_to_order", False))),
                )
                db.execute("INSERT INTO stock (sku, on_hand) VALUES (?, ?)", (p["sku"], p["on_hand"]))
            for c in data["carriers"]:
                db.execute(
                    "INSERT INTO carriers VALUES (?, ?, ?, ?, ?)",
                    (c["name"], c["base_cost"], c["cost_per_kg"], c["max_weight_kg"], int(c["hazardous_allowed"])),
                )
            for entry in data.get("blacklist", []):
                db.execute("INSERT INTO blacklist VALUES (?, ?, ?)", (entry["kind"], entry["value"], entry["reason"]))
        return True

    def stock_levels(self) -> dict[str, tuple[int, int]]:
        """sku -> (on_hand, reserved)."""
        db = self.connect()
        try:
            return {r["sku"]: (r["on_hand"], r["reserved"]) for r in db.execute("SELECT * FROM stock")}
        finally:
            db.close()

    def rows(self, sql: str, *params) -> list[dict]:
        db = self.connect()
        try:
            return [dict(r) for r in db.execute(sql, params)]
        finally:
            db.close()


class StoreActivities:
    """Base of the activity classes: each works on the one warehouse store it is given."""

    def __init__(self, store: Store):
        self.store = store
