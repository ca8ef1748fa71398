"""CSV intake: marketplace exports, one row per order line, start as they are; a bad row holds back only its order."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from orderops.cli.common import field_errors
from orderops.csv_orders import COLUMNS, CsvFileError, parse_csv_orders
from orderops.order import workflow_id
from tests.helpers import ROOT, cli, exists, run_cli

HEADER = ",".join(COLUMNS)


def row(order_id: str, sku: str = "TEA-001", quantity: str = "1", unit_price: str = "68.00", **overrides: str) -> str:
    values = {
        "order_id": order_id,
        "customer_id": f"C-{order_id}",
        "customer_name": "Li Wei",
        "phone": "13800138001",
        "province": "Shanghai",
        "city": "Shanghai",
        "district": "Pudong",
        "street": "88 Century Avenue",
        "postcode": "200120",
        "sku": sku,
        "quantity": quantity,
        "unit_price": unit_price,
        "channel": "taobao",
        "order_type": "normal",
        "service_level": "standard",
        "customer_tier": "regular",
        "paid": "true",
    }
    values.update(overrides)
    return ",".join(values[c] for c in COLUMNS)


def parse(*lines: str, header: str = HEADER, path: str = "orders.csv"):
    return parse_csv_orders("\n".join([header, *lines]) + "\n", path, field_errors)


def messages(result) -> list[str]:
    return [str(problem) for problem in result.problems]


# -- the parser -------------------------------------------------------------------------------


def test_rows_are_grouped_by_order_id_even_when_not_adjacent():
    result = parse(row("A1", "TEA-001", "2"), row("B2", "BOOK-006"), row("A1", "MUG-002", "1", "45.50"))
    assert result.problems == []
    assert [order.order_id for order in result.orders] == ["A1", "B2"]
    first = result.orders[0]
    assert [(item.sku, item.quantity, item.unit_price) for item in first.items] == [
        ("TEA-001", 2, Decimal("68.00")),
        ("MUG-002", 1, Decimal("45.50")),
    ]
    assert first.amount == Decimal("181.50")
    assert result.lines == {"A1": [2, 4], "B2": [3]}


def test_errors_carry_the_physical_line_and_the_column_name():
    result = parse(
        row("A1"),
        "",  # a blank line still counts
        row("A1", "MUG-002", quantity="1.5"),
        row("B2", street='"88 Century Avenue\nBuilding 2"'),  # a quoted field over two lines
        row("C3", quantity="0", postcode="", customer_name=""),
    )
    assert messages(result) == [
        "orders.csv:2: order A1: not started: line 4 of this order is invalid",
        "orders.csv:4: order A1: field 'quantity': Input should be a valid integer",
        "orders.csv:7: order C3: field 'customer_name': missing",
        "orders.csv:7: order C3: field 'quantity': Input should be greater than 0",
    ]
    assert [order.order_id for order in result.orders] == ["B2"]
    assert result.orders[0].address.street == "88 Century Avenue\nBuilding 2"
    assert result.rejected == ["A1", "C3"]
    assert result.invalid_lines == {4, 7}


def test_order_fields_must_agree_across_rows_naming_both_lines():
    result = parse(row("A1"), row("B2"), row("A1", "MUG-002", phone="13900139000", paid="yes"))
    # "true" and "yes" are the same payment; the phone is not the same.
    assert messages(result) == [
        "orders.csv:2: order A1: not started: line 4 of this order is invalid",
        "orders.csv:4: order A1: field 'phone': '13900139000' disagrees with line 2 ('13800138001') of the same order",
    ]
    assert [order.order_id for order in result.orders] == ["B2"]


@pytest.mark.parametrize("value, paid", [("true", True), ("Yes", True), ("1", True), ("FALSE", False), ("no", False), ("0", False)])
def test_paid_accepts_the_usual_spellings(value, paid):
    assert parse(row("A1", paid=value)).orders[0].paid is paid


@pytest.mark.parametrize("value, message", [("pending", "expected true, false, yes, no, 1 or 0, got 'pending'"), ("", "missing")])
def test_any_other_paid_value_is_an_error_for_that_row(value, message):
    result = parse(row("A1", paid=value))
    assert messages(result) == [f"orders.csv:2: order A1: field 'paid': {message}"]
    assert result.orders == []


def test_optional_columns_may_be_absent_or_empty_and_take_the_model_defaults():
    header = "order_id,customer_id,customer_name,phone,province,city,street,sku,quantity,unit_price,paid"
    result = parse("A1,C-1,Li Wei,13800138001,Shanghai,Shanghai,88 Century Avenue,TEA-001,1,68.00,no", header=header)
    result_empty = parse(row("A1", district="", postcode="", channel="", order_type="", service_level="", customer_tier=""))
    for order in (result.orders[0], result_empty.orders[0]):
        assert (order.channel, order.order_type, order.service_level, order.customer_tier) == ("web", "normal", "standard", "regular")
        assert (order.address.district, order.address.postcode) == ("", "")


def test_a_utf8_bom_and_crlf_from_excel_are_accepted():
    data = ("\r\n".join([HEADER, row("A1", customer_name="李伟"), row("A1", "MUG-002", customer_name="李伟")]) + "\r\n").encode("utf-8-sig")
    result = parse_csv_orders(data, "excel.csv", field_errors)
    assert result.problems == []
    assert result.orders[0].customer_name == "李伟" and len(result.orders[0].items) == 2


def test_header_names_ignore_case_and_spaces():
    header = ",".join(f" {c.upper()} " for c in COLUMNS)
    assert parse(row("A1"), header=header).orders[0].order_id == "A1"


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "orders.csv: empty file: expected a header row (order_id, customer_id"),
        (b"\xef\xbb\xbf\r\n  \r\n", "orders.csv: empty file"),
        (HEADER.encode() + b"\n", "orders.csv: no order rows after the header"),
        (HEADER.replace(",phone", "").encode() + b"\n", "orders.csv:1: missing required column: phone"),
        (HEADER.replace("sku,quantity", "quantity").encode() + b"\n", "orders.csv:1: missing required column: sku"),
        ((HEADER + ",colour,size").encode() + b"\n", "orders.csv:1: unknown columns: colour, size (known: order_id,"),
        ((HEADER + ",sku").encode() + b"\n", "orders.csv:1: column repeated in the header: sku"),
        (row("A1").encode() + b"\n", "orders.csv:1: no header row: the first line must name the columns"),
        ((HEADER + "\n" + row("A1", customer_name="李伟")).encode("gbk"), "orders.csv:2: not UTF-8 text (byte 0xc0)"),
        ((HEADER + "\n" + row("A1", street='"unterminated')).encode(), "orders.csv:2: malformed CSV: unexpected end of data"),
    ],
    ids=[
        "empty",
        "only-bom-and-blank-lines",
        "header-only",
        "missing-column",
        "missing-sku",
        "unknown-columns",
        "repeated-column",
        "no-header",
        "gbk",
        "unterminated-quote",
    ],
)
def test_file_level_problems_are_one_line(data, message):
    with pytest.raises(CsvFileError) as raised:
        parse_csv_orders(data, "orders.csv", field_errors)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_a_row_with_the_wrong_number_of_cells_holds_back_its_order():
    short = ",".join(row("A1").split(",")[:5])
    padded = row("B2") + ",,"  # spreadsheets pad rows with empty cells: harmless
    result = parse(row("A1"), short, padded)
    assert messages(result) == [
        "orders.csv:2: order A1: not started: line 3 of this order is invalid",
        f"orders.csv:3: order A1: expected {len(COLUMNS)} values (one per header column), got 5",
    ]
    assert [order.order_id for order in result.orders] == ["B2"]


def test_a_row_without_order_id_is_invalid_on_its_own():
    result = parse(row("A1"), row(""))
    assert messages(result) == ["orders.csv:3: field 'order_id': missing"]
    assert [order.order_id for order in result.orders] == ["A1"]
    assert result.rejected == [] and result.invalid_lines == {3}


def test_the_marketplace_sample_has_four_good_orders_and_two_bad_rows():
    path = "samples/marketplace_orders.csv"
    result = parse_csv_orders((ROOT / path).read_bytes(), path, field_errors)
    assert [order.order_id for order in result.orders] == ["TB4001", "JD5002", "AP6003", "MP7004"]
    assert {order.channel for order in result.orders} == {"taobao", "jd", "app", "mini_program"}
    assert {order.order_type for order in result.orders} == {"normal", "promotion", "urgent"}
    assert result.rejected == ["TB4005", "JD5006"] and len(result.invalid_lines) == 2


# -- the command line ------------------------------------------------------------------------


async def test_start_csv_starts_the_valid_orders_and_reports_bad_rows(tmp_path: Path, client: Client, worker, address: str):
    unique = uuid.uuid4().hex[:8]
    good_a, good_b, bad_qty, bad_paid = (f"csv-{unique}-{n}" for n in ("a", "b", "c", "d"))
    path = tmp_path / "export.CSV"  # the extension decides, in any case
    path.write_text(
        "\n".join(
            [
                HEADER,
                row(good_a, "TEA-001", "2"),
                row(bad_qty, "BOOK-006", "two"),
                row(good_b, "OIL-003", channel="jd", order_type="promotion"),
                row(good_a, "MUG-002", "1", "45.50"),
                row(bad_qty, "TEA-001"),
                row(bad_paid, paid="maybe"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = await cli("start", str(path), address=address)
    try:
        assert result.returncode == 1, result.stderr
        assert result.stdout.split() == [workflow_id(good_a), workflow_id(good_b)]
        errors = result.stderr.strip().splitlines()
        assert errors == [
            f"{path}:3: order {bad_qty}: field 'quantity': Input should be a valid integer",
            f"{path}:6: order {bad_qty}: not started: line 3 of this order is invalid",
            f"{path}:7: order {bad_paid}: field 'paid': expected true, false, yes, no, 1 or 0, got 'maybe'",
            f"started 2 orders; 2 rows invalid (orders {bad_qty}, {bad_paid} not started)",
        ]
        assert await exists(client, good_a) and await exists(client, good_b)
        assert not await exists(client, bad_qty) and not await exists(client, bad_paid)
        started = await client.get_workflow_handle(workflow_id(good_a)).describe()
        assert started.workflow_type == "OrderWorkflow"

        # Uploading the same export again skips what was started, instead of refusing the file.
        again = await cli("start", str(path), address=address)
        assert again.returncode == 1 and again.stdout == ""
        assert f"{path}:2: order {good_a} was already submitted (workflow {workflow_id(good_a)}); not started again" in again.stderr
        assert again.stderr.strip().splitlines()[-1] == (
            f"started 0 orders; 2 already submitted ({good_a}, {good_b}), skipped; 2 rows invalid (orders {bad_qty}, {bad_paid} not started)"
        )
    finally:
        for order_id in (good_a, good_b):
            if await exists(client, order_id):
                await client.get_workflow_handle(workflow_id(order_id)).cancel()


def test_start_csv_file_problems_are_one_line_without_traceback(tmp_path: Path, address: str):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER.replace(",paid", ",payment") + "\n" + row("x1") + "\n", encoding="utf-8")
    result = run_cli("start", str(path), address=address)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"orderops: {path}:1: unknown column: payment (known: {', '.join(COLUMNS)})"


def test_format_option_reads_csv_from_stdin_and_json_stays_the_default(address: str):
    text = f"{HEADER}\n{row('x1', quantity='-1')}\n"
    as_csv = run_cli("start", "-", "--format", "csv", stdin=text, address=address)
    assert (as_csv.returncode, as_csv.stdout) == (1, "")
    assert as_csv.stderr.splitlines() == [
        "orderops: <stdin>:2: order x1: field 'quantity': Input should be greater than 0; no order was started"
    ]
    as_json = run_cli("start", "-", stdin=text, address=address)
    assert as_json.returncode == 1 and "malformed JSON" in as_json.stderr
