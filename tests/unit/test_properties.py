"""Properties that hold for every input: the promise, the KPIs, CSV intake and lint, checked with hypothesis.

Derandomized and without an example database, so CI sees the same examples every run.
"""

from __future__ import annotations

import copy
import csv
import io
import re
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from activities import ACTIVITY_NAMES
from orderops.cli.common import field_errors
from orderops.csv_orders import COLUMNS, OPTIONAL_COLUMNS, PAID_VALUES, CsvFileError, parse_csv_orders
from orderops.order import Order
from orderops.process.lint import lint_text, load_policy
from orderops.process.model import NODE_TYPES
from orderops.promise import WEEKDAYS, PromisePolicy, compute
from orderops.report import OrderFacts, build, kpis
from tests.helpers import ROOT


def examples(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        # The explain phase traces every line (sys.settrace on Python 3.11): a found failure would be
        # reported after the test's timeout instead of at once.
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --- the promise --------------------------------------------------------------------------------------

# Zones with and without daylight saving, half and quarter hours, and one whose clocks change at midnight.
ZONES = [
    "America/Santiago",
    "Asia/Shanghai",
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Pacific/Chatham",
]
OFFSETS = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))] + [
    ZoneInfo(z) for z in ("Europe/Berlin", "America/Los_Angeles")
]
CATEGORIES = ["made_to_order", "hazardous", "fragile", "general"]

acceptances = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.sampled_from(OFFSETS), allow_imaginary=False
)
days = st.integers(0, 6)


@st.composite
def policies(draw) -> PromisePolicy:
    return PromisePolicy.model_validate(
        {
            "timezone": draw(st.sampled_from(ZONES)),
            "cutoff": draw(st.times()).isoformat(),
            "working_days": draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, unique=True)),
            "ship_within": draw(st.integers(1, 4 * 86400)),
            "tiers": {"tier1": draw(days), "tier2": draw(days), "remote": draw(days)},
            "regions": [{"province": "Shanghai", "tier": "tier1"}, {"postcode_prefix": "85", "tier": "remote"}],
            "default_tier": "tier2",
            "services": {
                "standard": {},
                "express": {"faster_by_days": draw(days)},
                "fixed": {"days": draw(days)},
                "same_day": {"days": 0, "tiers": ["tier1"]},
            },
            "customer_tiers": {"vip": draw(days)},
            "categories": {"made_to_order": draw(days), "hazardous": draw(days)},
        }
    )


@st.composite
def shipments(draw) -> dict:
    province, postcode = draw(st.sampled_from([("Shanghai", "200120"), ("Tibet", "850000"), ("Sichuan", "610041")]))
    return {
        "province": province,
        "city": "City",
        "postcode": postcode,
        "service_level": draw(st.sampled_from(["standard", "express", "fixed", "same_day", "overnight"])),
        "customer_tier": draw(st.sampled_from(["regular", "vip"])),
        "categories": set(draw(st.lists(st.sampled_from(CATEGORIES), unique=True))),
    }


def _working(policy: PromisePolicy, day: date) -> bool:
    return WEEKDAYS[day.weekday()] in policy.working_days


@examples(200)
@given(policies(), shipments(), acceptances)
def test_the_promise_never_precedes_acceptance_and_ship_by_never_follows_deliver_by(policy, shipment, accepted):
    p = compute(policy, **shipment, accepted_at=accepted)
    assert p.accepted_at == accepted
    assert accepted <= p.counts_from <= p.ship_by <= p.deliver_by
    assert p.counts_from < p.deliver_by


@examples(200)
@given(policies(), shipments(), acceptances)
def test_the_promise_counts_from_acceptance_or_midnight_of_the_next_working_day(policy, shipment, accepted):
    # docs/promises.md step 1; the cut-off counts "at or after".
    zone = ZoneInfo(policy.timezone)
    local, start = accepted.astimezone(zone), compute(policy, **shipment, accepted_at=accepted).counts_from.astimezone(zone)
    assert _working(policy, start.date())
    if _working(policy, local.date()) and local.time() < policy.cutoff:
        # As instants: in a repeated DST hour, == between two zones is always false (PEP 495).
        assert start.astimezone(UTC) == accepted.astimezone(UTC)
    else:
        assert start.time() == time(0, 0) and start.date() > local.date()
        skipped = [local.date() + timedelta(days=n) for n in range(1, (start.date() - local.date()).days)]
        assert not any(_working(policy, day) for day in skipped)


