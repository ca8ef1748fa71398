"""Activity tests: each test gets a fresh store seeded with samples/warehouse.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.review import ReviewActivities
from activities.store import Store
from orderops.config import SAMPLES_DIR
from orderops.order import Order
from tests.helpers import order_data
from tests.store_helpers import run as run_activity


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    return store


@pytest.fixture
def review(store: Store):
    activities = ReviewActivities(store)

    def run(rules: dict | None = None, *, address: dict | None = None, **overrides) -> dict:
        data = order_data(**overrides)
        if address:
            data["address"] = {**data["address"], **address}
        args = {"order": Order.model_validate(data).as_variable()}
        if rules is not None:
            args["rules"] = rules
        return run_activity(activities.review_order, args)

    return run
