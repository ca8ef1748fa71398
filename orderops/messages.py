"""Every payload that crosses the workflow boundary: input, result, queries, updates, signals."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from orderops.limits import plain_line, plain_text
from orderops.order import Address, Order, OrderEdit, mask_name, mask_phone
from orderops.payloads import MAX_INPUT_BYTES, Refused, read_payload
from orderops.process.load import DefinitionSnapshot
from orderops.proof import Proof

TASK_QUEUE = "orderops"
WORKFLOW_NAME = "OrderWorkflow"


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


Name = Annotated[str, Field(max_length=200), AfterValidator(plain_line), AfterValidator(_not_blank)]
Reason = Annotated[str, Field(max_length=2000), AfterValidator(plain_text)]
Label = Annotated[str, Field(max_length=200), AfterValidator(plain_line)]


def _deliverable(address: Address) -> Address:
    blank = [name for name in ("province", "city", "street") if not getattr(address, name).strip()]
    if blank:
        raise ValueError(f"{', '.join(blank)} must not be blank")
    if address.postcode and not re.fullmatch(r"[0-9]{6}", address.postcode):
        raise ValueError(f"postcode {address.postcode!r} is not 6 digits")
    return address


DeliverableAddress = Annotated[Address, AfterValidator(_deliverable)]


class OrderInput(BaseModel):
    order: Order
    definition: DefinitionSnapshot
    variables: dict[str, Any] = Field(default_factory=dict, description="Initial values over the definition's, e.g. a return's request")
    trusted_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Public keys (id: base64) whose signatures prove who sent a message (orderops/proof.py); none: nothing is checked",
    )


class ReviewDecision(BaseModel):
    """Payload of the `review` update and of the `review` signal."""

    model_config = ConfigDict(extra="forbid")

    decision: Name = Field(description="One of the user task's outcomes, e.g. approve, edit, reject")
    agent: Name = Field(description="Who decided")
    role: Label = Field("support_agent", description="Must match the user task's role")
    reason: Reason = ""
    node: Label | None = Field(None, description="The user task to decide; needed only when several are open")
    changes: OrderEdit | None = Field(None, description="With the edit outcome: the corrected order fields")
    proof: Proof | None = Field(None, description="Who decided, signed (orderops/proof.py); the agent must be its actor")


class ClaimRequest(BaseModel):
    """Payload of the `claim` and `release` updates: a person takes a user task to decide it, or gives it back."""

    model_config = ConfigDict(extra="forbid")

    node: Label = Field(description="The user task")
    agent: Name = Field(description="Who claims it; with a proof, its actor")
    role: Label = Field(description="The role they claim it in: the user task's")
    proof: Proof | None = Field(None, description="Who asked, signed (orderops/proof.py)")


class ClaimReceipt(BaseModel):
    order_id: str
    node: str
    claimed_by: str | None
    until: datetime | None


class ReviewReceipt(BaseModel):
    order_id: str
    node: str
    decision: str
    agent: str
    next: str
    at: datetime


class ExternalEvent(BaseModel):
    """Payload of the `event` signal, consumed by `receive` nodes."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    data: dict[str, Any] = Field(default_factory=dict)
    proof: Proof | None = Field(None, description="Who sent it, signed (orderops/proof.py)")


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Name
    by: Label = "support"
    proof: Proof | None = Field(None, description="Who asked, signed (orderops/proof.py); `by` must be its actor")


class AddressChange(BaseModel):
    """Payload of the `change_address` update: the customer moved the delivery before handoff."""

    model_config = ConfigDict(extra="forbid")

    address: DeliverableAddress
    by: Name = Field(description="Who asked: the customer, or the agent on their behalf")
    reason: Reason = ""
    proof: Proof | None = Field(None, description="Who asked, signed (orderops/proof.py); `by` must be its actor")


class AddressChangeReceipt(BaseModel):
    order_id: str
    address: Address
    at: datetime