@examples(200)
@given(
    policies(),
    shipments(),
    st.dates(date(2020, 1, 1), date(2035, 12, 31)),
    st.sampled_from([-timedelta(microseconds=1), timedelta(0), timedelta(microseconds=1)]),
)
def test_an_order_accepted_at_the_cut_off_counts_from_the_next_working_day(policy, shipment, day, nudge):
    zone = ZoneInfo(policy.timezone)
    at_cutoff = datetime.combine(day, policy.cutoff, zone)
    assume(at_cutoff.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == at_cutoff.replace(tzinfo=None))  # not in a DST gap
    accepted = at_cutoff + nudge
    local = accepted.astimezone(zone)
    start = compute(policy, **shipment, accepted_at=accepted).counts_from
    stays = _working(policy, local.date()) and local.time() < policy.cutoff  # "at or after this local time": next working day
    assert (start == accepted) is stays
    if nudge >= timedelta(0) and local.date() == day:
        assert start > accepted and start.astimezone(zone).time() == time(0, 0)


@examples(200)
@given(policies(), shipments(), acceptances)
def test_deliver_by_is_the_last_second_of_the_start_day_plus_the_delivery_days(policy, shipment, accepted):
    zone = ZoneInfo(policy.timezone)
    p = compute(policy, **shipment, accepted_at=accepted)
    deliver_by = p.deliver_by.astimezone(zone)
    assert deliver_by.time() == time(23, 59, 59)
    assert deliver_by.date() == p.counts_from.astimezone(zone).date() + timedelta(days=p.delivery_days)


@examples(200)
@given(policies(), shipments(), acceptances)
def test_ship_by_is_ship_within_later_moved_only_past_days_off_or_capped_at_deliver_by(policy, shipment, accepted):
    zone = ZoneInfo(policy.timezone)
    p = compute(policy, **shipment, accepted_at=accepted)
    due = p.counts_from + policy.ship_within
    if p.ship_by == p.deliver_by:
        return  # capped: "never after deliver_by"
    ship_by = p.ship_by.astimezone(zone)
    assert _working(policy, ship_by.date())
    due = due.astimezone(zone)
    # "moved to the same time of the next working day" (unless a clock change skipped that time there).
    assert ship_by.time() == due.time() or ship_by.utcoffset() != due.utcoffset()
    moved_over = [due.date() + timedelta(days=n) for n in range((ship_by.date() - due.date()).days)]
    assert not any(_working(policy, day) for day in moved_over)


@examples(200)
@given(policies(), shipments(), acceptances, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=9)))
def test_a_later_acceptance_never_gives_an_earlier_promise(policy, shipment, accepted, later_by):
    first = compute(policy, **shipment, accepted_at=accepted)
    later = compute(policy, **shipment, accepted_at=accepted + later_by)
    assert first.counts_from <= later.counts_from
    assert first.deliver_by <= later.deliver_by
    assert first.delivery_days == later.delivery_days


SHIPPED_POLICY = load_policy(ROOT / "process_defs" / "policies" / "promise.yaml")  # 24h, Sunday off


@examples(100)
@given(shipments(), acceptances, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=9)))
def test_with_the_shipped_policy_a_later_acceptance_never_has_to_ship_earlier(shipment, accepted, later_by):
    policy = SHIPPED_POLICY
    first = compute(policy, **shipment, accepted_at=accepted)
    assert first.ship_by <= compute(policy, **shipment, accepted_at=accepted + later_by).ship_by


@examples(200)
@given(policies(), shipments(), acceptances, st.sampled_from(OFFSETS))
def test_the_promise_depends_on_the_instant_not_on_the_offset_it_was_given_in(policy, shipment, accepted, other):
    assert compute(policy, **shipment, accepted_at=accepted) == compute(policy, **shipment, accepted_at=accepted.astimezone(other))


