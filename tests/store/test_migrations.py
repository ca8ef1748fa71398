"""The store's layout and its upgrade (activities/migrations/), on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import op

from activities.database import StoreUnavailable
from activities.stock import StockActivities
from activities.store import LAYOUT, StaleStore, Store, upgrade
from orderops.config import SAMPLES_DIR
from tests import postgres
from tests.store_helpers import as_layout_4, payload, run, ship

TABLES = [
    "blacklist", "carrier_bookings", "carrier_outages", "deliveries", "delay_compensations", "feedback", "meta", "notifications",
    "orders_seen", "pick_lists", "products", "purchase_requisitions", "refunds", "reservations", "return_inspections",
    "returns", "rounds", "scans", "stock", "tracking_events", "warehouses", "waves", "waybills",
]  # fmt: skip


NEW_IN_5 = {"meets_promise", "refused"}  # carrier_bookings' columns from layout 5 on: NULL for bookings made before


def contents(store: Store) -> dict[str, list[str]]:
    """Every row of every table, as layout 4 has them."""
    return {
        table: sorted(repr({k: v for k, v in row.items() if k not in NEW_IN_5}) for row in store.rows(f'SELECT * FROM "{table}"'))
        for table in TABLES
    }


def test_a_layout_4_store_is_refused_until_upgraded_then_opens_with_every_row_kept(store_url: str, tmp_path: Path):
    store = Store(store_url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    ship(store, payload())  # reservations, pick lists, waybills, bookings, notifications
    run(StockActivities(store).reserve_stock, payload())  # an order holding its stock when the store is stopped
    before = contents(store)
    store.close()
    as_layout_4(store_url)

    with pytest.raises(StaleStore) as refused:
        Store(store_url, tmp_path / "labels")
    assert str(refused.value).endswith(f"is at store layout 4 and this orderops reads {LAYOUT}: run `orderops store upgrade`")
    assert upgrade(store_url) == (4, LAYOUT)
    assert upgrade(store_url) == (LAYOUT, LAYOUT)  # a second run changes nothing

    again = Store(store_url, tmp_path / "labels")
    assert contents(again) == {**before, "meta": sorted(map(repr, again.rows("SELECT * FROM meta")))}
    assert again.rows("SELECT value FROM meta WHERE key = 'schema_version'") == [{"value": str(LAYOUT)}]
    assert again.inconsistencies() == []
    assert {(r["meets_promise"], r["refused"]) for r in again.rows("SELECT meets_promise, refused FROM carrier_bookings")} == {(None, None)}
    indexes = {i["name"] for i in sa.inspect(again.engine).get_indexes("reservations")}
    assert "active_reservations" in indexes
    again.close()


def test_a_store_older_than_layout_4_is_refused_by_the_worker_and_by_upgrade(tmp_path: Path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '3')")
    db.commit()
    db.close()
    reason = f"is at store layout 3, older than `orderops store upgrade` can migrate (4 to {LAYOUT}); move it away"
    with pytest.raises(StaleStore, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Store(path, tmp_path / "labels")
    with pytest.raises(StaleStore, match="older than `orderops store upgrade` can migrate"):
        upgrade(f"sqlite:///{path}")


def test_a_store_from_before_layout_versions_counts_as_layout_1(tmp_path: Path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE stock (sku TEXT, warehouse TEXT, bin TEXT, on_hand INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StaleStore, match="is at store layout 1, older than"):
        Store(path, tmp_path / "labels")


def test_a_store_newer_than_this_orderops_is_refused(store_url: str, tmp_path: Path):
    Store(store_url, tmp_path / "labels").close()
    engine = sa.create_engine(Store(store_url, tmp_path / "labels").engine.url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    with pytest.raises(StaleStore, match=rf"is at store layout 99, newer than this orderops reads \({LAYOUT}\); upgrade orderops"):
        Store(store_url, tmp_path / "labels")


def test_upgrade_makes_a_store_in_an_empty_database(store_url: str, tmp_path: Path):
    assert upgrade(store_url) == (None, LAYOUT)
    store = Store(store_url, tmp_path / "labels")
    assert store.rows("SELECT version_num FROM alembic_version") == [{"version_num": f"{LAYOUT:04d}"}]
    store.close()


def test_text_sorts_byte_by_byte_on_postgresql_as_on_sqlite_whatever_the_databases_collation(store_url: str, tmp_path: Path):
    """A bin 'C-01' comes before 'b-01' in SQLite's order; a database made with ICU's en-US would say otherwise."""
    if store_url.startswith("postgresql"):
        with postgres.run_database("TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'") as english:
            check_bins_sort_bytewise(postgres.fresh_schema(english), tmp_path)
    else:
        check_bins_sort_bytewise(store_url, tmp_path)


def check_bins_sort_bytewise(url: str, tmp_path: Path) -> None:
    store = Store(url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    with store.transaction() as db:
        db.execute("INSERT INTO stock (sku, warehouse, bin, on_hand) VALUES ('MUG-002', 'GZ', 'b-01', 5), ('MUG-002', 'GZ', 'C-01', 5)")
    assert [r["bin"] for r in store.rows("SELECT bin FROM stock WHERE sku = 'MUG-002' AND warehouse = 'GZ' ORDER BY bin")] == [
        "C-01",
        "b-01",
    ]
    store.receive_stock("MUG-002", "GZ", 1)  # into the first bin in that order, as on SQLite
    assert store.rows("SELECT on_hand FROM stock WHERE sku = 'MUG-002' AND bin = 'C-01'") == [{"on_hand": 6}]
    store.close()


def test_a_first_start_cut_short_on_sqlite_leaves_an_empty_database_that_the_next_start_makes_whole(tmp_path: Path, monkeypatch):
    real = op.execute

    def fails_at_the_index(sql, *args, **kwargs):
        if "active_reservations" in str(sql):
            raise RuntimeError("the process died here")
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(op, "execute", fails_at_the_index)
    with pytest.raises(RuntimeError, match="died here"):
        Store(tmp_path / "warehouse.db", tmp_path / "labels")
    monkeypatch.setattr(op, "execute", real)
    assert sqlite3.connect(tmp_path / "warehouse.db").execute("SELECT name FROM sqlite_master").fetchall() == []
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    assert store.rows("SELECT version_num FROM alembic_version") == [{"version_num": f"{LAYOUT:04d}"}]


def test_a_store_url_that_is_wrong_is_one_line_without_its_password(tmp_path: Path):
    for url in ("postgresql//orderops:s3cret@db/orderops", "postgresql://orderops:s3cret@db:54x2/orderops"):
        with pytest.raises(StoreUnavailable) as refused:
            Store(url, tmp_path / "labels")
        assert "s3cret" not in str(refused.value) and str(refused.value).startswith("ORDEROPS_STORE_URL is not a URL like postgresql://")
    with pytest.raises(StoreUnavailable) as refused:
        Store("postgresql://orderops:s3cret@127.0.0.1:1/orderops?nonsense=1", tmp_path / "labels")
    assert "s3cret" not in str(refused.value) and str(refused.value).startswith(
        "cannot open the store at postgresql+psycopg://orderops:***@"
    )


def test_on_postgresql_a_transaction_that_waited_for_the_write_lock_sees_what_the_one_before_committed(
    postgres_store_url: str, tmp_path: Path
):
    """Even where the server's default isolation is REPEATABLE READ, whose snapshot would be taken before the wait."""
    url = postgres_store_url.replace("?options=", "?options=-cdefault_transaction_isolation%3Drepeatable%5C%20read%20")
    store = Store(url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    holding, seen = threading.Event(), []

    def second() -> None:
        holding.wait()
        with store.transaction() as db:  # waits for the first to commit
            seen.append(db.execute("SELECT reserved FROM stock WHERE bin = 'A-01-01'").fetchone()[0])

    waiter = threading.Thread(target=second)
    waiter.start()
    with store.transaction() as db:
        assert db.execute("SHOW default_transaction_isolation").fetchone()[0] == "repeatable read"
        db.execute("UPDATE stock SET reserved = reserved + 1 WHERE bin = 'A-01-01'")
        holding.set()
        deadline = time.monotonic() + 10
        while not any(
            r["wait_event_type"] == "Lock"
            for r in store.rows(
                "SELECT wait_event_type FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type IS NOT NULL"
            )
        ):
            assert time.monotonic() < deadline, "the second transaction never waited for the lock"
            time.sleep(0.05)
    waiter.join(timeout=10)
    assert seen == [1]
    store.close()
