"""What waits for whom: the definitions the console serves, their user tasks, and the orders waiting at them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field

from orderops.activity_names import ACTIVITY_NAMES
from orderops.client import ClientError, OrderClient, OrderQuery
from orderops.client.api import OrderSummary
from orderops.messages import WaitingTask
from orderops.people import Person
from orderops.process.lint import load
from orderops.process.model import ProcessDefinition, UserTask

PAGE = 50
MAX_PAGE = 200


@dataclass(frozen=True)
class TaskKind:
    process: str
    node: str
    role: str
    description: str


@dataclass(frozen=True)
class Catalog:
    """The definitions the console serves (`--process-dir`), by id, and their user tasks, by (process id, node id)."""

    definitions: dict[str, ProcessDefinition]
    tasks: dict[tuple[str, str], TaskKind]


def catalog(process_dir: Path) -> Catalog:
    definitions, tasks = {}, {}
    for path in sorted(process_dir.glob("*.yaml")):
        definition = load(path, ACTIVITY_NAMES)[0]
        definitions[definition.id] = definition
        for node in definition.nodes:
            if isinstance(node, UserTask):
                tasks[(definition.id, node.id)] = TaskKind(definition.id, node.id, node.role, node.description or node.id)
    return Catalog(definitions, tasks)


Word = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]*$")]


class Filters(BaseModel):
    """What a person narrows the inbox to (the page's and the API's query string); each a visibility
    condition, so a page stays one request. `page` is the token of the page to show."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    process: Word = ""
    node: Word = ""
    region: Word = ""
    service: Word = ""
    risk: Literal["", "at_risk", "breached"] = ""
    per_page: int = Field(PAGE, ge=1, le=MAX_PAGE)
    page: Annotated[str, Field(max_length=4096, pattern=r"^[A-Za-z0-9_=-]*$")] = ""

    def token(self) -> bytes | None:
        return base64.urlsafe_b64decode(self.page) if self.page else None

    def narrow(self, query: OrderQuery) -> OrderQuery:
        for attribute, value in (("ProcessId", self.process), ("Region", self.region), ("ServiceLevel", self.service)):
            if value:
                query = query.where(attribute, value)
        if self.risk:
            query = query.where("Breached" if self.risk == "breached" else "AtRisk", True)
        return query

    def after(self, token: bytes) -> Filters:
        """The same filters on the page the listing's token points at."""
        return self.model_copy(update={"page": base64.urlsafe_b64encode(token).decode()})

    def next(self, token: bytes | None) -> str | None:
        """The query string of the page after this one, or None on the last."""
        return urlencode(self.after(token).model_dump(exclude_defaults=True)) if token else None


EVERYTHING = Filters()


@dataclass(frozen=True)
class Waiting:
    order: OrderSummary
    task: TaskKind
    memo: WaitingTask | None  # None for an order started before orders wrote it (no codes, customer, amount)

    @property
    def deadline(self) -> datetime | None:
        return self.memo.deadline if self.memo else self.order.promise_at


async def inbox(
    orders: OrderClient,
    tasks: dict[tuple[str, str], TaskKind],
    person: Person,
    filters: Filters = EVERYTHING,
) -> tuple[list[Waiting], bytes | None]:
    """One page of the running orders stopped at a user task whose role the person holds, decide-by soonest first,
    and the next page's token. Paging follows the listing's order (visibility sorts no other way), so the
    deadline order holds within a page."""
    mine = {
        key: task
        for key, task in tasks.items()
        if person.holds(task.role) and filters.process in ("", task.process) and filters.node in ("", task.node)
    }
    if not mine:
        return [], None
    query = filters.narrow(OrderQuery().running().one_of("CurrentStep", sorted({node for _, node in mine})))
    try:
        rows, following = await orders.page(query, filters.per_page, filters.token())
    except (binascii.Error, ClientError) as err:  # a token not of this listing
        raise ClientError(f"that inbox page cannot be shown ({err}); start again from the first") from None
    found = []
    for summary, waiting in rows:
        task = mine.get((summary.process.split(" v")[0], summary.step))
        if task is not None:
            found.append(Waiting(summary, task, next((w for w in waiting if w.node == task.node), None)))
    found.sort(key=lambda w: (w.deadline is None, w.deadline or w.order.started))
    return found, following