@examples(200)
@given(policies(), shipments(), acceptances, st.sampled_from(CATEGORIES))
def test_vip_express_and_fewer_categories_never_promise_later(policy, shipment, accepted, category):
    def deliver_by(**change):
        return compute(policy, **(shipment | change), accepted_at=accepted).deliver_by

    base = deliver_by()
    assert deliver_by(customer_tier="vip") <= deliver_by(customer_tier="regular")
    assert deliver_by(categories=shipment["categories"] | {category}) >= base
    if shipment["service_level"] == "standard":
        assert deliver_by(service_level="express") <= base


@examples(30)
@given(policies(), shipments(), st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)))
def test_a_naive_acceptance_time_is_refused_whatever_the_policy(policy, shipment, naive):
    with pytest.raises(ValueError, match="time zone"):
        compute(policy, **shipment, accepted_at=naive)


# --- KPIs -----------------------------------------------------------------------------------------------

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
offsets = st.integers(0, 240 * 60).map(lambda minutes: timedelta(minutes=minutes))
maybe_offsets = st.none() | offsets
statuses = st.sampled_from(["completed", "cancelled", "failed", "rejected"])
end_nodes = st.sampled_from([None, "completed", "merged", "unpaid", "step_failed", "cancelled"])
tiers = st.sampled_from([None, "tier1", "tier2", "remote"])
services = st.sampled_from([None, "standard", "express", "same_day"])
ratings = st.none() | st.integers(1, 5)
coupons = st.none() | st.integers(1, 100).map(Decimal)
scan_counts = st.integers(0, 4)


@st.composite
def order_facts(draw, order_id: str) -> OrderFacts:
    accepted = T0 + draw(offsets)

    def after_acceptance() -> datetime | None:
        offset = draw(maybe_offsets)
        return None if offset is None else accepted + offset

    scans = draw(scan_counts)
    is_return = draw(st.integers(0, 5)) == 0
    return OrderFacts(
        order_id=order_id,
        status=draw(statuses),
        end_node=draw(end_nodes),
        tier=draw(tiers),
        service=draw(services),
        accepted_at=accepted,
        shipped_at=after_acceptance(),
        delivered_at=after_acceptance(),
        ship_by=after_acceptance(),
        deliver_by=after_acceptance(),
        manual_review=draw(st.booleans()),
        feedback=draw(ratings),
        compensation=draw(coupons),
        scans=scans,
        scan_mismatches=draw(st.integers(0, scans)),
        return_of=f"R-{order_id}" if is_return else None,
        our_mistake=is_return and draw(st.booleans()),
    )


@st.composite
def fact_sets(draw, max_size: int = 25) -> list[OrderFacts]:
    n = draw(st.integers(0, max_size))
    return [draw(order_facts(f"o{i}")) for i in range(n)]


RATES = ("promise_attainment", "on_time_delivery", "manual_review_rate", "satisfaction", "picking_accuracy")


@examples(75)
@given(fact_sets())
def test_rates_are_shares_and_counts_add_up(facts):
    k = kpis(facts)
    orders = [f for f in facts if f.return_of is None]
    for name in RATES:
        value = getattr(k, name)
        assert value is None or 0 <= value <= 1, name
    assert (k.orders, k.returns) == (len(orders), len(facts) - len(orders))
    assert 0 <= k.delivered <= k.orders
    assert k.compensations == sum(1 for f in orders if f.compensation is not None)
    assert k.compensation_total == sum((f.compensation for f in orders if f.compensation is not None), Decimal(0))
    if k.delivered:
        assert k.promise_attainment <= k.on_time_delivery  # kept promises are on time too
    if k.feedback_avg is not None:
        assert 1 <= k.feedback_avg <= 5 and abs(k.satisfaction * 5 - k.feedback_avg) < 0.006
    error_rate = kpis(orders).order_error_rate
    assert error_rate is None or 0 <= error_rate <= 1


@examples(75)
@given(fact_sets(), st.randoms(use_true_random=False))
def test_the_order_of_the_records_does_not_matter(facts, random):
    shuffled = facts[:]
    random.shuffle(shuffled)
    assert kpis(shuffled) == kpis(facts)
    assert build(shuffled, T0, T0 + timedelta(days=30)) == build(facts, T0, T0 + timedelta(days=30))


def _between(value, parts) -> bool:
    known = [p for p in parts if p is not None]
    return value is None if not known else min(known) <= value <= max(known)


