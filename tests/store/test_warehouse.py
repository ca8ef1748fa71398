"""Warehouse and delivery activities on the real SQLite store: every rule, every repeat safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.carrier import CarrierActivities
from activities.customer import CustomerActivities
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.returns import ReturnActivities
from activities.stock import StockActivities
from activities.store import Store
from tests.store_helpers import STANDARD, WAVE, items, packed, payload, promise, run, ship

# -- stock --------------------------------------------------------------------------------


def test_reservation_is_exactly_once_under_redelivery(store: Store):
    stock = StockActivities(store)
    args = payload()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: run(stock.reserve_stock, args), range(8)))
    assert sum(not r["repeated"] for r in results) == 1
    assert store.stock_levels()["TEA-001"] == (500, 2)


def test_the_nearest_warehouse_that_can_serve_the_whole_order_ships_it(store: Store):
    stock = StockActivities(store)
    beijing = payload(items=items(("TEA-001", 1), ("MUG-002", 1)))
    beijing["order"]["address"]["province"] = "Beijing"
    assert [s["warehouse"] for s in run(stock.reserve_stock, beijing)["shipments"]] == ["BJ"]
    # Guangzhou holds no mugs, so Shanghai, the next nearest, ships a Guangdong order whole.
    canton = payload(items=items(("TEA-001", 1), ("MUG-002", 1)))
    canton["order"]["address"]["province"] = "Guangdong"
    assert [s["warehouse"] for s in run(stock.reserve_stock, canton)["shipments"]] == ["SH"]


def test_reservation_takes_bins_in_order_and_spans_bins(store: Store):
    result = run(StockActivities(store).reserve_stock, payload(items=items(("BOOK-006", 260))))
    assert result["shipments"] == [
        {
            "warehouse": "SH",
            "lines": [
                {"sku": "BOOK-006", "bin": "A-01-04", "quantity": 250},
                {"sku": "BOOK-006", "bin": "E-09-09", "quantity": 10},
            ],
        }
    ]


def test_no_single_warehouse_splits_into_shipments(store: Store):
    args = payload(items=items(("LIGHTER-005", 1), ("VASE-009", 1)))  # only GZ has lighters, only BJ vases
    result = run(StockActivities(store).reserve_stock, {**args, "policy": {"when_no_single_warehouse": "split"}})
    assert result["status"] == "reserved" and result["split"] is True
    assert [s["warehouse"] for s in result["shipments"]] == ["BJ", "GZ"]
    handoff = ship(store, args)
    assert len(handoff["parcels"]) == 2 and len({p["tracking_no"] for p in handoff["parcels"]}) == 2
    assert {p["carrier"] for p in handoff["parcels"]} == {"SafeFreight", "CityCourier"}  # the lighter needs SafeFreight


def test_backorder_policy_waits_instead_of_splitting(store: Store):
    stock = StockActivities(store)
    args = {**payload(items=items(("LIGHTER-005", 1), ("VASE-009", 1))), "policy": {"when_no_single_warehouse": "backorder"}}
    for _ in range(2):  # a repeat raises no second requisition
        result = run(stock.reserve_stock, args)
    assert result["status"] == "short" and "at SH" in result["summary"]
    assert store.rows("SELECT sku, warehouse, quantity, state FROM purchase_requisitions ORDER BY sku") == [
        {"sku": "LIGHTER-005", "warehouse": "SH", "quantity": 1, "state": "open"},
        {"sku": "VASE-009", "warehouse": "SH", "quantity": 1, "state": "open"},
    ]
    assert store.stock_levels()["VASE-009"] == (40, 0)  # nothing held while waiting
    assert store.receive_stock("LIGHTER-005", "SH", 5, bin="D-09-01").woken == [args["order"]["order_id"]]
    assert store.receive_stock("VASE-009", "SH", 5, bin="C-09-01").woken == [args["order"]["order_id"]]
    assert run(stock.reserve_stock, args)["shipments"] == [
        {
            "warehouse": "SH",
            "lines": [
                {"sku": "VASE-009", "bin": "C-09-01", "quantity": 1},
                {"sku": "LIGHTER-005", "bin": "D-09-01", "quantity": 1},
            ],
        }
    ]


def test_shortage_everywhere_raises_a_requisition_at_the_nearest_warehouse(store: Store):
    result = run(StockActivities(store).reserve_stock, payload(items=items(("LAMP-007", 5), ("TEA-001", 1))))
    assert result == {
        "status": "short",
        "short": [{"sku": "LAMP-007", "warehouse": "SH", "missing": 2}],
        "summary": "LAMP-007 short by 2 at SH",
    }
    assert store.stock_levels()["TEA-001"] == (500, 0)


def test_release_is_exactly_once_and_leaves_shipped_goods(store: Store):
    stock = StockActivities(store)
    args = payload()
    run(stock.reserve_stock, args)
    assert len(run(stock.release_stock, args)["released"]) == 2
    assert run(stock.release_stock, args)["released"] == []
    assert store.stock_levels()["TEA-001"] == (500, 0)


def test_edited_items_replace_the_reservation(store: Store):
    stock = StockActivities(store)
    args = payload()
    run(stock.reserve_stock, args)
    args["order"]["items"] = items(("BOOK-006", 3))
    run(stock.reserve_stock, args)
    levels = store.stock_levels()
    assert (levels["TEA-001"], levels["MUG-002"], levels["BOOK-006"]) == ((500, 0), (300, 0), (400, 3))


# -- picking ------------------------------------------------------------------------------


def test_pick_list_follows_bin_order(store: Store):
    args = payload(items=items(("MUG-002", 1), ("TEA-001", 1), ("OIL-003", 1)))
    run(StockActivities(store).reserve_stock, args)
    picks = run(PickingActivities(store).pick_items, args)
    assert [line["bin"] for line in picks["lists"][0]["lines"]] == ["A-01-01", "A-02-03", "B-01-02"]
    assert run(PickingActivities(store).pick_items, args) == picks


def test_a_wave_gives_one_pick_walk_for_several_orders(store: Store):
    stock, picking = StockActivities(store), PickingActivities(store)
    orders = [payload(items=items(("TEA-001", n), ("BOOK-006", 1))) for n in (1, 2, 3)]
    joined = []
    for args in orders:
        run(stock.reserve_stock, args)
        joined.append(run(picking.join_wave, {**args, "picking": WAVE}))
    assert len({j["waves"][0] for j in joined}) == 1 and len({j["release_at"] for j in joined}) == 1
    released = [run(picking.release_wave, args) for args in orders]
    [wave] = released[0]["waves"]
    assert wave["orders"] == sorted(a["order"]["order_id"] for a in orders)
    assert [(stop["bin"], stop["quantity"]) for stop in wave["walk"]] == [("A-01-01", 6), ("A-01-04", 3)]
    assert all(r["waves"] == released[0]["waves"] for r in released)
    # A wave is closed once released: the next order opens a new one.
    late = payload()
    run(stock.reserve_stock, late)
    assert run(picking.join_wave, {**late, "picking": WAVE})["waves"] != [wave["id"]]


def test_a_cancelled_order_leaves_its_wave_before_release(store: Store):
    stock, picking = StockActivities(store), PickingActivities(store)
    keep, drop = payload(items=items(("TEA-001", 1))), payload(items=items(("TEA-001", 4)))
    for args in (keep, drop):
        run(stock.reserve_stock, args)
        run(picking.join_wave, {**args, "picking": WAVE})
    run(picking.cancel_pick_list, drop)
    [wave] = run(picking.release_wave, keep)["waves"]
    assert wave["orders"] == [keep["order"]["order_id"]] and wave["walk"][0]["quantity"] == 1


def test_scan_mismatch_is_counted_and_the_picker_told(store: Store):
    args = payload()
    run(StockActivities(store).reserve_stock, args)
    picking = PickingActivities(store)
    run(picking.pick_items, args)
    wrong = {
        **args,
        "scan": {"items": [{"sku": "TEA-001", "quantity": 1}, {"sku": "MUG-002", "quantity": 1}], "received_at": "t1", "picker": "p7"},
    }
    first = run(picking.verify_scan, wrong)
    assert run(picking.verify_scan, wrong) == first  # the same scan, delivered twice
    assert first == {"matched": False, "differences": ["TEA-001: expected 2, scanned 1"], "scans": 1, "mismatches": 1}
    right = {**args, "scan": {"items": [{"sku": "TEA-001", "quantity": 2}, {"sku": "MUG-002", "quantity": 1}], "received_at": "t2"}}
    assert run(picking.verify_scan, right) == {"matched": True, "differences": [], "scans": 2, "mismatches": 1}
    assert store.rows("SELECT channel, recipient FROM notifications WHERE kind = 'repick'") == [{"channel": "warehouse", "recipient": "p7"}]


def test_a_malformed_scan_is_refused_without_retry(store: Store):
    with pytest.raises(ApplicationError) as raised:
        run(
            PickingActivities(store).verify_scan,
            {**payload(), "scan": {"items": [{"sku": "TEA-001", "quantity": "two"}], "received_at": "t"}},
        )
    assert raised.value.type == "InvalidInput" and raised.value.non_retryable


# -- packing ------------------------------------------------------------------------------


def test_packing_follows_the_goods_class_rules_and_weighs_the_parcel(store: Store):
    args = payload(items=items(("LIGHTER-005", 2), ("KETTLE-010", 1)))
    args["order"]["address"]["province"] = "Guangdong"
    run(StockActivities(store).reserve_stock, args)
    run(PickingActivities(store).pick_items, args)
    [parcel] = run(PackingActivities(store).pack_order, {**args, "packing": STANDARD["packing"]})["parcels"]
    assert parcel["labels"] == ["HAZARDOUS GOODS"] and parcel["hazardous"] is True
    assert parcel["material"] == "UN-certified packaging; carton"
    assert parcel["weight_kg"] == pytest.approx(0.2 * 2 + 1.1 + 0.2)
    label = Path(parcel["label_path"])
    assert label.parent == store.labels_dir and label.read_text().startswith("^XA") and parcel["tracking_no"] in label.read_text()
    assert run(PackingActivities(store).pack_order, {**args, "packing": STANDARD["packing"]})["parcels"] == [parcel]


def test_post_pack_check_refuses_a_parcel_that_differs_from_the_order(store: Store):
    args = payload()
    run(StockActivities(store).reserve_stock, args)
    run(PickingActivities(store).pick_items, args)
    args["order"]["items"][0]["quantity"] = 3  # the order changed after picking
    with pytest.raises(ApplicationError, match="post-pack check failed: TEA-001: ordered 3, reserved 2, picked 2") as raised:
        run(PackingActivities(store).pack_order, args)
    assert raised.value.type == "PackCheckFailed"


# -- carriers -----------------------------------------------------------------------------


def test_the_cheapest_carrier_that_keeps_the_promise_is_booked(store: Store):
    carrier = CarrierActivities(store)
    args = packed(store)
    [booking] = run(carrier.book_carrier, {**args, "carriers": STANDARD["carriers"], "promise": promise()})["bookings"]
    assert booking["carrier"] == "CityCourier" and booking["meets_promise"] is True
    remote = packed(store)
    [booking] = run(carrier.book_carrier, {**remote, "carriers": STANDARD["carriers"], "promise": promise(deliver_in_days=0.5)})["bookings"]
    assert booking["carrier"] == "CityCourier" and booking["meets_promise"] is False  # none can keep it: the fastest, late


def test_hazardous_goods_go_only_with_a_carrier_allowed_them(store: Store):
    args = packed(store, items=items(("LIGHTER-005", 1)))
    [booking] = run(CarrierActivities(store).book_carrier, {**args, "carriers": STANDARD["carriers"], "promise": promise()})["bookings"]
    assert booking["carrier"] == "SafeFreight"
    assert "CityCourier carries no hazardous goods" in booking["refused"]
    only_safe_excluded = [c for c in STANDARD["carriers"] if c["name"] != "SafeFreight"]
    other = packed(store, items=items(("LIGHTER-005", 1)))
    with pytest.raises(ApplicationError, match=r"no carrier can take parcel .*SwiftExpress carries no hazardous goods") as raised:
        run(CarrierActivities(store).book_carrier, {**other, "carriers": only_safe_excluded, "promise": promise()})
    assert raised.value.type == "NoCarrier"


def test_full_or_failing_carriers_fall_back_to_the_next(store: Store):
    carrier = CarrierActivities(store)
    carriers = [dict(c, daily_capacity=1) if c["name"] == "CityCourier" else c for c in STANDARD["carriers"]]
    first, second = packed(store), packed(store)
    assert run(carrier.book_carrier, {**first, "carriers": carriers, "promise": promise()})["bookings"][0]["carrier"] == "CityCourier"
    [fallback] = run(carrier.book_carrier, {**second, "carriers": carriers, "promise": promise()})["bookings"]
    assert fallback["carrier"] == "SwiftExpress" and "CityCourier daily capacity 1 used up" in fallback["refused"]
    # Cancelling a booking gives its capacity back.
    run(carrier.cancel_booking, first)
    with store.transaction() as db:
        db.execute("INSERT INTO carrier_outages VALUES ('SwiftExpress', 'booking API down')")
    third = packed(store)
    assert run(carrier.book_carrier, {**third, "carriers": carriers, "promise": promise()})["bookings"][0]["carrier"] == "CityCourier"


def test_handoff_ships_the_stock_and_a_later_cancel_becomes_an_intercept(store: Store):
    args = payload()
    handoff = ship(store, args)
    assert handoff["parcels"][0]["courier"] == "CityCourier courier" and handoff["parcels"][0]["handed_over_at"]
    assert store.stock_levels()["TEA-001"] == (498, 0)
    carrier, stock = CarrierActivities(store), StockActivities(store)
    assert run(carrier.handoff_to_courier, args) == handoff  # redelivered: nothing ships twice
    for _ in range(2):
        run(carrier.intercept_shipment, args)
        run(carrier.cancel_booking, args)
        run(PackingActivities(store).void_waybill, args)
        run(stock.release_stock, args)
    order_id = args["order"]["order_id"]
    assert store.rows("SELECT state FROM carrier_bookings WHERE order_id = ?", order_id) == [{"state": "intercept_requested"}]
    assert store.rows("SELECT state FROM waybills WHERE order_id = ?", order_id) == [{"state": "active"}]
    assert store.rows("SELECT COUNT(*) AS n FROM notifications WHERE order_id = ? AND kind = 'intercept_request'", order_id) == [{"n": 1}]
    assert store.stock_levels()["TEA-001"] == (498, 0)


# -- tracking, delivery, reship -----------------------------------------------------------


def test_tracking_events_notify_once_each_and_count_failed_attempts(store: Store):
    args = payload()
    ship(store, args)
    carrier = CarrierActivities(store)
    templates = STANDARD["notifications"]
    events = [("in_transit", "t1"), ("delivery_failed", "t2"), ("delivery_failed", "t3"), ("delivered", "t4")]
    results = []
    for name, at in events:
        event = {"event": name, "received_at": at, "signer": "Li Wei"}
        results.append(run(carrier.record_tracking, {**args, "event": event, "templates": templates}))
        run(carrier.record_tracking, {**args, "event": event, "templates": templates})  # redelivered
    assert [r["failed_attempts"] for r in results] == [0, 1, 2, 2]
    messages = store.rows(
        "SELECT kind, message FROM notifications WHERE order_id = ? AND channel = 'sms' ORDER BY id", args["order"]["order_id"]
    )
    assert [m["kind"] for m in messages] == ["in_transit", "delivery_failed", "delivery_failed", "delivered"]
    assert messages[-1]["message"].endswith("signed for by Li Wei. Thank you!")


def test_a_reship_opens_a_new_round_once_and_ships_again(store: Store):
    args = payload(items=items(("TEA-001", 1)))
    first = ship(store, args)
    stock = StockActivities(store)
    assert run(stock.open_round, args) == {"round": 2, "lost": [first["tracking_no"]]}
    assert run(stock.open_round, args) == {"round": 2, "lost": []}
    second = ship(store, args)
    assert second["tracking_no"] != first["tracking_no"]
    assert store.stock_levels()["TEA-001"] == (498, 0)
    order_id = args["order"]["order_id"]
    assert store.rows("SELECT round, state FROM carrier_bookings WHERE order_id = ? ORDER BY round", order_id) == [
        {"round": 1, "state": "lost"},
        {"round": 2, "state": "handed_over"},
    ]
    customer = CustomerActivities(store)
    for _ in range(2):
        run(customer.notify_customer, {**args, "kind": "shipped"})
    assert store.rows("SELECT COUNT(*) AS n FROM notifications WHERE order_id = ? AND kind = 'shipped'", order_id) == [{"n": 1}]


# -- returns ------------------------------------------------------------------------------


def test_a_return_is_checked_against_what_shipped_then_restocked_or_scrapped(store: Store):
    original = payload(items=items(("TEA-001", 2), ("MUG-002", 1)))
    ship(store, original)
    before = store.stock_levels()
    returns = ReturnActivities(store)
    request = {"original_order_id": original["order"]["order_id"], "kind": "refund", "reason": "damaged"}
    too_many = {"order": {**original["order"], "order_id": "r-too-many", "items": items(("TEA-001", 3))}, "request": request}
    with pytest.raises(ApplicationError, match="TEA-001: 3 asked, 2 shipped and not yet returned"):
        run(returns.assess_return, too_many)
    ret = {"order": {**original["order"], "order_id": "r-1", "items": items(("TEA-001", 2), ("MUG-002", 1))}, "request": request}
    assert run(returns.assess_return, ret) == {"value": 30.0, "kind": "refund", "our_mistake": True}
    assert Path(run(returns.issue_return_label, ret)["label_path"]).read_text().startswith("^XA")
    inspection = {**ret, "inspection": {"items": [{"sku": "MUG-002", "outcome": "scrap"}]}}
    for _ in range(2):
        result = run(returns.inspect_return, inspection)
    assert result["restocked"] == 2
    after = store.stock_levels()
    assert after["TEA-001"][0] == before["TEA-001"][0] + 2 and after["MUG-002"] == before["MUG-002"]
    again = {"order": {**ret["order"], "order_id": "r-2", "items": items(("TEA-001", 1))}, "request": request}
    with pytest.raises(ApplicationError, match="0 shipped and not yet returned"):
        run(returns.assess_return, again)


def test_the_consistency_check_finds_what_would_be_wrong(store: Store):
    args = payload(items=items(("TEA-001", 2)))
    order_id = args["order"]["order_id"]
    run(StockActivities(store).reserve_stock, args)
    run(CustomerActivities(store).notify_customer, {**args, "kind": "shipped"})
    assert store.inconsistencies() == []
    assert store.inconsistencies([order_id]) == [f"order {order_id} has ended but still holds 2 x TEA-001"]
    with store.transaction() as db:
        db.execute("UPDATE stock SET reserved = reserved + 1 WHERE sku = 'TEA-001' AND warehouse = 'SH'")
        db.execute(
            "INSERT INTO notifications (order_id, kind, dedupe_key, channel, recipient, message, created_at)"
            " VALUES (?, 'shipped', 'other-key', 'sms', 'x', 'again', 'now')",
            (order_id,),
        )
    assert store.inconsistencies() == [
        "stock TEA-001 at SH A-01-01: reserved 3 but reservations hold 2",
        f"order {order_id}: 2 'shipped' notifications for 1 cause(s)",
    ]


def test_a_lost_round_cannot_be_returned_and_a_rejected_return_frees_its_items(store: Store):
    original = payload(items=items(("TEA-001", 2)))
    ship(store, original)
    run(StockActivities(store).open_round, original)  # the first parcel was lost; the second is what arrived
    ship(store, original)
    returns = ReturnActivities(store)
    request = {"original_order_id": original["order"]["order_id"], "kind": "refund", "reason": "quality"}
    four = {"order": {**original["order"], "order_id": "r-4", "items": items(("TEA-001", 4))}, "request": request}
    with pytest.raises(ApplicationError, match="TEA-001: 4 asked, 2 shipped and not yet returned"):
        run(returns.assess_return, four)
    first = {"order": {**original["order"], "order_id": "r-a", "items": items(("TEA-001", 2))}, "request": request}
    run(returns.assess_return, first)
    second = {"order": {**original["order"], "order_id": "r-b", "items": items(("TEA-001", 1))}, "request": request}
    with pytest.raises(ApplicationError, match="0 shipped and not yet returned"):
        run(returns.assess_return, second)
    assert run(returns.close_return, {**first, "outcome": "rejected"}) == {"state": "rejected"}
    assert run(returns.assess_return, second)["value"] == 10.0


def test_a_return_listing_a_sku_twice_restocks_both(store: Store):
    original = payload(items=items(("TEA-001", 2)))
    ship(store, original)
    before = store.stock_levels()["TEA-001"][0]
    request = {"original_order_id": original["order"]["order_id"], "kind": "refund", "reason": "quality"}
    ret = {"order": {**original["order"], "order_id": "r-twice", "items": items(("TEA-001", 1), ("TEA-001", 1))}, "request": request}
    run(ReturnActivities(store).assess_return, ret)
    assert run(ReturnActivities(store).inspect_return, ret)["restocked"] == 2
    assert store.stock_levels()["TEA-001"][0] == before + 2


def test_restock_closes_only_the_requisitions_it_covers_and_knows_its_bins(store: Store):
    stock = StockActivities(store)
    small, large = payload(items=items(("LAMP-007", 4))), payload(items=items(("LAMP-007", 13)))
    for args in (small, large):
        assert run(stock.reserve_stock, args)["status"] == "short"
    receipt = store.receive_stock("LAMP-007", "SH", 5)  # 1 short for small; 10 for large
    assert receipt.woken == [small["order"]["order_id"]]
    assert receipt.still_open == [f"requisition 2 (order {large['order']['order_id']}): 4 of 10 received"]
    assert store.receive_stock("LAMP-007", "SH", 6).woken == [large["order"]["order_id"]]  # the rest completes it
    assert [r["state"] for r in store.rows("SELECT state FROM purchase_requisitions ORDER BY id")] == ["received", "received"]
    with pytest.raises(KeyError, match="--bin must name a bin"):
        store.receive_stock("LAMP-007", "SH", 5, bin="  ")
    with pytest.raises(KeyError, match="LAMP-007 is kept in B-04-02 at SH, not B-04-20"):
        store.receive_stock("LAMP-007", "SH", 5, bin="B-04-20")
    other = payload(items=items(("LAMP-007", 40)))
    run(stock.reserve_stock, other)
    run(stock.cancel_requisitions, other)
    assert [r["state"] for r in store.rows("SELECT state FROM purchase_requisitions ORDER BY id")] == ["received", "received", "cancelled"]


def test_a_lost_parcel_is_not_intercepted_and_a_delivered_one_neither(store: Store):
    carrier = CarrierActivities(store)
    lost, delivered = payload(), payload()
    ship(store, lost)
    ship(store, delivered)
    assert len(run(carrier.declare_lost, lost)["lost"]) == 1
    run(carrier.record_tracking, {**delivered, "event": {"event": "delivered", "received_at": "t", "seq": 0}})
    assert run(carrier.intercept_shipment, lost) == {"intercepted": []}
    assert run(carrier.intercept_shipment, delivered) == {"intercepted": []}
    assert store.rows("SELECT COUNT(*) AS n FROM notifications WHERE kind = 'intercept_request'") == [{"n": 0}]


def test_an_address_changed_after_booking_reprints_the_label_and_rebooks_if_needed(store: Store):
    args = payload(items=items(("TEA-001", 1)))
    run(StockActivities(store).reserve_stock, args)
    run(PickingActivities(store).pick_items, args)
    [parcel] = run(PackingActivities(store).pack_order, args)["parcels"]
    booking_args = {**args, "carriers": STANDARD["carriers"], "promise": promise()}
    assert run(CarrierActivities(store).book_carrier, booking_args)["bookings"][0]["carrier"] == "CityCourier"
    args["order"]["address"] = {"province": "Xinjiang", "city": "Urumqi", "district": "", "street": "1 Renmin Road", "postcode": "830000"}
    handoff = run(CarrierActivities(store).handoff_to_courier, {**args, "carriers": STANDARD["carriers"], "promise": promise()})
    assert handoff["carrier"] == "SwiftExpress"  # CityCourier does not serve Xinjiang
    assert "Urumqi" in Path(parcel["label_path"]).read_text()


def test_a_broken_custom_template_falls_back_to_the_built_in_text(store: Store):
    args = {**payload(), "kind": "shipped", "templates": {"shipped": "Order {order_id is on its way"}}
    assert run(CustomerActivities(store).notify_customer, args)["message"] == f"Order {args['order']['order_id']} is on its way."


def test_tracking_numbers_are_never_reused_after_a_void(store: Store):
    first, second = payload(), payload()
    for args in (first, second):
        run(StockActivities(store).reserve_stock, args)
        run(PickingActivities(store).pick_items, args)
    number = run(PackingActivities(store).pack_order, first)["parcels"][0]["tracking_no"]
    run(PackingActivities(store).void_waybill, first)
    again = run(PackingActivities(store).pack_order, first)["parcels"][0]["tracking_no"]
    other = run(PackingActivities(store).pack_order, second)["parcels"][0]["tracking_no"]
    assert len({number, again, other}) == 3


def test_a_split_order_is_delivered_parcel_by_parcel(store: Store):
    args = payload(items=items(("LIGHTER-005", 1), ("VASE-009", 1)))
    handoff = ship(store, args)
    first, second = (p["tracking_no"] for p in handoff["parcels"])
    carrier = CarrierActivities(store)
    one = run(carrier.record_tracking, {**args, "event": {"event": "delivered", "received_at": "t1", "seq": 0, "tracking_no": first}})
    assert one["parcels_out"] == 1
    with pytest.raises(ApplicationError, match="parcel 'OO-NOPE' is not one of order"):
        run(carrier.record_tracking, {**args, "event": {"event": "delivered", "received_at": "t2", "seq": 1, "tracking_no": "OO-NOPE"}})
    # A number where a tracking number goes is refused the same way on both backends (PostgreSQL compares no text with a number).
    with pytest.raises(ApplicationError, match="parcel '12345' is not one of order") as refused:
        run(carrier.record_tracking, {**args, "event": {"event": "delivered", "received_at": "t2", "seq": 1, "tracking_no": 12345}})
    assert refused.value.non_retryable
    assert (
        run(carrier.record_tracking, {**args, "event": {"event": "delivered", "received_at": "t3", "seq": 2, "tracking_no": second}})[
            "parcels_out"
        ]
        == 0
    )
