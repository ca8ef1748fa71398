"""An order's timeline, read from its Temporal event history and nothing else.

The history is the authoritative record: the definition the order ran under is
in the start event's input, every node entered is in a search-attribute update,
every activity, timer, signal and update is an event. This module turns those
events into what an auditor asks: what ran, under which definition, when, how
often, and who decided.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import decode_typed_search_attributes

from orderops import search_attributes as sa
from orderops.codec import CodecError, EncryptionCodec, decrypted, default_codec
from orderops.messages import (
    CancelRequest,
    DecisionRecord,
    ExternalEvent,
    OrderInput,
    OrderResult,
    ProcessRef,
    ReviewDecision,
    read_message,
)
from orderops.order import workflow_id
from orderops.payloads import Refused
from orderops.process.load import load_text

CONVERTER = pydantic_data_converter.payload_converter
# The marker Temporal's Core SDK records for each local activity result (there are no activity-task events).
LOCAL_ACTIVITY_MARKER = "core_local_activity"


class NodeVisit(BaseModel):
    node: str
    type: str
    entered_at: datetime
    left_at: datetime | None = None
    event_id: int


class ActivityRun(BaseModel):
    node: str
    activity: str
    compensation: bool
    scheduled_at: datetime
    started_at: datetime | None = None
    closed_at: datetime | None = None
    attempts: int = 0
    outcome: str = "scheduled"
    failure: str | None = None
    last_retried_failure: str | None = None
    retry_delays_s: list[float] = Field(default=[], description="Waits between attempts as the retry policy sets them")
    waited_s: float | None = Field(None, description="Observed: from scheduling to the start of the last attempt")
    scheduled_event_id: int
    local: bool = Field(False, description="Ran as a local activity: its times are those of the workflow task that recorded it")


class DecisionEntry(DecisionRecord):
    # A signalled decision whose user task the history does not name. Deliberately wider than the
    # base field: an entry is never used where a DecisionRecord is expected.
    node: str | None  # type: ignore[assignment]
    accepted: bool | None = Field(description="None: a signal whose fate the history does not show yet")
    event_id: int


class EventEntry(BaseModel):
    name: str
    at: datetime
    summary: str
    event_id: int


class TimerEntry(BaseModel):
    node: str | None
    purpose: str
    duration_s: float
    started_at: datetime
    due_at: datetime
    outcome: str = "pending"
    closed_at: datetime | None = None
    event_id: int


class CancellationEntry(BaseModel):
    by: str
    reason: str
    via: str = Field(description="update: `orderops cancel`; workflow_cancel: `temporal workflow cancel`")
    at: datetime
    event_id: int


class Timeline(BaseModel):
    workflow_id: str
    order_id: str
    process: ProcessRef
    definition_source: str = Field(exclude=True, repr=False)
    started_at: datetime
    closed_at: datetime | None
    workflow_status: str
    status: str
    end_node: str | None
    reason: str | None
    nodes: list[NodeVisit]
    activities: list[ActivityRun]
    decisions: list[DecisionEntry]
    events: list[EventEntry]
    timers: list[TimerEntry]
    cancellations: list[CancellationEntry]
    promise: dict[str, Any] | None = None
    at_risk_at: datetime | None = None
    breached_at: datetime | None = None

    def visited(self) -> list[str]:
        return list(dict.fromkeys(v.node for v in self.nodes))

    def current(self) -> list[str]:
        return [v.node for v in self.nodes if v.left_at is None] if self.closed_at is None else []

    def node_at_event(self, event_id: int) -> str | None:
        """The node the order was at when event `event_id` was written."""
        node = None
        for visit in self.nodes:
            if visit.event_id <= event_id:
                node = visit.node
        for run in self.activities:
            if run.scheduled_event_id == event_id:
                return run.node
        return node


class HistoryError(ValueError):
    pass


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime().replace(tzinfo=UTC)


def _decode(payloads, type_hint) -> Any:
    if not payloads:
        return None
    try:
        return CONVERTER.from_payloads(payloads, [type_hint])[0]
    except (ValidationError, ValueError, TypeError):
        return CONVERTER.from_payloads(payloads, [Any])[0]


def _summary(data: Any, limit: int = 120) -> str:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _failure_text(failure) -> str:
    kind = failure.application_failure_info.type if failure.HasField("application_failure_info") else ""
    message = failure.message
    while failure.HasField("cause") and failure.message in ("Activity task failed", "Activity task timed out", ""):
        failure = failure.cause
        message = failure.message or message
    return f"{kind}: {message}" if kind else message


def _retry_delays(policy, attempts: int) -> list[float]:
    """The waits before attempts 2..n, as Temporal computes them from the retry policy."""
    initial = policy.initial_interval.ToTimedelta().total_seconds() or 1.0
    backoff = policy.backoff_coefficient or 2.0
    maximum = policy.maximum_interval.ToTimedelta().total_seconds() or initial * 100
    return [round(min(initial * backoff**k, maximum), 3) for k in range(max(attempts - 1, 0))]


class _Builder:
    def __init__(self, history: WorkflowHistory):
        self.history = history
        self.node_types: dict[str, str] = {}
        self.visits: list[NodeVisit] = []
        self.current: list[str] = []
        self.activities: dict[int, ActivityRun] = {}
        self.local_runs: dict[str, ActivityRun] = {}  # by activity id: a local activity retried after a backoff keeps its run
        self.policies: dict[int, Any] = {}
        self.timers: dict[str, TimerEntry] = {}
        self.decisions: list[DecisionEntry] = []
        self.updates: dict[str, DecisionEntry] = {}
        self.events: list[EventEntry] = []
        self.cancellations: list[CancellationEntry] = []
        self.order_input: OrderInput | None = None
        self.result: OrderResult | None = None
        self.workflow_status = "running"
        self.order_status = "accepted"
        self.promise: dict | None = None
        self.at_risk_at: datetime | None = None
        self.breached_at: datetime | None = None
        self.failure: str | None = None
        self.started_at: datetime | None = None
        self.closed_at: datetime | None = None

    def build(self) -> Timeline:
        for event in self.history.events:
            try:
                self._on(event)
            except KeyError as err:
                raise HistoryError(
                    f"{self.history.workflow_id}: malformed history: event {event.event_id} refers to event {err} that is not in it"
                ) from None
        if self.order_input is None:
            raise HistoryError(f"{self.history.workflow_id}: the history has no start event with an order input")
        snapshot = self.order_input.definition
        assert self.started_at is not None  # set by the start event, with the order input
        result = self.result
        self._settle_signalled_decisions()
        self._end_tasks_at_their_activities()
        if result is not None:
            status = result.status
        elif self.workflow_status == "running":
            status = self.order_status
        else:
            status = "failed" if self.workflow_status in ("failed", "terminated", "timed_out") else self.workflow_status
        return Timeline(
            # A file from `temporal workflow show` does not name its workflow; the order id does.
            workflow_id=workflow_id(self.order_input.order.order_id),
            order_id=self.order_input.order.order_id,
            process=ProcessRef.of(snapshot),
            definition_source=snapshot.source,
            started_at=self.started_at,
            closed_at=self.closed_at,
            workflow_status=self.workflow_status,
            status=status,
            end_node=result.end_node if result else None,
            reason=result.reason if result else self.failure,
            nodes=self.visits,
            activities=sorted(self.activities.values(), key=lambda a: a.scheduled_event_id),
            decisions=self.decisions,
            events=self.events,
            timers=list(self.timers.values()),
            cancellations=self.cancellations,
            promise=self.promise,
            at_risk_at=self.at_risk_at,
            breached_at=self.breached_at,
        )

    def _on(self, event: HistoryEvent) -> None:
        kind = event.event_type
        at = _time(event)
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            self.started_at = at
            started = event.workflow_execution_started_event_attributes
            self.order_input = _decode(started.input.payloads, OrderInput)
            if not isinstance(self.order_input, OrderInput):
                raise HistoryError(f"{self.history.workflow_id}: the start event's input is not an order (is this an orderops history?)")
            definition, _, _ = load_text(self.order_input.definition.source)
            self.node_types = {n.id: n.type for n in definition.nodes} if definition else {}
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            self._on_step(event, at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = event.activity_task_scheduled_event_attributes
            compensation = scheduled.activity_id.startswith("undo-")
            node = scheduled.activity_id.removeprefix("undo-").rsplit("-", 1)[0]
            self.activities[event.event_id] = ActivityRun(
                node=node,
                activity=scheduled.activity_type.name,
                compensation=compensation,
                scheduled_at=at,
                scheduled_event_id=event.event_id,
            )
            self.policies[event.event_id] = scheduled.retry_policy
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED and event.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER:
            self._on_local_activity(event, at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempt = event.activity_task_started_event_attributes
            run = self.activities[attempt.scheduled_event_id]
            run.started_at, run.attempts, run.outcome = at, attempt.attempt, "started"
            if attempt.HasField("last_failure"):
                run.last_retried_failure = _failure_text(attempt.last_failure)
            run.retry_delays_s = _retry_delays(self.policies[attempt.scheduled_event_id], attempt.attempt)
            run.waited_s = round((at - run.scheduled_at).total_seconds(), 3)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            completed = event.activity_task_completed_event_attributes
            self._close_activity(completed.scheduled_event_id, at, "completed")
            self._read_promise(self.activities[completed.scheduled_event_id], completed.result.payloads)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
            failed = event.activity_task_failed_event_attributes
            self._close_activity(failed.scheduled_event_id, at, "failed", _failure_text(failed.failure))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            timed_out = event.activity_task_timed_out_event_attributes
            self._close_activity(timed_out.scheduled_event_id, at, "timed_out", _failure_text(timed_out.failure))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
            run = self.activities[event.activity_task_cancel_requested_event_attributes.scheduled_event_id]
            run.outcome = "cancel_requested"
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED:
            self._close_activity(event.activity_task_canceled_event_attributes.scheduled_event_id, at, "cancelled")
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            timer = event.timer_started_event_attributes
            duration = timer.start_to_fire_timeout.ToTimedelta()
            summary = _decode([event.user_metadata.summary], str) if event.user_metadata.HasField("summary") else None
            timer_node = self.current[-1] if self.current else None
            self.timers[timer.timer_id] = TimerEntry(
                node=timer_node,
                purpose=summary or self._timer_purpose(timer_node),
                duration_s=duration.total_seconds(),
                started_at=at,
                due_at=at + duration,
                event_id=event.event_id,
            )
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            self._close_timer(event.timer_fired_event_attributes.timer_id, at, "fired")
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            self._close_timer(event.timer_canceled_event_attributes.timer_id, at, "cancelled")
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            self._on_signal(event, at)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            self._on_update(event, at)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            update = event.workflow_execution_update_completed_event_attributes
            entry = self.updates.get(update.meta.update_id)
            if entry is not None and update.outcome.HasField("success"):
                receipt = _decode(update.outcome.success.payloads, dict)
                if isinstance(receipt, dict) and receipt.get("node"):
                    entry.node = receipt["node"]
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            cancel = event.workflow_execution_cancel_requested_event_attributes
            self.cancellations.append(
                CancellationEntry(
                    by=cancel.identity or "temporal",
                    reason=cancel.cause or "workflow cancellation requested",
                    via="workflow_cancel",
                    at=at,
                    event_id=event.event_id,
                )
            )
        else:
            self._on_close(event, kind, at)

    def _on_close(self, event: HistoryEvent, kind, at: datetime) -> None:
        closing = {
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "cancelled",
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
        }
        if kind not in closing:
            return
        self.workflow_status, self.closed_at = closing[kind], at
        for visit in self.visits:
            visit.left_at = visit.left_at or at
        for run in self.local_runs.values():
            if run.outcome == "backing_off":  # its next attempt never came: the order ended first
                run.outcome = "cancelled"
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = _decode(event.workflow_execution_completed_event_attributes.result.payloads, OrderResult)
            self.result = result if isinstance(result, OrderResult) else None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            self.failure = _failure_text(event.workflow_execution_failed_event_attributes.failure)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
            self.failure = f"terminated: {event.workflow_execution_terminated_event_attributes.reason}"

    def _on_step(self, event: HistoryEvent, at: datetime) -> None:
        attributes = decode_typed_search_attributes(event.upsert_workflow_search_attributes_event_attributes.search_attributes)
        self.order_status = attributes.get(sa.ORDER_STATUS) or self.order_status
        if attributes.get(sa.AT_RISK) and self.at_risk_at is None:
            self.at_risk_at = at
        if attributes.get(sa.BREACHED) and self.breached_at is None:
            self.breached_at = at
        step = attributes.get(sa.CURRENT_STEP)
        if step is None:
            return
        now = [s for s in step.split("+") if s]
        for node in self.current:
            if node not in now:
                for visit in reversed(self.visits):
                    if visit.node == node and visit.left_at is None:
                        visit.left_at = at
                        break
        for node in now:
            if node not in self.current and node in self.node_types:
                self.visits.append(NodeVisit(node=node, type=self.node_types[node], entered_at=at, event_id=event.event_id))
        self.current = [n for n in now if n in self.node_types]

    def _read_promise(self, run: ActivityRun, payloads) -> None:
        if run.activity == "compute_promise":
            envelope = _decode(payloads, dict)
            self.promise = envelope.get("result") if isinstance(envelope, dict) else None

    def _on_local_activity(self, event: HistoryEvent, at: datetime) -> None:
        """A local activity's marker: one per completion, or per failed attempt handed to a backoff timer."""
        marker = event.marker_recorded_event_attributes
        data = _decode(list(marker.details["data"].payloads), dict)
        if not isinstance(data, dict):
            return
        activity_id = str(data.get("activity_id", ""))
        run = self.local_runs.get(activity_id)
        if run is None:
            run = ActivityRun(
                node=activity_id.removeprefix("undo-").rsplit("-", 1)[0],
                activity=str(data.get("activity_type", "")),
                compensation=activity_id.startswith("undo-"),
                scheduled_at=at,
                scheduled_event_id=event.event_id,
                local=True,
            )
            self.activities[event.event_id] = self.local_runs[activity_id] = run
        run.attempts, run.started_at, run.closed_at = int(data.get("attempt") or 1), at, at
        if not marker.HasField("failure"):
            run.outcome = "completed"
            self._read_promise(run, list(marker.details["result"].payloads) if "result" in marker.details else [])
        elif data.get("backoff"):
            run.outcome, run.last_retried_failure = "backing_off", _failure_text(marker.failure)
        elif marker.failure.HasField("canceled_failure_info"):
            run.outcome = "cancelled"
        else:
            timed_out = marker.failure.HasField("timeout_failure_info")
            run.outcome, run.failure = ("timed_out" if timed_out else "failed"), _failure_text(marker.failure)

    def _close_activity(self, scheduled_event_id: int, at: datetime, outcome: str, failure: str | None = None) -> None:
        run = self.activities[scheduled_event_id]
        run.closed_at, run.outcome, run.failure = at, outcome, failure

    def _close_timer(self, timer_id: str, at: datetime, outcome: str) -> None:
        timer = self.timers.get(timer_id)
        if timer is not None:
            timer.outcome, timer.closed_at = outcome, at

    def _timer_purpose(self, node: str | None) -> str:
        kind = self.node_types.get(node or "")
        purposes: dict[str | None, str] = {"user_task": "decision deadline", "receive": "event deadline", "wait": "wait"}
        return purposes.get(kind, "timer")

    def _on_signal(self, event: HistoryEvent, at: datetime) -> None:
        attrs = event.workflow_execution_signaled_event_attributes
        try:
            # Read as the workflow reads it, so what it refused shows here as refused, with the same reason.
            message = read_message("signal", attrs.signal_name, attrs.input.payloads)
        except Refused as err:
            self.events.append(
                EventEntry(name=f"refused signal {attrs.signal_name[:60]!r}", at=at, summary=str(err), event_id=event.event_id)
            )
            return
        if isinstance(message, ReviewDecision):
            self.decisions.append(self._decision(message, at, "signal", event.event_id, node=message.node or self._open_user_task()))
        elif isinstance(message, ExternalEvent):
            self.events.append(EventEntry(name=message.name, at=at, summary=_summary(message.data), event_id=event.event_id))

    def _on_update(self, event: HistoryEvent, at: datetime) -> None:
        attrs = event.workflow_execution_update_accepted_event_attributes
        request = attrs.accepted_request
        name = request.input.name
        if name == "review":
            decision = _decode(request.input.args.payloads, ReviewDecision)
            if isinstance(decision, ReviewDecision):
                entry = self._decision(decision, at, "update", event.event_id, node=decision.node or self._open_user_task())
                self.decisions.append(entry)
                self.updates[request.meta.update_id] = entry
        elif name == "cancel":
            cancel = _decode(request.input.args.payloads, CancelRequest)
            if isinstance(cancel, CancelRequest):
                self.cancellations.append(
                    CancellationEntry(by=cancel.by, reason=cancel.reason, via="update", at=at, event_id=event.event_id)
                )

    def _end_tasks_at_their_activities(self) -> None:
        """A task is done when its activity closed: the step upsert that follows may come much later
        (the last task of a parallel branch is left only when the join publishes)."""
        for visit in self.visits:
            if visit.type != "task":
                continue
            closed = [
                run.closed_at
                for run in self.activities.values()
                if run.node == visit.node
                and not run.compensation
                and run.closed_at
                and run.scheduled_at >= visit.entered_at
                and (visit.left_at is None or run.closed_at <= visit.left_at)
            ]
            if closed and visit.left_at is not None:
                visit.left_at = max(closed)

    def _settle_signalled_decisions(self) -> None:
        """A signal cannot be refused to its sender; whether the workflow took it shows in its result."""
        if self.result is None:
            return
        # Each decision the workflow took is matched once, so a refused twin is not counted as taken.
        taken: list[tuple[str | None, str, str, str]] = [
            (d.node, d.agent, d.role, d.decision) for d in self.result.decisions if d.via == "signal"
        ]
        for entry in self.decisions:
            if entry.via == "signal":
                key = (entry.node, entry.agent, entry.role, entry.decision)
                entry.accepted = key in taken
                if entry.accepted:
                    taken.remove(key)

    def _open_user_task(self) -> str | None:
        return next((n for n in reversed(self.current) if self.node_types.get(n) == "user_task"), None)

    @staticmethod
    def _decision(decision: ReviewDecision, at: datetime, via: str, event_id: int, node: str | None) -> DecisionEntry:
        return DecisionEntry(
            node=node,
            at=at,
            via=via,
            **DecisionRecord.fields_of(decision),
            # Updates reach history only once their validator accepted them; signals are checked later, by the workflow.
            accepted=True if via == "update" else None,
            event_id=event_id,
        )


