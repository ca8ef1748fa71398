"""KPIs over finished orders, against the targets the source documents commit to."""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from orderops.messages import OrderResult

# docs/domain.md: figures the documents commit to.
# Results recorded before definitions marked their KPI nodes (`kpi:` in the language) carry no
# `kpi_nodes`; they all ran under the shipped processes, whose nodes these are.
LEGACY_KPI_NODES = {"review": ["manual_review", "escalated_review"], "shipment": ["handoff"], "delivery": ["record_delivery"]}

TARGETS = {
    "promise_attainment": 0.98,
    "on_time_delivery": 0.95,
    "order_error_rate": 0.01,
    "satisfaction": 0.90,
    "picking_accuracy": 0.99,
}
# Ends that close an order without it being anyone's mistake.
NOT_ERRORS = frozenset({"merged", "unpaid"})


class OrderFacts(BaseModel):
    order_id: str
    status: str
    tier: str | None
    service: str | None
    accepted_at: datetime
    shipped_at: datetime | None
    delivered_at: datetime | None
    ship_by: datetime | None
    deliver_by: datetime | None
    manual_review: bool
    feedback: int | None
    compensation: Decimal | None
    end_node: str | None = None
    scans: int = 0
    scan_mismatches: int = 0
    # A return (returns.yaml) is not an order of its own: it counts against the order error rate when it was our mistake.
    return_of: str | None = None
    our_mistake: bool = False


# Where an order started under engine 3 keeps its facts (workflows/order.py, at its end), so `orderops
# report` reads them from the visibility listing instead of fetching each order's result. The version
# changes whenever facts() changes what it derives: older memos are then ignored and the facts are
# derived again from the result.
MEMO_KEY = "kpi_facts"
FACTS_VERSION = 1


def memo_entry(result: OrderResult, started_at: datetime) -> dict:
    """The memo value an order writes when it ends: its facts, with the version that derived them."""
    return {"version": FACTS_VERSION, "facts": facts(result, started_at).model_dump(mode="json")}


def from_memo(memo: Mapping[str, Any]) -> OrderFacts | None:
    """The facts an order wrote to its memo, or None when it wrote none (or under another version)."""
    entry = memo.get(MEMO_KEY)
    if not isinstance(entry, dict) or entry.get("version") != FACTS_VERSION:
        return None
    try:
        return OrderFacts.model_validate(entry.get("facts"))
    except ValidationError:
        return None


def _when(value) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def facts(result: OrderResult, started_at: datetime) -> OrderFacts:
    """What the KPIs need, read from an order's result (and so from its history)."""
    variables = result.variables
    promise = variables.get("promise") or {}
    delivery = variables.get("delivery_record") or {}
    marked = LEGACY_KPI_NODES if result.kpi_nodes is None else result.kpi_nodes

    def completed_at(kind: str) -> datetime | None:
        return next((s.ended_at for s in result.steps if s.node in marked.get(kind, ()) and s.outcome == "completed"), None)

    feedback = variables.get("feedback") or {}
    coupon = variables.get("delay_compensation") or {}
    rating = feedback.get("rating")
    scan = variables.get("scan_check") or {}
    request = variables.get("return_request") or {}
    assessment = variables.get("assessment") or {}
    return OrderFacts(
        order_id=result.order_id,
        status=result.status,
        tier=promise.get("tier"),
        service=promise.get("service_level"),
        accepted_at=_when(promise.get("accepted_at")) or started_at,
        shipped_at=completed_at("shipment"),
        # The courier's own time of delivery when the process records one, else when the delivery step completed.
        delivered_at=_when(delivery.get("delivered_at")) or completed_at("delivery"),
        ship_by=_when(promise.get("ship_by")),
        deliver_by=_when(promise.get("deliver_by")),
        manual_review=any(s.type == "user_task" and s.node in marked.get("review", ()) for s in result.steps),
        feedback=rating if isinstance(rating, int) and 1 <= rating <= 5 else None,
        compensation=Decimal(coupon["amount"]) if coupon.get("granted") else None,
        end_node=result.end_node,
        scans=scan.get("scans") or 0,
        scan_mismatches=scan.get("mismatches") or 0,
        return_of=request.get("original_order_id"),
        our_mistake=bool(assessment.get("our_mistake")),
    )


