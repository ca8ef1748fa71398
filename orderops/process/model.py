"""The process-definition language, version 1, as pydantic models.

These models are the single source of truth for the YAML format: the loader
validates against them, `orderops lint` reports their errors with line
numbers, and the workflow interpreter walks them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from orderops.durations import Duration
from orderops.promise import PromisePolicy

NodeId = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")]
VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Expression = Annotated[str, Field(min_length=1, description="A CEL expression")]

END_STATUSES = ("completed", "cancelled", "rejected", "failed")
EndStatus = Literal["completed", "cancelled", "rejected", "failed"]

# Temporal's task priority keys: 1 is served first. The embedded server (orderops/server.py
# PRIORITY_CONFIG) leaves `matching.priorityLevels` at Temporal's default of 5 levels.
PRIORITY_LEVELS = 5
PriorityKey = Annotated[
    int, Field(ge=1, le=PRIORITY_LEVELS, strict=True, description=f"A Temporal priority key, 1 (first) to {PRIORITY_LEVELS}")
]

# What a node's `kpi:` marks, and the one construct each may go on (orderops report reads them).
# A local activity runs inside the order's workflow task, which Temporal extends while it runs: it
# suits steps of a few seconds, so a local task's attempt may take a minute at most.
LOCAL_TASK_LIMIT = timedelta(minutes=1)

KPI_NODE_TYPES = {"review": "user_task", "shipment": "task", "delivery": "task"}
Kpi = Literal["review", "shipment", "delivery"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(Strict):
    maximum_attempts: int = Field(0, ge=0, description="0 means retry until a timeout stops it")
    initial_interval: Duration = timedelta(seconds=1)
    backoff: float = Field(2.0, ge=1.0)
    maximum_interval: Duration | None = None
    non_retryable: list[str] = Field(default_factory=list, description="Error types that fail at once")

    @model_validator(mode="after")
    def _intervals(self) -> RetryPolicy:
        if self.maximum_interval is not None and self.maximum_interval < self.initial_interval:
            raise ValueError("maximum_interval must not be shorter than initial_interval")
        return self


class Timeouts(Strict):
    start_to_close: Duration | None = None
    schedule_to_close: Duration | None = None
    heartbeat: Duration | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Timeouts:
        # Temporal needs one of the two to know when an attempt has run too long.
        if self.start_to_close is None and self.schedule_to_close is None:
            raise ValueError("needs start_to_close or schedule_to_close")
        return self


class NodeBase(Strict):
    id: NodeId
    description: str | None = None
    status: str | None = Field(None, description="Business status shown while the order is at this node")
    keep_status: bool = Field(False, description="The order's status stays as it was while at this node (e.g. one a task set)")

    @model_validator(mode="after")
    def _one_status(self):
        if self.keep_status and self.status is not None:
            raise ValueError("give either 'status' or 'keep_status', not both")
        return self


class Deadlined(Strict):
    """A node that must finish by a time computed from variables, e.g. `promise.ship_by`."""

    deadline: Expression | None = Field(None, description="CEL expression giving an ISO-8601 time with a UTC offset")
    on_breach: NodeId | None = Field(None, description="Where to go when the deadline passes first")


# Search attributes a task may set from its result, for `orderops list` filters.
SettableAttribute = Literal["PromiseAt", "ShipBy", "Region", "ServiceLevel"]


class TaskNode(Deadlined, NodeBase):
    """Runs an activity."""

    type: Literal["task"]
    activity: str
    kpi: Literal["shipment", "delivery"] | None = Field(
        None, description="shipment: the parcel left when this task completed; delivery: the order was delivered when it completed"
    )
    input: dict[str, Expression] | None = Field(None, description="Activity arguments: name -> CEL expression. Default: {order: order}")
    result: VarName | None = Field(None, description="Variable that receives the activity's result")
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts(start_to_close=timedelta(minutes=1))
    compensation: str | None = Field(None, description="Activity that undoes this task (saga)")
    search_attributes: dict[SettableAttribute, Expression] | None = Field(
        None, description="Search attributes set after the task completes: name -> CEL expression"
    )
    status_from: Expression | None = Field(
        None, description="After the task completes, the order's status becomes this expression's value (e.g. tracking.status)"
    )
    local: bool = Field(
        False,
        description="Run the activity as a local activity, in the worker running the order: no task-queue round trip and "
        "fewer history events, for quick steps (review rules, the promise, notices through the outbox); no heartbeat",
    )
    next: NodeId
    on_error: NodeId | None = Field(None, description="Where to go when the task fails for good")

    @model_validator(mode="after")
    def _quick_if_local(self) -> TaskNode:
        if not self.local:
            return self
        if self.timeouts.heartbeat is not None:
            raise ValueError("a local task cannot heartbeat: remove timeouts.heartbeat or set local: false")
        if self.timeouts.start_to_close is None or self.timeouts.start_to_close > LOCAL_TASK_LIMIT:
            raise ValueError("a local task needs timeouts.start_to_close of at most 1m: it runs inside the order's workflow task")
        # Longer waits between attempts become workflow timers, and a deadline's schedule-to-close is
        # then seen only when the next attempt starts; retrying without end keeps the workflow task
        # open, heartbeating history events, for as long as the step fails.
        if self.retry.maximum_interval is None or self.retry.maximum_interval > LOCAL_TASK_LIMIT:
            raise ValueError("a local task needs retry.maximum_interval of at most 1m: its attempts are retried in the worker")
        if self.retry.maximum_attempts == 0 and self.timeouts.schedule_to_close is None:
            raise ValueError("a local task must not retry without end: give retry.maximum_attempts or timeouts.schedule_to_close")
        return self


class Branch(Strict):
    when: Expression
    next: NodeId


class ExclusiveGateway(NodeBase):
    """The first branch whose condition holds is taken, else the default."""

    type: Literal["exclusive"]
    branches: list[Branch] = Field(min_length=1)
    default: NodeId = Field(description="Where to go when no branch's condition holds")


class ParallelGateway(NodeBase):
    """Each branch runs from its first node until it reaches `join`."""

    type: Literal["parallel"]
    branches: list[NodeId] = Field(min_length=2)
    join: NodeId
    on_error: NodeId | None = None


def _has_target(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("no_target", "has no target")
    return value


# An outcome's next node; `approve:` with nothing after it is an error of its own, not a type error.
OutcomeTarget = Annotated[NodeId, BeforeValidator(_has_target)]


class UserTask(Deadlined, NodeBase):
    """A human decision among declared outcomes."""

    type: Literal["user_task"]
    role: str
    kpi: Literal["review"] | None = Field(None, description="review: the order counts as manually reviewed when it reaches this task")
    outcomes: dict[str, OutcomeTarget] = Field(min_length=1)
    timeout: Duration
    on_timeout: NodeId
    details: Expression | None = Field(None, description="CEL expression shown to the person deciding")
    result: VarName | None = None


class Wait(Deadlined, NodeBase):
    """A timer: a fixed duration, or until a time computed from variables."""

    type: Literal["wait"]
    duration: Duration | None = None
    until: Expression | None = Field(None, description="CEL expression giving an ISO-8601 time")
    next: NodeId

    @model_validator(mode="after")
    def _one_of(self) -> Wait:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait needs exactly one of 'duration' or 'until'")
        return self


class Receive(Deadlined, NodeBase):
    """Waits for a named external event, or the first of several (its name is then in the result's `event`)."""

    type: Literal["receive"]
    event: VarName | Annotated[list[VarName], Field(min_length=1)]
    timeout: Duration
    on_timeout: NodeId
    result: VarName | None = None
    next: NodeId

    @property
    def events(self) -> list[str]:
        return [self.event] if isinstance(self.event, str) else list(self.event)


class End(NodeBase):
    type: Literal["end"]
    status: EndStatus
    reason: str | None = None


Node = Annotated[
    TaskNode | ExclusiveGateway | ParallelGateway | UserTask | Wait | Receive | End,
    Field(discriminator="type"),
]
NODE_TYPES = ("task", "exclusive", "parallel", "user_task", "wait", "receive", "end")


class PriorityRule(Strict):
    when: Expression = Field(description="CEL condition; the first rule that holds gives the key")
    key: PriorityKey


class PriorityPolicy(Strict):
    """The Temporal task priority of an order's activities: rules in order, first match wins."""

    rules: list[PriorityRule] = Field(default_factory=list)
    default: PriorityKey | None = Field(None, description="The key when no rule holds; omitted: Temporal's default")
    at_risk: PriorityKey = Field(1, description="The key of an order at risk of, or past, a deadline")


class ProcessDefinition(Strict):
    """An orderops process definition (docs/process-language.md)."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_\-]*$")]
    version: int = Field(ge=1)
    name: str | None = None
    description: str | None = None
    variables: dict[VarName, Any] = Field(default_factory=dict, description="Process variables and initial values")
    events: list[VarName] = Field(default_factory=list, description="Events accepted at any time besides those a receive waits for")
    promise_policy: PromisePolicy | str | None = Field(
        None, description="Delivery-promise policy, inline or the name of a YAML file beside this one"
    )
    address_changes_until: NodeId | None = Field(
        None, description="The `change_address` update is accepted until this node (e.g. the courier handoff) has started"
    )
    cancel_until: NodeId | None = Field(
        None, description="Cancellation is accepted until this node (e.g. the delivery record) has started; after it, a return"
    )
    priority: PriorityPolicy | None = Field(None, description="Task priority of the order's activities (Temporal priority keys)")
    at_risk_activity: str | None = Field(
        None, description='Activity called (input {order, kind: "at_risk", message}) when an order becomes at risk'
    )
    start: NodeId
    nodes: list[Node] = Field(min_length=1)

    def node_map(self) -> dict[str, Node]:
        return {node.id: node for node in self.nodes}

    def kpi_nodes(self, kind: str) -> list[str]:
        """Ids of the nodes marked `kpi: <kind>` (review, shipment, delivery), in the file's order."""
        return [node.id for node in self.nodes if getattr(node, "kpi", None) == kind]
