"""The warehouse store's own methods on a real SQLite file and a real PostgreSQL database: opening, seeding, goods in, the consistency check.

The activities built on the store are in test_warehouse.py; here each Store method and
module helper is checked directly, with exact results and messages.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from activities.store import LAYOUT, Store, current_round, event_key, next_number, now_iso, outbox
from orderops.limits import MAX_STOCK

SEED = """\
warehouses:
  - {id: SH, name: Shanghai DC, distance_km: {Shanghai: 30, "*": 1500}}
  - {id: BJ, name: Beijing DC, distance_km: {Beijing: 40, "*": 1400}}
products:
  - sku: TEA-001
    name: Green tea
    weight_kg: 0.3
    goods_class: general
    stock: [{warehouse: SH, bin: A-01, on_hand: 10}, {warehouse: SH, bin: B-02, on_hand: 5}, {warehouse: BJ, bin: C-03, on_hand: 7}]
  - sku: FRAME-008
    name: Engraved frame
    weight_kg: 0.9
    goods_class: fragile
    made_to_order: true
    stock: []
"""


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "seed.yaml"
    path.write_text(SEED, encoding="utf-8")
    return path


@pytest.fixture
def store(store_url: str, tmp_path: Path, seed_file: Path) -> Iterator[Store]:
    store = Store(store_url, tmp_path / "labels")
    store.seed(seed_file)
    yield store
    store.close()


def requisition(store: Store, order_id: str, sku: str, warehouse: str, quantity: int, received: int = 0) -> int:
    with store.transaction() as db:
        return db.execute(
            "INSERT INTO purchase_requisitions (order_id, sku, warehouse, quantity, received, created_at) VALUES (?, ?, ?, ?, ?, 't')"
            " RETURNING id",
            (order_id, sku, warehouse, quantity, received),
        ).fetchone()["id"]


def write(store: Store, sql: str, *params) -> None:
    with store.transaction() as db:
        db.execute(sql, params)


# -- opening ----------------------------------------------------------------------------------


def test_a_store_opens_where_neither_its_directory_nor_its_labels_directory_exists_yet(tmp_path: Path):
    store = Store(tmp_path / "a" / "b" / "warehouse.db", tmp_path / "c" / "d" / "labels")
    assert (tmp_path / "a" / "b" / "warehouse.db").is_file()
    assert store.labels_dir.is_dir()


def test_a_fresh_store_is_made_at_the_current_layout(store: Store):
    assert store.rows("SELECT version_num FROM alembic_version") == [{"version_num": f"{LAYOUT:04d}"}]
    # Where orderops from before Alembic looks, so that it refuses this store.
    assert store.rows("SELECT value FROM meta WHERE key = 'schema_version'") == [{"value": str(LAYOUT)}]


def test_reopening_a_store_of_this_version_keeps_its_contents(tmp_path: Path, store: Store):
    again = Store(store.url, store.labels_dir)
    assert again.stock_levels() == store.stock_levels() == {"TEA-001": (22, 0)}


def test_an_empty_database_file_becomes_a_store(tmp_path: Path):
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    store = Store(path, tmp_path / "labels")
    assert store.rows("SELECT version_num FROM alembic_version") == [{"version_num": f"{LAYOUT:04d}"}]


def test_sqlite_connections_wait_30_seconds_for_a_lock_write_ahead_and_check_foreign_keys(tmp_path: Path):
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    with store.engine.connect() as db:
        assert db.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert db.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert db.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"), store.transaction() as db:
        db.execute("INSERT INTO stock (sku, warehouse, bin, on_hand) VALUES ('NO-SUCH-SKU', 'SH', 'Z-1', 1)")


def test_postgresql_checks_foreign_keys_too(postgres_store_url: str, tmp_path: Path):
    store = Store(postgres_store_url, tmp_path / "labels")
    with pytest.raises(sa.exc.IntegrityError, match="foreign key"), store.transaction() as db:
        db.execute("INSERT INTO stock (sku, warehouse, bin, on_hand) VALUES ('NO-SUCH-SKU', 'SH', 'Z-1', 1)")


def test_rows_are_read_by_name_or_position_and_a_statement_says_how_many_rows_it_changed(store: Store):
    with store.transaction() as db:
        row = db.execute("SELECT sku, on_hand FROM stock WHERE bin = ?", ("A-01",)).fetchone()
        assert (row["sku"], row[1], dict(row)) == ("TEA-001", 10, {"sku": "TEA-001", "on_hand": 10})
        assert db.execute("UPDATE stock SET on_hand = on_hand + 1 WHERE sku = ?", ("TEA-001",)).rowcount == 3
        assert db.execute("SELECT 1 FROM stock WHERE sku = ?", ("NOPE",)).fetchone() is None


# -- seeding -----------------------------------------------------------------------------------


def test_seeding_loads_warehouses_products_and_stock_per_bin_once(tmp_path: Path, seed_file: Path):
    store = Store(tmp_path / "w.db", tmp_path / "labels")
    assert store.seed(seed_file) is True
    assert store.seed(seed_file) is False  # a second seed changes nothing
    assert store.rows("SELECT id, name, distance_km FROM warehouses ORDER BY id") == [
        {"id": "BJ", "name": "Beijing DC", "distance_km": '{"Beijing": 40, "*": 1400}'},
        {"id": "SH", "name": "Shanghai DC", "distance_km": '{"Shanghai": 30, "*": 1500}'},
    ]
    assert store.rows("SELECT * FROM products ORDER BY sku") == [
        {"sku": "FRAME-008", "name": "Engraved frame", "weight_kg": 0.9, "goods_class": "fragile", "made_to_order": 1},
        {"sku": "TEA-001", "name": "Green tea", "weight_kg": 0.3, "goods_class": "general", "made_to_order": 0},
    ]
    assert store.rows("SELECT warehouse, bin, on_hand, reserved FROM stock ORDER BY warehouse, bin") == [
        {"warehouse": "BJ", "bin": "C-03", "on_hand": 7, "reserved": 0},
        {"warehouse": "SH", "bin": "A-01", "on_hand": 10, "reserved": 0},
        {"warehouse": "SH", "bin": "B-02", "on_hand": 5, "reserved": 0},
    ]
    assert store.rows("SELECT * FROM blacklist") == []  # the seed has no blacklist: none is loaded


def test_seeding_loads_the_blacklist_when_the_seed_has_one(tmp_path: Path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED + "blacklist:\n  - {kind: phone, value: '13900000000', reason: chargebacks}\n", encoding="utf-8")
    store = Store(tmp_path / "w.db", tmp_path / "labels")
    store.seed(seed)
    assert store.rows("SELECT kind, value, reason FROM blacklist") == [{"kind": "phone", "value": "13900000000", "reason": "chargebacks"}]


def test_seeding_reads_the_seed_as_utf8(tmp_path: Path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED.replace("Green tea", "龙井绿茶"), encoding="utf-8")
    store = Store(tmp_path / "w.db", tmp_path / "labels")
    store.seed(seed)
    assert store.rows("SELECT name FROM products WHERE sku = 'TEA-001'") == [{"name": "龙井绿茶"}]


# -- goods in ----------------------------------------------------------------------------------


def test_goods_in_go_to_the_first_bin_of_the_sku_when_none_is_named(store: Store):
    assert store.receive_stock("TEA-001", "SH", 4).woken == []
    assert store.rows("SELECT bin, on_hand FROM stock WHERE sku = 'TEA-001' AND warehouse = 'SH' ORDER BY bin") == [
        {"bin": "A-01", "on_hand": 14},
        {"bin": "B-02", "on_hand": 5},
    ]


def test_goods_in_to_a_named_bin_of_the_sku(store: Store):
    store.receive_stock("TEA-001", "SH", 3, bin="B-02")
    assert store.rows("SELECT on_hand FROM stock WHERE sku = 'TEA-001' AND bin = 'B-02'") == [{"on_hand": 8}]


def test_goods_in_may_open_the_first_bin_of_a_sku_kept_nowhere_yet(store: Store):
    store.receive_stock("FRAME-008", "BJ", 2, bin="F-01")
    assert store.rows("SELECT warehouse, bin, on_hand FROM stock WHERE sku = 'FRAME-008'") == [
        {"warehouse": "BJ", "bin": "F-01", "on_hand": 2}
    ]


@pytest.mark.parametrize(
    "sku, warehouse, bin_, message",
    [
        ("NOPE-1", "SH", None, "unknown SKU 'NOPE-1'"),
        ("TEA-001", "XX", None, "unknown warehouse 'XX'"),
        ("TEA-001", "SH", "  ", "--bin must name a bin"),
        ("FRAME-008", "SH", None, "FRAME-008 has no bin in SH; name one with --bin"),
        ("TEA-001", "SH", "Z-99", "TEA-001 is kept in A-01, B-02 at SH, not Z-99"),
    ],
    ids=["unknown-sku", "unknown-warehouse", "blank-bin", "no-bin-yet", "not-its-bin"],
)
def test_goods_in_are_refused_with_the_reason(store: Store, sku: str, warehouse: str, bin_: str | None, message: str):
    before = store.stock_levels()
    with pytest.raises(KeyError) as refused:
        store.receive_stock(sku, warehouse, 5, bin=bin_)
    assert refused.value.args == (message,)
    assert store.stock_levels() == before


@pytest.mark.parametrize("quantity", [0, -1, MAX_STOCK - 9, 2**63 - 1], ids=["zero", "negative", "past-the-bin", "int64-max"])
def test_goods_in_beyond_what_a_bin_holds_are_refused_and_change_nothing(store: Store, quantity: int):
    before = store.stock_levels()  # TEA-001 at SH A-01 holds 10
    with pytest.raises(KeyError) as refused:
        store.receive_stock("TEA-001", "SH", quantity)
    assert refused.value.args == (f"TEA-001 at SH A-01 holds 10; it can take 1 to {MAX_STOCK - 10:,} more",)
    assert store.stock_levels() == before
    store.receive_stock("TEA-001", "SH", MAX_STOCK - 10)  # exactly full is allowed
    assert store.inconsistencies() == []


@pytest.mark.parametrize(
    "on_hand, reserved",
    [("9.223372036854776e+18", 0), (9.5, 0), (MAX_STOCK + 1, 0), ("'ten'", 0)],
    ids=["float", "fraction", "past-the-bin", "text"],
)
def test_the_consistency_check_finds_stock_that_is_not_a_whole_number_in_range(store: Store, on_hand, reserved):
    update = f"UPDATE stock SET on_hand = {on_hand}, reserved = {reserved} WHERE sku = 'TEA-001' AND bin = 'A-01'"
    if not store.backend.loose_types and on_hand != MAX_STOCK + 1:
        # PostgreSQL's INTEGER columns refuse what is not a whole number, or round it to one.
        with contextlib.suppress(sa.exc.DataError), store.transaction() as db:
            db.execute(update)
        assert isinstance(store.rows("SELECT on_hand FROM stock WHERE bin = 'A-01'")[0]["on_hand"], int)
        assert store.inconsistencies() == []
        return
    with store.transaction() as db:
        db.execute(update)
    [problem] = store.inconsistencies()
    assert problem.startswith("stock TEA-001 at SH A-01: on_hand ") and "are not whole numbers" in problem


def test_goods_in_complete_the_oldest_requisitions_first_and_report_the_rest(store: Store):
    first = requisition(store, "o-1", "TEA-001", "SH", 3)
    second = requisition(store, "o-2", "TEA-001", "SH", 4)
    third = requisition(store, "o-3", "TEA-001", "SH", 2)
    requisition(store, "o-4", "TEA-001", "BJ", 1)  # another warehouse: not touched
    receipt = store.receive_stock("TEA-001", "SH", 5)
    assert receipt.woken == ["o-1"]
    assert receipt.still_open == [f"requisition {second} (order o-2): 2 of 4 received", f"requisition {third} (order o-3): 0 of 2 received"]
    assert store.rows("SELECT id, state, received FROM purchase_requisitions ORDER BY id") == [
        {"id": first, "state": "received", "received": 3},
        {"id": second, "state": "open", "received": 2},
        {"id": third, "state": "open", "received": 0},
        {"id": third + 1, "state": "open", "received": 0},
    ]


def test_goods_in_count_what_a_requisition_already_received(store: Store):
    partly = requisition(store, "o-1", "TEA-001", "SH", 10, received=6)
    assert store.receive_stock("TEA-001", "SH", 3).still_open == [f"requisition {partly} (order o-1): 9 of 10 received"]
    assert store.receive_stock("TEA-001", "SH", 1).woken == ["o-1"]
    assert store.rows("SELECT state, received FROM purchase_requisitions") == [{"state": "received", "received": 10}]


def test_goods_beyond_what_a_partly_received_requisition_lacks_go_on_to_the_next(store: Store):
    requisition(store, "o-1", "TEA-001", "SH", 10, received=6)
    second = requisition(store, "o-2", "TEA-001", "SH", 5)
    receipt = store.receive_stock("TEA-001", "SH", 7)
    assert (receipt.woken, receipt.still_open) == (["o-1"], [f"requisition {second} (order o-2): 3 of 5 received"])


def test_goods_beyond_the_open_requisitions_stay_in_stock(store: Store):
    requisition(store, "o-1", "TEA-001", "SH", 2)
    receipt = store.receive_stock("TEA-001", "SH", 7)
    assert (receipt.woken, receipt.still_open) == (["o-1"], [])
    assert store.stock_levels()["TEA-001"] == (29, 0)


# -- the consistency check --------------------------------------------------------------------


def test_a_consistent_store_has_no_inconsistencies(store: Store):
    assert store.inconsistencies(["o-1"]) == []


def test_reserved_counts_that_disagree_with_the_reservations_and_finished_orders_holding_stock_are_both_reported(store: Store):
    write(store, "UPDATE stock SET reserved = 2 WHERE sku = 'TEA-001' AND bin = 'A-01'")
    write(store, "INSERT INTO reservations VALUES ('o-1', 1, 'TEA-001', 'SH', 'A-01', 2, 'active', 't')")
    write(store, "INSERT INTO reservations VALUES ('o-2', 1, 'TEA-001', 'SH', 'B-02', 1, 'active', 't')")
    write(store, "INSERT INTO reservations VALUES ('o-3', 1, 'TEA-001', 'BJ', 'C-03', 4, 'released', 't')")
    assert store.inconsistencies(["o-1", "o-3"]) == [
        "stock TEA-001 at SH B-02: reserved 0 but reservations hold 1",
        "order o-1 has ended but still holds 2 x TEA-001",
    ]


def notify(store: Store, order_id: str, kind: str, key: str) -> None:
    with store.transaction() as db:
        outbox(db, order_id, kind, "sms", "13800138001", f"{kind} {key}", key=key)


def _tracking(status: str) -> list[str]:
    return [f"INSERT INTO tracking_events VALUES ('o-1', 'k{n}', 1, '{status}', '{{}}', 't')" for n in (1, 2)]


def _intercepted(warehouse: str, tracking_no: str) -> str:
    return (
        "INSERT INTO carrier_bookings (order_id, round, warehouse, carrier, service, tracking_no, day, cost, state, booked_at)"
        f" VALUES ('o-1', 1, '{warehouse}', 'SF', 'standard', '{tracking_no}', 'd', 1, 'intercept_requested', 't')"
    )


@pytest.mark.parametrize(
    "kind, causes",
    [
        *[(status, _tracking(status)) for status in ("in_transit", "out_for_delivery", "delivery_failed", "delivered", "lost")],
        ("repick", ["INSERT INTO scans VALUES ('o-1', 1, 's1', 0, 'x', 't')", "INSERT INTO scans VALUES ('o-1', 1, 's2', 0, 'x', 't')"]),
        ("intercept_request", [_intercepted("SH", "T1"), _intercepted("BJ", "T2")]),
        ("refunded", ["INSERT INTO refunds VALUES ('o-1', 'lost', '10', 't')", "INSERT INTO refunds VALUES ('o-1', 'return', '5', 't')"]),
        ("shipped", ["INSERT INTO rounds VALUES ('o-1', 2, 'reship', 't')"]),
    ],
)
def test_a_notification_per_cause_is_consistent_and_one_more_is_reported(store: Store, kind: str, causes: list[str]):
    """Two causes (two scans, two intercepted parcels, two refunds, two rounds) allow two notifications of the kind, not three."""
    for sql in causes:
        write(store, sql)
    notify(store, "o-1", kind, "first")
    notify(store, "o-1", kind, "second")
    assert store.inconsistencies() == []
    notify(store, "o-1", kind, "third")
    assert store.inconsistencies() == [f"order o-1: 3 {kind!r} notifications for 2 cause(s)"]


def test_without_a_reship_a_kind_is_notified_once_per_order(store: Store):
    notify(store, "o-1", "shipped", "a")
    notify(store, "o-2", "shipped", "a")
    assert store.inconsistencies() == []
    notify(store, "o-1", "shipped", "b")
    assert store.inconsistencies() == ["order o-1: 2 'shipped' notifications for 1 cause(s)"]


def test_stock_levels_add_up_every_warehouse_and_bin_per_sku(store: Store):
    write(store, "UPDATE stock SET reserved = 3 WHERE bin = 'C-03'")
    assert store.stock_levels() == {"TEA-001": (22, 3)}


# -- module helpers ----------------------------------------------------------------------------


def test_the_round_is_1_until_a_reship_opens_the_next(store: Store):
    with store.transaction() as db:
        assert current_round(db, "o-1") == 1
        db.execute("INSERT INTO rounds VALUES ('o-1', 2, 'reship', 't')")
        assert current_round(db, "o-1") == 2
        assert current_round(db, "o-2") == 1


def test_store_wide_sequences_count_from_1_each_on_its_own(store: Store):
    with store.transaction() as db:
        assert [next_number(db, "waybill") for _ in range(3)] == [1, 2, 3]
        assert next_number(db, "other") == 1
    with store.transaction() as db:
        assert next_number(db, "waybill") == 4


def test_an_event_is_known_by_when_it_reached_the_order_and_its_place(store: Store):
    assert event_key({"received_at": "2026-01-02T03:04:05+00:00", "seq": 7}) == "2026-01-02T03:04:05+00:00#7"
    assert event_key({"received_at": "2026-01-02T03:04:05+00:00"}) == "2026-01-02T03:04:05+00:00#"
    assert event_key({}) == "None#"


def test_timestamps_are_utc_to_the_second():
    stamp = now_iso()
    assert stamp.endswith("+00:00")
    assert datetime.fromisoformat(stamp).microsecond == 0


def test_the_outbox_writes_a_notification_once_per_order_and_key(store: Store):
    with store.transaction() as db:
        assert outbox(db, "o-1", "shipped", "sms", "138", "on its way") is True
        assert outbox(db, "o-1", "shipped", "sms", "138", "again") is False  # the key defaults to the kind
        assert outbox(db, "o-1", "shipped", "sms", "138", "other key", key="k2") is True
        assert outbox(db, "o-2", "shipped", "sms", "139", "another order") is True
    rows = store.rows("SELECT order_id, kind, dedupe_key, channel, recipient, message FROM notifications ORDER BY id")
    assert rows == [
        {"order_id": "o-1", "kind": "shipped", "dedupe_key": "shipped", "channel": "sms", "recipient": "138", "message": "on its way"},
        {"order_id": "o-1", "kind": "shipped", "dedupe_key": "k2", "channel": "sms", "recipient": "138", "message": "other key"},
        {"order_id": "o-2", "kind": "shipped", "dedupe_key": "shipped", "channel": "sms", "recipient": "139", "message": "another order"},
    ]


def test_rows_are_plain_dicts_with_parameters_bound(store: Store):
    assert store.rows("SELECT sku FROM stock WHERE warehouse = ? AND on_hand > ? ORDER BY bin", "SH", 6) == [{"sku": "TEA-001"}]
