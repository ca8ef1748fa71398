"""What waits for whom: the user tasks of the shipped definitions, and the orders waiting at them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orderops.activity_names import ACTIVITY_NAMES
from orderops.client import OrderClient, OrderQuery
from orderops.client.api import OrderSummary
from orderops.people import Person
from orderops.process.lint import load
from orderops.process.model import UserTask

PAGE = 50


@dataclass(frozen=True)
class TaskKind:
    process: str
    node: str
    role: str
    description: str


def user_tasks(process_dir: Path) -> dict[tuple[str, str], TaskKind]:
    """Every user task of the definitions in `process_dir`, by (process id, node id)."""
    tasks = {}
    for path in sorted(process_dir.glob("*.yaml")):
        definition = load(path, ACTIVITY_NAMES)[0]
        for node in definition.nodes:
            if isinstance(node, UserTask):
                tasks[(definition.id, node.id)] = TaskKind(definition.id, node.id, node.role, node.description or node.id)
    return tasks


@dataclass(frozen=True)
class Waiting:
    order: OrderSummary
    task: TaskKind


async def inbox(orders: OrderClient, tasks: dict[tuple[str, str], TaskKind], person: Person, limit: int = PAGE) -> list[Waiting]:
    """Running orders stopped at a user task whose role the person holds: the first `limit` listed, soonest promise first."""
    mine = {key: task for key, task in tasks.items() if person.holds(task.role)}
    query = OrderQuery().running().one_of("CurrentStep", sorted({node for _, node in mine}))
    found = []
    async for summary in orders.listing(query, limit=limit):
        process = summary.process.split(" v")[0]
        task = mine.get((process, summary.step))
        if task is not None:
            found.append(Waiting(summary, task))
    found.sort(key=lambda w: (w.order.promise_at is None, w.order.promise_at or w.order.started))
    return found[:limit]