class CancelReceipt(BaseModel):
    order_id: str
    cancelled_at_nodes: list[str]
    at: datetime


class StepRecord(BaseModel):
    node: str
    type: str
    started_at: datetime
    ended_at: datetime | None = None
    activity: str | None = None
    attempt: int | None = None
    outcome: str = "running"
    detail: str | None = None


class DecisionRecord(BaseModel):
    node: str
    decision: str
    agent: str
    role: str
    reason: str
    at: datetime
    via: str
    changes: dict[str, Any] | None = None
    proven_by: str | None = Field(None, description="The key whose signature proved the agent; None for an order that checks none")
    roles: list[str] | None = Field(None, description="The roles the signer vouched the agent holds")

    @staticmethod
    def fields_of(decision: ReviewDecision) -> dict[str, Any]:
        """What a decision record keeps of the decision itself (the rest: where, when, how it came)."""
        return {
            "decision": decision.decision,
            "agent": decision.agent,
            "role": decision.role,
            "reason": decision.reason,
            "changes": decision.changes.model_dump(exclude_none=True, mode="json") if decision.changes else None,
        }


# A status or result carries the latest events, each with its data up to this size; the rest are
# counted. Each event may be 64 KiB, and a query's answer must stay well under gRPC's 4 MB (and a
# result under the server's 2 MB blob limit) however many are sent (docs/limits.md).
SHOWN_EVENTS = 50
SHOWN_EVENT_DATA_BYTES = 1024


class EventRecord(BaseModel):
    name: str
    data: dict[str, Any]
    received_at: datetime
    consumed_by: str | None = None
    sent_by: str | None = Field(None, description="Who sent it, as its proof shows; None when the order checks none")

    def shown(self) -> EventRecord:
        """This event as a status or result shows it: data larger than SHOWN_EVENT_DATA_BYTES is summarised."""
        size = len(json.dumps(self.data, ensure_ascii=False, default=str).encode())
        if size <= SHOWN_EVENT_DATA_BYTES:
            return self
        return self.model_copy(update={"data": {"not_shown": f"{size:,} bytes of data; the order's history holds them"}})

    @staticmethod
    def latest(events: Sequence[EventRecord]) -> list[EventRecord]:
        return [event.shown() for event in events[-SHOWN_EVENTS:]]


class RefusedSignal(BaseModel):
    """A signal (or an update without a valid proof) the order did not take, and why: a signal cannot be
    refused to its sender, and a forged update should show, so both are kept here."""

    name: str
    reason: str
    received_at: datetime


class PendingUserTask(BaseModel):
    node: str
    role: str
    outcomes: list[str]
    since: datetime
    deadline: datetime
    details: Any = None
    claimed_by: str | None = Field(None, description="Who holds it (orderops console's claim); nobody else decides it until")
    claimed_until: datetime | None = None


# An order waiting at a user task says so in its memo, under this prefix and the node's id, for the
# console's inbox to show without asking each order (no personal data: the customer is masked).
WAITING_MEMO = "waiting:"


class WaitingTask(BaseModel):
    node: str
    role: str
    since: datetime
    deadline: datetime
    codes: list[str] = Field(description="The codes of the task's findings, e.g. phone_invalid")
    amount: str
    customer: str = Field(description="Masked, e.g. L* W*")
    phone: str = Field(description="Masked, e.g. 138****5678")

    @classmethod
    def of(cls, task: PendingUserTask, order: Order) -> WaitingTask:
        findings = task.details if isinstance(task.details, list) else []
        return cls(
            node=task.node,
            role=task.role,
            since=task.since,
            deadline=task.deadline,
            codes=[str(f["code"]) for f in findings if isinstance(f, dict) and "code" in f][:20],
            amount=str(order.amount),
            customer=mask_name(order.customer_name),
            phone=mask_phone(order.phone),
        )


