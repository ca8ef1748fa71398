"""The console's JSON API under /api, for tools and service accounts: the same rules as the pages.

A caller proves who they are with `Authorization: Bearer <token>`: a token `POST /api/tokens` gave
a person for their password (what `orderops login` keeps), or a service account's. Every decision
is signed for that person, so the order checks their roles and claims itself. The schema is at
/api/openapi.json.
"""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError

from orderops.client import OrderClient
from orderops.client.errors import ClientError
from orderops.client.remote import Cancel, Claim, Credentials, Decide, Delivered, Merge, MoveDelivery, OrderId, SendEvent, Token
from orderops.console.errors import first_error
from orderops.console.inbox import Filters, TaskKind, inbox
from orderops.messages import (
    AddressChange,
    AddressChangeReceipt,
    CancelReceipt,
    CancelRequest,
    ClaimReceipt,
    DecisionRecord,
    ExternalEvent,
    PendingUserTask,
    ReviewDecision,
    ReviewReceipt,
    StepRecord,
    WaitingTask,
)
from orderops.order import OrderItem
from orderops.people import People, Person, SignInRefused

# Who may change an order outside its user tasks (a user task's own role is checked by the order).
ACTS: dict[str, frozenset[str]] = {
    "event": frozenset({"ops"}),
    "cancel": frozenset({"support_agent", "support_supervisor", "ops"}),
    "change_address": frozenset({"support_agent", "support_supervisor", "ops"}),
}


class InboxRow(BaseModel):
    order_id: str
    node: str
    role: str
    process: str
    region: str
    service: str
    promise_at: datetime | None
    at_risk: bool
    breached: bool
    waiting: WaitingTask | None = Field(description="Since when, decide by, finding codes, amount, the customer masked")


class InboxPage(BaseModel):
    rows: list[InboxRow]
    next: str | None = Field(description="The next page's URL; None on the last")


class TaskView(BaseModel):
    """An order as a person deciding it sees it: no name, phone or address."""

    order_id: str
    status: str
    pending_user_tasks: list[PendingUserTask]
    steps: list[StepRecord]
    decisions: list[DecisionRecord]


