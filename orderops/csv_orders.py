"""Orders from a CSV file, one row per order line, as marketplaces (Taobao, JD, ...) export them.

Rows are grouped by `order_id` (the rows of one order need not be adjacent) and
each order goes through the `Order` model, like JSON input: this module only
turns cells into the model's input and maps the model's errors back to the
file's physical line numbers and column names. Unlike JSON input, a bad row
holds back only its own order: the valid orders are returned along with the
problems, so the caller can start what is valid and report the rest.

A file that cannot be read as orders at all (not UTF-8, empty, no header,
unknown or missing columns, malformed CSV) raises `CsvFileError`.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from orderops.limits import read_bounded, whole_number
from orderops.order import Order

ADDRESS_COLUMNS = ("province", "city", "district", "street", "postcode")
# One value per order, repeated on each of its rows; the rows must agree.
ORDER_COLUMNS = (
    "customer_id",
    "customer_name",
    "phone",
    *ADDRESS_COLUMNS,
    "channel",
    "order_type",
    "service_level",
    "customer_tier",
    "paid",
)
# One order item per row.
ITEM_COLUMNS = ("sku", "quantity", "unit_price")
COLUMNS = ("order_id", *ORDER_COLUMNS, *ITEM_COLUMNS)
# May be absent from the header, or left empty: the Order model's defaults apply.
OPTIONAL_COLUMNS = frozenset({"district", "postcode", "channel", "order_type", "service_level", "customer_tier"})
REQUIRED_COLUMNS = tuple(c for c in COLUMNS if c not in OPTIONAL_COLUMNS)

PAID_VALUES = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}

FieldErrors = Callable[[ValidationError], list[str]]
"""Formats a ValidationError as "field 'x': message" strings: the command line's `_field_errors`."""


class CsvFileError(Exception):
    """The file as a whole cannot be read as orders: one line, no order started."""


@dataclass(frozen=True)
class CsvProblem:
    path: str
    line: int
    order_id: str | None
    message: str

    def __str__(self) -> str:
        order = f" order {self.order_id}:" if self.order_id else ""
        return f"{self.path}:{self.line}:{order} {self.message}"


@dataclass
class CsvOrders:
    path: str
    orders: list[Order] = field(default_factory=list)
    """The valid orders, in the order of their first rows."""
    problems: list[CsvProblem] = field(default_factory=list)
    """Sorted by line: every invalid row's own problems, and a note on each other row of an order held back."""
    lines: dict[str, list[int]] = field(default_factory=dict)
    """Every order id in the file, valid or not, with the line numbers of its rows."""
    invalid_lines: set[int] = field(default_factory=set)
    """Rows with a problem of their own."""
    rejected: list[str] = field(default_factory=list)
    """Order ids held back because one of their rows is invalid."""


@dataclass
class _Row:
    line: int
    values: dict[str, str]  # stripped cells by column; empty cells left out
    error: str | None = None  # the row could not be split into the header's columns


def read_csv_orders(path: str, field_errors: FieldErrors) -> CsvOrders:
    """Read PATH ('-' for stdin) as UTF-8, with or without a BOM, and parse it."""
    try:
        if path == "-":
            data = read_bounded(sys.stdin.buffer, "<stdin>")
        else:
            with open(path, "rb") as source:
                data = read_bounded(source, path)
    except FileNotFoundError:
        raise CsvFileError(f"{path}: no such file") from None
    except ValueError as err:
        raise CsvFileError(str(err)) from None
    except OSError as err:
        raise CsvFileError(f"{path}: cannot read: {err.strerror or err}") from None
    return parse_csv_orders(data, "<stdin>" if path == "-" else path, field_errors)


def parse_csv_orders(data: bytes | str, path: str, field_errors: FieldErrors) -> CsvOrders:
    text = _decode(data, path) if isinstance(data, bytes) else data.removeprefix("\ufeff")
    if not text.strip():
        raise CsvFileError(f"{path}: empty file: expected a header row ({', '.join(COLUMNS)}) and one row per order line")
    rows = _read_rows(text, path)
    if not rows:
        raise CsvFileError(f"{path}: no order rows after the header")

    result = CsvOrders(path)
    problems: list[CsvProblem] = []
    groups: dict[str, list[_Row]] = {}
    for row in rows:
        order_id = row.values.get("order_id")
        if row.error:
            problems.append(CsvProblem(path, row.line, order_id, row.error))
        elif order_id is None:
            problems.append(CsvProblem(path, row.line, None, "field 'order_id': missing"))
        if order_id is not None:
            groups.setdefault(order_id, []).append(row)

    for order_id, group in groups.items():
        result.lines[order_id] = [row.line for row in group]
        readable = [row for row in group if not row.error]
        if not readable:
            continue
        order, order_problems = _build_order(order_id, readable, path, field_errors)
        problems += order_problems
        if order is not None and len(readable) == len(group):
            result.orders.append(order)

    result.invalid_lines = {p.line for p in problems}
    for order_id, lines in result.lines.items():
        bad = [line for line in lines if line in result.invalid_lines]
        if not bad:
            continue
        result.rejected.append(order_id)
        which = f"lines {', '.join(map(str, bad))} of this order are" if len(bad) > 1 else f"line {bad[0]} of this order is"
        problems += [CsvProblem(path, line, order_id, f"not started: {which} invalid") for line in lines if line not in bad]
    result.problems = sorted(problems, key=lambda p: p.line)
    return result


