"""Helpers for the activity tests: an order's payload, an activity run as the worker runs it, the happy path through the warehouse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml
from temporalio.testing import ActivityEnvironment

from activities.carrier import CarrierActivities
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.stock import StockActivities
from activities.store import Store
from orderops.config import PROCESS_DIR
from orderops.order import Order
from tests.helpers import order_data


def payload(**overrides) -> dict:
    return {"order": Order.model_validate(order_data(**overrides)).as_variable()}


def run(fn, args: dict) -> dict:
    return ActivityEnvironment().run(fn, args)


STANDARD = yaml.safe_load((PROCESS_DIR / "standard.yaml").read_text())["variables"]


WAVE = {"mode": "wave", "wave_window": "5m", "max_scan_mismatches": 2}


def items(*lines: tuple[str, int]) -> list[dict]:
    return [{"sku": sku, "quantity": quantity, "unit_price": "10.00"} for sku, quantity in lines]


def promise(deliver_in_days: float = 3, service: str = "standard", tier: str = "tier1") -> dict:
    deliver_by = datetime.now(UTC) + timedelta(days=deliver_in_days)
    return {"service_level": service, "tier": tier, "deliver_by": deliver_by.isoformat()}


def ship(store: Store, args: dict) -> dict:
    """Reserve, pick, scan right, pack, book and hand over: what the standard process does on the happy path."""
    stock, pick, pack, carrier = StockActivities(store), PickingActivities(store), PackingActivities(store), CarrierActivities(store)
    reservation = run(stock.reserve_stock, args)
    run(pick.pick_items, args)
    scanned = [{"sku": line["sku"], "quantity": line["quantity"]} for s in reservation["shipments"] for line in s["lines"]]
    assert run(pick.verify_scan, {**args, "scan": {"items": scanned, "received_at": "t1"}})["matched"]
    run(pack.pack_order, {**args, "packing": STANDARD["packing"]})
    run(carrier.book_carrier, {**args, "carriers": STANDARD["carriers"], "promise": promise()})
    return run(carrier.handoff_to_courier, args)


def packed(store: Store, **overrides) -> dict:
    args = payload(**overrides)
    run(StockActivities(store).reserve_stock, args)
    run(PickingActivities(store).pick_items, args)
    run(PackingActivities(store).pack_order, args)
    return args


def codes(result: dict) -> list[str]:
    return result["anomalies"]
