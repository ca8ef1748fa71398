"""Planning: which warehouse and bins serve an order, what purchasing is asked for, which carrier takes a parcel.

The planning helpers of activities/stock.py and activities/carrier.py are checked directly where they
are pure, and through the activities (on a real SQLite store) where they read the store; the carriers
here are made up, so each choice has exactly one right answer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.carrier import CarrierActivities, _cannot_carry, _too_slow
from activities.stock import StockActivities, _available, _free, _from_bins, _nearest_first, _plan, shipments
from activities.store import Store
from orderops.settings import Carrier
from tests.store_helpers import items, packed, payload, promise, run

# -- warehouses and bins -------------------------------------------------------------------------

SEED = """\
warehouses:
  - {id: A, name: A, distance_km: {North: 100, "*": 50}}
  - {id: B, name: B, distance_km: {"*": 10}}
  - {id: C, name: C, distance_km: {North: 5}}
  - {id: D, name: D, distance_km: {"*": 10}}
products:
  - {sku: S, name: S, weight_kg: 1, goods_class: general, stock: [{warehouse: A, bin: A-2, on_hand: 4}, {warehouse: A, bin: A-1, on_hand: 3}]}
  - {sku: T, name: T, weight_kg: 1, goods_class: general, stock: [{warehouse: B, bin: B-1, on_hand: 2}]}
