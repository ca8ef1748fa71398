"""Redelivery for every activity: Temporal delivers at least once, so a second delivery of the same input has no effect.

Built from the activity registry (activities/__init__.py): SCENARIOS must name every activity the
worker registers, so a new activity fails this file until it has a scenario. Each scenario prepares
the store the way the process would have left it before that step (a pick needs a reservation, a
handoff a booking) and returns the payload the workflow passes: the node's `input:` mapping as one
dict (`{"order": ...}` for a node without one), plus `result` for a compensation, as
workflows/order.py does.

The test then delivers the payload twice, through Temporal's data converter, and compares every row
of every table of the store (read from sqlite_master) and every file under the labels directory:
the first delivery must change exactly the tables the activity is meant to write, the second must
change nothing, and the second answer must agree with the first. Between deliveries the store's
clock (`now_iso`, which stamps created_at, updated_at, booked_at...) moves on, as it does between a
delivery and its redelivery, so a repeat that rewrites a timestamp shows in the comparison instead
of hiding in the same second.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter

import activities.store as store_module
from activities import ACTIVITY_NAMES, build_activities
from activities.carrier import CarrierActivities
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.promise import PromiseActivities
from activities.returns import ReturnActivities
from activities.stock import StockActivities
from activities.store import Store
from orderops.process.lint import load_policy
from tests.helpers import ROOT
from tests.store_helpers import STANDARD, WAVE, items, packed, payload, promise, run, ship

LABELS = "labels/"  # in a snapshot: the files under the store's labels directory, beside the tables
PROMISE_POLICY = load_policy(ROOT / "process_defs" / "policies" / "promise.yaml").model_dump(mode="json")


# -- the store, compared whole ---------------------------------------------------------------


def snapshot(store: Store) -> dict[str, list[str]]:
    """Every row of every table, and every label file with its text; order-independent."""
    tables = store.tables()
    snap = {table: sorted(json.dumps(row, sort_keys=True) for row in store.rows(f'SELECT * FROM "{table}"')) for table in tables}
    snap[LABELS] = sorted(
        f"{path.relative_to(store.labels_dir)}\n{path.read_text(encoding='utf-8')}"
        for path in store.labels_dir.rglob("*")
        if path.is_file()
    )
    return snap


def changes(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, dict[str, list[str]]]:
    """Per table that differs: the rows (or files) no longer there and the ones that are new."""
    diff = {}
    for table in sorted(set(before) | set(after)):
        old, new = before.get(table, []), after.get(table, [])
        if old != new:
            diff[table] = {"gone": [r for r in old if r not in new], "new": [r for r in new if r not in old]}
    return diff


class Clock:
    """The store's clock, moved on by hand between deliveries."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def tick(self) -> None:
        self.now += timedelta(minutes=1)

    def now_iso(self) -> str:
        return self.now.isoformat(timespec="seconds")


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Every activities module stamps rows with activities.store.now_iso (imported by name): all of them read this clock."""
    clock, original = Clock(), store_module.now_iso
    patched = []
    for name, module in list(sys.modules.items()):
        if (name == "activities" or name.startswith("activities.")) and getattr(module, "now_iso", None) is original:
            monkeypatch.setattr(module, "now_iso", clock.now_iso)
            patched.append(name)
    assert "activities.store" in patched and len(patched) > 1
    return clock


def wire(value: dict) -> dict:
    """What the other side receives: the value through the worker's data converter."""
    converter = pydantic_data_converter.payload_converter
    return converter.from_payloads(converter.to_payloads([value]), [dict])[0]


def registered(store: Store) -> dict[str, Callable]:
    """The activities the worker registers (build_activities), by the name a definition uses."""
    return {getattr(fn, "__temporal_activity_definition").name: fn for fn in build_activities(store)}


# -- scenarios ---------------------------------------------------------------------------------


def same(first: dict) -> dict:
    """A redelivery answers as the first delivery did."""
    return first


def marked_repeated(first: dict) -> dict:
    """reserve_stock: the reservation already held, with `repeated: true` (docs/warehouse.md); the first reserved."""
    assert first["repeated"] is False, first
    return {**first, "repeated": True}


def nothing_left(key: str, none) -> Callable[[dict], dict]:
    """A compensation reports what this call undid: the first something, a repeat nothing ("releasing twice releases once")."""

    def repeat(first: dict) -> dict:
        assert first[key] != none, first
        return {**first, key: none}

    return repeat


@dataclass(frozen=True)
class Scenario:
    prepare: Callable[[Store], dict]  # the store as the process leaves it before the step; returns the step's payload
    writes: frozenset[str]  # what the first delivery changes: tables, and LABELS for label files
    repeat: Callable[[dict], dict] = same  # the second delivery's answer, from the first's


