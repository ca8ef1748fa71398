"""Activities that exist only for tests: faults on demand, and a journal of calls."""

from __future__ import annotations

import threading
from collections import Counter

from temporalio import activity
from temporalio.exceptions import ApplicationError

# (order_id, activity name) in call order: tests read it to check what ran and in what order.
JOURNAL: list[tuple[str, str]] = []
_attempts: Counter = Counter()
_lock = threading.Lock()


def _order_id(payload: dict) -> str:
    return payload["order"]["order_id"]


def _note(payload: dict, name: str) -> None:
    with _lock:
        JOURNAL.append((_order_id(payload), name))


@activity.defn(name="flaky_step")
def flaky_step(payload: dict) -> dict:
    """Fails `failures` times per order with a retryable error, then succeeds."""
    key = _order_id(payload)
    with _lock:
        _attempts[key] += 1
        seen = _attempts[key]
    if seen <= payload.get("failures", 2):
        raise ApplicationError(f"transient fault {seen}", type="Transient")
    _note(payload, "flaky_step")
    return {"calls": seen}


@activity.defn(name="broken_step")
def broken_step(payload: dict) -> dict:
    _note(payload, "broken_step")
    raise ApplicationError("the label printer is on fire", type="PrinterFault", non_retryable=True)


@activity.defn(name="journal_step")
def journal_step(payload: dict) -> dict:
    _note(payload, f"journal_step:{payload.get('label', '')}")
    return {"label": payload.get("label", "")}


@activity.defn(name="undo_step")
def undo_step(payload: dict) -> dict:
    _note(payload, f"undo_step:{payload.get('label', '')}")
    return {}


@activity.defn(name="broken_undo")
def broken_undo(payload: dict) -> dict:
    """An undo that cannot succeed: the rest of the saga must still run."""
    _note(payload, f"broken_undo:{payload.get('label', '')}")
    raise ApplicationError("the restocking robot is jammed", type="RobotJammed", non_retryable=True)


# order id -> set by the test when a stubborn step may finish
RELEASE: dict[str, threading.Event] = {}


@activity.defn(name="stubborn_step")
def stubborn_step(payload: dict) -> dict:
    """Does not heartbeat, so it never hears of a cancellation: it finishes when the test releases it."""
    key = _order_id(payload)
    with _lock:
        release = RELEASE.setdefault(key, threading.Event())
    _note(payload, "stubborn_step:started")
    release.wait(timeout=30)
    _note(payload, "stubborn_step:finished")
    return {}


@activity.defn(name="slow_step")
async def slow_step(payload: dict) -> dict:
    """Runs until cancelled, heartbeating, so sibling cancellation can be observed."""
    import asyncio

    _note(payload, "slow_step:started")
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.2)
    except asyncio.CancelledError:
        _note(payload, "slow_step:cancelled")
        raise


TEST_ACTIVITIES = (flaky_step, broken_step, journal_step, undo_step, broken_undo, stubborn_step, slow_step)
TEST_ACTIVITY_NAMES = frozenset(fn.__temporal_activity_definition.name for fn in TEST_ACTIVITIES)


def extra_activities() -> list:
    return list(TEST_ACTIVITIES)


def release(order_id: str) -> None:
    with _lock:
        RELEASE.setdefault(order_id, threading.Event()).set()


def journal_for(order_id: str) -> list[str]:
    with _lock:
        return [name for oid, name in JOURNAL if oid == order_id]
