"""What an order, a decision and a count may hold, checked where they come in (docs/limits.md)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from activities.inputs import Feedback, Inspection, ScanReport
from orderops.cli.parser import build_parser
from orderops.csv_orders import COLUMNS, parse_csv_orders
from orderops.limits import MAX_STOCK, whole_number
from orderops.messages import AddressChange, CancelRequest, ReviewDecision
from orderops.order import Order
from orderops.payloads import field_errors
from tests.helpers import order_data

HOSTILE = {
    "NUL": "Li\x00Wei",
    "newline": "Li\nWei",
    "escape": "Li\x1b[31mWei",
    "C1 control": "Li\x85Wei",
    "lone surrogate": "Li\ud800Wei",  # pydantic refuses it first, as not a unicode string
    "right-to-left override": "Li\u202eieW",
    "isolate": "Li\u2066Wei",
}


def full_width(digits: str) -> str:
    return "".join(chr(0xFF10 + int(d)) for d in digits)


REFUSED = "control character U+|unable to parse raw data as a unicode string"


def _refusal(data: dict) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Order.model_validate(data)
    return field_errors(raised.value)


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize(
    "where",
    [("customer_name",), ("customer_id",), ("phone",), ("address", "province"), ("address", "district"), ("address", "postcode")],
    ids=".".join,
)
def test_control_characters_are_refused_in_every_text_field_of_an_order(text: str, where: tuple[str, ...]):
    data = order_data()
    target = data
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = text
    [message] = _refusal(data)
    assert message.startswith(f"field '{'.'.join(where)}': ") and re.search(REFUSED, message)
    assert text not in message  # the customer's text is not repeated


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_street_may_run_over_lines_but_holds_no_other_control_character(text: str):
    data = order_data()
    data["address"]["street"] = text
    if text == HOSTILE["newline"]:
        assert Order.model_validate(data).address.street == text
    else:
        assert re.search(REFUSED, _refusal(data)[0])


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_control_characters_are_refused_in_a_sku(text: str):
    data = order_data()
    data["items"][0]["sku"] = text
    assert re.search(REFUSED, _refusal(data)[0])


def test_text_in_any_script_is_kept_as_it_is():
    order = Order.model_validate(
        order_data(customer_name="李伟 Ľubomír Ибрагимов", address={**order_data()["address"], "street": "世纪大道88号"})
    )
    assert order.customer_name == "李伟 Ľubomír Ибрагимов"


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_who_decided_and_what_was_decided_are_one_line_of_plain_text(text: str):
    for build in (
        lambda: ReviewDecision(decision="approve", agent=text),
        lambda: ReviewDecision(decision=text, agent="li"),
        lambda: CancelRequest(reason=text),
        lambda: AddressChange(address=order_data()["address"], by=text),
    ):
        with pytest.raises(ValidationError, match=REFUSED):
            build()


def test_a_reason_may_run_over_lines_but_holds_no_other_control_character():
    assert ReviewDecision(decision="approve", agent="li", reason="called the customer\n\tconfirmed").reason.count("\n") == 1
    with pytest.raises(ValidationError, match=r"U\+0000"):
        ReviewDecision(decision="approve", agent="li", reason="ok\x00")


@pytest.mark.parametrize("postcode", [full_width("200120"), "٢٠٠١٢٠", "20012", "2001200"], ids=["full-width", "arabic-indic", "5", "7"])
def test_a_changed_address_needs_a_postcode_of_six_ascii_digits(postcode: str):
    with pytest.raises(ValidationError, match="is not 6 digits"):
        AddressChange(address={**order_data()["address"], "postcode": postcode}, by="customer")


@pytest.mark.parametrize(
    "text, value",
    [
        ("12", 12),
        ("+3", 3),
        ("-4", -4),
        ("0", 0),
        ("9" * 18, int("9" * 18)),
        ("١٢", None),
        (full_width("12"), None),
        ("1_000", None),
        (" 1", None),
        ("9" * 19, None),
        ("9" * 5000, None),
        ("1.0", None),
        ("", None),
    ],
    ids=lambda v: repr(v)[:12],
)
def test_a_whole_number_is_up_to_18_ascii_digits(text: str, value: int | None):
    assert whole_number(text) == value


def _csv(*quantities: str) -> str:
    header = ",".join(COLUMNS)
    rows = []
    for n, quantity in enumerate(quantities):
        values = {column: "" for column in COLUMNS}
        values.update(
            order_id=f"o{n}", customer_id=f"c{n}", customer_name="Li Wei", phone="13800138001", province="Shanghai", city="Shanghai",
            street="88 Century Avenue", sku="TEA-001", quantity=quantity, unit_price="1.00", paid="true",
        )  # fmt: skip
        rows.append(",".join(values[column] for column in COLUMNS))
    return "\n".join([header, *rows]) + "\n"


@pytest.mark.parametrize(
    "quantity", ["١٢", full_width("12"), "9" * 5000, "99999999999999999999"], ids=["arabic-indic", "full-width", "5000 digits", "20 digits"]
)
def test_a_csv_quantity_that_is_not_ascii_digits_holds_back_only_its_own_order(quantity: str):
    parsed = parse_csv_orders(_csv("2", quantity, "3"), "orders.csv", field_errors)
    assert [order.order_id for order in parsed.orders] == ["o0", "o2"]
    [problem] = parsed.problems
    assert (problem.line, problem.order_id) == (3, "o1") and "quantity" in problem.message
    assert len(str(problem)) < 200  # one line, the 5000 digits not echoed


@pytest.mark.parametrize(
    "quantity, message",
    [
        ("9223372036854775807", "is not a whole number"),
        ("99999999999999999999", "is not a whole number"),
        (str(MAX_STOCK + 1), "is more than a bin holds"),
        ("١٢", "is not a whole number"),
        ("0", "must be at least 1"),
    ],
)
def test_restock_refuses_a_count_no_bin_holds(quantity: str, message: str, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["restock", "TEA-001", "SH", quantity])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "model, data, expected",
    [
        (
            ScanReport,
            {"items": [{"sku": "TEA-001", "quantity": MAX_STOCK + 1}]},
            "field 'items.0.quantity': Input should be less than or equal to",
        ),
        (ScanReport, {"items": [{"sku": "TEA-001", "quantity": "2"}]}, "field 'items.0.quantity': Input should be a valid integer"),
        (ScanReport, {"items": [{"sku": "TEA\x00", "quantity": 1}]}, "field 'items.0.sku': must not contain the control character U+0000"),
        (ScanReport, {"items": [{"sku": "TEA-001", "quantity": 1}], "picker": "a\nb"}, "field 'picker': must not contain"),
        (Feedback, {"rating": "5"}, "field 'rating': Input should be a valid integer"),
        (Feedback, {"rating": 5, "comment": "x" * 2001}, "field 'comment': String should have at most 2000 characters"),
        (Feedback, {"rating": 5, "comment": "ok\x1b[2J"}, "field 'comment': must not contain the control character U+001B"),
        (Inspection, {"items": [{"sku": "x" * 65, "outcome": "restock"}]}, "field 'items.0.sku': String should have at most 64 characters"),
    ],
    ids=[
        "scan-quantity-over-a-bin",
        "scan-quantity-text",
        "scan-sku-nul",
        "picker-newline",
        "rating-text",
        "comment-long",
        "comment-escape",
        "inspected-sku-long",
    ],
)
def test_event_payloads_that_reach_activities_are_bounded(model, data, expected):
    with pytest.raises(ValidationError) as raised:
        model.model_validate(data)
    assert any(message.startswith(expected) for message in field_errors(raised.value)), field_errors(raised.value)
