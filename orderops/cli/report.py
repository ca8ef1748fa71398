"""orderops report: KPIs over finished orders against the targets the source documents commit to."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.table import Table

from orderops.cli.common import UsageError, order_client, out, time_option, write
from orderops.client import OrderQuery
from orderops.report import Report, build, to_html


async def report(args) -> int:
    until = time_option("--until", args.until) if args.until else datetime.now(UTC)
    since = time_option("--since", args.since) if args.since else until - timedelta(days=30)
    if since >= until:
        raise UsageError(f"--since {since.isoformat()} is not before --until {until.isoformat()}")
    query = OrderQuery().running(False).where("CloseTime", since, ">=").where("CloseTime", until, "<").raw(args.query)
    client = await order_client(args)
    data = build(await client.facts(query), since, until)
    if args.html:
        write(Path(args.html), to_html(data).encode())
        # stdout may be JSON for a program: the page's path goes to stderr.
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        print(data.model_dump_json(indent=2))
    elif not args.html:
        print_report(data)
    return 0


def print_report(data: Report, title: str | None = None) -> None:
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
