"""Activity tests: each test gets a fresh store seeded with samples/warehouse.yaml, once on SQLite and
once on PostgreSQL (tests/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activities.review import ReviewActivities
from activities.store import Store
from orderops.config import SAMPLES_DIR
from orderops.order import Order
from tests.helpers import order_data
from tests.store_helpers import run as run_activity


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's URL, on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("postgres_store_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    store = Store(store_url, tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    yield store
    store.close()


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
