"""OrderClient: everything a person or a program does to orders, over one Temporal client.

The CLI, the demo and the tests call it; none of them talks to workflows directly.
Each method checks what it can before it sends anything and raises ClientError
with one sentence when the order refuses or cannot be reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    ListWorkflowExecutionsRequest,
    ListWorkflowExecutionsResponse,
)
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.client import WorkflowExecution as ListedWorkflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.inputs import ReturnRequest
from orderops import search_attributes as sa
from orderops.client.errors import ClientError, InvalidRequest, NoWorker
from orderops.client.visibility import OrderQuery
from orderops.connect import Security, connect
from orderops.messages import (
    SENDER_FIELD,
    TASK_QUEUE,
    WAITING_MEMO,
    WORKFLOW_NAME,
    AddressChange,
    AddressChangeReceipt,
    CancelReceipt,
    CancelRequest,
    ClaimReceipt,
    ClaimRequest,
    ExternalEvent,
    OrderInput,
    OrderResult,
    OrderStatusView,
    ReviewDecision,
    ReviewReceipt,
    WaitingTask,
)
from orderops.order import Order, OrderEdit, OrderItem, tally, workflow_id
from orderops.payloads import MAX_MESSAGE_BYTES
from orderops.process.load import DefinitionSnapshot
from orderops.process.runtime import parse_for_run
from orderops.proof import Actor, Signer
from orderops.report import MEMO_KEY, OrderFacts, facts, from_memo

QUERY_TIMEOUT = timedelta(seconds=10)
# The rules a replacement ships by: the original order's, so an exchange goes out as the order did.
OUTBOUND_RULES = ("stock_policy", "picking", "packing", "carriers", "notifications", "delivery")
MAX_RETURNS = 99
# Results fetched at once by `facts` (for orders without facts in their memo): enough to hide the round trips, few enough not to flood the server.
RESULT_FETCHES = 32

R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)


_STARTS_WORK = frozenset({EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED})
_CLOSED = frozenset(
    {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
    }
)


@dataclass(frozen=True)
class EventDelivery:
    """What became of an event: waiting (a step took it), kept (until a step waits for it), or queued (no worker to check it)."""

    name: str
    outcome: str


@dataclass(frozen=True)
class Restock:
    told: list[tuple[str, str | None]]  # (order id, None if told, else why not)
    still_open: list[str]  # requisitions still waiting for more


@dataclass(frozen=True)
class OrderSummary:
    """One row of a listing, from visibility alone (no worker needed)."""

    order_id: str
    status: str
    step: str
    process: str
    promise_at: datetime | None
    region: str
    service: str
    at_risk: bool
    breached: bool
    started: datetime | None


def initial_search_attributes(snapshot: DefinitionSnapshot) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.PROCESS_ID, snapshot.id),
            SearchAttributePair(sa.PROCESS_VERSION, snapshot.version),
            SearchAttributePair(sa.ORDER_STATUS, "accepted"),
        ]
    )


def _update_error(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    return getattr(cause, "message", None) or str(cause or err)


def _summary(wf: ListedWorkflow) -> OrderSummary:
    attrs = wf.typed_search_attributes
    return OrderSummary(
        order_id=wf.id.removeprefix("order-"),
        status=attrs.get(sa.ORDER_STATUS) or "",
        step=attrs.get(sa.CURRENT_STEP) or "",
        process=f"{attrs.get(sa.PROCESS_ID) or '?'} v{attrs.get(sa.PROCESS_VERSION) or '?'}",
        promise_at=attrs.get(sa.PROMISE_AT),
        region=attrs.get(sa.REGION) or "",
        service=attrs.get(sa.SERVICE_LEVEL) or "",
        at_risk=bool(attrs.get(sa.AT_RISK)),
        breached=bool(attrs.get(sa.BREACHED)),
        started=wf.start_time,
    )


def _state(description: WorkflowExecutionDescription) -> str:
    return description.status.name.lower() if description.status else "unknown"


def _within_cap(message: BaseModel, what: str) -> None:
    """The order refuses a larger message (as a refused signal, which its sender never sees): say so here."""
    size = len(message.model_dump_json().encode())
    if size > MAX_MESSAGE_BYTES:
        raise InvalidRequest(f"the {what} is {size:,} bytes; an order takes at most {MAX_MESSAGE_BYTES:,}")


def _view_of_result(result: OrderResult) -> OrderStatusView:
    """A finished order's status from its result: no worker has to replay it to answer a query."""
    return OrderStatusView(
        order_id=result.order_id,
        status=result.status,
        current_nodes=[],
        process=result.process,
        steps=result.steps,
        pending_user_tasks=[],
        waiting_for_events=[],
        accepted_events=[],
        decisions=result.decisions,
        events=result.events,
        event_count=len(result.events) if result.event_count is None else result.event_count,
        end_reason=result.reason,
        promise=result.variables.get("promise"),
        at_risk=None,
        at_risk_log=result.at_risk,
        breaches=result.breaches,
        order=result.order,
        variables=result.variables,
        refused_signals=result.refused_signals,
        refused_signal_count=result.refused_signal_count,
    )