class Kpis(BaseModel):
    orders: int
    delivered: int
    promise_attainment: float | None
    on_time_delivery: float | None
    order_to_ship_hours_avg: float | None
    order_to_ship_hours_p90: float | None
    manual_review_rate: float | None
    order_error_rate: float | None
    feedback_avg: float | None
    satisfaction: float | None
    compensations: int
    compensation_total: Decimal
    picking_accuracy: float | None = None
    returns: int = 0


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 2)


def kpis(facts: list[OrderFacts]) -> Kpis:
    orders = [o for o in facts if o.return_of is None]
    returns = [o for o in facts if o.return_of is not None]
    delivered = [o for o in orders if o.delivered_at and o.deliver_by]
    on_time = [o for o in orders if o.delivered_at and o.deliver_by and o.delivered_at <= o.deliver_by]
    kept = [o for o in on_time if o.shipped_at and o.ship_by and o.shipped_at <= o.ship_by]
    ship_hours = [(o.shipped_at - o.accepted_at).total_seconds() / 3600 for o in orders if o.shipped_at]
    ratings = [o.feedback for o in orders if o.feedback is not None]
    coupons = [o.compensation for o in orders if o.compensation is not None]
    return Kpis(
        orders=len(orders),
        delivered=len(delivered),
        promise_attainment=_rate(len(kept), len(delivered)),
        on_time_delivery=_rate(len(on_time), len(delivered)),
        order_to_ship_hours_avg=round(math.fsum(ship_hours) / len(ship_hours), 2)
        if ship_hours
        else None,  # fsum: the same whatever order the orders come in
        order_to_ship_hours_p90=_p90(ship_hours),
        manual_review_rate=_rate(sum(o.manual_review for o in orders), len(orders)),
        # Errors: orders cancelled or failed after acceptance (not merged, not unpaid), or returned because of our mistake;
        # an order counts once, however many such returns it had, so the rate stays a share of the orders.
        order_error_rate=_rate(
            len(
                {o.order_id for o in orders if o.status in ("cancelled", "failed") and o.end_node not in NOT_ERRORS}
                | {r.return_of for r in returns if r.our_mistake}
            ),
            len(orders),
        ),
        feedback_avg=round(sum(ratings) / len(ratings), 2) if ratings else None,
        satisfaction=round(sum(ratings) / (5 * len(ratings)), 4) if ratings else None,
        compensations=len(coupons),
        compensation_total=sum(coupons, Decimal("0")),
        # Scans that matched the order the first time, over every scan (a re-pick is a second scan).
        picking_accuracy=_rate(sum(o.scans - o.scan_mismatches for o in facts), sum(o.scans for o in facts)),
        returns=len(returns),
    )


class Report(BaseModel):
    since: datetime
    until: datetime
    targets: dict[str, float]
    overall: Kpis
    by_tier: dict[str, Kpis]
    by_service: dict[str, Kpis]
    # Delivered minus promised, in hours, per delivered order: the distribution chart's data.
    delivery_vs_promise_hours: list[float]


def build(orders: list[OrderFacts], since: datetime, until: datetime) -> Report:
    def grouped(key) -> dict[str, Kpis]:
        groups: dict[str, list[OrderFacts]] = {}
        for order in orders:
            if order.return_of is not None:
                continue  # returns carry no promise of their own: they count in the overall figures
            groups.setdefault(getattr(order, key) or "none", []).append(order)
        return {name: kpis(members) for name, members in sorted(groups.items())}

    return Report(
        since=since,
        until=until,
        targets=TARGETS,
        overall=kpis(orders),
        by_tier=grouped("tier"),
        by_service=grouped("service"),
        delivery_vs_promise_hours=sorted(
            round((o.delivered_at - o.deliver_by).total_seconds() / 3600, 2)
            for o in orders
            if o.delivered_at and o.deliver_by and o.return_of is None
        ),
    )


