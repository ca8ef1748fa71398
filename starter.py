"""The `orderops` command line: start, inspect, decide and cancel orders.

Every failure a user can cause (bad files, unknown orders, wrong state, no
server) ends as one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.client import (
    WorkflowExecutionStatus as Status,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import worker
from activities import ACTIVITY_NAMES
from activities.inputs import Feedback, Inspection, ReturnRequest, ScanReport
from activities.store import StaleStore
from orderops import config, logs, server
from orderops import search_attributes as sa
from orderops.connect import Unreachable, connect
from orderops.history.replay import replay
from orderops.history.show import print_timeline
from orderops.history.timeline import HistoryError, build_timeline, load_history_file
from orderops.messages import (
    TASK_QUEUE,
    WORKFLOW_NAME,
    AddressChange,
    AddressChangeReceipt,
    CancelReceipt,
    CancelRequest,
    ExternalEvent,
    OrderInput,
    OrderResult,
    OrderStatusView,
    ReviewDecision,
    ReviewReceipt,
)
from orderops.order import Address, Order, OrderEdit, OrderItem, workflow_id
from orderops.process.diff import diff
from orderops.process.lint import InvalidDefinition, lint_text, load, load_definition
from orderops.process.load import DefinitionSnapshot, load_text
from orderops.process.model import ProcessDefinition
from orderops.process.render import FORMATS, RenderError, render
from orderops.promise import PromisePolicy
from orderops.report import build, facts, to_html

QUERY_TIMEOUT = timedelta(seconds=10)
# Piped output (CI logs, less) gets a wide table instead of rich's 80-column default.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


class NoWorker(CliError):
    """The server is up, but no worker answered for the order."""


class UsageError(CliError):
    """Arguments that do not fit together: exit status 2, like argparse's own errors."""


# -- reading input ------------------------------------------------------------


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CliError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None


def _parse_json_documents(path: str, text: str) -> list:
    """One JSON object, a JSON list, or JSON Lines."""
    if not text.strip():
        raise CliError(f"{path}: no orders in the file")
    try:
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    except RecursionError:
        raise CliError(f"{path}: the JSON is nested too deeply to be an order") from None
    except json.JSONDecodeError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or text.lstrip().startswith("["):
            raise CliError(f"{path}:{whole_error.lineno}:{whole_error.colno}: malformed JSON: {whole_error.msg}") from None
        documents = []
        for number, line in lines:
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise CliError(f"{path}:{number}:{err.colno}: malformed JSON line: {err.msg}") from None
        return documents


def _field_errors(err: ValidationError) -> list[str]:
    messages = []
    for error in err.errors():
        where = ".".join(str(p) for p in error["loc"]) or "order"
        message = "missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        messages.append(f"field {where!r}: {message}")
    return messages


def read_orders(path: str) -> list[Order]:
    """Validate every order before any starts: one bad order refuses the whole file."""
    documents = _parse_json_documents(path, _read_text(path))
    orders, problems = [], []
    for index, document in enumerate(documents, 1):
        if not isinstance(document, dict):
            problems.append(f"{path}: order #{index}: expected a JSON object, got {type(document).__name__}")
            continue
        label = f"order #{index}" + (f" ({document['order_id']})" if isinstance(document.get("order_id"), str) else "")
        try:
            orders.append(Order.model_validate(document))
        except ValidationError as err:
            problems += [f"{path}: {label}: {message}" for message in _field_errors(err)]
    seen: set[str] = set()
    for order in orders:
        if order.order_id in seen:
            problems.append(f"{path}: order {order.order_id} appears twice in the file")
        seen.add(order.order_id)
    if problems:
        raise CliError("\n".join([*problems, "no order was started"]))
    return orders


