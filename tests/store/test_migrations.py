"""The store's layout and its upgrade (activities/migrations/), on SQLite and on PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from activities.stock import StockActivities
from activities.store import LAYOUT, StaleStore, Store, upgrade
from orderops.config import SAMPLES_DIR
from tests.store_helpers import as_layout_4, payload, run, ship

TABLES = [
    "blacklist", "carrier_bookings", "carrier_outages", "deliveries", "delay_compensations", "feedback", "meta", "notifications",
    "orders_seen", "pick_lists", "products", "purchase_requisitions", "refunds", "reservations", "return_inspections",
    "returns", "rounds", "scans", "stock", "tracking_events", "warehouses", "waves", "waybills",
]  # fmt: skip


def contents(store: Store) -> dict[str, list[dict]]:
    return {table: sorted(map(repr, store.rows(f'SELECT * FROM "{table}"'))) for table in TABLES}  # type: ignore[misc]


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