# Each prepare function leaves the store as the process has it just before the step, and returns the step's payload.


def forward_reserve(store: Store, **overrides) -> dict:
    """reserve_stock's node input: {order, policy}."""
    return {**payload(**overrides), "policy": STANDARD["stock_policy"]}


def reserved(store: Store, **overrides) -> dict:
    """After reserve_stock; with its result, as release_stock (its compensation) receives it."""
    args = forward_reserve(store, **overrides)
    return {**args, "result": run(StockActivities(store).reserve_stock, args)}


def reserved_order(store: Store) -> dict:
    return {"order": reserved(store)["order"]}


def picked(store: Store) -> dict:
    """After pick_items (node `pick`, no input mapping); with its result, as cancel_pick_list receives it."""
    args = reserved_order(store)
    return {**args, "result": run(PickingActivities(store).pick_items, args)}


def scan_event(order: dict, **quantities: int) -> dict:
    """The `scanned` event as the receive step stores it; quantities override what the order holds."""
    totals: dict[str, int] = {}
    for item in order["items"]:
        totals[item["sku"]] = totals.get(item["sku"], 0) + item["quantity"]
    totals.update(quantities)
    lines = [{"sku": sku, "quantity": quantity} for sku, quantity in totals.items()]
    return {"items": lines, "picker": "p7", "received_at": "2026-11-20T08:00:00+00:00", "seq": 7}


def mismatched_scan(store: Store) -> dict:
    order = picked(store)["order"]
    return {"order": order, "scan": scan_event(order, **{"TEA-001": 1})}


def matching_scan(store: Store) -> dict:
    order = picked(store)["order"]
    return {"order": order, "scan": scan_event(order)}


def to_pack(store: Store) -> dict:
    """After a matching scan: pack_order's node input {order, packing}."""
    args = matching_scan(store)
    assert run(PickingActivities(store).verify_scan, args)["matched"]
    return {"order": args["order"], "packing": STANDARD["packing"]}


def packed_parcels(store: Store) -> dict:
    args = to_pack(store)
    return {**args, "result": run(PackingActivities(store).pack_order, args)}


def to_book(store: Store, **overrides) -> dict:
    """After packing: book_carrier's node input {order, carriers, promise}."""
    return {**packed(store, **overrides), "carriers": STANDARD["carriers"], "promise": promise()}


def hazardous_to_book(store: Store) -> dict:
    """A lighter: two carriers are passed over, which the booking's answer lists (`refused`)."""
    return to_book(store, items=items(("LIGHTER-005", 1)))


def booked(store: Store, **overrides) -> dict:
    args = to_book(store, **overrides)
    return {**args, "result": run(CarrierActivities(store).book_carrier, args)}


def to_hand_over(store: Store) -> dict:
    args = booked(store)
    del args["result"]
    return args


def readdressed(store: Store) -> dict:
    """The address changed after booking, to a province CityCourier does not serve: the handoff reprints and re-books."""
    args = booked(store, items=items(("TEA-001", 1)))
    assert args.pop("result")["bookings"][0]["carrier"] == "CityCourier"
    args["order"]["address"] = {"province": "Xinjiang", "city": "Urumqi", "district": "", "street": "1 Renmin Road", "postcode": "830000"}
    return args


def handed_over(store: Store) -> dict:
    """After handoff; with its result, as intercept_shipment (its compensation) receives it."""
    args = payload()
    shipment = ship(store, args)
    return {**args, "carriers": STANDARD["carriers"], "promise": promise(), "result": shipment}


def handed_over_order(store: Store) -> dict:
    return {"order": handed_over(store)["order"]}


def tracking(store: Store, event: str, **data) -> dict:
    """record_tracking's node input: the courier event as the receive step stores it, and the templates."""
    tracking_event = {**data, "event": event, "received_at": "2026-11-21T09:30:00+00:00", "seq": 11}
    return {"order": handed_over(store)["order"], "event": tracking_event, "templates": STANDARD["notifications"]}


def in_transit(store: Store) -> dict:
    return tracking(store, "in_transit")


def signed_for(store: Store) -> dict:
    return tracking(store, "delivered", signer="Wang Fang")


def delivered(store: Store) -> dict:
    """After the sign-off was recorded: record_delivery's node input."""
    args = signed_for(store)
    run(CarrierActivities(store).record_tracking, args)
    event = args["event"]
    return {"order": args["order"], "delivery": event, "delivered_at": event["received_at"]}