def _parse_json_option(name: str, text: str | None) -> dict:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise CliError(f"{name}: malformed JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(value, dict):
        raise CliError(f"{name}: expected a JSON object, got {type(value).__name__}")
    return value


# -- talking to workflows ----------------------------------------------------------


async def _client(args) -> Client:
    """Connect only after the command's own input is checked, so input errors never wait on a server."""
    return await connect(args.address, args.namespace)


def _handle(client: Client, order_id: str) -> WorkflowHandle:
    return client.get_workflow_handle(workflow_id(order_id))


async def _describe(client: Client, order_id: str):
    try:
        return await _handle(client, order_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND and "namespace" not in err.message.lower():
            raise CliError(f"no order {order_id!r} (no workflow {workflow_id(order_id)})") from None
        raise


async def _require_running(client: Client, order_id: str):
    description = await _describe(client, order_id)
    if description.status != Status.RUNNING:
        ended = description.typed_search_attributes.get(sa.ORDER_STATUS) or description.status.name.lower()
        raise CliError(f"order {order_id} has already ended ({ended}); nothing changed")
    return description


def _update_error(err: WorkflowUpdateFailedError) -> str:
    cause = err.cause
    return getattr(cause, "message", None) or str(cause or err)


async def _update(client: Client, order_id: str, name: str, payload, result_type):
    await _require_running(client, order_id)
    try:
        return await _handle(client, order_id).execute_update(name, payload, result_type=result_type, rpc_timeout=QUERY_TIMEOUT)
    except WorkflowUpdateFailedError as err:
        raise CliError(f"refused: {_update_error(err)}") from None
    except WorkflowUpdateRPCTimeoutOrCancelledError:
        raise CliError(
            f"no worker answered within {QUERY_TIMEOUT.seconds}s (is `orderops worker` running?); the request stays queued "
            f"and is checked when a worker runs: `orderops status {order_id}` shows whether it was taken"
        ) from None
    except RPCError as err:
        raise CliError(f"order {order_id}: {err.message}") from None


async def fetch_status(client: Client, order_id: str, description=None) -> OrderStatusView:
    description = description or await _describe(client, order_id)
    handle = _handle(client, order_id)
    try:
        return await handle.query("status", result_type=OrderStatusView, rpc_timeout=QUERY_TIMEOUT)
    except WorkflowQueryFailedError as err:
        raise CliError(f"order {order_id}: status query failed: {err}") from None
    except RPCError as err:
        # The order exists (described above): a query that cannot be answered means no worker took it.
        state = description.status.name.lower() if description.status else "unknown"
        raise NoWorker(
            f"order {order_id} is {state}, but no worker answered the status query ({err.message}); start one with `orderops worker`"
        ) from None


# -- commands ------------------------------------------------------------------------


async def start_order(
    client: Client, order: Order, snapshot: DefinitionSnapshot, task_queue: str = TASK_QUEUE, variables: dict | None = None
) -> WorkflowHandle:
    """One workflow per order id, ever: a resubmitted order is refused, not run twice."""
    try:
        return await client.start_workflow(
            WORKFLOW_NAME,
            OrderInput(order=order, definition=snapshot, variables=variables or {}),
            id=workflow_id(order.order_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=initial_search_attributes(snapshot),
            result_type=OrderResult,
        )
    except WorkflowAlreadyStartedError:
        raise CliError(
            f"order {order.order_id} was already submitted (workflow {workflow_id(order.order_id)}); not started again"
        ) from None


async def _submitted(client: Client, order: Order) -> bool:
    try:
        await _handle(client, order.order_id).describe()
        return True
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND and "namespace" not in err.message.lower():
            return False
        raise


async def cmd_start(args) -> int:
    if (args.format or ("csv" if args.orders.lower().endswith(".csv") else "json")) == "csv":
        return await _start_csv(args)
    orders = read_orders(args.orders)
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    client = await _client(args)
    # All or nothing, like validation: a file with one resubmitted order starts none.
    already = [order.order_id for order in orders if await _submitted(client, order)]
    if already:
        raise CliError(f"{args.orders}: already submitted: {', '.join(already)}; no order was started")
    for order in orders:
        handle = await start_order(client, order, snapshot)
        print(handle.id)
    return 0


async def _start_csv(args) -> int:
    """Unlike JSON, not all or nothing: an invalid row holds back its own order, a resubmitted order is skipped."""
    from orderops.csv_orders import CsvFileError, read_csv_orders

    try:
        batch = read_csv_orders(args.orders, _field_errors)
    except CsvFileError as err:
        raise CliError(str(err)) from None
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    for problem in batch.problems:
        print(problem, file=sys.stderr)
    started, skipped = 0, []
    if batch.orders:
        client = await _client(args)
        for order in batch.orders:
            try:
                handle = await start_order(client, order, snapshot)
            except CliError as err:  # already submitted: the workflow id reuse policy refused it
                print(f"{batch.path}:{batch.lines[order.order_id][0]}: {err}", file=sys.stderr)
                skipped.append(order.order_id)
                continue
            print(handle.id)
            started += 1
    summary = [f"started {started} order{'' if started == 1 else 's'}"]
    if skipped:
        summary.append(f"{len(skipped)} already submitted ({', '.join(skipped)}), skipped")
    if batch.invalid_lines:
        rows, held = len(batch.invalid_lines), batch.rejected
        summary.append(
            f"{rows} row{'' if rows == 1 else 's'} invalid"
            + (f" (order{'' if len(held) == 1 else 's'} {', '.join(held)} not started)" if held else "")
        )
    print("; ".join(summary), file=sys.stderr)
    return 1 if batch.invalid_lines else 0


def initial_search_attributes(snapshot: DefinitionSnapshot) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.PROCESS_ID, snapshot.id),
            SearchAttributePair(sa.PROCESS_VERSION, snapshot.version),
            SearchAttributePair(sa.ORDER_STATUS, "accepted"),
        ]
    )


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _clock(value) -> str:
    return value.strftime("%H:%M:%S") if value else ""


async def cmd_status(args) -> int:
    client = await _client(args)
    view = await fetch_status(client, args.order_id)
    if args.json:
        print(view.model_dump_json(indent=2))
        return 0
    out.print(f"[bold]Order {view.order_id}[/]  status: [bold]{view.status}[/]")
    policy = f", promise policy {view.process.promise_policy_sha256[:12]}" if view.process.promise_policy_sha256 else ""
    out.print(f"process: {view.process.id} v{view.process.version}  sha256 {view.process.sha256[:12]}{policy}  ({view.process.path})")
    if view.current_nodes:
        out.print(f"current: {', '.join(view.current_nodes)}")
    if view.order:
        o = view.order
        out.print(f"customer: {o.customer_name} ({o.customer_id}, {o.phone}); {o.channel}, {o.order_type}")
        out.print(f"ships to: {o.address.one_line()}")
        out.print(f"items: {', '.join(f'{i.sku} x{i.quantity}' for i in o.items)} ({o.amount:.2f})")
    if view.promise:
        p = view.promise
        out.print(
            f"promise: ship by {p['ship_by']}, deliver by {p['deliver_by']} "
            f"({p['tier']}, {p['service_level']}, {p['delivery_days']} days, {p['timezone']})"
        )
    if view.at_risk:
        out.print(f"[yellow]at risk[/] since {view.at_risk['at']} at {view.at_risk['node']} (deadline {view.at_risk['deadline']})")
    for breach in view.breaches:
        out.print(f"[red]breached[/] {breach['expression']} ({breach['deadline']}) at {breach['node']}, {breach['at']}")
    if view.end_reason:
        out.print(f"reason: {view.end_reason}")
    steps = Table("node", "type", "started", "ended", "try", "outcome", "detail", title="Steps")
    for s in view.steps:
        kind = f"{s.type}: {s.activity}" if s.activity else s.type
        steps.add_row(s.node, kind, _clock(s.started_at), _clock(s.ended_at), str(s.attempt or ""), s.outcome, s.detail or "")
    out.print(steps)
    for task in view.pending_user_tasks:
        out.print(
            f"[bold yellow]Awaiting decision[/] at {task.node} by role {task.role}: "
            f"{' / '.join(task.outcomes)} (deadline {_when(task.deadline)})"
        )
        findings = (
            task.details if isinstance(task.details, list) and all(isinstance(f, dict) and "code" in f for f in task.details) else None
        )
        for finding in findings or []:
            out.print(f"  - {finding['code']}: {finding.get('reason', '')}")
        if task.details and findings is None:
            out.print(f"  details: {json.dumps(task.details, ensure_ascii=False)}")
    _print_fulfilment(view.variables)
    if view.waiting_for_events:
        out.print(f"waiting for event: {', '.join(view.waiting_for_events)}")
    for d in view.decisions:
        out.print(f"decision: {d.node} -> {d.decision} by {d.agent} ({d.role}) at {_when(d.at)} via {d.via}: {d.reason}")
    return 0


