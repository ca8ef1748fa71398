"""Helpers for the activity tests: an order's payload, an activity run as the worker runs it, the happy path through the warehouse."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import get_type_hints

import yaml
from alembic import command
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.carrier import CarrierActivities
from activities.database import engine_for
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.stock import StockActivities
from activities.store import Store, alembic_config
from orderops.config import PROCESS_DIR
from orderops.order import Order
from tests.helpers import order_data


def payload(**overrides) -> dict:
    return {"order": Order.model_validate(order_data(**overrides)).as_variable()}


CONVERTER = pydantic_data_converter.payload_converter


def run(fn, args: dict) -> dict:
    """An activity as the worker runs it, its arguments and its answer through the worker's data converter.

    The arguments are decoded with the type hint Temporal reads from the registered function (the
    dict, which @activity_defn validates into the method's arguments model, bad input failing as a
    non-retryable InvalidInput), and the result model comes back as the JSON dict the workflow gets.
    """
    [param] = inspect.signature(fn).parameters.values()
    [decoded] = CONVERTER.from_payloads(CONVERTER.to_payloads([args]), [get_type_hints(fn)[param.name]])
    result = ActivityEnvironment().run(fn, decoded)
    [answer] = CONVERTER.from_payloads(CONVERTER.to_payloads([result]), [dict])
    return answer


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


def as_layout_4(url: str) -> None:
    """Turn the store at `url`, rows and all, into what orderops left before Alembic: layout 4, no alembic_version."""
    engine = engine_for(url)
    with engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0004")
        connection.exec_driver_sql("DROP TABLE alembic_version")
        connection.commit()
    engine.dispose()