def backorder_notice(store: Store) -> dict:
    """notify_backorder ran after a short reservation; cancel_requisitions, its compensation, gets its input and result."""
    short = reserved(store, items=items(("LAMP-007", 5)))
    assert short["result"]["status"] == "short"
    args = {"order": short["order"], "kind": "backorder", "message": f"waiting for stock: {short['result']['summary']}"}
    return {**args, "result": run(PromiseActivities(store).notify_ops, args)}


def wave_member(store: Store) -> dict:
    """Two orders in one open wave; release_wave (no input mapping) for the second."""
    picking = PickingActivities(store)
    for args in (reserved_order(store), reserved_order(store)):
        run(picking.join_wave, {**args, "picking": WAVE})
    return args


def promised(store: Store) -> dict:
    return {**payload(), "policy": PROMISE_POLICY, "accepted_at": "2026-11-18T02:00:00+00:00"}


def delivered_late(store: Store) -> dict:
    args = promised(store)
    made = run(PromiseActivities(store).compute_promise, args)
    return {"order": args["order"], "promise": made, "policy": PROMISE_POLICY, "delivered_at": "2026-11-28T00:00:00+00:00"}


def return_request(store: Store) -> dict:
    """A refund of the whole of a shipped order, as `orderops return` starts it: order <id>-R1, its request."""
    original = handed_over(store)["order"]
    order = {**original, "order_id": f"{original['order_id']}-R1"}
    return {"order": order, "request": {"original_order_id": original["order_id"], "kind": "refund", "reason": "damaged", "note": ""}}


def assessed(store: Store) -> dict:
    """After assess_return; with its result, as close_return (its compensation) receives it."""
    args = return_request(store)
    return {**args, "result": run(ReturnActivities(store).assess_return, args)}


def to_label(store: Store) -> dict:
    args = assessed(store)
    del args["result"]
    return args


def to_close_rejected(store: Store) -> dict:
    """Node close_rejected: {order, outcome: 'rejected'}."""
    return {"order": assessed(store)["order"], "outcome": "rejected"}


def parcel_received(store: Store) -> dict:
    """The returned parcel came in: inspect_return's node input, the mug scrapped and the tea (left out) restocked."""
    args = to_label(store)
    run(ReturnActivities(store).issue_return_label, args)
    inspection = {
        "items": [{"sku": "MUG-002", "outcome": "scrap"}],
        "inspector": "wu",
        "received_at": "2026-11-25T10:00:00+00:00",
        "seq": 2,
    }
    return {**args, "inspection": inspection}


def w(*tables: str) -> frozenset[str]:
    return frozenset(tables)


SCENARIOS: dict[str, Scenario] = {
    "review_order": Scenario(lambda s: {**payload(paid=False), "rules": STANDARD["review_rules"]}, w("orders_seen")),
    "reserve_stock": Scenario(forward_reserve, w("stock", "reservations"), marked_repeated),
    "release_stock": Scenario(reserved, w("stock", "reservations"), nothing_left("released", [])),
    "cancel_requisitions": Scenario(backorder_notice, w("purchase_requisitions"), nothing_left("cancelled", 0)),
    "open_round": Scenario(handed_over_order, w("carrier_bookings", "rounds"), nothing_left("lost", [])),
    "pick_items": Scenario(reserved_order, w("pick_lists")),
    "join_wave": Scenario(lambda s: {**reserved_order(s), "picking": WAVE}, w("waves", "pick_lists")),
    "release_wave": Scenario(wave_member, w("waves")),
    "cancel_pick_list": Scenario(picked, w("pick_lists"), nothing_left("cancelled", 0)),
    "verify_scan": Scenario(mismatched_scan, w("scans", "notifications")),
    "pack_order": Scenario(to_pack, w("waybills", "meta", LABELS)),
    "void_waybill": Scenario(packed_parcels, w("waybills"), nothing_left("voided", 0)),
    "book_carrier": Scenario(hazardous_to_book, w("carrier_bookings")),
    "cancel_booking": Scenario(booked, w("carrier_bookings"), nothing_left("cancelled", 0)),
    "handoff_to_courier": Scenario(to_hand_over, w("stock", "reservations", "carrier_bookings")),
    "intercept_shipment": Scenario(handed_over, w("carrier_bookings", "notifications"), nothing_left("intercepted", [])),
    "declare_lost": Scenario(handed_over_order, w("carrier_bookings")),
    "record_tracking": Scenario(in_transit, w("tracking_events", "notifications")),
    "notify_customer": Scenario(lambda s: {**payload(), "kind": "shipped"}, w("notifications")),
    "record_delivery": Scenario(delivered, w("deliveries")),
    "record_feedback": Scenario(lambda s: {**payload(), "feedback": {"rating": 4, "comment": "quick"}}, w("feedback")),
    "refund_order": Scenario(lambda s: {**payload(), "reason": "lost_in_transit"}, w("refunds", "notifications")),
    "compute_promise": Scenario(promised, w()),  # reads the catalogue and the policy; writes nothing
    "notify_ops": Scenario(lambda s: {**payload(), "kind": "ship_by_missed", "message": "ship-by missed at pack"}, w("notifications")),
    "grant_delay_compensation": Scenario(delivered_late, w("delay_compensations", "notifications")),
    "assess_return": Scenario(return_request, w("returns")),
    "issue_return_label": Scenario(to_label, w("returns", "notifications", LABELS)),
    "close_return": Scenario(assessed, w("returns")),  # as the assessment's compensation: the return is cancelled
    "inspect_return": Scenario(parcel_received, w("return_inspections", "stock", "returns")),
}