def _print_fulfilment(variables: dict) -> None:
    """Why the warehouse steps went as they did: the step results support asks about."""
    reservation = variables.get("reservation") or {}
    if reservation.get("status") == "short":
        out.print(f"stock: short, {reservation.get('summary')}; waiting for a restock")
    for shipment in reservation.get("shipments") or []:
        lines = ", ".join(f"{line['sku']} x{line['quantity']} ({line['bin']})" for line in shipment["lines"])
        out.print(f"stock: from {shipment['warehouse']}: {lines}")
    scan = variables.get("scan_check") or {}
    if scan:
        verdict = "matched" if scan.get("matched") else "; ".join(scan.get("differences") or [])
        out.print(f"last scan: {verdict} ({scan.get('scans')} scans, {scan.get('mismatches')} mismatched)")
    for booking in (variables.get("booking") or {}).get("bookings") or []:
        late = "" if booking.get("meets_promise", True) else ", cannot keep the promise"
        refused = f"; passed over: {'; '.join(booking['refused'])}" if booking.get("refused") else ""
        out.print(f"carrier: {booking['carrier']} for {booking['tracking_no']} ({booking['cost']}{late}){refused}")
    tracking = variables.get("tracking") or {}
    if tracking:
        out.print(
            f"tracking: {tracking.get('status')}, {tracking.get('failed_attempts')} failed attempt(s), {tracking.get('parcels_out')} parcel(s) out"
        )


def _list_query(args) -> str:
    """Visibility query from the filters; every value is checked, so none can inject a clause."""
    clauses = [f"WorkflowType = '{WORKFLOW_NAME}'"]
    for flag, attribute in (("status", "OrderStatus"), ("region", "Region"), ("service", "ServiceLevel")):
        value = getattr(args, flag)
        if value is None:
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            raise UsageError(f"--{flag} {value!r}: letters, digits and _ only (e.g. awaiting_review, tier1, express)")
        clauses.append(f"{attribute} = '{value}'")
    if args.at_risk:
        clauses.append("AtRisk = true")
    if args.breached:
        clauses.append("Breached = true")
    if args.promise_before:
        when = _time_option("--promise-before", args.promise_before, naive_is_utc=False)
        clauses.append(f"PromiseAt < '{when.isoformat().replace('+00:00', 'Z')}'")
    return " AND ".join(clauses)