# -- reading the file -----------------------------------------------------------------


def _decode(data: bytes, path: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CsvFileError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8 "
            f"(Excel: 'CSV UTF-8'; a GBK export: iconv -f GBK -t UTF-8)"
        ) from None


def _read_rows(text: str, path: str) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows: list[_Row] = []
    end = 0  # physical line the previous record ended on
    try:
        for record in reader:
            line, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = _header(record, path, line)
                continue
            cells = [cell.strip() for cell in record]
            if len(cells) > len(header) and not any(cells[len(header) :]):
                cells = cells[: len(header)]  # trailing empty cells, as spreadsheets pad rows
            # Lengths may differ here: such a row is reported just below, keeping its order_id if it has one.
            values = {name: cell for name, cell in zip(header, cells, strict=False) if cell}
            if len(cells) != len(header):
                error = f"expected {len(header)} values (one per header column), got {len(cells)}"
                rows.append(_Row(line, {"order_id": values["order_id"]} if "order_id" in values else {}, error))
            else:
                rows.append(_Row(line, values))
    except csv.Error as err:
        raise CsvFileError(f"{path}:{reader.line_num}: malformed CSV: {err}") from None
    return rows


def _header(record: list[str], path: str, line: int) -> list[str]:
    names = [cell.strip().lower() for cell in record]
    while names and not names[-1]:
        names.pop()  # trailing empty header cells, as spreadsheets pad rows
    if not set(names) & set(COLUMNS):
        raise CsvFileError(f"{path}:{line}: no header row: the first line must name the columns ({', '.join(COLUMNS)})")
    if "" in names:
        raise CsvFileError(f"{path}:{line}: header column {names.index('') + 1} has no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CsvFileError(f"{path}:{line}: column repeated in the header: {', '.join(duplicates)}")
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise CsvFileError(f"{path}:{line}: unknown column{_s(unknown)}: {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise CsvFileError(f"{path}:{line}: missing required column{_s(missing)}: {', '.join(missing)}")
    return names


def _s(items: list) -> str:
    return "s" if len(items) > 1 else ""


# -- one order from its rows ----------------------------------------------------------------


def _build_order(order_id: str, rows: list[_Row], path: str, field_errors: FieldErrors) -> tuple[Order | None, list[CsvProblem]]:
    """The order from its rows, through the Order model; its problems by line, in column names."""
    problems: list[CsvProblem] = []
    reported: set[tuple[int, str]] = set()  # (line, column) already explained: no second message from the model

    def problem(line: int, column: str, message: str) -> None:
        problems.append(CsvProblem(path, line, order_id, message))
        reported.add((line, column))

    paid: dict[int, bool] = {}
    for row in rows:
        if "paid" in row.values:
            value = PAID_VALUES.get(row.values["paid"].lower())
            if value is None:
                problem(row.line, "paid", f"field 'paid': expected true, false, yes, no, 1 or 0, got {row.values['paid']!r}")
            else:
                paid[row.line] = value

    first = rows[0]
    for row in rows[1:]:
        for column in ORDER_COLUMNS:
            here, there = row.values.get(column, ""), first.values.get(column, "")
            if column == "paid":
                if (row.line, "paid") in reported or (first.line, "paid") in reported:
                    continue
                same = paid.get(row.line) == paid.get(first.line)
            else:
                same = here == there
            if not same:
                problem(row.line, column, f"field {column!r}: {here!r} disagrees with line {first.line} ({there!r}) of the same order")

    values = first.values
    document: dict = {"order_id": order_id}
    document.update({c: values[c] for c in ORDER_COLUMNS if c in values and c not in ADDRESS_COLUMNS})
    document["address"] = {c: values[c] for c in ADDRESS_COLUMNS if c in values}
    if first.line in paid:
        document["paid"] = paid[first.line]
    document["items"] = [_item(row) for row in rows]
    try:
        order = Order.model_validate(document)
    except ValidationError as err:
        by_line: dict[int, list[InitErrorDetails]] = {}
        for error in err.errors():
            line, column = _place(error["loc"], rows)
            if (line, column) not in reported:
                by_line.setdefault(line, []).append(
                    {"type": PydanticCustomError(error["type"], error["msg"]), "loc": (column,), "input": error["input"]}
                )
        for line, errors in by_line.items():
            for message in field_errors(ValidationError.from_exception_data(err.title, errors)):
                problems.append(CsvProblem(path, line, order_id, message))
        order = None
    return (None if problems else order), problems


def _item(row: _Row) -> dict:
    item: dict[str, Any] = {c: row.values[c] for c in ITEM_COLUMNS if c in row.values}
    # The model's quantity is a strict integer: convert whole numbers, leave anything else for it to refuse.
    quantity = whole_number(item.get("quantity", ""))
    if quantity is not None:
        item["quantity"] = quantity
    return item


def _place(loc: tuple, rows: list[_Row]) -> tuple[int, str]:
    """The row and column a model error belongs to: an item's on its own row, the rest on the order's first row."""
    if len(loc) >= 2 and loc[0] == "items" and isinstance(loc[1], int) and loc[1] < len(rows):
        return rows[loc[1]].line, ".".join(map(str, loc[2:])) or "items"
    if len(loc) >= 2 and loc[0] == "address":
        return rows[0].line, ".".join(map(str, loc[1:]))
    return rows[0].line, ".".join(map(str, loc)) or "order"