# Other paths through an activity that write elsewhere: "<activity>/<path>".
BRANCHES: dict[str, Scenario] = {
    "reserve_stock/short": Scenario(lambda s: forward_reserve(s, items=items(("LAMP-007", 5))), w("purchase_requisitions")),
    "reserve_stock/split": Scenario(
        lambda s: forward_reserve(s, items=items(("LIGHTER-005", 1), ("VASE-009", 1))), w("stock", "reservations"), marked_repeated
    ),
    "verify_scan/matched": Scenario(matching_scan, w("scans")),
    "handoff_to_courier/readdressed": Scenario(readdressed, w("stock", "reservations", "carrier_bookings", "waybills", LABELS)),
    "record_tracking/delivered": Scenario(signed_for, w("tracking_events", "notifications", "carrier_bookings")),
    "close_return/rejected": Scenario(to_close_rejected, w("returns")),
}

# Redelivered answers that differ from the first: real bugs, each reported (xfail strict: fixing it fails here, on purpose).
WRONG_ANSWER: dict[str, str] = {}

CASES = sorted(ACTIVITY_NAMES) + sorted(BRANCHES)


def scenario_for(case: str) -> Scenario:
    found = SCENARIOS.get(case) or BRANCHES.get(case)
    if found is None:
        pytest.fail(f"activity {case!r} has no redelivery scenario: add one to SCENARIOS in {__name__}")
    return found


@dataclass
class Redelivery:
    first: dict
    second: dict
    first_effect: dict[str, dict[str, list[str]]]
    repeat_effect: dict[str, dict[str, list[str]]]
    problems: list[list[str]]  # store.inconsistencies() after preparing, after the first and after the second delivery


def redeliver(store: Store, clock: Clock, case: str) -> Redelivery:
    scenario = scenario_for(case)
    activity_fn = registered(store)[case.split("/")[0]]
    args = wire(scenario.prepare(store))
    problems = [store.inconsistencies()]
    clock.tick()
    before = snapshot(store)
    first = wire(run(activity_fn, wire(args)))
    after_first = snapshot(store)
    problems.append(store.inconsistencies())
    clock.tick()  # the redelivery comes later
    second = wire(run(activity_fn, wire(args)))
    problems.append(store.inconsistencies())
    return Redelivery(first, second, changes(before, after_first), changes(after_first, snapshot(store)), problems)


# -- the registry -------------------------------------------------------------------------------


def test_every_registered_activity_has_a_redelivery_scenario(store: Store):
    names = [getattr(fn, "__temporal_activity_definition").name for fn in build_activities(store)]
    assert sorted(names) == sorted(ACTIVITY_NAMES)  # one callable per name: the worker registers what definitions may use
    assert set(SCENARIOS) == ACTIVITY_NAMES, {
        "without a scenario": sorted(ACTIVITY_NAMES - set(SCENARIOS)),
        "not an activity": sorted(set(SCENARIOS) - ACTIVITY_NAMES),
    }
    assert {case.split("/")[0] for case in BRANCHES} <= ACTIVITY_NAMES
    assert set(WRONG_ANSWER) <= ACTIVITY_NAMES


# -- the redelivery -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_a_redelivered_activity_changes_nothing_the_first_delivery_did_not(store: Store, clock: Clock, case: str):
    result = redeliver(store, clock, case)
    # The first delivery did what the step is for, and only that: the scenario really exercises the activity.
    assert set(result.first_effect) == scenario_for(case).writes, result.first_effect
    # The second changes no row of any table (timestamps included) and no label file.
    assert result.repeat_effect == {}
    assert result.problems == [[], [], []]


@pytest.mark.parametrize(
    "case", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=WRONG_ANSWER[c])) if c in WRONG_ANSWER else c for c in CASES]
)
def test_a_redelivered_activity_answers_as_the_first_delivery_did(store: Store, clock: Clock, case: str):
    result = redeliver(store, clock, case)
    assert result.second == scenario_for(case).repeat(result.first)