@examples(75)
@given(fact_sets())
def test_the_groups_partition_the_orders_and_their_rates_bracket_the_overall_rate(facts):
    report = build(facts, T0, T0 + timedelta(days=30))
    overall = report.overall
    for groups in (report.by_tier, report.by_service):
        parts = list(groups.values())
        assert sum(g.orders for g in parts) == overall.orders
        assert sum(g.delivered for g in parts) == overall.delivered
        assert sum(g.compensations for g in parts) == overall.compensations
        assert sum((g.compensation_total for g in parts), Decimal(0)) == overall.compensation_total
        assert all(g.returns == 0 for g in parts)  # returns are counted apart
        for name in ("promise_attainment", "on_time_delivery", "manual_review_rate", "feedback_avg"):
            assert _between(getattr(overall, name), [getattr(g, name) for g in parts]), name
    assert len(report.delivery_vs_promise_hours) == overall.delivered
    assert report.delivery_vs_promise_hours == sorted(report.delivery_vs_promise_hours)


@examples(75)
@given(fact_sets(max_size=15), fact_sets(max_size=15))
def test_aggregating_a_set_equals_aggregating_its_parts(first, second):
    second = [f.model_copy(update={"order_id": f"b-{f.order_id}"}) for f in second]
    whole, a, b = kpis(first + second), kpis(first), kpis(second)
    for name in ("orders", "delivered", "compensations", "compensation_total", "returns"):
        assert getattr(whole, name) == getattr(a, name) + getattr(b, name), name
    for name in (*RATES, "feedback_avg", "order_to_ship_hours_avg"):
        assert _between(getattr(whole, name), [getattr(a, name), getattr(b, name)]), name


def _p90(values: list[float]) -> float:
    """Nearest rank: the smallest value with at least 90% of the values at or below it."""
    return min(v for v in values if Fraction(sum(1 for x in values if x <= v), len(values)) >= Fraction(9, 10))


@examples(75)
@given(fact_sets())
def test_order_to_ship_hours_are_the_nearest_rank_p90_and_the_mean(facts):
    hours = [(f.shipped_at - f.accepted_at) / timedelta(hours=1) for f in facts if f.return_of is None and f.shipped_at]
    k = kpis(facts)
    if not hours:
        assert (k.order_to_ship_hours_avg, k.order_to_ship_hours_p90) == (None, None)
        return
    assert k.order_to_ship_hours_p90 == round(_p90(hours), 2)
    assert abs(k.order_to_ship_hours_avg - sum(hours) / len(hours)) <= 0.005 + 1e-9
    assert min(hours) - 0.005 <= k.order_to_ship_hours_avg <= max(hours) + 0.005


# --- CSV intake -----------------------------------------------------------------------------------------

# Cell text an order may hold: anything but control characters, surrogates and bidirectional overrides
# (orderops.order.plain_line refuses them); cells are trimmed, so a value has no surrounding whitespace.
cell_text = (
    st.text(
        st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),
        min_size=1,
        max_size=12,
    )
    .map(str.strip)
    .filter(bool)
)
names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
order_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,15}", fullmatch=True)
prices = st.integers(0, 10**12 - 1).map(lambda cents: Decimal(cents).scaleb(-2))


@st.composite
def csv_orders(draw) -> list[Order]:
    ids = draw(st.lists(order_ids, min_size=1, max_size=4, unique=True))
    return [
        Order.model_validate(
            {
                "order_id": order_id,
                "customer_id": draw(cell_text),
                "customer_name": draw(cell_text),
                "phone": draw(cell_text),
                "address": {
                    "province": draw(cell_text),
                    "city": draw(cell_text),
                    "district": draw(st.just("") | cell_text),
                    "street": draw(cell_text),
                    "postcode": draw(st.just("") | cell_text),
                },
                "items": [
                    {"sku": draw(cell_text), "quantity": draw(st.integers(1, 10_000)), "unit_price": draw(prices)}
                    for _ in range(draw(st.integers(1, 3)))
                ],
                "channel": draw(st.sampled_from(["web", "app", "mini_program", "phone", "fax", "store", "taobao", "jd"])),
                "order_type": draw(st.sampled_from(["normal", "promotion", "urgent"])),
                "service_level": draw(names),
                "customer_tier": draw(names),
                "paid": draw(st.booleans()),
            }
        )
        for order_id in ids
    ]


