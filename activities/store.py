"""The warehouse store: SQLite with real transactions.

Temporal delivers activities at least once, so every write here is keyed by
order id and safe to repeat.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import yaml
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from activities.database import Db, backend_of, connected, engine_for, migration_lock, shown
from orderops.config import SAMPLES_DIR, home, store_url
from orderops.limits import MAX_STOCK

# Layout 5 is Alembic revision 0005 (activities/migrations/versions/); 4 is the oldest it upgrades.
LAYOUT = 5
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Receipt:
    woken: list[str]  # orders whose requisition the goods completed: they can be told `restocked`
    still_open: list[str]  # requisitions the goods did not complete, with what has come so far


class StaleStore(Exception):
    """A store of another layout than this orderops reads: `orderops store upgrade` brings an older one up."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """The warehouse store at `url` (a PostgreSQL URL, a sqlite:/// URL, or a SQLite file's path)."""

    def __init__(self, url: str | Path, labels_dir: Path):
        url = f"sqlite:///{url}" if isinstance(url, Path) else url
        self.url = url
        self.labels_dir = labels_dir
        labels_dir.mkdir(parents=True, exist_ok=True)
        self.engine = engine_for(url)
        self.backend = backend_of(self.engine)
        with migration_lock(self.engine) as connection:
            layout = layout_of(connection)
            if layout is None:  # an empty database: this is the store's first start
                migrate(connection, None)
            elif layout != LAYOUT:
                raise StaleStore(stale_reason(shown(url), layout))

    @property
    def where(self) -> str:
        """The store's URL, fit to print: without a password."""
        return shown(self.url)

    @contextmanager
    def transaction(self) -> Iterator[Db]:
        """Opens with the store's write lock held (docs/warehouse.md), so check-then-write is atomic."""
        with connected(self.engine) as connection:
            connection.exec_driver_sql(self.backend.begin_write)
            yield Db(connection)
            connection.commit()

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
                " ON CONFLICT (sku, warehouse, bin) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand",
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
                db.execute(
                    "INSERT INTO carrier_outages VALUES (?, ?) ON CONFLICT (carrier) DO UPDATE SET reason = excluded.reason",
                    (carrier, reason),
                )

    def inconsistencies(self, finished_orders: list[str] | None = None) -> list[str]:
        """What would be wrong with the warehouse: reserved counts that disagree with the reservations,
        finished orders still holding stock, a notification written twice. Empty when all is well."""
        # SQLite keeps whatever type was written; PostgreSQL's INTEGER columns hold nothing else.
        loose = "typeof(on_hand) != 'integer' OR typeof(reserved) != 'integer' OR " if self.backend.loose_types else ""
        problems = [
            f"stock {r['sku']} at {r['warehouse']} {r['bin']}: on_hand {r['on_hand']!r} and reserved {r['reserved']!r}"
            f" are not whole numbers with 0 <= reserved <= on_hand <= {MAX_STOCK:,}"
            for r in self.rows(
                f"SELECT sku, warehouse, bin, on_hand, reserved FROM stock WHERE {loose}reserved < 0 OR reserved > on_hand OR on_hand > ?",
                MAX_STOCK,
            )
        ]
        problems += [
            f"stock {r['sku']} at {r['warehouse']} {r['bin']}: reserved {r['reserved']} but reservations hold {r['held']}"
            for r in self.rows(
                "SELECT * FROM (SELECT s.sku, s.warehouse, s.bin, s.reserved, COALESCE(SUM(r.quantity), 0) AS held FROM stock s"
                " LEFT JOIN reservations r ON r.sku = s.sku AND r.warehouse = s.warehouse AND r.bin = s.bin AND r.state = 'active'"
                " GROUP BY s.sku, s.warehouse, s.bin, s.reserved) AS counted WHERE reserved != held"
            )
        ]
        for order_id in finished_orders or []:
            held = self.rows("SELECT sku, quantity FROM reservations WHERE order_id = ? AND state = 'active'", order_id)
            problems += [f"order {order_id} has ended but still holds {r['quantity']} x {r['sku']}" for r in held]
        # Each notification has one cause: a tracking scan, a mismatched pick scan, or a kind once per fulfilment round.
        problems += [
            f"order {r['order_id']}: {r['n']} {r['kind']!r} notifications for {r['causes']} cause(s)"
            for r in self.rows(
                "SELECT * FROM (SELECT n.order_id, n.kind, COUNT(*) AS n, CASE"
                "  WHEN n.kind IN ('in_transit', 'out_for_delivery', 'delivery_failed', 'delivered', 'lost') THEN"
                "   (SELECT COUNT(*) FROM tracking_events t WHERE t.order_id = n.order_id AND t.status = n.kind)"
                "  WHEN n.kind = 'repick' THEN (SELECT COUNT(*) FROM scans s WHERE s.order_id = n.order_id AND s.matched = 0)"
                "  WHEN n.kind = 'intercept_request' THEN"
                "   (SELECT COUNT(*) FROM carrier_bookings b WHERE b.order_id = n.order_id AND b.state = 'intercept_requested')"
                "  WHEN n.kind = 'refunded' THEN (SELECT COUNT(*) FROM refunds f WHERE f.order_id = n.order_id)"
                "  ELSE (SELECT COALESCE(MAX(round), 1) FROM rounds r WHERE r.order_id = n.order_id) END AS causes"
                " FROM notifications n GROUP BY n.order_id, n.kind) AS counted WHERE n > causes"
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
        with connected(self.engine) as connection:
            return [dict(r) for r in Db(connection).execute(sql, params)]

    def tables(self) -> list[str]:
        with connected(self.engine) as connection:
            return sorted(sa.inspect(connection).get_table_names())

    def close(self) -> None:
        self.engine.dispose()


def open_store() -> Store:
    """The warehouse store at ORDEROPS_STORE_URL, or under ORDEROPS_HOME; seeded with the sample catalogue the first time."""
    url = store_url()
    store = Store(url, home() / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


def layout_of(connection: sa.Connection) -> int | None:
    """The store's layout: Alembic's revision, or for a store from before Alembic, meta.schema_version
    (1 when it has stock but no meta); None for an empty database."""
    tables = set(sa.inspect(connection).get_table_names())
    if "alembic_version" in tables:
        revision = MigrationContext.configure(connection).get_current_revision()
        if revision:
            return int(revision)
    if "meta" in tables:
        row = connection.exec_driver_sql("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 1
    return 1 if "stock" in tables else None


def stale_reason(where: str, layout: int | None) -> str:
    if layout is None:
        return f"{where} holds no store yet; a worker or any orderops command creates it"
    if layout > LAYOUT:
        return f"{where} is at store layout {layout}, newer than this orderops reads ({LAYOUT}); upgrade orderops"
    if layout < 4:
        return (
            f"{where} is at store layout {layout}, older than `orderops store upgrade` can migrate (4 to {LAYOUT});"
            " move it away or run `make clean` to start a fresh store"
        )
    return f"{where} is at store layout {layout} and this orderops reads {LAYOUT}: run `orderops store upgrade`"


def alembic_config(connection: sa.Connection) -> Config:
    """Alembic's configuration for the store's migrations, run on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(connection: sa.Connection, layout: int | None) -> None:
    """Run Alembic's migrations from `layout` (None: an empty database) to the current one."""
    config = alembic_config(connection)
    if connection.dialect.name == "sqlite":
        # SQLite's DDL is transactional too: a first start cut short leaves an empty database, not half a store.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    if layout is not None and "alembic_version" not in sa.inspect(connection).get_table_names():
        command.stamp(config, f"{layout:04d}")  # a layout-4 store from before Alembic
    command.upgrade(config, f"{LAYOUT:04d}")
    connection.commit()


def upgrade(url: str) -> tuple[int | None, int]:
    """Bring the store at `url`, with its data, to the current layout (or make it, in an empty database):
    (layout before, None for none, and layout now)."""
    engine = engine_for(url)
    try:
        with migration_lock(engine) as connection:
            before = layout_of(connection)
            if before is not None and not 4 <= before <= LAYOUT:
                raise StaleStore(stale_reason(shown(url), before))
            if before != LAYOUT:
                migrate(connection, before)
            return before, LAYOUT
    finally:
        engine.dispose()


def current_round(db: Db, order_id: str) -> int:
    """The order's fulfilment round: 1 until a reship opens the next."""
    return db.execute("SELECT COALESCE(MAX(round), 1) FROM rounds WHERE order_id = ?", (order_id,)).fetchone()[0]


def next_number(db: Db, name: str) -> int:
    """A store-wide sequence, never reused (tracking numbers): advanced in the caller's transaction."""
    db.execute("INSERT INTO meta VALUES (?, '0') ON CONFLICT (key) DO NOTHING", (name,))
    db.execute("UPDATE meta SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT) WHERE key = ?", (name,))
    return int(db.execute("SELECT value FROM meta WHERE key = ?", (name,)).fetchone()[0])


def event_key(event: dict) -> str:
    """Which delivery of an event this is: when it reached the order, and its place among the order's events."""
    return f"{event.get('received_at')}#{event.get('seq', '')}"


def outbox(db: Db, order_id: str, kind: str, channel: str, recipient: str, message: str, key: str | None = None) -> bool:
    """Write a notification in the caller's transaction (transactional outbox); once per order and key."""
    return bool(
        db.execute(
            "INSERT INTO notifications (order_id, kind, dedupe_key, channel, recipient, message, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (order_id, kind, key or kind, channel, recipient, message, now_iso()),
        ).rowcount
    )


class StoreActivities:
    """Base of the activity classes: each works on the one warehouse store it is given."""

    def __init__(self, store: Store):
        self.store = store