# -- the manager's page --------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _bars(title: str, items: list[tuple[str, float]], unit: str, target: float | None = None) -> str:
    """A horizontal bar chart as inline SVG: no script, no network."""
    width, row, label_w = 640, 28, 170
    height = row * len(items) + 50
    top = max([v for _, v in items] + [target or 0, 1e-9])
    parts = [f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">']
    parts.append(f'<text x="0" y="18" font-weight="bold">{html.escape(title)}</text>')
    for i, (label, value) in enumerate(items):
        y = 32 + i * row
        w = (width - label_w - 80) * value / top
        parts.append(f'<text x="0" y="{y + 16}">{html.escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 8}" fill="#4e79a7"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 16}">{value:g}{unit}</text>')
    if target is not None:
        x = label_w + (width - label_w - 80) * target / top
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="28" y2="{height - 8}" stroke="#e15759" stroke-dasharray="4"/>')
        parts.append(f'<text x="{x + 4:.1f}" y="{height - 10}" fill="#e15759">target {target:g}{unit}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(hours: list[float]) -> list[tuple[str, float]]:
    """Delivered minus promised: at or before the promise counts as on time."""
    edges = [-72, -48, -24, -12, 0]
    # Callable[..., bool]: mypy cannot type a lambda that binds its bounds as defaults against [float].
    buckets: list[tuple[str, Callable[..., bool]]] = [("more than 3 days early", lambda h: h <= -72)]
    buckets += [(f"{-a}h to {-b}h early", lambda h, a=a, b=b: a < h <= b) for a, b in itertools.pairwise(edges)]
    late = [0, 12, 24, 48]
    buckets += [(f"{a}h to {b}h late", lambda h, a=a, b=b: a < h <= b) for a, b in itertools.pairwise(late)]
    buckets += [("more than 2 days late", lambda h: h > 48)]
    return [(label, float(sum(1 for h in hours if test(h)))) for label, test in buckets]


def to_html(report: Report) -> str:
    rows = []
    for group, table in (("all orders", {"all": report.overall}), ("region tier", report.by_tier), ("service level", report.by_service)):
        for name, k in table.items():
            rows.append(
                f"<tr><td>{html.escape(group)}</td><td>{html.escape(name)}</td><td>{k.orders}</td><td>{_pct(k.promise_attainment)}</td>"
                f"<td>{_pct(k.on_time_delivery)}</td><td>{k.order_to_ship_hours_avg if k.order_to_ship_hours_avg is not None else 'n/a'}</td>"
                f"<td>{k.order_to_ship_hours_p90 if k.order_to_ship_hours_p90 is not None else 'n/a'}</td><td>{_pct(k.manual_review_rate)}</td>"
                f"<td>{_pct(k.order_error_rate)}</td><td>{_pct(k.picking_accuracy)}</td><td>{k.feedback_avg if k.feedback_avg is not None else 'n/a'}</td>"
                f"<td>{k.compensations} ({k.compensation_total})</td></tr>"
            )
    attainment = [(tier, round(100 * (k.promise_attainment or 0), 1)) for tier, k in report.by_tier.items() if k.delivered]
    charts = _bars("Delivered vs promised (orders)", _histogram(report.delivery_vs_promise_hours), "")
    charts += _bars("Promise attainment by region tier", attainment, "%", target=100 * TARGETS["promise_attainment"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>orderops KPIs</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child,td:nth-child(2){{text-align:left}}svg{{display:block;margin:1.5em 0}}</style>
</head><body>
<h1>Order fulfilment KPIs</h1>
<p>Finished orders closed from {report.since.isoformat()} to {report.until.isoformat()}.
Targets: promise attainment {TARGETS["promise_attainment"]:.0%}, on-time delivery {TARGETS["on_time_delivery"]:.0%},
order error rate below {TARGETS["order_error_rate"]:.0%}, satisfaction {TARGETS["satisfaction"]:.0%},
picking accuracy {TARGETS["picking_accuracy"]:.0%}.</p>
<table><tr><th>by</th><th>group</th><th>orders</th><th>promise attainment</th><th>on time</th><th>order-to-ship h (avg)</th>
<th>order-to-ship h (p90)</th><th>manual review</th><th>error rate</th><th>picking accuracy</th><th>feedback (1-5)</th><th>coupons (total)</th></tr>
{"".join(rows)}</table>
{charts}
</body></html>
"""
