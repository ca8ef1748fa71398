"""The step implementations, and the names a process definition may use."""

from __future__ import annotations

from collections.abc import Callable

from activities.carrier import CarrierActivities
from activities.customer import CustomerActivities
from activities.packing import PackingActivities
from activities.picking import PickingActivities
from activities.promise import PromiseActivities
from activities.returns import ReturnActivities
from activities.review import ReviewActivities
from activities.stock import StockActivities
from activities.store import Store
from orderops.activity_names import ACTIVITY_NAMES as KNOWN_TO_LINT

ACTIVITY_CLASSES = (
    ReviewActivities,
    StockActivities,
    PickingActivities,
    PackingActivities,
    CarrierActivities,
    CustomerActivities,
    PromiseActivities,
    ReturnActivities,
)


def _defined(cls) -> list[tuple[str, str]]:
    """(method name, activity name) for each @activity.defn method of a class."""
    return [
        (attr, fn.__temporal_activity_definition.name) for attr, fn in vars(cls).items() if hasattr(fn, "__temporal_activity_definition")
    ]


ACTIVITY_NAMES = frozenset(name for cls in ACTIVITY_CLASSES for _, name in _defined(cls))
if ACTIVITY_NAMES != KNOWN_TO_LINT:
    # Lint checks tasks against orderops/activity_names.py without importing these classes: keep the two equal.
    raise ImportError(
        f"orderops/activity_names.py is out of date: add {sorted(ACTIVITY_NAMES - KNOWN_TO_LINT)}, remove {sorted(KNOWN_TO_LINT - ACTIVITY_NAMES)}"
    )


def build_activities(store: Store) -> list[Callable]:
    activities = []
    for cls in ACTIVITY_CLASSES:
        instance = cls(store)
        activities += [getattr(instance, attr) for attr, _ in _defined(cls)]
    return activities
