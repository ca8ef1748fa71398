"""orderops start, status, list: orders in, and where they stand."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from orderops import payloads
from orderops.activity_names import ACTIVITY_NAMES
from orderops.cli.common import CliError, UsageError, clock, field_errors, order_client, out, read_text, report, time_option, when
from orderops.client import ClientError, OrderQuery
from orderops.csv_orders import CsvFileError, read_csv_orders
from orderops.messages import OrderStatusView
from orderops.order import Order
from orderops.payloads import Refused
from orderops.process.lint import load_definition
from orderops.proof import trusted_keys


def _parse_json_documents(path: str, text: str) -> list:
    """One JSON object, a JSON list, or JSON Lines."""
    if not text.strip():
        raise CliError(f"{path}: no orders in the file")
    try:
        data = payloads.parse(text)
        return data if isinstance(data, list) else [data]
    except Refused as err:
        raise CliError(f"{path}: {err}") from None
    except RecursionError:
        raise CliError(f"{path}: the JSON is nested too deeply to be an order") from None
    except json.JSONDecodeError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or text.lstrip().startswith("["):
            raise CliError(f"{path}:{whole_error.lineno}:{whole_error.colno}: malformed JSON: {whole_error.msg}") from None
        documents = []
        for number, line in lines:
            try:
                documents.append(payloads.parse(line))
            except Refused as err:
                raise CliError(f"{path}:{number}: {err}") from None
            except json.JSONDecodeError as err:
                raise CliError(f"{path}:{number}:{err.colno}: malformed JSON line: {err.msg}") from None
        return documents


def read_orders(path: str) -> list[Order]:
    """Validate every order before any starts: one bad order refuses the whole file."""
    documents = _parse_json_documents(path, read_text(path))
    orders, problems = [], []
    for index, document in enumerate(documents, 1):
        if not isinstance(document, dict):
            problems.append(f"{path}: order #{index}: expected a JSON object, got {type(document).__name__}")
            continue
        label = f"order #{index}" + (f" ({document['order_id']})" if isinstance(document.get("order_id"), str) else "")
        try:
            orders.append(Order.model_validate(document))
        except ValidationError as err:
            problems += [f"{path}: {label}: {message}" for message in field_errors(err)]
    seen: set[str] = set()
    for order in orders:
        if order.order_id in seen:
            problems.append(f"{path}: order {order.order_id} appears twice in the file")
        seen.add(order.order_id)
    if problems:
        raise CliError(report(problems, "no order was started"))
    return orders


async def start(args) -> int:
    if (args.format or ("csv" if args.orders.lower().endswith(".csv") else "json")) == "csv":
        return await _start_csv(args)
    orders = read_orders(args.orders)
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    client = await order_client(args)
    # The order takes decisions and events only as the console signs them (orderops/proof.py).
    for handle in await client.start_all(orders, snapshot, args.orders, trusted_keys=trusted_keys()):
        print(handle.id)
    return 0


async def _start_csv(args) -> int:
    """Unlike JSON, not all or nothing: an invalid row holds back its own order, a resubmitted order is skipped."""
    try:
        batch = read_csv_orders(args.orders, field_errors)
    except CsvFileError as err:
        raise CliError(str(err)) from None
    snapshot = load_definition(Path(args.process), ACTIVITY_NAMES)
    if not batch.orders:
        raise CliError(report([str(p) for p in batch.problems], "no order was started"))
    for problem in batch.problems:
        print(problem, file=sys.stderr)
    started, skipped = 0, []
    client, keys = await order_client(args), trusted_keys()
    for order in batch.orders:
        try:
            handle = await client.start(order, snapshot, trusted_keys=keys)
        except ClientError as err:  # already submitted: the workflow id reuse policy refused it
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


async def status(args) -> int:
    client = await order_client(args)
    view = await client.status(args.order_id)
    if args.json:
        print(view.model_dump_json(indent=2))
        return 0
    print_status(view)
    return 0


def print_status(view: OrderStatusView) -> None:
    out.print(f"[bold]Order {view.order_id}[/]  status: [bold]{view.status}[/]")
    policy = f", promise policy {view.process.promise_policy_sha256[:12]}" if view.process.promise_policy_sha256 else ""
    out.print(f"process: {view.process.id} v{view.process.version}  sha256 {view.process.sha256[:12]}{policy}  ({view.process.path})")
    if view.current_nodes:
        out.print(f"current: {', '.join(view.current_nodes)}")
    if view.order:
        o = view.order
        out.print(escape(f"customer: {o.customer_name} ({o.customer_id}, {o.phone}); {o.channel}, {o.order_type}"))
        out.print(escape(f"ships to: {o.address.one_line()}"))
        out.print(escape(f"items: {', '.join(f'{i.sku} x{i.quantity}' for i in o.items)} ({o.amount:.2f})"))
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
        out.print(escape(f"reason: {view.end_reason}"))
    steps = Table("node", "type", "started", "ended", "try", "outcome", "detail", title="Steps")
    for s in view.steps:
        kind = f"{s.type}: {s.activity}" if s.activity else s.type
        steps.add_row(s.node, kind, clock(s.started_at), clock(s.ended_at), str(s.attempt or ""), s.outcome, escape(s.detail or ""))
    out.print(steps)
    for task in view.pending_user_tasks:
        out.print(
            f"[bold yellow]Awaiting decision[/] at {task.node} by role {task.role}: "
            f"{' / '.join(task.outcomes)} (deadline {when(task.deadline)})"
        )
        findings = (
            task.details if isinstance(task.details, list) and all(isinstance(f, dict) and "code" in f for f in task.details) else None
        )
        for finding in findings or []:
            out.print(f"  - {finding['code']}: {finding.get('reason', '')}")
        if task.details and findings is None:
            out.print(f"  details: {json.dumps(task.details, ensure_ascii=False)}")
    _print_fulfilment(view)
    if view.waiting_for_events:
        out.print(f"waiting for event: {', '.join(view.waiting_for_events)}")
    if view.events:
        earlier = view.event_count - len(view.events)
        names = ", ".join(e.name for e in view.events[-10:])
        shown = f"{names} and {view.event_count - min(10, len(view.events))} earlier" if view.event_count > 10 else names
        out.print(escape(f"events received: {view.event_count} ({shown})") + (f" ({earlier} not kept in the status)" if earlier else ""))
    for d in view.decisions:
        out.print(escape(f"decision: {d.node} -> {d.decision} by {d.agent} ({d.role}) at {when(d.at)} via {d.via}: {d.reason}"))
    for refused in view.refused_signals:
        out.print(f"[red]refused signal[/] {escape(refused.name)} at {when(refused.received_at)}: {escape(refused.reason)}")
    if view.refused_signal_count > len(view.refused_signals):
        out.print(f"({view.refused_signal_count - len(view.refused_signals)} earlier refused signals not kept)")


def _print_fulfilment(view: OrderStatusView) -> None:
    """Why the warehouse steps went as they did: the step results support asks about."""
    variables = view.variables
    reservation = variables.get("reservation") or {}
    # The reservation's undo ran (a cancel, a rejection): what it held went back to stock.
    released = any(s.type == "compensation" and s.outcome == "completed" and s.activity == "release_stock" for s in view.steps)
    if reservation and released:
        out.print("stock: released (the order did not complete; what it held is back in stock)")
    elif reservation.get("status") == "short":
        out.print(f"stock: short, {reservation.get('summary')}; waiting for a restock")
    for shipment in [] if released else reservation.get("shipments") or []:
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


def list_query(args) -> OrderQuery:
    """The visibility query of `list`'s filters; values are checked for a helpful message, and quoted regardless."""
    query = OrderQuery()
    for flag, attribute in (("status", "OrderStatus"), ("region", "Region"), ("service", "ServiceLevel")):
        value = getattr(args, flag)
        if value is None:
            continue
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value):
            raise UsageError(f"--{flag} {value!r}: letters, digits and _ only (e.g. awaiting_review, tier1, express)")
        query.where(attribute, value)
    if args.process is not None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", args.process):
            raise UsageError(f"--process {args.process!r}: a definition's id: lower-case letters, digits, _ and - (e.g. standard)")
        query.where("ProcessId", args.process)
    if args.at_risk:
        query.where("AtRisk", True)
    if args.breached:
        query.where("Breached", True)
    if args.promise_before:
        query.where("PromiseAt", time_option("--promise-before", args.promise_before, naive_is_utc=False), "<")
    return query