async def cmd_list(args) -> int:
    query = _list_query(args)
    client = await _client(args)
    rows = []
    async for wf in client.list_workflows(query, limit=args.limit):
        attrs = wf.typed_search_attributes
        promise_at = attrs.get(sa.PROMISE_AT)
        flags = [name for name, key in (("at risk", sa.AT_RISK), ("breached", sa.BREACHED)) if attrs.get(key)]
        rows.append(
            {
                "order_id": wf.id.removeprefix("order-"),
                "status": attrs.get(sa.ORDER_STATUS) or "",
                "step": attrs.get(sa.CURRENT_STEP) or "",
                "process": f"{attrs.get(sa.PROCESS_ID) or '?'} v{attrs.get(sa.PROCESS_VERSION) or '?'}",
                "promise": promise_at.isoformat() if promise_at else "",
                "region": attrs.get(sa.REGION) or "",
                "service": attrs.get(sa.SERVICE_LEVEL) or "",
                "flags": ", ".join(flags),
                "started": _when(wf.start_time),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table("order", "status", "step", "process", "promise", "region", "service", "flags", "started")
    for row in rows:
        table.add_row(*row.values())
    out.print(table)
    out.print(f"{len(rows)} order(s)")
    return 0


async def cmd_review(args) -> int:
    changes = _parse_json_option("--changes", args.changes)
    if args.decision == "edit" and not changes:
        raise UsageError("--decision edit needs --changes: the corrected fields as JSON")
    try:
        decision = ReviewDecision(
            decision=args.decision,
            agent=args.agent,
            role=args.role,
            reason=args.reason,
            node=args.node,
            changes=OrderEdit.model_validate(changes) if changes else None,
        )
    except ValidationError as err:
        raise CliError(f"invalid review: {_field_errors(err)[0]}") from None
    client = await _client(args)
    receipt: ReviewReceipt = await _update(client, args.order_id, "review", decision, ReviewReceipt)
    print(f"order {receipt.order_id}: {receipt.decision} by {receipt.agent} recorded at {receipt.node}; next: {receipt.next}")
    return 0


# Payloads the standard processes read, checked before they are sent: a bad one would be dropped by its step.
EVENT_PAYLOADS: dict[str, type[BaseModel]] = {"feedback": Feedback, "scanned": ScanReport, "return_received": Inspection}


async def cmd_event(args) -> int:
    try:
        event = ExternalEvent(name=args.name, data=_parse_json_option("--data", args.data))
        if event.name in EVENT_PAYLOADS:
            EVENT_PAYLOADS[event.name].model_validate(event.data)
    except ValidationError as err:
        raise CliError(f"invalid {args.name!r} event: {_field_errors(err)[0]}") from None
    client = await _client(args)
    description = await _require_running(client, args.order_id)
    try:
        view = await fetch_status(client, args.order_id, description)
    except NoWorker:
        # Signals wait in history for a worker, like queued reviews: the event is not lost for want of one.
        await _handle(client, args.order_id).signal("event", event)
        print(f"event {event.name!r} sent to order {args.order_id}; no worker is running to check it, one applies it when it starts")
        return 0
    if event.name not in view.accepted_events:
        raise CliError(
            f"order {args.order_id}'s process has no receive for event {event.name!r}; it accepts: {', '.join(view.accepted_events)}"
        )
    await _handle(client, args.order_id).signal("event", event)
    waiting = "it was waiting for it" if event.name in view.waiting_for_events else "kept until a step waits for it"
    print(f"event {event.name!r} delivered to order {args.order_id} ({waiting})")
    return 0


async def cmd_cancel(args) -> int:
    try:
        request = CancelRequest(reason=args.reason, by=args.by)
    except ValidationError as err:
        raise CliError(f"invalid cancellation: {_field_errors(err)[0]}") from None
    client = await _client(args)
    receipt: CancelReceipt = await _update(client, args.order_id, "cancel", request, CancelReceipt)
    at = ", ".join(receipt.cancelled_at_nodes) or "between steps"
    print(f"order {receipt.order_id}: cancellation accepted at {at}; completed steps are being undone")
    return 0


async def cmd_change_address(args) -> int:
    try:
        change = AddressChange(
            address=Address(province=args.province, city=args.city, district=args.district, street=args.street, postcode=args.postcode),
            by=args.by,
            reason=args.reason,
        )
    except ValidationError as err:
        raise CliError(f"invalid address: {_field_errors(err)[0]}") from None
    client = await _client(args)
    receipt: AddressChangeReceipt = await _update(client, args.order_id, "change_address", change, AddressChangeReceipt)
    print(f"order {receipt.order_id}: delivery address is now {receipt.address.one_line()}")
    return 0


async def merge_orders(client: Client, order_id: str, into: str, agent: str, reason: str = "") -> list[OrderItem]:
    """Fold an order waiting at review into another of the same customer, also waiting there; the combined items."""
    views = {}
    for oid in (order_id, into):
        view = await fetch_status(client, oid, await _require_running(client, oid))
        task = next((t for t in view.pending_user_tasks if t.node == "manual_review"), None)
        if task is None:
            raise CliError(f"order {oid} is not waiting at manual review (status: {view.status})")
        if oid == order_id and "merge" not in task.outcomes:
            raise CliError(f"order {oid}'s process has no merge outcome at manual review")
        views[oid] = view
    source, target = views[order_id].order, views[into].order
    assert source is not None and target is not None  # the workflow's status query always carries the order
    if source.customer_id != target.customer_id:
        raise CliError(f"orders {order_id} and {into} belong to different customers; only one customer's orders merge")
    if source.address != target.address:
        raise CliError(f"orders {order_id} and {into} ship to different addresses; change one first (orderops change-address)")
    lines: dict[tuple[str, object], int] = {}
    for item in target.items + source.items:
        lines[(item.sku, item.unit_price)] = lines.get((item.sku, item.unit_price), 0) + item.quantity
    items = [OrderItem(sku=sku, quantity=quantity, unit_price=price) for (sku, price), quantity in lines.items()]
    reason = reason or f"merged {order_id} into {into}"
    # The merged order ends first, giving its stock back before the kept order reserves the whole.
    await _update(
        client,
        order_id,
        "review",
        ReviewDecision(
            decision="merge",
            agent=agent,
            reason=f"{reason} (items moved to {into})",
            node="manual_review",
        ),
        ReviewReceipt,
    )
    try:
        await _update(
            client,
            into,
            "review",
            ReviewDecision(
                decision="edit",
                agent=agent,
                reason=f"{reason} (items of {order_id} added)",
                node="manual_review",
                changes=OrderEdit(items=items),
            ),
            ReviewReceipt,
        )
    except CliError as err:
        moved = ", ".join(f"{i.sku} x{i.quantity}" for i in source.items)
        raise CliError(
            f"order {order_id} was merged, but adding its items to {into} failed ({err}); add {moved} to {into} with "
            f"`orderops review {into} --decision edit` when it waits for review again"
        ) from None
    return items


async def cmd_merge(args) -> int:
    if args.order_id == args.into:
        raise UsageError("an order cannot be merged into itself")
    try:
        ReviewDecision(decision="merge", agent=args.agent, reason=args.reason)
    except ValidationError as err:
        raise CliError(f"invalid merge: {_field_errors(err)[0]}") from None
    client = await _client(args)
    items = await merge_orders(client, args.order_id, args.into, args.agent, args.reason)
    print(
        f"order {args.order_id} merged into {args.into}: {', '.join(f'{i.sku} x{i.quantity}' for i in items)}; {args.into} is reviewed again"
    )
    return 0


def _return_items(specs: list[str], order: Order) -> list[OrderItem]:
    prices = {item.sku: item.unit_price for item in order.items}
    ordered: dict[str, int] = {}
    for item in order.items:
        ordered[item.sku] = ordered.get(item.sku, 0) + item.quantity
    wanted: dict[str, int] = {}
    for spec in specs:
        sku, _, quantity = spec.partition(":")
        if sku not in prices:
            raise UsageError(f"--item {spec}: order {order.order_id} has no {sku!r} (it has {', '.join(prices)})")
        try:
            count = int(quantity or "1")
        except ValueError:
            raise UsageError(f"--item {spec}: quantity {quantity!r} is not a whole number") from None
        if count < 1:
            raise UsageError(f"--item {spec}: quantity must be at least 1")
        wanted[sku] = wanted.get(sku, 0) + count
        if wanted[sku] > ordered[sku]:
            raise UsageError(f"--item {spec}: order {order.order_id} has only {ordered[sku]} x {sku}")
    return [OrderItem(sku=sku, quantity=count, unit_price=prices[sku]) for sku, count in wanted.items()]


async def start_return(
    client: Client, order_id: str, request: ReturnRequest, item_specs: list[str] | None, snapshot: DefinitionSnapshot
) -> tuple[Order, WorkflowHandle]:
    """A return or exchange: its own workflow (returns.yaml), linked to the original by id and request."""
    description = await _describe(client, order_id)
    view = await fetch_status(client, order_id, description)
    delivered = any(s.node == "record_delivery" and s.outcome == "completed" for s in view.steps)
    if view.order is None or not (delivered or view.status == "completed"):
        raise CliError(f"order {order_id} is {view.status}; only a delivered order can be returned")
    original = view.order
    items = _return_items(item_specs, original) if item_specs else original.items
    variables = await _outbound_rules(client, order_id)
    variables["return_request"] = request.model_dump(mode="json")
    for number in range(1, 100):
        order = original.model_copy(update={"order_id": f"{original.order_id}-R{number}", "items": items, "paid": True})
        if not await _submitted(client, order):
            return order, await start_order(client, order, snapshot, variables=variables)
    raise CliError(f"order {order_id} already has 99 returns")


OUTBOUND_RULES = ("stock_policy", "picking", "packing", "carriers", "notifications", "delivery")


async def _outbound_rules(client: Client, order_id: str) -> dict:
    """The rules the original order ran under, so a replacement ships by them; the current standard's for what it lacked."""
    history = await _history(client, order_id)
    started = history.events[0].workflow_execution_started_event_attributes
    [original] = await client.data_converter.decode(started.input.payloads, [OrderInput])
    ran, _, _ = load_text(original.definition.source)
    ran_under = ran.variables if ran else {}
    defaults = load(config.DEFAULT_PROCESS, ACTIVITY_NAMES)[0].variables
    return {name: ran_under.get(name) if ran_under.get(name) is not None else defaults.get(name) for name in OUTBOUND_RULES}


async def cmd_return(args) -> int:
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    try:
        request = ReturnRequest(original_order_id=args.order_id, kind=args.kind, reason=args.reason, note=args.note)
    except ValidationError as err:
        raise CliError(f"invalid return: {_field_errors(err)[0]}") from None
    client = await _client(args)
    order, handle = await start_return(client, args.order_id, request, args.item, snapshot)
    print(
        f"return {order.order_id} started ({handle.id}): {request.kind}, {request.reason}, "
        f"{', '.join(f'{i.sku} x{i.quantity}' for i in order.items)}"
    )
    return 0


async def restock(
    client: Client, store, sku: str, warehouse: str, quantity: int, bin: str | None = None
) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Goods received against purchase requisitions: stock up, and wake the orders whose requisition they complete.

    (order id, None if told, else why not) per woken order, and the requisitions still waiting for more."""
    try:
        receipt = store.receive_stock(sku, warehouse, quantity, bin=bin)
    except KeyError as err:
        raise CliError(err.args[0]) from None
    told: list[tuple[str, str | None]] = []
    for order_id in receipt.woken:
        try:
            await _handle(client, order_id).signal("event", ExternalEvent(name="restocked", data={"sku": sku, "warehouse": warehouse}))
            told.append((order_id, None))
        except RPCError as err:
            told.append((order_id, err.message))
    return told, receipt.still_open


async def cmd_restock(args) -> int:
    client = await _client(args)
    told, still_open = await restock(client, config.open_store(), args.sku, args.warehouse, args.quantity, args.bin)
    print(f"{args.quantity} x {args.sku} received at {args.warehouse}")
    for order_id, problem in told:
        if problem is None:
            print(f"order {order_id}: restocked event sent")
        else:
            print(f"order {order_id}: not told ({problem}); send it with `orderops event {order_id} restocked`", file=sys.stderr)
    for line in still_open:
        print(f"{line}; its order waits for the rest")
    return 1 if any(problem for _, problem in told) else 0


def set_outage(store, carrier: str, reason: str | None) -> None:
    """Mark a carrier whose booking system refuses orders (bookings fall back to the next), or clear it with None."""
    with store.transaction() as db:
        if reason is None:
            db.execute("DELETE FROM carrier_outages WHERE carrier = ?", (carrier,))
        else:
            db.execute("INSERT OR REPLACE INTO carrier_outages VALUES (?, ?)", (carrier, reason))


def cmd_carrier_outage(args) -> int:
    if not args.clear and not args.reason.strip():
        raise UsageError("--reason must say why bookings are refused")
    known = [c["name"] for c in load(config.DEFAULT_PROCESS, ACTIVITY_NAMES)[0].variables.get("carriers") or []]
    if args.carrier not in known:
        raise CliError(f"no carrier {args.carrier!r} in {config.DEFAULT_PROCESS.name} (carriers: {', '.join(known)})")
    set_outage(config.open_store(), args.carrier, None if args.clear else args.reason)
    print(f"carrier {args.carrier}: {'bookings accepted again' if args.clear else 'bookings refused: ' + args.reason}")
    return 0


def cmd_lint(args) -> int:
    failed = False
    for name in args.files:
        try:
            definition, snapshot = load(Path(name), ACTIVITY_NAMES)
        except InvalidDefinition as err:
            failed = True
            for message in err.messages:
                print(message)
            continue
        print(f"{name}: ok ({snapshot.id} v{snapshot.version}, {len(definition.nodes)} nodes)")
    return 1 if failed else 0


async def cmd_worker(args) -> int:
    process_dir = Path(args.process_dir)
    if not process_dir.is_dir() or not any(process_dir.glob("*.yaml")):
        raise CliError(f"--process-dir {process_dir}: no process definitions (*.yaml) there")
    # Definitions first: a broken one is reported even when no server is up yet.
    problems = worker.check_definitions(process_dir)
    if problems:
        raise InvalidDefinition(problems)
    client = await _client(args)
    await worker.serve(client, config.open_store(), Path(args.process_dir))
    return 0


def cmd_server(args) -> int:
    command = server.command(port=args.port, ui_port=args.ui_port, namespace=args.namespace)
    print(f"Temporal dev server on 127.0.0.1:{args.port}, Web UI http://localhost:{args.ui_port}, data in {config.home()}")
    sys.stdout.flush()
    os.execv(command[0], command)


async def cmd_demo(args) -> int:
    from orderops import demo  # imported here: the demo itself imports this module

    return await demo.run(args.address, args.namespace, args.orders)


# -- auditors and ops: history, replay, versions, diagrams --------------------------------


async def _history(client: Client, order_id: str) -> WorkflowHistory:
    await _describe(client, order_id)
    return await _handle(client, order_id).fetch_history()


async def cmd_audit(args) -> int:
    if (args.order_id is None) == (args.file is None):
        raise UsageError("audit takes an ORDER_ID or --file HISTORY.json (one of the two)")
    if args.file:
        history = load_history_file(args.file)
    else:
        history = await _history(await _client(args), args.order_id)
    timeline = build_timeline(history)
    if args.json:
        print(timeline.model_dump_json(indent=2))
    else:
        print_timeline(out, timeline)
    return 0


def _visibility(query: str | None) -> str:
    base = f"WorkflowType = '{WORKFLOW_NAME}'"
    return f"{base} AND ({query})" if query else base


async def _listed(client: Client, query: str) -> list[str]:
    return [wf.id async for wf in _listing(client, _visibility(query))]


async def _listing(client: Client, query: str):
    try:
        async for wf in client.list_workflows(query):
            yield wf
    except RPCError as err:
        raise CliError(f"visibility query refused: {err.message}") from None


async def cmd_export(args) -> int:
    if not args.order_ids and not args.query:
        raise UsageError("export takes ORDER_ID... or --query 'VISIBILITY QUERY'")
    target = Path(args.out)
    client = await _client(args)
    workflow_ids = [workflow_id(o) for o in args.order_ids] + (await _listed(client, args.query) if args.query else [])
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {target}: {err.strerror or err}") from None
    for wf_id in dict.fromkeys(workflow_ids):
        history = await _history(client, wf_id.removeprefix("order-"))
        path = target / f"{wf_id}.json"
        _write(path, history.to_json().encode())
        print(path)
    return 0


def _history_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{name}: no such file or directory")
    return files


async def cmd_replay(args) -> int:
    if not args.paths and not args.query:
        raise UsageError("replay takes history FILES, a DIR of them, or --query 'VISIBILITY QUERY'")
    files = _history_files(args.paths)
    client = await _client(args) if args.query else None
    workflow_ids = await _listed(client, args.query) if client else []
    total = len(files) + len(workflow_ids)
    if total == 0:
        raise CliError("no histories to replay")

    async def histories():
        for path in files:
            try:
                yield str(path), load_history_file(path)
            except HistoryError as err:
                yield str(path), err  # reported as INVALID, and the other files still replay
        for wf_id in workflow_ids:
            yield f"query: {wf_id}", await client.get_workflow_handle(wf_id).fetch_history()

    columns = [TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=total < 20) as progress:
        task = progress.add_task("replay", total=total)
        outcomes = await replay(histories(), on_each=lambda _: progress.advance(task))
    for outcome in outcomes:
        if outcome.ok:
            print(f"ok        {outcome.workflow_id}  ({outcome.source})")
        elif outcome.invalid:
            print(f"INVALID   {outcome.workflow_id}  ({outcome.source}): {outcome.error}")
        else:
            where = f"at event {outcome.event_id}" if outcome.event_id else "at an unknown event"
            node = f" (node {outcome.node})" if outcome.node else ""
            print(f"DIVERGED  {outcome.workflow_id}  ({outcome.source}) {where}{node}: {outcome.error}")
    diverged = sum(not o.ok and not o.invalid for o in outcomes)
    invalid = sum(o.invalid for o in outcomes)
    print(f"{len(outcomes) - diverged - invalid} ok, {diverged} diverged" + (f", {invalid} invalid" if invalid else ""))
    return 1 if diverged or invalid else 0


async def cmd_diff(args) -> int:
    # Either version may name activities this install does not have (removed, or not yet deployed).
    old_def, old = load(Path(args.old), None)
    new_def, _ = load(Path(args.new), None)
    changes = diff(old_def, new_def)
    print(f"{changes.old} -> {changes.new}" + ("  (no change)" if changes.empty else ""))
    for title, items in (
        ("added nodes", changes.added_nodes),
        ("removed nodes", changes.removed_nodes),
        ("changed nodes", [f"{c.node} ({', '.join(c.fields)})" for c in changes.changed_nodes]),
        ("added edges", changes.added_edges),
        ("removed edges", changes.removed_edges),
        ("other changes", changes.other_changes),
    ):
        for item in items:
            print(f"  {title}: {item}")
    if not changes.affected_nodes:
        return 0
    try:
        client = await _client(args)
    except Unreachable as err:
        print(f"in-flight orders: not checked ({err})")
        return 0
    query = f"ExecutionStatus = 'Running' AND ProcessId = '{old.id}' AND ProcessVersion = {old.version}"
    waiting = []
    async for wf in client.list_workflows(_visibility(query)):
        steps = set((wf.typed_search_attributes.get(sa.CURRENT_STEP) or "").split("+"))
        if steps & changes.affected_nodes:
            waiting.append(f"{wf.id.removeprefix('order-')} at {'+'.join(sorted(steps & changes.affected_nodes))}")
    print(f"in-flight orders of {changes.old} at removed or changed nodes: {len(waiting)}")
    for line in waiting:
        print(f"  {line}")
    if waiting:
        print("  (they keep running under the version they started with)")
    return 0


async def cmd_render(args) -> int:
    if args.file is None and args.order is None:
        raise UsageError("render takes a definition FILE, --order ORDER_ID, or both")
    visited: Sequence[str] = ()
    current: Sequence[str] = ()
    definition, snapshot = None, None
    if args.file:
        definition, snapshot = load(Path(args.file), None)
    if args.order:
        timeline = build_timeline(await _history(await _client(args), args.order))
        visited, current = timeline.visited(), timeline.current()
        if snapshot is None or snapshot.sha256 != timeline.process.sha256:
            if snapshot is not None:
                print(
                    f"orderops: note: order {args.order} ran under {timeline.process.id} v{timeline.process.version} "
                    f"(sha256 {timeline.process.sha256[:12]}), not {args.file}; drawing that one",
                    file=sys.stderr,
                )
            definition, problems = lint_text(timeline.definition_source, None)
            if definition is None:
                raise CliError(f"order {args.order}'s definition no longer passes lint: {problems[0].format(timeline.process.path)}")
    if args.format == "png" and not args.out:
        raise UsageError("--format png writes binary data: give --out FILE.png")
    assert definition is not None  # loaded from FILE or from the order's history; either failure raised above
    try:
        data = render(definition, args.format, visited, current)
    except RenderError as err:
        raise CliError(str(err)) from None
    if args.out:
        _write(Path(args.out), data)
        print(args.out)
    else:
        sys.stdout.write(data.decode())
    return 0


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise CliError(f"cannot write {path}: {err.strerror or err}") from None


def _time_option(flag: str, value: str, naive_is_utc: bool = True) -> datetime:
    """An ISO-8601 time from the command line, as UTC."""
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            if not naive_is_utc:
                raise UsageError(f"{flag} {value!r}: give a UTC offset (e.g. +08:00 or Z)")
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(f"{flag} {value!r}: not a usable ISO-8601 date or time (e.g. 2026-11-01 or 2026-11-01T00:00:00+08:00)") from None


async def cmd_report(args) -> int:
    until = _time_option("--until", args.until) if args.until else datetime.now(UTC)
    since = _time_option("--since", args.since) if args.since else until - timedelta(days=30)
    if since >= until:
        raise UsageError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    client = await _client(args)
    query = _visibility(
        f"ExecutionStatus != 'Running' AND CloseTime >= '{since.astimezone(UTC).isoformat()}'"
        f" AND CloseTime < '{until.astimezone(UTC).isoformat()}'" + (f" AND ({args.query})" if args.query else "")
    )
    orders = []
    async for wf in _listing(client, query):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=OrderResult)
        try:
            orders.append(facts(await handle.result(), wf.start_time))
        except WorkflowFailureError:
            continue  # a workflow that failed outright (e.g. an invalid definition) has no order result
    data = build(orders, since, until)
    if args.html:
        _write(Path(args.html), to_html(data).encode())
        # stdout may be JSON for a program: the page's path goes to stderr.
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(data.model_dump_json(indent=2))
    elif not args.html:
        print_report(data)
    return 0


def print_report(data, title: str | None = None) -> None:
    def pct(value):
        return "n/a" if value is None else f"{value:.1%}"

    def num(value):
        return "n/a" if value is None else f"{value:g}"

    table = Table(
        "by",
        "group",
        "orders",
        "promise kept",
        "on time",
        "to ship h avg",
        "p90",
        "manual review",
        "errors",
        "picking",
        "feedback",
        "coupons",
        title=title or f"Finished orders, {data.since:%Y-%m-%d %H:%M} to {data.until:%Y-%m-%d %H:%M} UTC",
    )
    for group, rows in (("all", {"orders": data.overall}), ("tier", data.by_tier), ("service", data.by_service)):
        for name, k in rows.items():
            table.add_row(
                group,
                name,
                str(k.orders),
                pct(k.promise_attainment),
                pct(k.on_time_delivery),
                num(k.order_to_ship_hours_avg),
                num(k.order_to_ship_hours_p90),
                pct(k.manual_review_rate),
                pct(k.order_error_rate),
                pct(k.picking_accuracy),
                num(k.feedback_avg),
                f"{k.compensations} ({k.compensation_total})",
            )
    out.print(table)
    targets = data.targets
    out.print(
        f"targets: promise kept >= {targets['promise_attainment']:.0%}, on time >= {targets['on_time_delivery']:.0%}, "
        f"errors < {targets['order_error_rate']:.0%}, satisfaction >= {targets['satisfaction']:.0%}, "
        f"picking accuracy >= {targets['picking_accuracy']:.0%}; returns are counted apart from orders"
    )


def cmd_schema(args) -> int:
    model = PromisePolicy if args.promise_policy else ProcessDefinition
    text = json.dumps(model.model_json_schema(), indent=2) + "\n"
    if args.out:
        _write(Path(args.out), text.encode())
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


# -- argument parsing ---------------------------------------------------------------------


class _Commands:
    """Subcommands that all accept the global options too."""

    def __init__(self, subparsers, shared: argparse.ArgumentParser):
        self.subparsers, self.shared = subparsers, shared

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        return self.subparsers.add_parser(name, parents=[self.shared], **kwargs)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """Accepted before or after the command; only the top level sets defaults."""

    def default(value):
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--address", default=default(config.default_address()), help="Temporal frontend HOST:PORT (env TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", default=default(config.default_namespace()), help="Temporal namespace (env TEMPORAL_NAMESPACE)")
    parser.add_argument("--log-format", choices=["console", "json"], default=default("console"))
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=default("info"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="orderops", description="Durable order fulfilment on Temporal, driven by YAML process definitions.")
    _global_options(parser, defaults=True)
    shared = Parser(add_help=False)
    _global_options(shared, defaults=False)
    commands = _Commands(parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND"), shared)

    p = commands.add_parser("server", help="run the embedded Temporal dev server (data in .orderops/)")
    p.add_argument("--port", type=int, default=7233)
    p.add_argument("--ui-port", type=int, default=config.UI_PORT)
    p.set_defaults(run=cmd_server)

    p = commands.add_parser("worker", help="run a worker for order workflows and activities")
    p.add_argument("--process-dir", default=str(config.PROCESS_DIR), help="definitions to check before serving")
    p.set_defaults(run=cmd_worker)

    p = commands.add_parser("start", help="start orders from JSON (object, list or JSON Lines) or a CSV of order lines ('-' for stdin)")
    p.add_argument("orders")
    p.add_argument("--process", default=str(config.DEFAULT_PROCESS), help="process definition (default: standard)")
    p.add_argument("--format", choices=["json", "csv"], help="input format (default: csv for a *.csv file, else json)")
    p.set_defaults(run=cmd_start)

    p = commands.add_parser("status", help="an order's current step, history of steps and pending decision")
    p.add_argument("order_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_status)

    p = commands.add_parser("list", help="orders by status, from Temporal visibility")
    p.add_argument("--status", help="e.g. awaiting_review, in_transit, completed, rejected, cancelled, failed")
    p.add_argument("--at-risk", action="store_true", help="orders marked at risk of missing a deadline")
    p.add_argument("--breached", action="store_true", help="orders that missed a deadline")
    p.add_argument("--region", help="region tier of the promise, e.g. tier1, remote")
    p.add_argument("--service", help="service level, e.g. standard, express, same_day")
    p.add_argument("--promise-before", metavar="TIME", help="delivery promised before this ISO-8601 time")
    p.add_argument("--limit", type=_positive, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_list)

    p = commands.add_parser("review", help="decide an order awaiting manual review")
    p.add_argument("order_id")
    p.add_argument("--decision", required=True, help="an outcome of the pending user task, e.g. approve, edit, reject")
    p.add_argument("--agent", required=True, help="who decides")
    p.add_argument("--reason", default="")
    p.add_argument("--role", default="support_agent")
    p.add_argument("--node", help="the user task, when several are open")
    p.add_argument("--changes", help='with --decision edit: JSON of corrected fields, e.g. \'{"phone": "13800138000"}\'')
    p.set_defaults(run=cmd_review)

    p = commands.add_parser("event", help="deliver an external event (courier scan, sign-off, feedback)")
    p.add_argument("order_id")
    p.add_argument("name", help="event name, e.g. delivered, feedback")
    p.add_argument("--data", help="JSON object payload")
    p.set_defaults(run=cmd_event)

    p = commands.add_parser("cancel", help="cancel an order; completed steps are undone in reverse")
    p.add_argument("order_id")
    p.add_argument("--reason", required=True)
    p.add_argument("--by", default="support")
    p.set_defaults(run=cmd_cancel)

    p = commands.add_parser("change-address", help="change the delivery address; accepted until the courier handoff")
    p.add_argument("order_id")
    p.add_argument("--province", required=True)
    p.add_argument("--city", required=True)
    p.add_argument("--district", default="")
    p.add_argument("--street", required=True)
    p.add_argument("--postcode", default="")
    p.add_argument("--by", required=True, help="who asked: the customer, or the agent for them")
    p.add_argument("--reason", default="")
    p.set_defaults(run=cmd_change_address)

    p = commands.add_parser("merge", help="at manual review: move an order's items into another order of the same customer")
    p.add_argument("order_id", help="the order that ends, merged")
    p.add_argument("--into", required=True, help="the order that takes its items and is reviewed again")
    p.add_argument("--agent", required=True)
    p.add_argument("--reason", default="")
    p.set_defaults(run=cmd_merge)

    p = commands.add_parser("return", help="start a return or exchange of a completed order (process_defs/returns.yaml)")
    p.add_argument("order_id")
    p.add_argument("--kind", required=True, choices=["refund", "exchange"])
    p.add_argument("--reason", required=True, choices=["damaged", "wrong_item", "not_as_described", "quality", "changed_mind"])
    p.add_argument("--item", action="append", metavar="SKU[:QTY]", help="what comes back (repeatable; default: everything)")
    p.add_argument("--note", default="")
    p.add_argument("--process", default=str(config.PROCESS_DIR / "returns.yaml"))
    p.set_defaults(run=cmd_return)

    p = commands.add_parser("restock", help="goods received: add stock, close requisitions, wake the orders waiting for it")
    p.add_argument("sku")
    p.add_argument("warehouse")
    p.add_argument("quantity", type=_positive)
    p.add_argument("--bin", help="default: the SKU's first bin in that warehouse")
    p.set_defaults(run=cmd_restock)

    p = commands.add_parser("carrier-outage", help="mark a carrier's booking system down (bookings fall back), or --clear it")
    p.add_argument("carrier")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--reason")
    group.add_argument("--clear", action="store_true")
    p.set_defaults(run=cmd_carrier_outage)

    p = commands.add_parser("lint", help="check process definitions; file:line:col: message on error")
    p.add_argument("files", nargs="+")
    p.set_defaults(run=cmd_lint)

    p = commands.add_parser("audit", help="an order's timeline from its event history (live, or from an exported file)")
    p.add_argument("order_id", nargs="?")
    p.add_argument("--file", help="a history JSON file from `orderops export` or `temporal workflow show --output json`")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_audit)

    p = commands.add_parser("export", help="write order histories as JSON files (one per order)")
    p.add_argument("order_ids", nargs="*", metavar="ORDER_ID")
    p.add_argument("--query", help="visibility query, e.g. \"ProcessVersion = 1 AND OrderStatus = 'completed'\"")
    p.add_argument("--out", required=True, help="directory to write into")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("replay", help="replay histories with the current worker code; non-zero if any diverged")
    p.add_argument("paths", nargs="*", metavar="FILE_OR_DIR")
    p.add_argument("--query", help="replay the orders this visibility query finds on the cluster")
    p.set_defaults(run=cmd_replay)

    p = commands.add_parser("diff", help="what changes between two definitions, and which orders wait where it changes")
    p.add_argument("old")
    p.add_argument("new")
    p.set_defaults(run=cmd_diff)

    p = commands.add_parser("render", help="draw a definition (mermaid, dot, svg, png); --order colours an order's path")
    p.add_argument("file", nargs="?")
    p.add_argument("--format", choices=FORMATS, default="mermaid")
    p.add_argument("--out", help="write here instead of stdout")
    p.add_argument("--order", help="colour the nodes this order went through (from its history)")
    p.set_defaults(run=cmd_render)

    p = commands.add_parser("report", help="KPIs over finished orders: promise kept, on time, order-to-ship, reviews, errors, feedback")
    p.add_argument("--since", help="ISO date or time (default: 30 days before --until)")
    p.add_argument("--until", help="ISO date or time (default: now)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="FILE", help="write a self-contained page with charts")
    p.add_argument("--query", help='narrow with a visibility query, e.g. "ProcessVersion = 3"')
    p.set_defaults(run=cmd_report)

    p = commands.add_parser("schema", help="JSON Schema of the process-definition language")
    p.add_argument("--out")
    p.add_argument("--promise-policy", action="store_true", help="the schema of promise policy files instead")
    p.set_defaults(run=cmd_schema)

    p = commands.add_parser("demo", help="server + worker + sample orders, decided and delivered, then a summary")
    p.add_argument("--orders", type=_positive, help="how many orders (default: each sample scenario once)")
    p.set_defaults(run=cmd_demo)
    return parser


async def _dispatch(args) -> int:
    result = args.run(args)
    return await result if asyncio.iscoroutine(result) else result


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    try:
        return asyncio.run(_dispatch(args))
    except UsageError as err:
        print(f"orderops: {err}", file=sys.stderr)
        return 2
    except (CliError, Unreachable, HistoryError, StaleStore) as err:
        print(f"orderops: {err}", file=sys.stderr)
        return 1
    except InvalidDefinition as err:
        print("\n".join(err.messages), file=sys.stderr)
        return 1
    except RPCError as err:
        print(f"orderops: Temporal refused the request: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        # The last line of defence: still one line, with the details in the log on request.
        logging.getLogger("orderops").debug("unexpected error", exc_info=True)
        print(f"orderops: unexpected error: {type(err).__name__}: {err} (--log-level debug shows where)", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    code = run(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # sdk-python#300: the SDK's Rust core can abort during interpreter teardown.
    # All output is flushed and the exit status decided, so skip the teardown.
    os._exit(code)


if __name__ == "__main__":
    main()