DEFAULTS = {
    "district": "",
    "postcode": "",
    "channel": "web",
    "order_type": "normal",
    "service_level": "standard",
    "customer_tier": "regular",
}


def _cells(order: Order, item, paid: str) -> dict[str, str]:
    return {
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "customer_name": order.customer_name,
        "phone": order.phone,
        **{c: getattr(order.address, c) for c in ("province", "city", "district", "street", "postcode")},
        "channel": order.channel,
        "order_type": order.order_type,
        "service_level": order.service_level,
        "customer_tier": order.customer_tier,
        "paid": paid,
        "sku": item.sku,
        "quantity": str(item.quantity),
        "unit_price": str(item.unit_price),
    }


def _spelling(draw, paid: bool) -> str:
    spelling = draw(st.sampled_from([k for k, v in PAID_VALUES.items() if v is paid]))
    return spelling.upper() if draw(st.booleans()) else spelling


@examples(120)
@given(st.data())
def test_any_valid_orders_written_as_csv_parse_back_to_the_same_orders(data):
    draw = data.draw
    orders = draw(csv_orders())
    columns = draw(st.permutations(COLUMNS))
    # A column the orders all leave at its default may be left out of the file.
    at_default = {c for c in OPTIONAL_COLUMNS if all(_cells(o, o.items[0], "")[c] == DEFAULTS[c] for o in orders)}
    columns = [c for c in columns if c not in at_default or draw(st.booleans())]
    # The rows of an order need not be adjacent, but keep their order.
    owners = draw(st.permutations([i for i, order in enumerate(orders) for _ in order.items]))
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow([f" {c.upper()} " if draw(st.booleans()) else c for c in columns])
    lines: dict[str, list[int]] = {}
    taken = [0] * len(orders)
    for owner in owners:
        order = orders[owner]
        cells = _cells(order, order.items[taken[owner]], _spelling(draw, order.paid))
        taken[owner] += 1
        lines.setdefault(order.order_id, []).append(out.getvalue().count("\n") + 1)
        writer.writerow([cells[c] for c in columns])
    text = out.getvalue()
    payload = draw(st.sampled_from([text, text.encode(), text.encode("utf-8-sig")]))

    result = parse_csv_orders(payload, "orders.csv", field_errors)

    assert result.problems == [] and result.rejected == []
    assert result.lines == lines  # the physical line of each row, quoted line breaks included
    first_seen = sorted(range(len(orders)), key=lambda i: lines[orders[i].order_id][0])
    assert result.orders == [orders[i] for i in first_seen]


WHOLE_FILE = ("empty file", "no order rows after the header")
LINE = re.compile(r"^orders\.csv:(\d+): ")


def _physical_lines(text: str) -> int:
    return len(io.StringIO(text, newline="").readlines()) + 1


def _check_parse(data: bytes | str) -> None:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    last = _physical_lines(text)
    try:
        result = parse_csv_orders(data, "orders.csv", field_errors)
    except CsvFileError as err:
        message = str(err)
        assert "\n" not in message
        found = LINE.match(message)
        if found is None:
            assert message.startswith("orders.csv: ") and any(part in message for part in WHOLE_FILE), message
        else:
            assert 1 <= int(found[1]) <= last, message
        return
    assert [p.line for p in result.problems] == sorted(p.line for p in result.problems)
    for problem in result.problems:
        assert 2 <= problem.line <= last and problem.message, problem
        assert str(problem).startswith(f"orders.csv:{problem.line}:")
    rows = {line for numbers in result.lines.values() for line in numbers}
    assert result.invalid_lines <= {p.line for p in result.problems}
    assert rows <= set(range(2, last + 1))
    valid = {order.order_id for order in result.orders}
    assert not valid & set(result.rejected)
    assert valid <= set(result.lines)


@examples(200)
@given(st.text())
def test_garbage_text_raises_nothing_but_csv_file_error_with_its_line(text):
    _check_parse(text)


@examples(200)
@given(st.binary())
def test_garbage_bytes_raise_nothing_but_csv_file_error_with_its_line(data):
    _check_parse(data)


