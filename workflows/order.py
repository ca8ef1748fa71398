"""OrderWorkflow: one order, walked through the process definition it started with.

The definition travels in the workflow input, so the history records exactly
what the order ran under and editing a YAML file never changes an order in
flight. The interpreter itself must stay deterministic: any change that alters
the commands it issues needs `workflow.patched` (docs/process-language.md).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args, overload

from temporalio import workflow
from temporalio.common import Priority, RawValue, RetryPolicy, SearchAttributeIndexedValueType
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError, RetryState, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    # cryptography loads parts of itself lazily (its exceptions, when a signature fails), and a Rust
    # extension cannot load twice: named here, they pass through any sandbox that imports this module.
    import cryptography.exceptions
    import cryptography.hazmat.bindings._rust  # noqa: F401
    from pydantic import BaseModel

    from orderops import search_attributes as sa
    from orderops.messages import (
        SENDER_FIELD,
        WAITING_MEMO,
        WORKFLOW_NAME,
        AddressChange,
        AddressChangeReceipt,
        CancelReceipt,
        CancelRequest,
        ClaimReceipt,
        ClaimRequest,
        DecisionRecord,
        EventRecord,
        ExternalEvent,
        OrderInput,
        OrderResult,
        OrderStatusView,
        PendingUserTask,
        ProcessRef,
        RefusedSignal,
        ReviewDecision,
        ReviewReceipt,
        StepRecord,
        WaitingTask,
        read_input,
        read_message,
    )
    from orderops.metrics import OrderMetrics
    from orderops.payloads import Refused
    from orderops.process.constructs import construct
    from orderops.process.cost import MAX_COST_NS
    from orderops.process.expressions import ExpressionError, evaluate
    from orderops.process.model import (
        Deadlined,
        End,
        ExclusiveGateway,
        Kpi,
        Node,
        ParallelGateway,
        Receive,
        TaskNode,
        UserTask,
        Wait,
    )
    from orderops.process.runtime import known_variables, parse_for_run
    from orderops.proof import Actor, Unproven, signature_digest, verify
    from orderops.report import MEMO_KEY, memo_entry

COMPENSATION_RETRY = RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(minutes=1))

# workflow.patched ids: each marks a change in the commands the interpreter issues, so orders
# started before it keep replaying the old way (docs/process-language.md).
SETTLE_CANCELLED_ACTIVITIES = "settle-cancelled-activities"
TASK_PRIORITIES = "task-priorities"
CLEAR_AT_RISK = "clear-at-risk"
CANCEL_BETWEEN_STEPS = "cancel-between-steps"
# The shop rules the interpreter once held, now read from the definition (priority, at_risk_activity,
# a user task's default status); orders started before keep the rules they ran under.
DEFINITION_RULES = "definition-rules"
# Expressions whose estimated cost over the order's data passes MAX_COST_NS fail their step instead
# of running for seconds inside a workflow task (orderops/process/cost.py), and a task whose input
# cannot be evaluated takes its on_error like a failed activity.
BOUNDED_EXPRESSIONS = "bounded-expressions"
# Engine 2: one marker stands for every change above, so an order started under it takes them all
# without a marker (and a TemporalChangeVersion upsert) each; its status is first published by its
# first node, not also as "accepted" just before.
ENGINE_2 = "engine-2"
ENGINE_2_INCLUDES = frozenset(
    {SETTLE_CANCELLED_ACTIVITIES, TASK_PRIORITIES, CLEAR_AT_RISK, CANCEL_BETWEEN_STEPS, DEFINITION_RULES, BOUNDED_EXPRESSIONS}
)
# The order's KPI facts written to its memo when it ends (orderops/report.py), so `orderops report`
# reads them from the visibility listing instead of fetching every order's result.
REPORT_FACTS = "report-facts"
# An order waiting at a user task writes what the console's inbox shows to its memo (WaitingTask).
INBOX_MEMO = "inbox-memo"
# Engine 3: engine 2 and the report facts, again under one marker for a new order.
ENGINE_3 = "engine-3"
ENGINE_INCLUDES = {2: ENGINE_2_INCLUDES, 3: ENGINE_2_INCLUDES | {ENGINE_2, REPORT_FACTS}}
DEFAULT_AT_RISK_FRACTION = 0.8

# The nodes that may carry a deadline (model.Deadlined).
DeadlinedNode = TaskNode | UserTask | Wait | Receive


@overload
def _limit(timeout: timedelta, deadline: datetime | None) -> tuple[timedelta, bool]: ...
@overload
def _limit(timeout: timedelta | None, deadline: datetime | None) -> tuple[timedelta | None, bool]: ...
def _limit(timeout: timedelta | None, deadline: datetime | None) -> tuple[timedelta | None, bool]:
    """The shorter of a node's own timeout and the time left to its deadline; True if the deadline is shorter."""
    if deadline is None:
        return timeout, False
    left = deadline - workflow.now()
    if timeout is None or left < timeout:
        return left, True
    return timeout, False


def _failure(cause: BaseException) -> tuple[str, str]:
    """(type, message) of an activity's final failure, as the `error` variable shows them."""
    if isinstance(cause, ActivityTimeout):
        return "Timeout", f"{cause.type.name.lower()} timeout" if cause.type else "timeout"
    message = getattr(cause, "message", None) or str(cause)
    error_type = getattr(cause, "type", None)
    return (error_type if isinstance(error_type, str) and error_type else type(cause).__name__), message


def _retrieve(tasks: list[asyncio.Task]) -> None:
    """Mark every finished task's exception as seen; the caller reports the one that matters."""
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


class ProcessFailure(Exception):
    """A step failed for good and the definition gives it nowhere to go."""

    def __init__(self, node: str, message: str):
        super().__init__(message)
        self.node = node


