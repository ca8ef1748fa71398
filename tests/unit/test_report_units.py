"""The KPI report piece by piece: the facts read from an order's result, the grouped report, and the
manager's HTML page with its two inline SVG charts (geometry included).

test_report.py checks the figures on a known set and the command over real orders; test_boundaries.py
each limit of the KPIs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from orderops.messages import OrderResult, ProcessRef, StepRecord
from orderops.report import TARGETS, OrderFacts, _bars, build, facts, kpis, to_html

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STARTED = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def step(node: str, kind: str, *, activity: str | None = None, outcome: str = "completed", ended: float | None = None) -> StepRecord:
    return StepRecord(
        node=node, type=kind, started_at=T0, ended_at=hours(ended) if ended is not None else None, activity=activity, outcome=outcome
    )


def result(variables: dict, steps: list[StepRecord] = (), status: str = "completed", end_node: str | None = "completed") -> OrderResult:
    return OrderResult(
        order_id="A",
        status=status,
        end_node=end_node,
        reason=None,
        process=ProcessRef(id="standard", version=4, sha256="0" * 64, path="standard.yaml"),
        steps=list(steps),
        decisions=[],
        variables=variables,
    )


# -- facts from an order's result -------------------------------------------------------------


def test_the_facts_of_a_finished_order_come_from_its_variables_and_steps():
    steps = [
        step("reserve", "task", activity="reserve_stock", ended=1),
        step("handoff", "task", activity="handoff_to_courier", outcome="failed", ended=5),
        step("handoff", "task", activity="handoff_to_courier", ended=6),
        step("manual_review", "user_task", ended=2),
    ]
    variables = {
        "promise": {
            "tier": "tier2",
            "service_level": "express",
            "accepted_at": T0.isoformat(),
            "ship_by": hours(24).isoformat(),
            "deliver_by": hours(48).isoformat(),
        },
        "delivery_record": {"delivered_at": hours(30).isoformat()},
        "feedback": {"rating": 4},
        "delay_compensation": {"granted": True, "amount": "20.50"},
        "scan_check": {"scans": 3, "mismatches": 1},
    }
    assert facts(result(variables, steps), STARTED) == OrderFacts(
        order_id="A",
        status="completed",
        tier="tier2",
        service="express",
        accepted_at=T0,
        shipped_at=hours(6),
        delivered_at=hours(30),
        ship_by=hours(24),
        deliver_by=hours(48),
        manual_review=True,
        feedback=4,
        compensation=Decimal("20.50"),
        end_node="completed",
        scans=3,
        scan_mismatches=1,
        return_of=None,
        our_mistake=False,
    )


def test_an_order_that_never_got_far_has_empty_facts_and_counts_from_its_start():
    cancelled = result({}, [step("supervisor", "user_task", ended=1)], status="cancelled", end_node="cancelled_by_customer")
    assert facts(cancelled, STARTED) == OrderFacts(
        order_id="A",
        status="cancelled",
        tier=None,
        service=None,
        accepted_at=STARTED,
        shipped_at=None,
        delivered_at=None,
        ship_by=None,
        deliver_by=None,
        manual_review=False,  # a user task, but not a review
        feedback=None,
        compensation=None,
        end_node="cancelled_by_customer",
    )


def test_variables_set_to_null_count_as_absent():
    nulls = {
        name: None
        for name in ("promise", "delivery_record", "feedback", "delay_compensation", "scan_check", "return_request", "assessment")
    }
    assert facts(result(nulls), STARTED) == facts(result({}), STARTED)


def test_a_coupon_not_granted_and_empty_scan_counts_are_none_and_zero():
    order = facts(
        result({"delay_compensation": {"granted": False, "amount": "20"}, "scan_check": {"scans": None, "mismatches": None}}), STARTED
    )
    assert (order.compensation, order.scans, order.scan_mismatches) == (None, 0, 0)


def test_a_return_names_its_order_and_whether_it_was_our_mistake():
    variables = {"return_request": {"original_order_id": "A-1"}, "assessment": {"our_mistake": True}}
    order = facts(result(variables), STARTED)
    assert (order.return_of, order.our_mistake) == ("A-1", True)


def test_only_a_completed_handoff_ships_the_order():
    order = facts(result({}, [step("handoff", "task", activity="handoff_to_courier", outcome="failed", ended=5)]), STARTED)
    assert order.shipped_at is None


def test_the_definitions_kpi_marks_decide_reviews_shipment_and_delivery():
    marked = result({}, [step("fraud_check", "user_task", ended=1), step("send", "task", ended=3), step("signed", "task", ended=9)])
    marked = marked.model_copy(update={"kpi_nodes": {"review": ["fraud_check"], "shipment": ["send"], "delivery": ["signed"]}})
    order = facts(marked, STARTED)
    assert (order.manual_review, order.shipped_at, order.delivered_at) == (True, hours(3), hours(9))
    # The same steps under a definition that marks nothing count for nothing.
    unmarked = facts(marked.model_copy(update={"kpi_nodes": {"review": [], "shipment": [], "delivery": []}}), STARTED)
    assert (unmarked.manual_review, unmarked.shipped_at, unmarked.delivered_at) == (False, None, None)


def test_a_result_from_before_kpi_marks_reads_the_shipped_processes_nodes():
    legacy = facts(result({}, [step("manual_review", "user_task", ended=1), step("handoff", "task", ended=2)]), STARTED)
    assert legacy.manual_review and legacy.shipped_at == hours(2)
    other = facts(result({}, [step("fraud_check", "user_task", ended=1)]), STARTED)
    assert not other.manual_review


# -- the grouped report -------------------------------------------------------------------------


def order(oid: str, tier: str | None, service: str | None, **update) -> OrderFacts:
    fields = dict(
        order_id=oid,
        status="completed",
        tier=tier,
        service=service,
        accepted_at=T0,
        shipped_at=hours(10),
        delivered_at=hours(30),
        ship_by=hours(24),
        deliver_by=hours(48),
        manual_review=False,
        feedback=None,
        compensation=None,
    )
    return OrderFacts(**(fields | update))


def test_orders_without_a_tier_or_service_are_grouped_as_none_and_returns_only_count_overall():
    orders = [order("A", "tier1", "standard"), order("B", None, None), order("A-R", "tier1", "standard", return_of="A", our_mistake=True)]
    report = build(orders, T0, hours(72))
    assert list(report.by_tier) == ["none", "tier1"]
    assert list(report.by_service) == ["none", "standard"]
    assert report.by_tier["tier1"].orders == 1 and report.by_tier["tier1"].returns == 0
    assert (report.overall.orders, report.overall.returns) == (2, 1)


def test_a_return_listed_first_does_not_hide_the_orders_after_it():
    report = build([order("A-R", "tier1", "standard", return_of="A"), order("A", "tier1", "standard")], T0, hours(72))
    assert report.by_tier["tier1"].orders == 1


def test_delivered_minus_promised_is_in_hours_to_two_places_sorted():
    orders = [
        order("late", "tier1", "standard", delivered_at=hours(48) + timedelta(hours=36, seconds=40)),  # 36.0111 h late
        order("early", "tier1", "standard", delivered_at=hours(47)),
        order("never", "tier1", "standard", delivered_at=None),
        order("R", "tier1", "standard", return_of="A", delivered_at=hours(60)),
    ]
    assert build(orders, T0, hours(72)).delivery_vs_promise_hours == [-1.0, 36.01]


def test_kpi_averages_are_rounded_to_two_places_and_satisfaction_to_four():
    k = kpis(
        [
            order("A", "t", "s", shipped_at=hours(10) + timedelta(seconds=17), feedback=5),
            order("B", "t", "s", shipped_at=hours(11), feedback=4, compensation=Decimal("20")),
            order("C", "t", "s", shipped_at=hours(11), feedback=4, compensation=Decimal("5.5")),
        ]
    )
    assert k.order_to_ship_hours_avg == 10.67  # (10.00472 + 11 + 11) / 3 = 10.668
    assert k.order_to_ship_hours_p90 == 11.0
    assert k.feedback_avg == 4.33
    assert k.satisfaction == 0.8667
    assert (k.compensations, k.compensation_total) == (2, Decimal("25.5"))


def test_the_p90_keeps_two_places():
    assert kpis([order("A", "t", "s", shipped_at=hours(10) + timedelta(seconds=17))]).order_to_ship_hours_p90 == 10.0
    assert kpis([order("A", "t", "s", shipped_at=hours(10) + timedelta(seconds=36))]).order_to_ship_hours_p90 == 10.01


def test_no_coupons_total_zero_as_a_decimal():
    total = kpis([order("A", "t", "s")]).compensation_total
    assert total == Decimal("0") and isinstance(total, Decimal)


# -- the HTML page --------------------------------------------------------------------------------


class Page(HTMLParser):
    """The table's rows (cell texts), the charts' titles and the paragraph under the heading."""

    def __init__(self, text: str):
        super().__init__()
        self.rows: list[list[str]] = []
        self.charts: list[str] = []
        self.paragraph = ""
        self.stray = ""  # text in the table outside its cells
        self._cell: list[str] | None = None
        self._in_table = False
        self._in_p = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "svg":
            self.charts.append(dict(attrs)["aria-label"])
        elif tag == "p":
            self._in_p = True
        elif tag == "table":
            self._in_table = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "p":
            self._in_p = False
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_p:
            self.paragraph += data
        elif self._in_table:
            self.stray += data.strip()


def page_of(orders: list[OrderFacts]) -> tuple[str, Page]:
    text = to_html(build(orders, T0, hours(72)))
    return text, Page(text)


def test_the_page_has_a_row_per_group_with_n_a_where_there_is_no_figure():
    orders = [
        order("A", "tier1", "standard", feedback=5, compensation=Decimal("20"), scans=2, scan_mismatches=1),
        order("B", "tier2", "express", status="cancelled", shipped_at=None, delivered_at=None),
    ]
    _, page = page_of(orders)
    header, *rows = page.rows
    assert header[:4] == ["by", "group", "orders", "promise attainment"] and len(header) == 12
    assert rows == [
        ["all orders", "all", "2", "100.0%", "100.0%", "10.0", "10.0", "0.0%", "50.0%", "50.0%", "5.0", "1 (20)"],
        ["region tier", "tier1", "1", "100.0%", "100.0%", "10.0", "10.0", "0.0%", "0.0%", "50.0%", "5.0", "1 (20)"],
        ["region tier", "tier2", "1", "n/a", "n/a", "n/a", "n/a", "0.0%", "100.0%", "n/a", "n/a", "0 (0)"],
        ["service level", "express", "1", "n/a", "n/a", "n/a", "n/a", "0.0%", "100.0%", "n/a", "n/a", "0 (0)"],
        ["service level", "standard", "1", "100.0%", "100.0%", "10.0", "10.0", "0.0%", "0.0%", "50.0%", "5.0", "1 (20)"],
    ]
    assert page.stray == ""  # nothing between the rows


def test_group_names_are_escaped():
    _, page = page_of([order("A", "<b>&</b>", "standard")])
    assert page.rows[2][1] == "<b>&</b>"  # read back as text: it was escaped in the page


def test_the_page_states_the_period_and_the_targets():
    _, page = page_of([order("A", "tier1", "standard")])
    assert " ".join(page.paragraph.split()) == (
        f"Finished orders closed from {T0.isoformat()} to {hours(72).isoformat()}. "
        "Targets: promise attainment 98%, on-time delivery 95%, order error rate below 1%, satisfaction 90%, picking accuracy 99%."
    )


def charts_of(text: str) -> list[ET.Element]:
    return [ET.fromstring(chart) for chart in re.findall(r"<svg .*?</svg>", text, re.S)]


def test_the_page_charts_the_delivery_spread_and_the_attainment_per_tier_against_the_target():
    orders = [
        order("A", "tier1", "standard"),
        order("B", "tier2", "standard", shipped_at=hours(30)),
        order("C", "tier3", "standard", delivered_at=None),
    ]
    text, page = page_of(orders)
    assert page.charts == ["Delivered vs promised (orders)", "Promise attainment by region tier"]
    spread, attainment = charts_of(text)
    labels = [t.text for t in spread.iter("text")][1:]
    counts = dict(zip(labels[::2], labels[1::2], strict=True))
    assert counts["24h to 12h early"] == "2" and sum(int(v) for v in counts.values()) == 2  # A and B, 18 h early; no unit
    # tier3 delivered nothing: no bar; tier2 shipped late: 0%; the target line at 98%.
    assert [t.text for t in attainment.iter("text")] == ["Promise attainment by region tier", "tier1", "100%", "tier2", "0%", "target 98%"]
    assert float(attainment.find("line").get("x1")) == pytest.approx(170 + 390 * 98 / 100, abs=0.05)
    assert TARGETS["promise_attainment"] == 0.98


def test_attainment_bars_are_percent_to_one_place():
    orders = [order(f"o{i}", "tier1", "standard", shipped_at=hours(30) if i < 1 else hours(10)) for i in range(3)]
    _, attainment = charts_of(page_of(orders)[0])
    assert [t.text for t in attainment.iter("text")][2] == "66.7%"


# -- the charts ---------------------------------------------------------------------------------


def svg(chart: str) -> ET.Element:
    assert chart.startswith("<svg ") and chart.endswith("</svg>")
    root = ET.fromstring(chart)
    assert all(not (element.tail or "").strip() for element in root.iter())  # elements only, nothing between them
    return root


def test_a_bar_chart_scales_each_bar_to_the_largest_value_one_row_each_with_the_target_line():
    chart = svg(_bars("Rates & more", [("a", 1.0), ("b", 3.0)], "%", target=2.0))
    # Two rows of 28 px plus 50 for the title and the axis; bars get 640 - 170 (labels) - 80 (values) = 390 px.
    assert {k: chart.get(k) for k in ("viewBox", "width", "height", "role", "aria-label")} == {
        "viewBox": "0 0 640 106",
        "width": "640",
        "height": "106",
        "role": "img",
        "aria-label": "Rates & more",
    }
    texts = [(t.get("x"), t.get("y"), t.text) for t in chart.iter("text")]
    assert texts == [
        ("0", "18", "Rates & more"),
        ("0", "48", "a"),
        ("306.0", "48", "1%"),  # 170 + 130 + 6
        ("0", "76", "b"),
        ("566.0", "76", "3%"),  # 170 + 390 + 6
        ("434.0", "96", "target 2%"),  # the line's x + 4; height - 10
    ]
    rects = [{k: r.get(k) for k in ("x", "y", "width", "height")} for r in chart.iter("rect")]
    assert rects == [{"x": "170", "y": "34", "width": "130.0", "height": "20"}, {"x": "170", "y": "62", "width": "390.0", "height": "20"}]
    line = chart.find("line")
    assert {k: line.get(k) for k in ("x1", "x2", "y1", "y2")} == {"x1": "430.0", "x2": "430.0", "y1": "28", "y2": "98"}


def test_bars_below_one_fill_the_chart_when_there_is_no_target():
    chart = svg(_bars("Small", [("x", 0.5)], ""))
    assert [r.get("width") for r in chart.iter("rect")] == ["390.0"]
    assert chart.find("line") is None
    assert [t.text for t in chart.iter("text")] == ["Small", "x", "0.5"]


def test_a_chart_of_zeros_draws_empty_bars():
    chart = svg(_bars("Nothing", [("x", 0.0), ("y", 0.0)], ""))
    assert [r.get("width") for r in chart.iter("rect")] == ["0.0", "0.0"]