"""


@pytest.fixture
def small(tmp_path: Path) -> Store:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED, encoding="utf-8")
    store = Store(tmp_path / "small.db", tmp_path / "labels")
    store.seed(seed)
    return store


def test_warehouses_are_ordered_by_distance_to_the_province_then_by_id(small: Store):
    with small.transaction() as db:
        assert _nearest_first(db, "North") == ["C", "B", "D", "A"]
        # Elsewhere "*" counts; a warehouse without "*" is farthest of all.
        assert _nearest_first(db, "South") == ["B", "D", "A", "C"]


def test_free_stock_is_listed_per_sku_and_warehouse_in_bin_order_without_full_bins(small: Store):
    with small.transaction() as db:
        db.execute("UPDATE stock SET reserved = 2 WHERE bin = 'A-2'")
        db.execute("UPDATE stock SET reserved = 2 WHERE bin = 'B-1'")
        free = _free(db)
    assert dict(free) == {("S", "A"): [("A-1", 3), ("A-2", 2)]}
    assert _available(free, "S", "A") == 5
    assert _available(free, "T", "B") == 0
    assert _available(free, "S", "B") == 0


FREE = {
    ("s", "W1"): [("a", 2)],
    ("s", "W2"): [("b", 2)],
    ("t", "W2"): [("c", 3)],
    ("s", "W3"): [("d", 5)],
}


def test_the_nearest_warehouse_holding_exactly_what_is_wanted_ships_it_whole():
    assert _plan({"s": 5}, ["W2", "W3"], FREE, split=False) == {"W3": {"s": 5}}
    assert _plan({"s": 2, "t": 3}, ["W1", "W2"], FREE, split=False) == {"W2": {"s": 2, "t": 3}}


def test_without_a_single_warehouse_the_order_splits_nearest_first_or_waits():
    wanted = {"s": 6, "t": 3}
    assert _plan(wanted, ["W1", "W2", "W3"], FREE, split=True) == {"W1": {"s": 2}, "W2": {"s": 2, "t": 3}, "W3": {"s": 2}}
    assert _plan(wanted, ["W1", "W2", "W3"], FREE, split=False) is None
    assert wanted == {"s": 6, "t": 3}  # the caller's wants are not used up


def test_a_split_may_take_everything_there_is_but_not_more():
    assert _plan({"s": 9}, ["W1", "W2", "W3"], FREE, split=True) == {"W1": {"s": 2}, "W2": {"s": 2}, "W3": {"s": 5}}
    assert _plan({"s": 10}, ["W1", "W2", "W3"], FREE, split=True) is None


def test_bins_are_taken_in_order_skipping_empty_ones_until_the_quantity_is_met():
    assert _from_bins(3, [("A", 0), ("B", 5)]) == [("B", 3)]
    assert _from_bins(4, [("A", 2), ("B", 5), ("C", 9)]) == [("A", 2), ("B", 2)]
    assert _from_bins(3, [("A", 5), ("B", 5)]) == [("A", 3)]


def test_shipments_group_the_lines_by_warehouse_in_warehouse_order():
    lines = [
        {"warehouse": "SH", "sku": "TEA-001", "name": "Tea", "bin": "A-1", "quantity": 2},
        {"warehouse": "BJ", "sku": "MUG-002", "name": "Mug", "bin": "B-1", "quantity": 1},
        {"warehouse": "SH", "sku": "MUG-002", "name": "Mug", "bin": "A-2", "quantity": 1},
    ]
    assert shipments(lines) == [
        {"warehouse": "BJ", "lines": [{"sku": "MUG-002", "bin": "B-1", "quantity": 1}]},
        {"warehouse": "SH", "lines": [{"sku": "TEA-001", "bin": "A-1", "quantity": 2}, {"sku": "MUG-002", "bin": "A-2", "quantity": 1}]},
    ]


def test_a_reservation_from_one_warehouse_says_its_round_and_that_it_is_not_split(store: Store):
    stock = StockActivities(store)
    args = payload(items=items(("TEA-001", 2)))
    expected = {
        "status": "reserved",
        "round": 1,
        "shipments": [{"warehouse": "SH", "lines": [{"sku": "TEA-001", "bin": "A-01-01", "quantity": 2}]}],
        "split": False,
    }
    assert run(stock.reserve_stock, args) == {**expected, "repeated": False}
    assert run(stock.reserve_stock, args) == {**expected, "repeated": True}


def test_purchasing_is_asked_only_for_what_the_nearest_warehouse_lacks(store: Store):
    # Shanghai, the nearest, has 3 lamps, no vases and exactly the 300 books wanted.
    wanted = items(("LAMP-007", 5), ("VASE-009", 2), ("BOOK-006", 300))
    args = {**payload(items=wanted), "policy": {"when_no_single_warehouse": "backorder"}}
    result = run(StockActivities(store).reserve_stock, args)
    assert result == {
        "status": "short",
        "short": [{"sku": "LAMP-007", "warehouse": "SH", "missing": 2}, {"sku": "VASE-009", "warehouse": "SH", "missing": 2}],
        "summary": "LAMP-007 short by 2 at SH, VASE-009 short by 2 at SH",
    }
    assert store.rows("SELECT sku, quantity FROM purchase_requisitions ORDER BY sku") == [
        {"sku": "LAMP-007", "quantity": 2},
        {"sku": "VASE-009", "quantity": 2},
    ]


def test_a_release_gives_back_each_held_line_once(store: Store):
    stock = StockActivities(store)
    args = payload(items=items(("BOOK-006", 260), ("TEA-001", 1)))
    run(stock.reserve_stock, args)
    assert store.stock_levels()["BOOK-006"] == (400, 260)
    assert run(stock.release_stock, args) == {
        "released": [
            {"sku": "BOOK-006", "warehouse": "SH", "bin": "A-01-04", "quantity": 250},
            {"sku": "BOOK-006", "warehouse": "SH", "bin": "E-09-09", "quantity": 10},
            {"sku": "TEA-001", "warehouse": "SH", "bin": "A-01-01", "quantity": 1},
        ]
    }
    assert store.stock_levels()["BOOK-006"] == (400, 0)
    assert run(stock.release_stock, args) == {"released": []}


# -- carriers -----------------------------------------------------------------------------------


def carrier(name: str, *, base: float = 5.0, per_kg: float = 1.0, regions=("*",), services=None, **settings) -> dict:
    return {
        "name": name,
        "regions": list(regions),
        "services": services or {"standard": {"*": 1}},
        "base_cost": base,
        "cost_per_kg": per_kg,
        "max_weight_kg": settings.get("max_weight_kg", 30),
        "hazardous": settings.get("hazardous", False),
        "daily_capacity": settings.get("daily_capacity", 100),
    }


def book(store: Store, args: dict, carriers: list[dict], **promised) -> dict:
    [booking] = run(CarrierActivities(store).book_carrier, {**args, "carriers": carriers, "promise": promise(**promised)})["bookings"]
    return booking


def test_each_carrier_is_priced_at_the_parcel_s_weight_and_the_cheapest_booked_at_that_cost(store: Store):
    # At 1.25 kg: light costs 2 + 5 x 1.25 = 8.25, heavy 6 + 1.111 x 1.25 = 7.38875.
    booking = book(store, packed(store), [carrier("light", base=2, per_kg=5), carrier("heavy", base=6, per_kg=1.111)])
    assert (booking["carrier"], booking["cost"], booking["meets_promise"], booking["refused"]) == ("heavy", 7.39, True, [])


def test_a_carrier_whose_booking_system_is_down_is_passed_over_with_its_reason(store: Store):
    with store.transaction() as db:
        db.execute("INSERT INTO carrier_outages VALUES ('cheap', 'booking API down')")
    booking = book(store, packed(store), [carrier("cheap", base=1), carrier("dear", base=9)])
    assert (booking["carrier"], booking["refused"]) == ("dear", ["cheap booking refused: booking API down"])


def test_the_cheapest_carrier_in_time_wins_over_a_faster_dearer_one(store: Store):
    slow_cheap = carrier("slow", base=1, services={"standard": {"*": 2}})
    fast_dear = carrier("fast", base=9, services={"standard": {"*": 1}})
    assert book(store, packed(store), [fast_dear, slow_cheap], deliver_in_days=3)["carrier"] == "slow"
    late = book(store, packed(store), [fast_dear, slow_cheap], deliver_in_days=1.5)
    assert (late["carrier"], late["meets_promise"]) == ("fast", True)
    assert len(late["refused"]) == 1 and late["refused"][0].startswith("slow needs 2 days, later than the promise ")


def test_when_no_carrier_is_in_time_the_fastest_for_the_tier_is_booked_and_runs_late(store: Store):
    carriers = [
        carrier("tiered", base=1, services={"standard": {"tier1": 3, "*": 1}}),  # 3 days to tier1, whatever "*" says
        carrier("flat", base=2, services={"standard": {"*": 2}}),
        carrier("elsewhere", base=3, services={"standard": {"tier2": 1}}),  # no transit time to tier1: the slowest
    ]
    booking = book(store, packed(store), carriers, deliver_in_days=0.5)
    assert (booking["carrier"], booking["meets_promise"]) == ("flat", False)
    assert [r.split(" needs ")[0] for r in booking["refused"][:2]] == ["tiered", "flat"]
    assert booking["refused"][2:] == ["elsewhere gives no transit time to tier1"]


def test_when_no_carrier_can_take_the_parcel_every_reason_is_given_and_it_is_not_retried(store: Store):
    args = packed(store)
    with store.transaction() as db:
        tracking = db.execute("SELECT tracking_no FROM waybills WHERE order_id = ?", (args["order"]["order_id"],)).fetchone()[0]
    carriers = [
        carrier("north", base=1, regions=["Beijing"]),
        carrier("express_only", base=2, services={"express": {"*": 1}}),
        carrier("small", base=3, max_weight_kg=1),
        carrier("full", base=4, daily_capacity=1),
    ]
    book(packed_store := store, packed(packed_store), [carriers[3]])  # fills `full` for today
    with pytest.raises(ApplicationError) as raised:
        run(CarrierActivities(store).book_carrier, {**args, "carriers": carriers, "promise": promise()})
    assert raised.value.type == "NoCarrier" and raised.value.non_retryable is True
    assert raised.value.message == (
        f"no carrier can take parcel {tracking}: north does not serve Shanghai; express_only offers no standard service; "
        "small takes at most 1 kg, parcel is 1.25 kg; full daily capacity 1 used up"
    )


def test_why_a_carrier_cannot_carry_a_parcel_at_all():
    parcel = {"weight_kg": 12.5, "hazardous": True}
    assert _cannot_carry(Carrier(**carrier("any")), parcel, "Shanghai", "standard") == "carries no hazardous goods"
    assert _cannot_carry(Carrier(**carrier("any", hazardous=True)), parcel, "Shanghai", "standard") is None
    assert (
        _cannot_carry(Carrier(**carrier("light", max_weight_kg=12)), parcel, "Shanghai", "standard")
        == "takes at most 12 kg, parcel is 12.5 kg"
    )


def test_whether_a_carrier_can_keep_the_promise():
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    two_days = Carrier(**carrier("two", services={"standard": {"tier1": 2}}))
    by = (now + timedelta(days=2)).isoformat()
    assert _too_slow(two_days, {"service_level": "standard", "tier": "tier1", "deliver_by": by}, now) is None  # exactly at the promise
    late = (now + timedelta(days=2) - timedelta(seconds=1)).isoformat()
    assert (
        _too_slow(two_days, {"service_level": "standard", "tier": "tier1", "deliver_by": late}, now)
        == f"needs 2 days, later than the promise {late}"
    )
    assert _too_slow(two_days, {"service_level": "standard", "tier": "remote", "deliver_by": by}, now) == "gives no transit time to remote"


# -- an address changed after booking -------------------------------------------------------------


def booked(store: Store, carriers: list[dict]) -> tuple[dict, dict]:
    args = packed(store, items=items(("MUG-002", 1)))
    return args, book(store, args, carriers)


def readdress(args: dict, province: str) -> None:
    args["order"]["address"] = {"province": province, "city": "Capital", "district": "Centre", "street": "9 New Road", "postcode": "100000"}


def label_of(store: Store, args: dict) -> str:
    [row] = store.rows("SELECT label_path FROM waybills WHERE order_id = ?", args["order"]["order_id"])
    return Path(row["label_path"]).read_text(encoding="utf-8")


def test_a_changed_address_reprints_the_whole_label(store: Store):
    args, booking = booked(store, [carrier("any")])
    readdress(args, "Beijing")
    handoff = run(CarrierActivities(store).handoff_to_courier, args)
    assert handoff["carrier"] == "any"
    label = label_of(store, args)
    assert f"^FD{booking['tracking_no']}^FS" in label
    assert "^FDBeijing Capital Centre 9 New Road 100000^FS" in label
    assert f"^FDOrder {args['order']['order_id']}  0.65 kg  from SH^FS" in label
    assert "^FDFRAGILE^FS" in label


def test_without_carriers_or_a_promise_a_changed_address_only_reprints_the_label(store: Store):
    args, _ = booked(store, [carrier("south", regions=["Shanghai"])])
    readdress(args, "Beijing")  # `south` does not go there, but nothing is given to re-book with
    assert (
        run(CarrierActivities(store).handoff_to_courier, {**args, "carriers": [carrier("south", regions=["Shanghai"])]})["carrier"]
        == "south"
    )
    assert "Beijing Capital" in label_of(store, args)


def test_an_address_the_booked_carrier_still_serves_keeps_the_booking(store: Store):
    carriers = [carrier("cheap", base=1), carrier("dear", base=9, regions=["Shanghai", "Beijing"])]
    with store.transaction() as db:
        db.execute("INSERT INTO carrier_outages VALUES ('cheap', 'down this morning')")
    args, booking = booked(store, carriers)
    assert booking["carrier"] == "dear"
    with store.transaction() as db:
        db.execute("DELETE FROM carrier_outages")
    readdress(args, "Beijing")
    handoff = run(CarrierActivities(store).handoff_to_courier, {**args, "carriers": carriers, "promise": promise()})
    assert handoff["carrier"] == "dear"  # no re-booking: `cheap` would win one now


def test_an_address_the_booked_carrier_cannot_serve_is_re_booked(store: Store):
    carriers = [carrier("south", base=1, regions=["Shanghai"]), carrier("anywhere", base=9)]
    args, booking = booked(store, carriers)
    assert booking["carrier"] == "south"
    readdress(args, "Beijing")
    handoff = run(CarrierActivities(store).handoff_to_courier, {**args, "carriers": carriers, "promise": promise()})
    assert handoff["carrier"] == "anywhere"
    assert store.rows("SELECT carrier, state FROM carrier_bookings WHERE order_id = ?", args["order"]["order_id"]) == [
        {"carrier": "anywhere", "state": "handed_over"}
    ]