class ProcessRef(BaseModel):
    id: str
    version: int
    sha256: str
    path: str
    promise_policy_sha256: str | None = None

    @classmethod
    def of(cls, snapshot: DefinitionSnapshot) -> ProcessRef:
        return cls(
            id=snapshot.id,
            version=snapshot.version,
            sha256=snapshot.sha256,
            path=snapshot.path,
            promise_policy_sha256=snapshot.promise_policy_sha256,
        )


class OrderStatusView(BaseModel):
    order_id: str
    status: str
    current_nodes: list[str]
    process: ProcessRef
    steps: list[StepRecord]
    pending_user_tasks: list[PendingUserTask]
    waiting_for_events: list[str]
    accepted_events: list[str]
    decisions: list[DecisionRecord]
    events: list[EventRecord] = Field(description="The latest events (SHOWN_EVENTS), large data summarised")
    event_count: int = Field(0, description="Every event the order took, shown or not")
    end_reason: str | None = None
    promise: dict[str, Any] | None = None
    at_risk: dict[str, Any] | None = None
    at_risk_log: list[dict[str, Any]] = []
    breaches: list[dict[str, Any]] = []
    order: Order | None = Field(None, description="The order as it stands now, after edits and address changes")
    variables: dict[str, Any] = Field(default_factory=dict, description="The process variables now: step results such as the booking")
    refused_signals: list[RefusedSignal] = Field(default=[], description="The latest signals the order did not take")
    refused_signal_count: int = 0


class OrderResult(BaseModel):
    order_id: str
    status: str
    end_node: str | None
    reason: str | None
    process: ProcessRef
    steps: list[StepRecord]
    decisions: list[DecisionRecord]
    # Results written before at-risk was a log held one entry or none: read them as a log.
    at_risk: Annotated[list[dict[str, Any]], BeforeValidator(lambda v: [] if v is None else [v] if isinstance(v, dict) else v)] = Field(
        default=[], description="Each time the order went at risk, and at which step"
    )
    breaches: list[dict[str, Any]] = []
    variables: dict[str, Any] = {}
    # Results written before these were kept lack them: a finished order's status reads them from here.
    order: Order | None = Field(None, description="The order as it ended, after edits and address changes")
    events: list[EventRecord] = Field(default=[], description="The latest events (SHOWN_EVENTS), large data summarised")
    # Results written before events were bounded lack it: every event they took is in `events`.
    event_count: int | None = None
    kpi_nodes: dict[str, list[str]] | None = Field(None, description="The definition's nodes marked kpi: review, shipment, delivery")
    refused_signals: list[RefusedSignal] = []
    refused_signal_count: int = 0


# What an order takes from outside, by name: the workflow and the audit timeline read each message
# against this table, so they agree on what was refused and why.
# The field in which a message names its sender: with a proof, it must be the signer's actor (orderops/proof.py).
SENDER_FIELD = {"review": "agent", "cancel": "by", "change_address": "by", "claim": "agent", "release": "agent"}
SIGNALS: dict[str, type[BaseModel]] = {"event": ExternalEvent, "review": ReviewDecision}
UPDATES: dict[str, type[BaseModel]] = {
    "review": ReviewDecision,
    "change_address": AddressChange,
    "cancel": CancelRequest,
    "claim": ClaimRequest,
    "release": ClaimRequest,
}


def read_message(kind: Literal["signal", "update"], name: str, payloads: Sequence[Any]) -> BaseModel:
    """The payload of a signal or update named `name`; `Refused`, in one line, if the order does not take it."""
    table = SIGNALS if kind == "signal" else UPDATES
    model = table.get(name)
    if model is None:
        raise Refused(f"unknown {kind} {name[:60]!r}; an order takes {', '.join(table)}")
    return read_payload(payloads, model, f"the {name} {kind}")


def read_input(payloads: Sequence[Any]) -> OrderInput:
    return read_payload(payloads, OrderInput, "the workflow input", limit=MAX_INPUT_BYTES)