GOOD_CELLS = [
    "A1",
    "B2",
    "C-1",
    "Li Wei",
    "13800138001",
    "Shanghai",
    "88 Century Avenue",
    "200120",
    "TEA-001",
    "1",
    "68.00",
    "true",
    "no",
    "web",
]
junk_cells = st.sampled_from(GOOD_CELLS) | st.text(st.sampled_from(list(',"\n\r x1é.-')), max_size=6) | st.text(max_size=4)


@examples(200)
@given(
    st.permutations(COLUMNS),
    st.lists(st.lists(junk_cells, max_size=len(COLUMNS) + 2), max_size=6),
    st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_rows_of_junk_under_a_good_header_hold_back_only_their_orders_with_their_lines(columns, rows, newline):
    _check_parse(newline.join([",".join(columns), *(",".join(cells) for cells in rows)]))


# --- lint ---------------------------------------------------------------------------------------------

STANDARD = (ROOT / "process_defs" / "standard.yaml").read_text(encoding="utf-8")
STANDARD_DATA = yaml.safe_load(STANDARD)
NODE_IDS = [node["id"] for node in STANDARD_DATA["nodes"]]
NODE_KEYS = sorted({key for node in STANDARD_DATA["nodes"] for key in node})
TOP_KEYS = list(STANDARD_DATA)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([*NODE_IDS, *NODE_TYPES, "30m", "0s", "-1h", "soon", "order.paid", "size(", "x ==", "end", "completed", "P1D"])
    | st.text(max_size=8)
)
yaml_data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from([*TOP_KEYS, *NODE_KEYS]) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)


def _check_lint(text: str) -> None:
    definition, problems = lint_text(text, ACTIVITY_NAMES)
    assert (definition is None) == bool(problems)
    last = text.count("\n") + 1
    for problem in problems:
        assert 1 <= problem.line <= last and problem.column >= 1 and problem.message, problem


@st.composite
def definitions_like(draw) -> dict:
    """Mostly the right keys, with values of any shape: gets past the first checks into the deeper ones."""
    node = st.fixed_dictionaries(
        {"id": st.sampled_from(NODE_IDS) | scalars, "type": st.sampled_from(NODE_TYPES) | scalars},
        optional={key: yaml_data for key in NODE_KEYS if key not in ("id", "type")},
    )
    return draw(
        st.fixed_dictionaries(
            {"id": st.just("fuzz") | scalars, "version": st.just(1) | scalars, "start": st.sampled_from(NODE_IDS) | scalars},
            optional={"nodes": st.lists(node, max_size=6), "variables": yaml_data, "promise_policy": yaml_data, "events": yaml_data},
        )
    )


@examples(120)
@given(yaml_data)
def test_any_yaml_structure_lints_without_crashing_and_every_problem_has_a_line(data):
    _check_lint(yaml.safe_dump(data, allow_unicode=True))


@examples(80)
@given(definitions_like())
def test_definition_shaped_yaml_lints_without_crashing_and_every_problem_has_a_line(data):
    _check_lint(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


def _paths(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, (*prefix, index))


def _get(data, path):
    for part in path:
        data = data[part]
    return data


@st.composite
def mutated_standard(draw) -> dict:
    data = copy.deepcopy(STANDARD_DATA)
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent, key = _get(data, path[:-1]), path[-1]
        action = draw(st.sampled_from(["remove", "rename", "swap", "replace", "duplicate"]))
        if action == "remove":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from([*TOP_KEYS, *NODE_KEYS]) | st.text(min_size=1, max_size=6))] = parent.pop(key)
        elif action == "swap":
            other = draw(st.sampled_from([p for p in paths if p[: len(path)] != path and path[: len(p)] != p] or [path]))
            if other != path:
                a, b = _get(data, path), _get(data, other)
                parent[key], _get(data, other[:-1])[other[-1]] = copy.deepcopy(b), copy.deepcopy(a)
        elif action == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[key] = draw(scalars)
    return data