# Rows drawn at a time: the first ones show as soon as visibility sends them, and the first chunk
# settles the column widths for the rest (a longer value later is cut short with an ellipsis).
LIST_CHUNK = 100
LIST_COLUMNS = {
    "order_id": "order",
    "status": "status",
    "step": "step",
    "process": "process",
    "promise": "promise",
    "region": "region",
    "service": "service",
    "flags": "flags",
    "started": "started",
}


async def list_orders(args) -> int:
    """Rows as visibility sends them, as a table or as one JSON array: never all held before printing."""
    query = list_query(args)
    client = await order_client(args)
    chunk: list[dict[str, str]] = []
    widths: list[int] | None = None
    count = 0
    if args.json:
        sys.stdout.write("[")
    async for order in client.listing(query, limit=args.limit):
        flags = [name for name, on in (("at risk", order.at_risk), ("breached", order.breached)) if on]
        row = {
            "order_id": order.order_id,
            "status": order.status,
            "step": order.step,
            "process": order.process,
            "promise": order.promise_at.isoformat() if order.promise_at else "",
            "region": order.region,
            "service": order.service,
            "flags": ", ".join(flags),
            "started": when(order.started),
        }
        if args.json:
            # The layout of json.dumps(rows, indent=2), one row at a time.
            sys.stdout.write(("," if count else "") + "\n  " + json.dumps(row, indent=2).replace("\n", "\n  "))
        else:
            chunk.append(row)
            if len(chunk) == LIST_CHUNK:
                widths, chunk = _draw_rows(chunk, widths), []
        count += 1
    if args.json:
        sys.stdout.write("\n]\n" if count else "]\n")
        return 0
    if chunk or widths is None:
        _draw_rows(chunk, widths)
    out.print(f"{count} order(s)")
    return 0


def _draw_rows(rows: list[dict[str, str]], widths: list[int] | None) -> list[int]:
    """Print rows, under the header if they are the first (widths None); returns the widths later rows keep."""
    first = widths is None
    if widths is None:
        widths = [max([len(title), *(len(row[key]) for row in rows)]) for key, title in LIST_COLUMNS.items()]
    table = Table(box=None, show_header=first, pad_edge=False)
    for title, width in zip(LIST_COLUMNS.values(), widths, strict=True):
        table.add_column(title, width=width, no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*(escape(row[key]) for key in LIST_COLUMNS))
    out.print(table)
    return widths
    table = Table("order", "status", "step", "process", "promise", "region", "service", "flags", "started")
    for row in rows:
        table.add_row(*row.values())
    out.print(table)
    out.print(f"{len(rows)} order(s)")
    return 0