@dataclass
class Compensation:
    node: str
    activity: str
    args: dict


# Signals refused beyond these are counted, not kept: a flood of bad signals must not grow the order's state.
KEPT_REFUSED_SIGNALS = 20
# A claimed user task is its holder's for this long, unless they release it (orderops console).
CLAIM_TTL = timedelta(minutes=15)


# Dynamic: the workflow, its signals and its updates take raw payloads and read them themselves
# (orderops.messages), because the SDK's own decoding errors fail the workflow task, over and over,
# instead of refusing the one bad input. The workflow type is still OrderWorkflow (checked below).
@workflow.defn(dynamic=True)
class OrderWorkflow:
    @workflow.init
    def __init__(self, args: Sequence[RawValue]) -> None:
        self._refused_input: str | None = None
        self._refused_signals: list[RefusedSignal] = []
        self._refused_signal_count = 0
        self._trusted_keys: dict[str, str] = {}
        self._signatures: set[str] = set()  # of the proven messages taken: none is taken twice
        try:
            if workflow.info().workflow_type != WORKFLOW_NAME:
                raise Refused(f"this worker runs {WORKFLOW_NAME} workflows, not {workflow.info().workflow_type[:60]!r}")
            inp = read_input([arg.payload for arg in args])
        except Refused as err:
            self._refused_input = str(err)
            return
        self._setup(inp)

    def _setup(self, inp: OrderInput) -> None:
        snapshot = inp.definition
        self._process = ProcessRef.of(snapshot)
        # The fixed runtime checks, not lint: a new lint rule must never change how an order replays.
        self._definition, problems = parse_for_run(snapshot.source)
        self._problems = [p.format(snapshot.path) for p in problems]
        self._nodes = self._definition.node_map() if self._definition else {}
        self._order = inp.order
        self._trusted_keys = inp.trusted_keys
        accepted_at = workflow.info().start_time.isoformat()
        self._vars: dict[str, Any] = {
            "order": inp.order.as_variable(),
            "error": None,
            "accepted_at": accepted_at,
            "now": accepted_at,
            "received_events": [],
            "promise_policy": snapshot.promise_policy,
        }
        if self._definition:
            # The definition is shared by every order that runs it (parse_for_run's cache): its values are copied.
            self._vars.update(copy.deepcopy(self._definition.variables))
            self._vars.update(inp.variables)
            # Every result variable exists from the start, so `x == null` works before it is set.
            for name in known_variables(self._definition):
                self._vars.setdefault(name, None)
        self._status = "accepted"
        self._current: list[str] = []
        self._steps: list[StepRecord] = []
        self._pending: dict[str, PendingUserTask] = {}
        self._answers: dict[str, ReviewDecision] = {}
        self._decisions: list[DecisionRecord] = []
        self._events: list[EventRecord] = []
        self._waiting_events: list[str] = []
        self._compensations: list[Compensation] = []
        self._cancel: CancelRequest | None = None
        self._finished = False
        self._end_reason: str | None = None
        self._activity_seq = 0
        self._published: tuple[str, str] | None = None
        self._engine: int | None = None
        self._at_risk: dict[str, Any] | None = None  # the step the order is at risk at now, if any
        self._at_risk_log: list[dict[str, Any]] = []
        self._breaches: list[dict[str, Any]] = []
        self._breached: set[str] = set()
        self._notices: list[asyncio.Task] = []
        self._metrics: OrderMetrics | None = None  # made in run: a workflow's meter is not there before

    # -- the story: set up, walk the definition, settle the outcome --------

    @workflow.run
    async def run(self, args: Sequence[RawValue]) -> OrderResult:
        if self._refused_input is not None:
            raise ApplicationError(self._refused_input, type="InvalidInput", non_retryable=True)
        if self._definition is None:
            raise ApplicationError("invalid process definition: " + "; ".join(self._problems), type="InvalidDefinition", non_retryable=True)
        if not self._has(ENGINE_2):
            self._publish()
        self._metrics = OrderMetrics(self._definition.id)
        self._metrics.started()
        status, end_node, reason = await self._walk_until_end_or_cancel()
        self._finished = True
        if self._notices:
            await workflow.wait(self._notices)
        if status != "completed":
            await self._compensate()
        self._status, self._end_reason = status, reason
        self._current = []
        self._publish(step=end_node or "")
        workflow.logger.info("order ended", extra={"status": status, "node": end_node})
        self._metrics.ended(status)
        result = OrderResult(
            order_id=self._order.order_id,
            status=status,
            end_node=end_node,
            reason=reason,
            process=self._process,
            steps=self._steps,
            decisions=self._decisions,
            at_risk=self._at_risk_log,
            breaches=self._breaches,
            variables={k: v for k, v in self._vars.items() if k not in ("promise_policy", "now")},
            order=self._order,
            events=EventRecord.latest(self._events),
            event_count=len(self._events),
            kpi_nodes={kind: self._definition.kpi_nodes(kind) for kind in get_args(Kpi)} if self._definition else None,
            refused_signals=self._refused_signals,
            refused_signal_count=self._refused_signal_count,
        )
        if self._has(REPORT_FACTS):
            workflow.upsert_memo({MEMO_KEY: memo_entry(result, workflow.info().start_time)})
        return result

    async def _walk_until_end_or_cancel(self) -> tuple[str, str | None, str | None]:
        assert self._definition is not None  # run() has already failed the order otherwise
        flow = asyncio.create_task(self._walk(self._definition.start, join=None))
        cancel_requested = asyncio.create_task(workflow.wait_condition(lambda: self._cancel is not None))
        try:
            await workflow.wait([flow, cancel_requested], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # `temporal workflow cancel` takes the same path as `orderops cancel`.
            self._cancel = self._cancel or CancelRequest(reason="workflow cancellation requested", by="temporal")
        if not flow.done():
            flow.cancel()
            try:  # noqa: SIM105 -- workflow code: type-level changes only, old histories replay against it
                await flow
            except (asyncio.CancelledError, ActivityError, CancelledError, ProcessFailure):
                pass
            for step in self._steps:
                if step.outcome == "running":  # interrupted where it stood (a user task, a receive, a wait)
                    self._finish(step, "cancelled")
            # The flow is still running only because cancel_requested finished, or because the
            # workflow itself was cancelled and the handler above set the request.
            assert self._cancel is not None
            return "cancelled", None, f"cancelled by {self._cancel.by}: {self._cancel.reason}"
        cancel_requested.cancel()
        try:
            end = flow.result()
        except ProcessFailure as failure:
            return "failed", failure.node, str(failure)
        assert end is not None  # with join=None the walk returns only at an end node
        return end.status, end.id, end.reason

    async def _walk(self, start: str, join: str | None) -> End | None:
        """Follow transitions from `start` until an end node, or until `join` for a parallel branch."""
        node_id = start
        while node_id != join:
            if self._cancel is not None and self._has(CANCEL_BETWEEN_STEPS):
                # The cancellation reached a step that finished anyway (an activity that completed
                # instead of stopping): take no further step, or the order would wait forever.
                raise asyncio.CancelledError()
            node = self._nodes[node_id]
            if isinstance(node, End):
                return node
            self._enter(node)
            try:
                # Every command this node issues carries its id, so the Web UI groups them by step.
                with workflow.create_event_group(node.id, label=f"{node.type} {node.id}").scope():
                    node_id = await self._step(node)
            # CancelledError: a local activity's cancellation, which comes without an ActivityError around it.
            except (ProcessFailure, ActivityError, CancelledError, asyncio.CancelledError):
                raise
            except Exception as err:
                # A definition can fail at run time in ways lint cannot see (a value of the wrong
                # type, a missing key): fail the order visibly rather than retry a task forever.
                workflow.logger.exception("step failed unexpectedly", extra={"node": node.id})
                raise ProcessFailure(node.id, f"step {node.id!r} failed: {type(err).__name__}: {err}") from None
            finally:
                self._leave(node)
        return None

    async def _step(self, node: Node) -> str:
        # A deadline is enforced until it is first missed; after that the order is already late
        # and the remaining steps run to finish it, not to breach again.
        deadline = None if getattr(node, "deadline", None) in self._breached else self._deadline_of(node)
        if deadline is None:
            return await self._dispatch(node, None)
        assert isinstance(node, Deadlined)  # only a deadlined node has a deadline expression
        if workflow.now() >= deadline:
            return self._breach(node, deadline, self._record(node))
        watcher = asyncio.create_task(self._watch_at_risk(node, deadline))
        try:
            return await self._dispatch(node, deadline)
        finally:
            watcher.cancel()
            if self._at_risk is not None and self._at_risk["node"] == node.id and self._has(CLEAR_AT_RISK):
                # The step is over, in time or breached: the order is no longer at risk for it.
                self._at_risk = None
                workflow.upsert_search_attributes([sa.AT_RISK.value_set(False)])

    async def _dispatch(self, node: Node, deadline: datetime | None) -> str:
        # One method per construct of the language (orderops/process/constructs.py); an end never gets here.
        runners: dict[str, Callable[[Any, datetime | None], Awaitable[str]]] = {
            "task": self._run_task,
            "exclusive": self._choose_branch,
            "parallel": self._run_parallel,
            "user_task": self._await_decision,
            "wait": self._wait,
            "receive": self._receive,
        }
        return await runners[node.type](node, deadline)

    # -- constructs ---------------------------------------------------------

    async def _run_task(self, node: TaskNode, deadline: datetime | None) -> str:
        try:
            args = self._evaluate_mapping(node, node.input or {"order": "order"})
        except ProcessFailure as failure:
            if not (node.on_error and self._has(BOUNDED_EXPRESSIONS)):
                raise
            self._finish(self._record(node, activity=node.activity), "failed", str(failure))
            self._vars["error"] = {"node": node.id, "type": "ExpressionError", "message": str(failure)}
            return node.on_error
        schedule_to_close, deadline_binds = _limit(node.timeouts.schedule_to_close, deadline)
        step = self._record(node, activity=node.activity)
        self._activity_seq += 1
        settle = self._has(SETTLE_CANCELLED_ACTIVITIES)
        compensation = Compensation(node.id, node.compensation, {**args, "result": None}) if node.compensation else None
        if compensation and settle:
            # Registered before the activity runs: an order cancelled while the activity is in
            # flight may still see its effect land, and the (idempotent) undo must follow it.
            self._compensations.append(compensation)
        retry = node.retry
        options: dict[str, Any] = {
            "activity_id": f"{node.id}-{self._activity_seq}",
            "summary": node.id,
            "start_to_close_timeout": node.timeouts.start_to_close,
            "schedule_to_close_timeout": schedule_to_close,
            "retry_policy": RetryPolicy(
                initial_interval=retry.initial_interval,
                backoff_coefficient=retry.backoff,
                maximum_interval=retry.maximum_interval,
                maximum_attempts=retry.maximum_attempts,
                non_retryable_error_types=retry.non_retryable or None,
            ),
            # Compensation must not start before the activity has really stopped.
            "cancellation_type": ActivityCancellationType.WAIT_CANCELLATION_COMPLETED if settle else ActivityCancellationType.TRY_CANCEL,
            "result_type": dict,
        }
        try:
            if node.local:
                envelope = await workflow.execute_local_activity(node.activity, args, **options)
            else:
                envelope = await workflow.execute_activity(
                    node.activity, args, heartbeat_timeout=node.timeouts.heartbeat, priority=self._priority(), **options
                )
        except asyncio.CancelledError:
            self._finish(step, "cancelled")
            raise
        except FailureError as err:
            # A regular activity's failure comes as an ActivityError around its cause; a local
            # activity's final failure can come bare (its ApplicationError, TimeoutError or CancelledError).
            cause, retry_state = (err.cause, err.retry_state) if isinstance(err, ActivityError) else (err, None)
            if isinstance(cause, CancelledError):
                # A sibling branch failed or the order is being cancelled: not this step's failure.
                self._finish(step, "cancelled")
                raise
            if compensation and settle:
                self._compensations.remove(compensation)  # activities are transactional: a failed one changed nothing
            # The deadline cut the attempts short: either schedule-to-close ran out, or Temporal saw
            # that the next retry would start after it and gave up with the last error.
            if deadline_binds and (
                (isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_CLOSE) or retry_state == RetryState.TIMEOUT
            ):
                assert deadline is not None  # _limit binds only to a deadline
                return self._breach(node, deadline, step)
            error_type, message = _failure(cause or err)
            self._finish(step, "failed", f"{error_type}: {message}")
            self._vars["error"] = {"node": node.id, "type": error_type, "message": message}
            if node.on_error:
                return node.on_error
            raise ProcessFailure(node.id, f"step {node.id!r} failed: {error_type}: {message}") from None
        step.attempt = envelope.get("attempt")
        self._finish(step, "completed")
        if node.result:
            self._vars[node.result] = envelope.get("result")
        if node.search_attributes:
            self._set_attributes(node)
        if node.status_from:
            self._status = str(self._evaluate(node, node.status_from))
            self._publish()
        if compensation:
            compensation.args["result"] = envelope.get("result")
            if not settle:
                self._compensations.append(compensation)
        return node.next

    async def _choose_branch(self, node: ExclusiveGateway, deadline: datetime | None) -> str:
        step = self._record(node)
        for index, branch in enumerate(node.branches):
            try:
                taken = self._condition(node, branch.when)
            except ProcessFailure as failure:
                self._finish(step, "failed", str(failure))
                raise
            if taken:
                self._finish(step, "completed", f"branch {index + 1}: {branch.when}")
                return branch.next
        self._finish(step, "completed", "default")
        assert node.default is not None  # lint rejects an exclusive gateway without a default
        return node.default

    async def _run_parallel(self, node: ParallelGateway, deadline: datetime | None) -> str:
        step = self._record(node)
        branches = [asyncio.create_task(self._walk(start, join=node.join)) for start in node.branches]
        try:
            await workflow.wait(branches, return_when=asyncio.FIRST_EXCEPTION)
        except asyncio.CancelledError:
            if self._has(SETTLE_CANCELLED_ACTIVITIES):
                # The order is being cancelled: stop every branch, and let their activities settle.
                for branch in branches:
                    branch.cancel()
                await workflow.wait(branches)
                _retrieve(branches)
            self._finish(step, "cancelled")
            raise
        failed = next((b for b in branches if b.done() and not b.cancelled() and b.exception()), None)
        if failed is None:
            self._finish(step, "completed")
            return node.join
        for sibling in branches:
            sibling.cancel()
        await workflow.wait(branches)
        _retrieve(branches)
        failure = failed.exception()
        assert failure is not None  # `failed` was picked for having an exception
        self._finish(step, "failed", str(failure))
        if node.on_error and isinstance(failure, ProcessFailure):
            return node.on_error
        raise failure

    async def _await_decision(self, node: UserTask, deadline: datetime | None) -> str:
        step = self._record(node)
        now = workflow.now()
        timeout, deadline_binds = _limit(node.timeout, deadline)
        pending = self._pending[node.id] = PendingUserTask(
            node=node.id,
            role=node.role,
            outcomes=list(node.outcomes),
            since=now,
            deadline=now + timeout,
            details=self._evaluate(node, node.details) if node.details else None,
        )
        self._publish()
        in_memo = self._has(INBOX_MEMO)
        if in_memo:
            workflow.upsert_memo({WAITING_MEMO + node.id: WaitingTask.of(pending, self._order).model_dump(mode="json")})
        try:
            await workflow.wait_condition(
                lambda: node.id in self._answers, timeout=timeout, timeout_summary=f"{node.id}: decision deadline"
            )
            timed_out = False
        except TimeoutError:
            timed_out = True
        finally:
            self._pending.pop(node.id, None)
        # Not in `finally`: a cancelled order leaves the task behind anyway, and an evicted one must issue nothing.
        if in_memo:
            workflow.upsert_memo({WAITING_MEMO + node.id: None})
        if timed_out:
            if deadline_binds:
                assert deadline is not None  # _limit binds only to a deadline
                return self._breach(node, deadline, step)
            self._finish(step, "timed_out", f"no decision within {node.timeout}")
            return node.on_timeout
        decision = self._answers.pop(node.id)
        if decision.changes is not None:
            self._order = decision.changes.apply(self._order)
            self._vars["order"] = self._order.as_variable()
        if node.result:
            self._vars[node.result] = {"decision": decision.decision, "agent": decision.agent, "reason": decision.reason}
        self._finish(step, "completed", f"{decision.decision} by {decision.agent}")
        if self._metrics is not None:
            self._metrics.decision(node.id, decision.decision)
        target = node.outcomes[decision.decision]
        assert target is not None  # lint rejects an outcome without a target
        return target

    async def _wait(self, node: Wait, deadline: datetime | None) -> str:
        step = self._record(node)
        if node.duration is not None:
            delay = node.duration
        else:
            assert node.until is not None  # a wait has exactly one of duration and until (model validator)
            delay = max(self._time(node, node.until, "'until'") - workflow.now(), timedelta(0))
        limited, deadline_binds = _limit(delay, deadline)
        await workflow.sleep(limited, summary=f"{node.id}: wait")
        if deadline_binds:
            assert deadline is not None  # _limit binds only to a deadline
            return self._breach(node, deadline, step)
        self._finish(step, "completed", f"waited {delay}")
        return node.next

    async def _receive(self, node: Receive, deadline: datetime | None) -> str:
        step = self._record(node)
        names = node.events
        self._waiting_events.extend(names)
        self._publish()
        timeout, deadline_binds = _limit(node.timeout, deadline)
        until = workflow.now() + timeout
        try:
            while True:
                try:
                    await workflow.wait_condition(
                        lambda: self._unconsumed(*names) is not None,
                        timeout=until - workflow.now(),
                        timeout_summary=f"{node.id}: {' | '.join(names)} deadline",
                    )
                except TimeoutError:
                    if deadline_binds:
                        assert deadline is not None  # _limit binds only to a deadline
                        return self._breach(node, deadline, step)
                    self._finish(step, "timed_out", f"no {' or '.join(repr(n) for n in names)} event within {node.timeout}")
                    return node.on_timeout
                event = self._unconsumed(*names)
                # Another branch waiting for the same event may have taken it in the same activation.
                if event is not None:
                    break
        finally:
            for name in names:
                self._waiting_events.remove(name)
        event.consumed_by = node.id
        if node.result:
            # When the event reached the order travels with its data: a sign-off's time, for instance.
            # `seq` tells apart events that reached the order in the same instant (one workflow task).
            self._vars[node.result] = {**event.data, "received_at": event.received_at.isoformat(), "seq": self._events.index(event)}
            if isinstance(node.event, list):
                self._vars[node.result]["event"] = event.name
        self._finish(step, "completed", f"event {event.name!r} received")
        return node.next

    async def _compensate(self) -> None:
        """Undo completed steps in reverse order (saga); one failing undo does not stop the rest."""
        while self._compensations:
            comp = self._compensations[-1]
            step = StepRecord(node=comp.node, type="compensation", activity=comp.activity, started_at=workflow.now())
            self._steps.append(step)
            self._activity_seq += 1
            try:
                envelope = await workflow.execute_activity(
                    comp.activity,
                    comp.args,
                    activity_id=f"undo-{comp.node}-{self._activity_seq}",
                    summary=f"undo {comp.node}",
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=COMPENSATION_RETRY,
                    result_type=dict,
                )
            except (asyncio.CancelledError, ActivityError) as err:
                interrupted = isinstance(err, asyncio.CancelledError) or isinstance(err.cause, CancelledError)
                if interrupted:
                    # A `temporal workflow cancel` now must not leave the undo half done: run it again.
                    self._finish(step, "interrupted", "cancellation requested during compensation; undo repeated")
                    continue
                assert isinstance(err, ActivityError)  # a CancelledError is `interrupted`
                self._compensations.pop()
                self._finish(step, "failed", str(err.cause or err))
                continue
            self._compensations.pop()
            step.attempt = envelope.get("attempt")
            self._finish(step, "completed")

    # -- handlers: support agents and external systems ------------------------

    # One dynamic handler for signals and one for updates, each over a table of names: every message
    # is read by orderops.messages.read_message first, so no payload can fail a workflow task.

    @workflow.signal(dynamic=True)
    def _on_signal(self, name: str, args: Sequence[RawValue]) -> None:
        if self._refused_input is not None:
            return  # the order fails in this very task; there is nothing to take a signal into
        takers: dict[str, Callable[[Any, Actor | None], None]] = {"event": self._take_event, "review": self._take_signalled_decision}
        try:
            message = read_message("signal", name, [arg.payload for arg in args])
            actor = self._proven(name, message)
            takers[name](message, actor)
        except Refused as err:
            self._refuse_signal(name, str(err))

    @workflow.update(dynamic=True)
    def _on_update(self, name: str, args: Sequence[RawValue]) -> BaseModel:
        _, take = self._update_handlers()[name]
        request = self._read_update(name, args)
        try:
            actor = self._proven(name, request)
        except Unproven as err:
            # Accepted by the validator so that it shows: the order keeps it among the refused, its sender gets the reason.
            self._refuse_signal(name, str(err))
            raise ApplicationError(str(err), type="Unproven", non_retryable=True) from None
        return take(request, actor)

    @_on_update.validator
    def _validate_update(self, name: str, args: Sequence[RawValue]) -> None:
        request = self._read_update(name, args)
        try:
            self._proven(name, request)
        except Unproven:
            return  # refused by the handler, where it is recorded
        check, _ = self._update_handlers()[name]
        check(request)

    def _update_handlers(self) -> dict[str, tuple[Callable[[Any], None], Callable[[Any, Actor | None], BaseModel]]]:
        """Each update's check (its validator: a ValueError refuses it, in one line) and what it does."""
        return {
            "review": (self._check_decision, lambda decision, actor: self._accept_decision(decision, "update", actor)),
            "change_address": (self._check_address_change, self._change_address),
            "cancel": (self._check_cancel, self._take_cancel),
            "claim": (self._check_claim, self._take_claim),
            "release": (self._check_release, self._take_release),
        }

    def _read_update(self, name: str, args: Sequence[RawValue]) -> Any:
        if self._refused_input is not None:
            raise Refused(f"this order did not start: {self._refused_input}")
        return read_message("update", name, [arg.payload for arg in args])

    def _proven(self, name: str, message: Any) -> Actor | None:
        """Who sent the message, as its proof shows; None for an order that trusts no keys (started without them)."""
        if not self._trusted_keys:
            return None
        proof = message.proof
        actor = verify(proof, workflow.info().workflow_id, name, message, self._trusted_keys, workflow.now())
        if signature_digest(proof) in self._signatures:
            raise Unproven(f"{name} was taken once already with this very signature; a new one needs a new signature")
        claimed = SENDER_FIELD.get(name)
        if claimed and getattr(message, claimed) != actor.id:
            raise Unproven(f"{name} names {getattr(message, claimed)!r} as its sender but is signed for {actor.id!r}")
        if name in ("review", "claim", "release") and message.role not in actor.roles:
            raise Unproven(f"{actor.id} does not hold the role {message.role!r} (their roles: {', '.join(actor.roles) or 'none'})")
        return actor

    def _refuse_signal(self, name: str, reason: str) -> None:
        workflow.logger.warning("signal refused", extra={"signal": name[:60], "reason": reason})
        self._refused_signal_count += 1
        refused = RefusedSignal(name=name[:60], reason=reason, received_at=workflow.now())
        self._refused_signals = [*self._refused_signals, refused][-KEPT_REFUSED_SIGNALS:]

    def _take_event(self, event: ExternalEvent, actor: Actor | None = None) -> None:
        self._took(event)
        self._events.append(EventRecord(name=event.name, data=event.data, received_at=workflow.now(), sent_by=actor.id if actor else None))
        self._vars["received_events"] = [*self._vars["received_events"], event.name]

    def _took(self, message: Any) -> None:
        """A proven message is taken: its signature is spent."""
        if self._trusted_keys and message.proof is not None:
            self._signatures.add(signature_digest(message.proof))

    def _take_signalled_decision(self, decision: ReviewDecision, actor: Actor | None) -> None:
        try:
            self._check_decision(decision)
        except ValueError as err:
            raise Refused(str(err)) from None
        self._accept_decision(decision, "signal", actor)

    def _change_address(self, change: AddressChange, actor: Actor | None) -> AddressChangeReceipt:
        self._took(change)
        self._order = self._order.model_copy(update={"address": change.address})
        self._vars["order"] = self._order.as_variable()
        data = {"address": change.address.model_dump(), "by": change.by, "reason": change.reason}
        self._take_event(ExternalEvent(name="address_changed", data=data))
        return AddressChangeReceipt(order_id=self._order.order_id, address=change.address, at=workflow.now())

    def _check_address_change(self, change: AddressChange) -> None:
        order_id, until = self._order.order_id, self._definition.address_changes_until if self._definition else None
        if self._finished or self._cancel is not None:
            raise ValueError(f"order {order_id} has ended or is being cancelled ({self._status}); the address cannot change")
        if until is None:
            raise ValueError(f"process {self._process.id!r} takes no address changes")
        reached = next((s for s in self._steps if s.node == until), None)
        if reached is not None:
            raise ValueError(
                f"order {order_id} reached {until!r} at {reached.started_at.isoformat(timespec='seconds')}: the parcel is with the "
                "carrier, so the address can no longer change; ask the carrier to redirect it"
            )

    def _open_task(self, node: str) -> PendingUserTask:
        task = self._pending.get(node)
        if task is None or node in self._answers:
            raise ValueError(f"order {self._order.order_id} is not awaiting a decision at {node!r} (status: {self._status})")
        return task

    def _held_by_another(self, task: PendingUserTask, agent: str) -> str | None:
        """Why `agent` may not decide or claim the task while another holds it; None when they may."""
        if task.claimed_by in (None, agent) or task.claimed_until is None or task.claimed_until <= workflow.now():
            return None
        until = task.claimed_until.strftime("%H:%M UTC")
        return f"{task.node!r} is claimed by {task.claimed_by} until {until}; only they decide it until they release it or the claim ends"

    def _check_claim(self, request: ClaimRequest) -> None:
        task = self._open_task(request.node)
        if request.role != task.role:
            raise ValueError(f"{task.node!r} is for role {task.role!r}, not {request.role!r}")
        held = self._held_by_another(task, request.agent)
        if held:
            raise ValueError(held)

    def _take_claim(self, request: ClaimRequest, actor: Actor | None) -> ClaimReceipt:
        self._took(request)
        until = workflow.now() + CLAIM_TTL
        self._pending[request.node] = self._pending[request.node].model_copy(update={"claimed_by": request.agent, "claimed_until": until})
        return ClaimReceipt(order_id=self._order.order_id, node=request.node, claimed_by=request.agent, until=until)

    def _check_release(self, request: ClaimRequest) -> None:
        task = self._open_task(request.node)
        if task.claimed_by != request.agent:
            raise ValueError(f"{task.node!r} is not claimed by {request.agent} (claimed by: {task.claimed_by or 'nobody'})")

    def _take_release(self, request: ClaimRequest, actor: Actor | None) -> ClaimReceipt:
        self._took(request)
        self._pending[request.node] = self._pending[request.node].model_copy(update={"claimed_by": None, "claimed_until": None})
        return ClaimReceipt(order_id=self._order.order_id, node=request.node, claimed_by=None, until=None)

    def _take_cancel(self, request: CancelRequest, actor: Actor | None) -> CancelReceipt:
        self._took(request)
        self._cancel = request
        return CancelReceipt(order_id=self._order.order_id, cancelled_at_nodes=list(self._current), at=workflow.now())

    def _check_cancel(self, request: CancelRequest) -> None:
        if self._finished:
            raise ValueError(f"order {self._order.order_id} already ended ({self._status}); nothing to cancel")
        if self._cancel is not None:
            raise ValueError(f"order {self._order.order_id} is already being cancelled")
        until = self._definition.cancel_until if self._definition else None
        reached = next((s for s in self._steps if s.node == until), None) if until else None
        if reached is not None:
            raise ValueError(
                f"order {self._order.order_id} passed {until!r} at {reached.started_at.isoformat(timespec='seconds')}, after which "
                f"process {self._process.id!r} takes no cancellation; a delivered order is returned instead (orderops return)"
            )

    @workflow.query(name="status")
    def status(self) -> OrderStatusView:
        return OrderStatusView(
            order_id=self._order.order_id,
            status=self._status,
            current_nodes=list(self._current),
            process=self._process,
            steps=self._steps,
            pending_user_tasks=list(self._pending.values()),
            waiting_for_events=list(self._waiting_events),
            accepted_events=sorted(
                {e for n in self._nodes.values() if isinstance(n, Receive) for e in n.events}
                | set(self._definition.events if self._definition else [])
            ),
            decisions=self._decisions,
            events=EventRecord.latest(self._events),
            event_count=len(self._events),
            end_reason=self._end_reason,
            promise=self._vars.get("promise"),
            at_risk=self._at_risk,
            at_risk_log=self._at_risk_log,
            breaches=self._breaches,
            order=self._order,
            variables={k: v for k, v in self._vars.items() if k not in ("promise_policy", "now")},
            refused_signals=self._refused_signals,
            refused_signal_count=self._refused_signal_count,
        )

    def _check_decision(self, decision: ReviewDecision) -> None:
        order_id = self._order.order_id
        if self._cancel is not None:
            raise ValueError(f"order {order_id} is being cancelled; no decision is taken")
        open_tasks = [t for t in self._pending.values() if t.node not in self._answers]
        if decision.node:
            open_tasks = [t for t in open_tasks if t.node == decision.node]
        if not open_tasks:
            where = f" at {decision.node!r}" if decision.node else ""
            raise ValueError(f"order {order_id} is not awaiting a decision{where} (status: {self._status})")
        if len(open_tasks) > 1:
            raise ValueError(f"order {order_id} awaits several decisions; name one with node: {[t.node for t in open_tasks]}")
        task = open_tasks[0]
        if decision.decision not in task.outcomes:
            raise ValueError(f"{decision.decision!r} is not an outcome of {task.node!r}; allowed: {', '.join(task.outcomes)}")
        if decision.role != task.role:
            raise ValueError(f"{task.node!r} must be decided by role {task.role!r}, not {decision.role!r}")
        held = self._held_by_another(task, decision.agent)
        if held:
            raise ValueError(held)
        if decision.changes is not None and decision.decision != "edit":
            raise ValueError("order changes are accepted only with the 'edit' decision")

    def _accept_decision(self, decision: ReviewDecision, via: str, actor: Actor | None) -> ReviewReceipt:
        task = next(t for t in self._pending.values() if t.node not in self._answers and decision.node in (None, t.node))
        self._took(decision)
        self._answers[task.node] = decision
        now = workflow.now()
        proven = {"proven_by": decision.proof.key_id, "roles": actor.roles} if actor and decision.proof else {}
        self._decisions.append(DecisionRecord(node=task.node, at=now, via=via, **DecisionRecord.fields_of(decision), **proven))
        node = self._nodes[task.node]
        assert isinstance(node, UserTask)  # only user tasks are pending
        next_node = node.outcomes[decision.decision]
        assert next_node is not None  # lint rejects an outcome without a target
        return ReviewReceipt(
            order_id=self._order.order_id, node=task.node, decision=decision.decision, agent=decision.agent, next=next_node, at=now
        )

    # -- deadlines: the promise is the clock every step runs against -------------

    def _deadline_of(self, node: Node) -> datetime | None:
        expression = getattr(node, "deadline", None)
        return self._time(node, expression, "deadline") if expression else None

    def _time(self, node: Node, expression: str, what: str) -> datetime:
        """A point in time from a CEL expression; it must carry a UTC offset to mean one instant."""
        value = self._evaluate(node, expression)
        try:
            when = datetime.fromisoformat(str(value))
        except ValueError:
            raise ProcessFailure(node.id, f"step {node.id!r}: {what} gave {value!r}, not an ISO-8601 time") from None
        if when.tzinfo is None:
            raise ProcessFailure(node.id, f"step {node.id!r}: {what} gave {value!r} without a UTC offset")
        return when

    def _at_risk_fraction(self) -> float:
        promise = self._vars.get("promise") or {}
        policy = self._vars.get("promise_policy") or {}
        return float(promise.get("at_risk_fraction") or policy.get("at_risk_fraction") or DEFAULT_AT_RISK_FRACTION)

    async def _watch_at_risk(self, node: DeadlinedNode, deadline: datetime) -> None:
        """Mark the order at risk once most of the window to this node's deadline has gone."""
        accepted = workflow.info().start_time
        fraction = self._at_risk_fraction()
        at = accepted + (deadline - accepted) * fraction
        if workflow.now() < at:
            await workflow.sleep(at - workflow.now(), summary=f"{node.id}: at risk after {fraction:.0%} of the window")
        if self._at_risk is None and node.deadline not in self._breached:
            self._at_risk = {"node": node.id, "deadline": deadline.isoformat(), "at": workflow.now().isoformat()}
            self._at_risk_log.append(self._at_risk)
            workflow.upsert_search_attributes([sa.AT_RISK.value_set(True)])
            if self._metrics is not None:
                self._metrics.at_risk(node.id)
            message = f"order {self._order.order_id} is at risk at {node.id}: deadline {deadline.isoformat()}"
            activity = self._definition.at_risk_activity if self._definition and self._has(DEFINITION_RULES) else "notify_ops"
            if activity:
                self._notices.append(asyncio.create_task(self._notify_ops(activity, "at_risk", message)))

    async def _notify_ops(self, activity: str, kind: str, message: str) -> None:
        self._activity_seq += 1
        try:
            await workflow.execute_activity(
                activity,
                {"order": self._vars["order"], "kind": kind, "message": message},
                activity_id=f"notice-{kind}-{self._activity_seq}",
                summary=f"ops notice: {kind}",
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=COMPENSATION_RETRY,
                priority=self._priority(),
                result_type=dict,
            )
        except ActivityError as err:
            workflow.logger.warning("ops notice failed: %s", err.cause or err)

    def _breach(self, node: DeadlinedNode, deadline: datetime, step: StepRecord) -> str:
        """The deadline passed first: record it, mark the order, take the node's breach path."""
        assert node.deadline is not None  # `deadline` was computed from it
        self._finish(step, "breached", f"deadline {deadline.isoformat()} passed")
        self._breached.add(node.deadline)
        self._breaches.append(
            {"node": node.id, "deadline": deadline.isoformat(), "expression": node.deadline, "at": workflow.now().isoformat()}
        )
        workflow.upsert_search_attributes([sa.BREACHED.value_set(True)])
        self._vars["error"] = {"node": node.id, "type": "DeadlineBreached", "message": f"deadline {node.deadline} passed"}
        target = node.on_breach or construct(node).breach_path(node)
        if target is None:
            raise ProcessFailure(node.id, f"step {node.id!r} missed its deadline {deadline.isoformat()}")
        return target

    def _priority(self) -> Priority:
        """The definition's priority key for the order's next task, so urgent orders jump the queue under backlog."""
        if not self._has(TASK_PRIORITIES):
            return Priority()
        if not self._has(DEFINITION_RULES):
            return self._priority_before_definition_rules()
        assert self._definition is not None  # the order runs only once its definition has been read
        policy = self._definition.priority
        if policy is None:
            return Priority()
        if self._at_risk is not None or self._breaches:
            return Priority(priority_key=policy.at_risk)
        for rule in policy.rules:
            try:
                matched = evaluate(rule.when, self._vars, self._cost_budget()) is True
            except ExpressionError as err:
                # A rule that cannot be read must not stop the order: it just does not move it up.
                workflow.logger.warning("priority rule %r not applied: %s", rule.when, err)
                continue
            if matched:
                return Priority(priority_key=rule.key)
        return Priority(priority_key=policy.default) if policy.default is not None else Priority()

    def _priority_before_definition_rules(self) -> Priority:
        """The rule orders started before DEFINITION_RULES run under: at risk, then urgent and express."""
        order = self._vars["order"]
        if self._at_risk is not None or self._breaches:
            return Priority(priority_key=1)
        # The service actually promised: a same-day order outside its area was promised as standard.
        service = (self._vars.get("promise") or {}).get("service_level") or order.get("service_level")
        if order.get("order_type") == "urgent" or service in ("express", "same_day"):
            return Priority(priority_key=2)
        return Priority(priority_key=3)

    def _set_attributes(self, node: TaskNode) -> None:
        updates = []
        assert node.search_attributes is not None  # called only for a task that sets some
        for name, expression in node.search_attributes.items():
            key = sa.SETTABLE[name]
            value = self._evaluate(node, expression)
            if key.indexed_value_type == SearchAttributeIndexedValueType.DATETIME:
                value = datetime.fromisoformat(str(value))
            updates.append(key.value_set(value))
        workflow.upsert_search_attributes(updates)

    # -- bookkeeping ------------------------------------------------------------

    def _unconsumed(self, *names: str) -> EventRecord | None:
        return next((e for e in self._events if e.name in names and e.consumed_by is None), None)

    def _enter(self, node: Node) -> None:
        self._current.append(node.id)
        if node.keep_status:
            pass
        elif node.status:
            self._status = node.status
        elif isinstance(node, UserTask) and not self._has(DEFINITION_RULES):
            self._status = "awaiting_review"
        else:
            self._status = construct(node).waiting_status(node)
        self._publish()

    def _leave(self, node: Node) -> None:
        self._current.remove(node.id)

    def _has(self, change: str) -> bool:
        """Whether this order runs with an interpreter change: by its engine's one marker if that includes it, else by its own."""
        if self._engine is None:
            self._engine = 3 if workflow.patched(ENGINE_3) else 2 if workflow.patched(ENGINE_2) else 1
        if change in ENGINE_INCLUDES.get(self._engine, ()):
            return True
        return workflow.patched(change)

    def _publish(self, step: str | None = None) -> None:
        """Mirror status and current step into search attributes for `orderops list`."""
        current = step if step is not None else "+".join(self._current)
        if self._published == (self._status, current):
            return
        self._published = (self._status, current)
        workflow.upsert_search_attributes([sa.ORDER_STATUS.value_set(self._status), sa.CURRENT_STEP.value_set(current)])

    def _record(self, node: Node, activity: str | None = None) -> StepRecord:
        step = StepRecord(node=node.id, type=node.type, activity=activity, started_at=workflow.now())
        self._steps.append(step)
        return step

    def _finish(self, step: StepRecord, outcome: str, detail: str | None = None) -> None:
        step.ended_at = workflow.now()
        step.outcome = outcome
        step.detail = detail
        if self._metrics is not None:
            self._metrics.step(step.node, outcome, step.ended_at - step.started_at)

    def _evaluate(self, node: Node, expression: str) -> Any:
        self._vars["now"] = workflow.now().isoformat()
        try:
            return evaluate(expression, self._vars, self._cost_budget())
        except ExpressionError as err:
            raise ProcessFailure(node.id, f"step {node.id!r}: {err}") from None

    def _cost_budget(self) -> int | None:
        return MAX_COST_NS if self._has(BOUNDED_EXPRESSIONS) else None

    def _condition(self, node: Node, expression: str) -> bool:
        value = self._evaluate(node, expression)
        if not isinstance(value, bool):
            raise ProcessFailure(node.id, f"step {node.id!r}: condition {expression!r} gave {value!r}, not true/false")
        return value

    def _evaluate_mapping(self, node: TaskNode, mapping: dict[str, str]) -> dict[str, Any]:
        return {name: self._evaluate(node, expression) for name, expression in mapping.items()}