@examples(40)
@given(mutated_standard())
def test_mutated_copies_of_the_standard_definition_lint_without_crashing(data):
    _check_lint(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


@examples(40)
@given(st.data())
def test_garbled_text_of_the_standard_definition_lints_without_crashing(data):
    lines = STANDARD.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate", "indent"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "swap":
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif action == "insert":
            at = data.draw(st.integers(0, len(lines[i])))
            lines[i] = (
                lines[i][:at]
                + data.draw(st.text(st.sampled_from(list(":-[]{}'\"#&*!|> \t\x00\x07é")), min_size=1, max_size=3))
                + lines[i][at:]
            )
        elif action == "truncate":
            lines = lines[:i]
        else:
            lines[i] = " " + lines[i]
        if not lines:
            lines = ["\n"]
    _check_lint("".join(lines))


# A random graph of waits, gateways and ends, against an independent reading of the rules: "a node unreachable from
# `start`"; "a cycle with no way out (no edge leaves it, so no `end` can be reached)".


def _reach(graph: dict[str, list[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@examples(150)
@given(
    st.integers(2, 9).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(
                st.tuples(st.sampled_from(["wait", "exclusive", "end"]), st.lists(st.integers(0, n - 1), min_size=1, max_size=3)),
                min_size=n,
                max_size=n,
            ),
        )
    )
)
def test_lint_finds_exactly_the_unreachable_nodes_and_the_closed_cycles(graph_spec):
    n, spec = graph_spec
    ids = [f"n{i}" for i in range(n)]
    nodes, graph = [], {}
    for i, (kind, targets) in enumerate(spec):
        node_id, targets = ids[i], [ids[t] for t in targets]
        if kind == "end":
            nodes.append({"id": node_id, "type": "end", "status": "completed"})
            graph[node_id] = []
        elif kind == "wait":
            nodes.append({"id": node_id, "type": "wait", "duration": "1m", "next": targets[0]})
            graph[node_id] = targets[:1]
        else:
            branches = [{"when": "true", "next": t} for t in targets[:-1]] or [{"when": "true", "next": targets[0]}]
            nodes.append({"id": node_id, "type": "exclusive", "branches": branches, "default": targets[-1]})
            graph[node_id] = [b["next"] for b in branches] + [targets[-1]]
    definition, problems = lint_text(
        yaml.safe_dump({"id": "graph", "version": 1, "start": "n0", "nodes": nodes}, sort_keys=False), ACTIVITY_NAMES
    )
    messages = [p.message for p in problems]
    assert all("unreachable" in m or "cycle with no way out" in m for m in messages), messages
    reachable = _reach(graph, "n0") | {"n0"}
    assert sorted(m for m in messages if "unreachable" in m) == sorted(
        f"node {i!r} is unreachable from start 'n0'" for i in ids if i not in reachable
    )
    # A closed cycle: nodes on a cycle from which everything reachable leads back to them.
    reach = {i: _reach(graph, i) for i in ids}
    closed = {frozenset(reach[i]) for i in ids if i in reach[i] and all(i in reach[j] for j in reach[i])}
    assert sum("cycle with no way out" in m for m in messages) == len(closed)
    for cycle in closed:
        ordered = " -> ".join(i for i in ids if i in cycle)
        assert f"cycle with no way out: {ordered} never reaches an end node" in messages
    assert (definition is None) == bool(problems)


@pytest.mark.parametrize("nested", ["[" * 2000 + "]" * 2000, "a: " + "{b: " * 2000 + "1" + "}" * 2000], ids=["lists", "mappings"])
def test_deeply_nested_yaml_is_a_problem_at_a_line_not_a_crash(nested):
    _check_lint(nested)


def test_a_huge_expression_is_a_lint_problem_not_a_crash_of_the_process():
    script = textwrap.dedent(
        """
        from activities import ACTIVITY_NAMES
        from orderops.process.lint import lint_text
        expression = "order" + ".b" * 20000
        text = (
            "id: x\\nversion: 1\\nstart: g\\nnodes:\\n"
            "  - {id: g, type: exclusive, branches: [{when: '" + expression + "', next: done}], default: done}\\n"
            "  - {id: done, type: end, status: completed}\\n"
        )
        definition, problems = lint_text(text, ACTIVITY_NAMES)
        print(len(problems))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert run.returncode == 0, f"lint died with {run.returncode}: {run.stderr[-300:]}"