def workflow_id_of(history: WorkflowHistory) -> str:
    """The order's workflow id from the start event alone; a `temporal workflow show` file names none."""
    started = history.events[0].workflow_execution_started_event_attributes
    try:
        payloads = [default_codec().decrypt(p) for p in started.input.payloads]
    except CodecError:
        return history.workflow_id
    order_input = _decode(payloads, OrderInput)
    return workflow_id(order_input.order.order_id) if isinstance(order_input, OrderInput) else history.workflow_id


def build_timeline(history: WorkflowHistory, codec: EncryptionCodec | None = None) -> Timeline:
    """The order's timeline; its payloads decrypted with `codec`, by default this machine's keys (orderops/codec.py)."""
    codec = codec or default_codec()
    events = []
    for event in history.events:
        plain = HistoryEvent()
        plain.CopyFrom(event)
        decrypted(plain, codec)
        events.append(plain)
    return _Builder(WorkflowHistory(history.workflow_id, events)).build()


def load_history_file(path, text: str | None = None) -> WorkflowHistory:
    """A history file from `orderops export` or `temporal workflow show --output json`."""
    from pathlib import Path
    from urllib.parse import unquote

    path = Path(path)
    try:
        text = text if text is not None else path.read_text(encoding="utf-8")
        # export writes a workflow id's unsafe bytes as %XX (orderops/cli/history.py history_file_name).
        return WorkflowHistory.from_json(unquote(path.stem), text)
    except FileNotFoundError:
        raise HistoryError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HistoryError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    except Exception as err:  # json and protobuf parse errors have no common base
        raise HistoryError(f"{path}: not a workflow history JSON file ({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None


def duration_text(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