def api_router(orders: OrderClient, people: People, tasks: dict[tuple[str, str], TaskKind]) -> APIRouter:
    router = APIRouter(prefix="/api")

    def caller(request: Request) -> Person:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        person = people.holder(token) if scheme.lower() == "bearer" and token else None
        if person is None:
            raise HTTPException(401, "no valid token: send Authorization: Bearer <token> (POST /api/tokens, or orderops login)")
        return person

    Caller = Annotated[Person, Depends(caller)]

    def acting(person: Person) -> OrderClient:
        return orders.acting_as(person.actor("api"))

    async def task_of(order_id: str, node: str | None, person: Person) -> PendingUserTask:
        """The user task named, or the only one open (of the caller's roles, when several are)."""
        try:
            view = await orders.status(order_id)
        except ClientError as err:
            raise HTTPException(404, str(err)) from None
        if node is None:
            open_tasks = view.pending_user_tasks
            if len(open_tasks) > 1:
                open_tasks = [t for t in open_tasks if person.holds(t.role)] or open_tasks
            if len(open_tasks) == 1:
                return open_tasks[0]
            if not open_tasks:
                raise HTTPException(409, f"order {order_id} waits for no decision (status: {view.status})")
            raise HTTPException(409, f"order {order_id} waits at {', '.join(t.node for t in open_tasks)}: name one as node")
        task = next((t for t in view.pending_user_tasks if t.node == node), None)
        if task is None:
            raise HTTPException(409, f"order {order_id} does not wait at {node!r} (status: {view.status})")
        return task

    def allowed(person: Person, act: str) -> OrderClient:
        if not set(person.roles) & ACTS[act]:
            raise HTTPException(403, f"{act.replace('_', ' ')} is for the roles {', '.join(sorted(ACTS[act]))}; {person.id} holds none")
        return acting(person)

    def refused(err: Exception) -> HTTPException:
        if isinstance(err, ValidationError):
            return HTTPException(400, first_error(err))
        return HTTPException(409, str(err))

    @router.post("/tokens", status_code=201)
    async def token(credentials: Credentials) -> Token:
        """A token for a person's password (the lockout applies), lasting 7 days."""
        try:
            person = people.authenticate(credentials.person_id, credentials.password)
        except SignInRefused as err:
            raise HTTPException(401, str(err)) from None
        return Token(token=people.issue_token(person.id, "cli"), person=person, expires_in_s=7 * 24 * 3600)

    @router.delete("/tokens", status_code=204)
    async def revoke(request: Request, person: Caller) -> None:
        """End the caller's own token (`orderops logout`)."""
        people.revoke(request.headers["authorization"].partition(" ")[2])

    @router.get("/inbox")
    async def api_inbox(person: Caller, filters: Annotated[Filters, Query()]) -> InboxPage:
        """A page of the orders waiting at a user task of the caller's roles; `next` asks for the following one."""
        try:
            waiting, following = await inbox(orders, tasks, person, filters)
        except ClientError as err:
            raise HTTPException(400, str(err)) from None
        rows = [
            InboxRow(
                order_id=w.order.order_id,
                node=w.task.node,
                role=w.task.role,
                process=w.order.process,
                region=w.order.region,
                service=w.order.service,
                promise_at=w.order.promise_at,
                at_risk=w.order.at_risk,
                breached=w.order.breached,
                waiting=w.memo,
            )
            for w in waiting
        ]
        return InboxPage(rows=rows, next=f"/api/inbox?{filters.next(following)}" if following else None)

    @router.get("/orders/{order_id}")
    async def order(order_id: OrderId, person: Caller) -> TaskView:
        try:
            view = await orders.status(order_id)
        except ClientError as err:
            raise HTTPException(404, str(err)) from None
        return TaskView(
            order_id=view.order_id,
            status=view.status,
            pending_user_tasks=view.pending_user_tasks,
            steps=view.steps,
            decisions=view.decisions,
        )

    @router.post("/orders/{order_id}/review")
    async def review(order_id: OrderId, body: Decide, person: Caller) -> ReviewReceipt:
        """Decide a user task; the order checks the outcome, the caller's role and anyone's claim."""
        task = await task_of(order_id, body.node, person)
        try:
            decision = ReviewDecision(
                decision=body.decision, agent=person.id, role=task.role, reason=body.reason, node=task.node, changes=body.changes
            )
            return await acting(person).decide(order_id, decision)
        except (ClientError, ValidationError) as err:
            raise refused(err) from None

    @router.post("/orders/{order_id}/merge")
    async def merge(order_id: OrderId, body: Merge, person: Caller) -> list[OrderItem]:
        """At a merge decision: end this order and move its items into another of the same customer's."""
        try:
            return await acting(person).merge(order_id, body.into, person.id, body.reason)
        except ClientError as err:
            raise refused(err) from None

    @router.post("/orders/{order_id}/events")
    async def event(order_id: OrderId, body: SendEvent, person: Caller) -> Delivered:
        """An event an operator reports by hand (ops); the event sources' own door is /hooks."""
        try:
            delivery = await allowed(person, "event").send_event(order_id, ExternalEvent(name=body.name, data=body.data))
        except ClientError as err:
            raise refused(err) from None
        return Delivered(event=delivery.name, outcome=delivery.outcome)

    @router.post("/orders/{order_id}/cancel")
    async def cancel(order_id: OrderId, body: Cancel, person: Caller) -> CancelReceipt:
        try:
            return await allowed(person, "cancel").cancel(order_id, CancelRequest(reason=body.reason, by=person.id))
        except (ClientError, ValidationError) as err:
            raise refused(err) from None

    @router.post("/orders/{order_id}/address")
    async def change_address(order_id: OrderId, body: MoveDelivery, person: Caller) -> AddressChangeReceipt:
        """Move the delivery before the courier's handoff."""
        try:
            change = AddressChange(address=body.address, by=person.id, reason=body.reason)
            return await allowed(person, "change_address").change_address(order_id, change)
        except (ClientError, ValidationError) as err:
            raise refused(err) from None

    async def hold(order_id: str, body: Claim, person: Person, action: Literal["claim", "release"]) -> ClaimReceipt:
        task = await task_of(order_id, body.node, person)
        acting_client = acting(person)
        try:
            return await (acting_client.claim if action == "claim" else acting_client.release)(order_id, body.node, task.role)
        except ClientError as err:
            raise refused(err) from None

    @router.post("/orders/{order_id}/claim")
    async def claim(order_id: OrderId, body: Claim, person: Caller) -> ClaimReceipt:
        return await hold(order_id, body, person, "claim")

    @router.post("/orders/{order_id}/release")
    async def release(order_id: OrderId, body: Claim, person: Caller) -> ClaimReceipt:
        return await hold(order_id, body, person, "release")

    return router