class OrderClient:
    def __init__(self, client: Client, task_queue: str = TASK_QUEUE, *, signer: Signer | None = None, actor: Actor | None = None):
        self.temporal = client
        self.task_queue = task_queue
        self.signer, self.actor = signer, actor

    def acting_as(self, actor: Actor) -> OrderClient:
        """This client, signing what it sends for `actor` (whom the caller has authenticated)."""
        if self.signer is None:
            raise ClientError("this client holds no signing key, so it cannot act for anyone")
        return OrderClient(self.temporal, self.task_queue, signer=self.signer, actor=actor)

    def signed(self, order_id: str, name: str, message: M) -> M:
        """The message with its proof, naming the actor as its sender; as it is when no one acts."""
        if self.signer is None or self.actor is None:
            return message
        claimed = SENDER_FIELD.get(name)
        if claimed:
            message = message.model_copy(update={claimed: self.actor.id})
        proof = self.signer.sign(workflow_id(order_id), name, message, self.actor, datetime.now(UTC))
        return message.model_copy(update={"proof": proof})

    @classmethod
    async def connect(cls, address: str, namespace: str, metrics: str | None = None, security: Security | None = None) -> OrderClient:
        return cls(await connect(address, namespace, metrics, security))

    def handle(self, order_id: str) -> WorkflowHandle:
        return self.temporal.get_workflow_handle(workflow_id(order_id))

    # -- starting ---------------------------------------------------------------

    async def start(
        self, order: Order, snapshot: DefinitionSnapshot, variables: dict | None = None, trusted_keys: dict[str, str] | None = None
    ) -> WorkflowHandle:
        """One workflow per order id, ever: a resubmitted order is refused, not run twice.

        With `trusted_keys`, the order takes a decision, event, cancellation or address change only when
        one of those keys signed it (orderops/proof.py).
        """
        try:
            return await self.temporal.start_workflow(
                WORKFLOW_NAME,
                OrderInput(order=order, definition=snapshot, variables=variables or {}, trusted_keys=trusted_keys or {}),
                id=workflow_id(order.order_id),
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=initial_search_attributes(snapshot),
                result_type=OrderResult,
            )
        except WorkflowAlreadyStartedError:
            raise ClientError(
                f"order {order.order_id} was already submitted (workflow {workflow_id(order.order_id)}); not started again"
            ) from None

    async def start_all(
        self, orders: Sequence[Order], snapshot: DefinitionSnapshot, source: str, trusted_keys: dict[str, str] | None = None
    ) -> list[WorkflowHandle]:
        """All or nothing, like validation: a batch with one resubmitted order starts none."""
        already = [order.order_id for order in orders if await self.submitted(order.order_id)]
        if already:
            raise ClientError(f"{source}: already submitted: {', '.join(already)}; no order was started")
        return [await self.start(order, snapshot, trusted_keys=trusted_keys) for order in orders]

    async def submitted(self, order_id: str) -> bool:
        try:
            await self.handle(order_id).describe()
            return True
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and "namespace" not in err.message.lower():
                return False
            raise

    # -- reading ----------------------------------------------------------------

    async def describe(self, order_id: str) -> WorkflowExecutionDescription:
        try:
            return await self.handle(order_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and "namespace" not in err.message.lower():
                raise ClientError(f"no order {order_id!r} (no workflow {workflow_id(order_id)})") from None
            raise

    async def require_running(self, order_id: str) -> WorkflowExecutionDescription:
        description = await self.describe(order_id)
        if description.status != WorkflowExecutionStatus.RUNNING:
            ended = description.typed_search_attributes.get(sa.ORDER_STATUS) or _state(description)
            raise ClientError(f"order {order_id} has already ended ({ended}); nothing changed")
        return description

    async def status(self, order_id: str, description: WorkflowExecutionDescription | None = None) -> OrderStatusView:
        """Where the order stands: from its workflow while it runs, from its result once it ended."""
        description = description or await self.describe(order_id)
        handle = self.temporal.get_workflow_handle(workflow_id(order_id), result_type=OrderResult)
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return _view_of_result(await handle.result())
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise ClientError(f"order {order_id}'s workflow {_state(description)} without an order result: {await self._why(handle)}")
        try:
            return await handle.query("status", result_type=OrderStatusView, rpc_timeout=QUERY_TIMEOUT)
        except WorkflowQueryFailedError as err:
            raise ClientError(f"order {order_id}: status query failed: {err}") from None
        except RPCError as err:
            raise NoWorker(
                f"order {order_id} is running, but no worker answered the status query ({err.message}); start one with `orderops worker`"
            ) from None

    @staticmethod
    async def _why(handle: WorkflowHandle) -> str:
        try:
            await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            return getattr(cause, "message", None) or str(cause or err)
        return "no reason recorded"

    async def history(self, order_id: str) -> WorkflowHistory:
        await self.describe(order_id)
        return await self.handle(order_id).fetch_history()

    async def waits(self, handle: WorkflowHandle) -> AsyncIterator[bool]:
        """Each time the order may have come to wait on the world outside (False), and once when it closes (True).

        A long poll on the order's history: the server answers as events arrive, so a watcher reacts to the
        order instead of asking it again and again whether anything changed. The order may be waiting once
        a workflow task has started no activity or child: what it waits for then is a signal, an update or a
        timer. After a task that started one, the order is busy, and moves again when that work ends.
        """
        request = GetWorkflowExecutionHistoryRequest(
            namespace=self.temporal.namespace,
            execution=WorkflowExecution(workflow_id=handle.id, run_id=handle.run_id or ""),
            wait_new_event=True,
            skip_archival=True,
        )
        started_work: bool | None = None  # of the latest workflow task; None: no task since the last yield
        while True:
            response = await self.temporal.workflow_service.get_workflow_execution_history(request, retry=True)
            for event in response.history.events:
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    started_work = False
                elif event.event_type in _STARTS_WORK and started_work is False:
                    started_work = True
                elif event.event_type in _CLOSED:
                    yield True
                    return
            if started_work is False:
                yield False
            started_work = None
            if not response.next_page_token:
                return
            request.next_page_token = response.next_page_token

    async def listing(self, query: OrderQuery, limit: int | None = None) -> AsyncIterator[OrderSummary]:
        async for wf in self._workflows(query, limit):
            yield _summary(wf)

    async def page(
        self, query: OrderQuery, size: int, token: bytes | None = None
    ) -> tuple[list[tuple[OrderSummary, list[WaitingTask]]], bytes | None]:
        """One page of the listing, each order with the user tasks its memo says it waits at, and the next page's token.

        One visibility request a page, however many orders wait: what the console's inbox pages through."""
        listed = self.temporal.list_workflows(str(query), page_size=size, next_page_token=token)
        try:
            await listed.fetch_next_page()
        except RPCError as err:
            raise ClientError(f"visibility query refused: {err.message}") from None
        rows = []
        for wf in listed.current_page or ():
            memo = await wf.memo()
            waiting = [WaitingTask.model_validate(value) for key, value in memo.items() if key.startswith(WAITING_MEMO)]
            rows.append((_summary(wf), waiting))
        return rows, listed.next_page_token or None

    async def workflow_ids(self, query: OrderQuery) -> list[str]:
        return [wf.id async for wf in self._workflows(query)]

    async def _workflows(self, query: OrderQuery, limit: int | None = None):
        try:
            async for wf in self.temporal.list_workflows(str(query), limit=limit):
                yield wf
        except RPCError as err:
            raise ClientError(f"visibility query refused: {err.message}") from None

    async def facts(self, query: OrderQuery) -> list[OrderFacts]:
        """The KPI facts of every finished order the query finds; workflows that failed outright have none.

        An order started under engine 3 wrote them to its memo, which the listing carries; only older
        orders cost a fetch of their result each.
        """
        gate = asyncio.Semaphore(RESULT_FETCHES)

        async def from_result(info: WorkflowExecutionInfo) -> OrderFacts | None:
            async with gate:
                handle = self.temporal.get_workflow_handle(
                    info.execution.workflow_id, run_id=info.execution.run_id, result_type=OrderResult
                )
                try:
                    return facts(await handle.result(), info.start_time.ToDatetime(tzinfo=UTC))
                except WorkflowFailureError:
                    return None  # e.g. an invalid definition: no order result to count

        found: list[OrderFacts] = []
        older: list[asyncio.Task[OrderFacts | None]] = []
        async for page in self._pages(query):
            written = [info for info in page if MEMO_KEY in info.memo.fields]
            entries = await self.temporal.data_converter.decode([info.memo.fields[MEMO_KEY] for info in written])
            by_run = {info.execution.run_id: from_memo({MEMO_KEY: e}) for info, e in zip(written, entries, strict=True)}
            for info in page:
                if (fact := by_run.get(info.execution.run_id)) is not None:
                    found.append(fact)
                else:
                    older.append(asyncio.create_task(from_result(info)))
        return found + [f for f in await asyncio.gather(*older) if f is not None]

    async def _pages(self, query: OrderQuery) -> AsyncIterator[Sequence[WorkflowExecutionInfo]]:
        """The listing's raw pages, the next one asked for while this one is read.

        `facts` reads only ids, start times and memos; `list_workflows` would decode every order's
        search attributes too, which costs more than the server takes to list them.
        """

        def ask(token: bytes) -> asyncio.Task[ListWorkflowExecutionsResponse]:
            request = ListWorkflowExecutionsRequest(namespace=self.temporal.namespace, query=str(query), next_page_token=token)
            return asyncio.create_task(self.temporal.workflow_service.list_workflow_executions(request))

        asked = ask(b"")
        try:
            while True:
                try:
                    response = await asked
                except RPCError as err:
                    raise ClientError(f"visibility query refused: {err.message}") from None
                if response.next_page_token:
                    asked = ask(response.next_page_token)
                yield response.executions
                if not response.next_page_token:
                    return
        finally:
            asked.cancel()

    # -- deciding and driving ----------------------------------------------------

    async def _update(self, order_id: str, name: str, payload: BaseModel, result_type: type[R]) -> R:
        _within_cap(payload, name.replace("_", " "))
        await self.require_running(order_id)
        payload = self.signed(order_id, name, payload)
        try:
            return await self.handle(order_id).execute_update(name, payload, result_type=result_type, rpc_timeout=QUERY_TIMEOUT)
        except WorkflowUpdateFailedError as err:
            raise ClientError(f"refused: {_update_error(err)}") from None
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            raise ClientError(
                f"no worker answered within {QUERY_TIMEOUT.seconds}s (is `orderops worker` running?); the request stays queued "
                f"and is checked when a worker runs: `orderops status {order_id}` shows whether it was taken"
            ) from None
        except RPCError as err:
            raise ClientError(f"order {order_id}: {err.message}") from None

    async def decide(self, order_id: str, decision: ReviewDecision) -> ReviewReceipt:
        return await self._update(order_id, "review", decision, ReviewReceipt)

    async def claim(self, order_id: str, node: str, role: str) -> ClaimReceipt:
        """Take a user task to decide it: nobody else may decide it until it is released or the claim ends."""
        return await self._update(order_id, "claim", ClaimRequest(node=node, agent=self._agent(), role=role), ClaimReceipt)

    async def release(self, order_id: str, node: str, role: str) -> ClaimReceipt:
        return await self._update(order_id, "release", ClaimRequest(node=node, agent=self._agent(), role=role), ClaimReceipt)

    def _agent(self) -> str:
        if self.actor is None:
            raise ClientError("only a signed-in person claims a task (OrderClient.acting_as)")
        return self.actor.id

    async def cancel(self, order_id: str, request: CancelRequest) -> CancelReceipt:
        return await self._update(order_id, "cancel", request, CancelReceipt)

    async def change_address(self, order_id: str, change: AddressChange) -> AddressChangeReceipt:
        return await self._update(order_id, "change_address", change, AddressChangeReceipt)

    async def send_event(self, order_id: str, event: ExternalEvent) -> EventDelivery:
        _within_cap(event, f"{event.name!r} event")
        description = await self.require_running(order_id)
        event = self.signed(order_id, "event", event)
        try:
            view = await self.status(order_id, description)
        except NoWorker:
            # Signals wait in history for a worker, like queued reviews: the event is not lost for want of one.
            await self.handle(order_id).signal("event", event)
            return EventDelivery(event.name, "queued")
        if event.name not in view.accepted_events:
            raise ClientError(
                f"order {order_id}'s process has no receive for event {event.name!r}; it accepts: {', '.join(view.accepted_events)}"
            )
        await self.handle(order_id).signal("event", event)
        return EventDelivery(event.name, "waiting" if event.name in view.waiting_for_events else "kept")

    async def merge(self, order_id: str, into: str, agent: str, reason: str = "") -> list[OrderItem]:
        """Fold an order waiting at a merge decision into another of the same customer waiting at the same task."""
        if order_id == into:
            raise InvalidRequest("an order cannot be merged into itself")
        source_view = await self.status(order_id, await self.require_running(order_id))
        task = next((t for t in source_view.pending_user_tasks if "merge" in t.outcomes), None)
        if task is None:
            raise ClientError(f"order {order_id} is not waiting at a decision with a merge outcome (status: {source_view.status})")
        target_view = await self.status(into, await self.require_running(into))
        target_task = next((t for t in target_view.pending_user_tasks if t.node == task.node and "edit" in t.outcomes), None)
        if target_task is None:
            raise ClientError(f"order {into} is not waiting at {task.node} with an edit outcome (status: {target_view.status})")
        source, target = source_view.order, target_view.order
        assert source is not None and target is not None  # the workflow's status query always carries the order
        if source.customer_id != target.customer_id:
            raise ClientError(f"orders {order_id} and {into} belong to different customers; only one customer's orders merge")
        if source.address != target.address:
            raise ClientError(f"orders {order_id} and {into} ship to different addresses; change one first (orderops change-address)")
        lines: dict[tuple[str, object], int] = {}
        for item in target.items + source.items:
            lines[(item.sku, item.unit_price)] = lines.get((item.sku, item.unit_price), 0) + item.quantity
        items = [OrderItem(sku=sku, quantity=quantity, unit_price=price) for (sku, price), quantity in lines.items()]
        reason = reason or f"merged {order_id} into {into}"
        # The merged order ends first, giving its stock back before the kept order reserves the whole.
        merged = ReviewDecision(decision="merge", agent=agent, role=task.role, reason=f"{reason} (items moved to {into})", node=task.node)
        await self.decide(order_id, merged)
        try:
            edit = ReviewDecision(
                decision="edit",
                agent=agent,
                role=target_task.role,
                reason=f"{reason} (items of {order_id} added)",
                node=task.node,
                changes=OrderEdit(items=items),
            )
            await self.decide(into, edit)
        except ClientError as err:
            moved = ", ".join(f"{i.sku} x{i.quantity}" for i in source.items)
            raise ClientError(
                f"order {order_id} was merged, but adding its items to {into} failed ({err}); add {moved} to {into} with "
                f"`orderops review {into} --decision edit` when it waits for review again"
            ) from None
        return items

    # -- returns ----------------------------------------------------------------

    async def start_return(
        self,
        order_id: str,
        request: ReturnRequest,
        wanted: dict[str, int] | None,
        snapshot: DefinitionSnapshot,
        trusted_keys: dict[str, str] | None = None,
    ) -> tuple[Order, WorkflowHandle]:
        """A return or exchange: its own workflow (e.g. returns.yaml), linked to the original by id and request."""
        view = await self.status(order_id)
        delivery_nodes = set(await self._kpi_nodes(order_id, "delivery"))
        delivered = any(s.node in delivery_nodes and s.outcome == "completed" for s in view.steps)
        if view.order is None or not (delivered or view.status == "completed"):
            raise ClientError(f"order {order_id} is {view.status}; only a delivered order can be returned")
        original = view.order
        items = _return_items(wanted, original) if wanted else original.items
        variables = await self._outbound_rules(order_id, snapshot)
        variables["return_request"] = request.model_dump(mode="json")
        for number in range(1, MAX_RETURNS + 1):
            order = original.model_copy(update={"order_id": f"{original.order_id}-R{number}", "items": items, "paid": True})
            if not await self.submitted(order.order_id):
                return order, await self.start(order, snapshot, variables=variables, trusted_keys=trusted_keys)
        raise ClientError(f"order {order_id} already has {MAX_RETURNS} returns")

    async def _ran_under(self, order_id: str):
        history = await self.history(order_id)
        started = history.events[0].workflow_execution_started_event_attributes
        [original] = await self.temporal.data_converter.decode(started.input.payloads, [OrderInput])
        definition, _ = parse_for_run(original.definition.source)
        return definition

    async def _kpi_nodes(self, order_id: str, kind: str) -> list[str]:
        definition = await self._ran_under(order_id)
        return definition.kpi_nodes(kind) if definition else []

    async def _outbound_rules(self, order_id: str, snapshot: DefinitionSnapshot) -> dict:
        """The rules the original order ran under, so a replacement ships by them; the return process's own for what it lacked."""
        ran = await self._ran_under(order_id)
        ran_under = ran.variables if ran else {}
        own, _ = parse_for_run(snapshot.source)
        defaults = own.variables if own else {}
        return {name: ran_under.get(name) if ran_under.get(name) is not None else defaults.get(name) for name in OUTBOUND_RULES}

    # -- the warehouse ----------------------------------------------------------

    async def restock(self, store, sku: str, warehouse: str, quantity: int, bin: str | None = None) -> Restock:
        """Goods received against purchase requisitions: stock up, and wake the orders whose requisition they complete."""
        try:
            receipt = store.receive_stock(sku, warehouse, quantity, bin=bin)
        except KeyError as err:
            raise ClientError(err.args[0]) from None
        told: list[tuple[str, str | None]] = []
        for order_id in receipt.woken:
            try:
                event = self.signed(order_id, "event", ExternalEvent(name="restocked", data={"sku": sku, "warehouse": warehouse}))
                await self.handle(order_id).signal("event", event)
                told.append((order_id, None))
            except RPCError as err:
                told.append((order_id, err.message))
        return Restock(told, receipt.still_open)


def _return_items(wanted: dict[str, int], order: Order) -> list[OrderItem]:
    prices = {item.sku: item.unit_price for item in order.items}
    ordered = tally(order.items)
    for sku, count in wanted.items():
        if sku not in prices:
            raise InvalidRequest(f"{sku}: order {order.order_id} has no {sku!r} (it has {', '.join(prices)})")
        if count < 1:
            raise InvalidRequest(f"{sku}: quantity must be at least 1")
        if count > ordered[sku]:
            raise InvalidRequest(f"{sku}: order {order.order_id} has only {ordered[sku]} x {sku}")
    return [OrderItem(sku=sku, quantity=count, unit_price=prices[sku]) for sku, count in wanted.items()]
