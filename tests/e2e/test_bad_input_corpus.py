"""The corpus of bad inputs (tests/corpus) and bad command lines, sent as a user would send them.

Each is refused in one line, with a non-zero exit and no traceback, before anything changes: no
order of the corpus starts and the warehouse store is unchanged. An order waiting for a person
takes the bad commands aimed at it and still completes, so the worker kept running. Bad signals,
updates and starts sent with the `temporal` CLI are in test_hostile_messages.py, definitions too
large to read in test_hostile_definitions.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.store import Store
from orderops.messages import OrderResult
from orderops.order import workflow_id
from orderops.payloads import MAX_MESSAGE_BYTES
from tests.helpers import ROOT, awaiting_decision, cli, deliver, exists, order_data, settled, wait_until

# The first test waits for every case: about 150 processes of the CLI, four at a time, 40-60 s on
# 2 cores (and the session's server and worker when this module runs first), past the 60 s default.
pytestmark = pytest.mark.timeout(300)

CORPUS = ROOT / "tests" / "corpus"
WAITING = "corpus-waiting"  # an order at manual review, which the bad commands are aimed at

# What each corpus file's refusal says (a fragment of its one line).
ORDER_FILES = {
    "address-string.json": "field 'address': Input should be a valid dictionary",
    "bidi-override-in-name.json": "field 'customer_name': must not contain the control character U+202E",
    "deep-nesting-in-field.json": "the JSON is nested too deeply to be an order",
    "deep-nesting.json": "the JSON is nested too deeply to be an order",
    "duplicate-key-paid.json": "duplicate key 'paid'",
    "duplicate-key-quantity.json": "duplicate key 'quantity'",
    "escape-in-name.json": "field 'customer_name': must not contain the control character U+001B",
    "items-object.json": "field 'items': Input should be a valid list",
    "json-lines-bad-line.json": "json-lines-bad-line.json:2:30: malformed JSON line",
    "latin-1.json": "cannot read: 'utf-8' codec can't decode byte 0xeb",
    "lone-surrogate-in-name.json": "field 'customer_name': Input should be a valid string",
    "missing-items.json": "field 'items': missing",
    "missing-paid.json": "field 'paid': missing",
    "missing-street.json": "field 'address.street': missing",
    "name-too-long.json": "field 'customer_name': String should have at most 500 characters",
    "newline-in-customer-id.json": "field 'customer_id': must not contain the control character U+000A",
    "not-json.json": "not-json.json:1:1: malformed JSON line: Expecting value",
    "nul-in-name.json": "field 'customer_name': must not contain the control character U+0000",
    "nul-in-sku.json": "field 'items.0.sku': must not contain the control character U+0000",
    "order-id-path.json": "field 'order_id': String should match pattern",
    "order-id-too-long.json": "field 'order_id': String should match pattern",
    "paid-number.json": "field 'paid': Input should be a valid boolean",
    "paid-string.json": "field 'paid': Input should be a valid boolean",
    "phone-number.json": "field 'phone': Input should be a valid string",
    "quantity-1e400.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-5000-digits.json": "a number of 5,000 digits; at most 100 are read",
    "quantity-bool.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-float-whole.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-float.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-huge.json": "field 'items.0.quantity': Input should be less than or equal to 10000",
    "quantity-nan.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-negative.json": "field 'items.0.quantity': Input should be greater than 0",
    "quantity-null.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-string.json": "field 'items.0.quantity': Input should be a valid integer",
    "quantity-zero.json": "field 'items.0.quantity': Input should be greater than 0",
    "raw-nul-byte.json": "raw-nul-byte.json:1:104: malformed JSON: Invalid control character",
    "same-order-twice.json": "order corpus-same-order-twice appears twice in the file",
    "top-level-array-of-numbers.json": "order #1: expected a JSON object, got int",
    "top-level-nested-array.json": "order #1: expected a JSON object, got list",
    "top-level-null.json": "order #1: expected a JSON object, got NoneType",
    "top-level-number.json": "order #1: expected a JSON object, got int",
    "top-level-string.json": "order #1: expected a JSON object, got str",
    "truncated.json": "truncated.json:1:81: malformed JSON",
    "unit-price-negative.json": "field 'items.0.unit_price': Input should be greater than or equal to 0",
    "unit-price-three-places.json": "field 'items.0.unit_price': Decimal input should have no more than 2 decimal places",
    "unknown-channel.json": "field 'channel': Input should be 'web'",
    "unknown-field.json": "field 'amount': Extra inputs are not permitted",
    "utf-16.json": "cannot read: 'utf-8' codec can't decode byte 0xff",
    "whitespace-only.json": "no orders in the file",
}
CSV_FILES = {
    "binary.csv": "binary.csv:1: not UTF-8 text (byte 0x89)",
    "empty.csv": "empty file: expected a header row",
    "escape-in-name.csv": "field 'customer_name': must not contain the control character U+001B",
    "header-only.csv": "no order rows after the header",
    "missing-column.csv": "missing required column: quantity",
    "no-header.csv": "no header row: the first line must name the columns",
    "nul-byte.csv": "field 'customer_name': must not contain the control character U+0000",
    "paid-maybe.csv": "field 'paid': expected true, false, yes, no, 1 or 0, got 'maybe'",
    "quantity-20-digits.csv": "field 'quantity': Input should be a valid integer",
    "quantity-5000-digits.csv": "field 'quantity': Input should be a valid integer",
    "quantity-arabic-indic.csv": "field 'quantity': Input should be a valid integer",
    "quantity-decimal.csv": "field 'quantity': Input should be a valid integer",
    "quantity-full-width.csv": "field 'quantity': Input should be a valid integer",
    "quantity-negative.csv": "field 'quantity': Input should be greater than 0",
    "quantity-word.csv": "field 'quantity': Input should be a valid integer",
    "unknown-column.csv": "unknown column: payment",
    "unterminated-quote.csv": "malformed CSV: unexpected end of data",
}
DEFINITION_FILES = {
    "cel-input-unknown-variable.yaml": ":8:27: node 'tell': expression 'shipment.tracking_number' names unknown variable 'shipment'",
    "cel-not-a-string.yaml": ":8:9: node 'route': when: Input should be a valid string",
    "cel-priority-syntax-error.yaml": ":5:7: priority: invalid CEL expression",
    "cel-syntax-error.yaml": ":8:9: node 'route': invalid CEL expression",
    "cel-three-nested-comprehensions.yaml": ":8:9: node 'route': expression nests 3 comprehensions",
    "cel-too-long.yaml": ":8:9: node 'route': expression is 7386 characters long; at most 4096 are accepted",
    "cel-unknown-function.yaml": ":8:9: node 'route': expression 'frobnicate(order.amount) > 100.0' calls unknown function 'frobnicate'",
    "cel-unknown-variable.yaml": ":8:9: node 'route': expression 'customer.vip == true' names unknown variable 'customer'",
    "dangling-next.yaml": ":9:9: node 'route': 'branches.0.next' points to unknown node 'shipped'",
    "duplicate-key.yaml": ":11:5: duplicate key 'default' (first given on line 10)",
    "duplicate-node-id.yaml": ":14:5: duplicated node id 'done'",
    "empty.yaml": ":1:1: the file is empty",
    "missing-start.yaml": ":1:1: missing required field 'start'",
    "not-utf8.yaml": ": cannot read: 'utf-8' codec can't decode byte 0xe9",
    "start-unknown-node.yaml": ":3:1: 'start' points to unknown node 'begin'",
    "tab-indentation.yaml": ":5:1: YAML syntax error: found character '\\t' that cannot start any token",
    "top-level-list.yaml": ":1:1: a process definition must be a mapping",
    "unknown-activity.yaml": ":7:5: node 'charge': unknown activity 'charge_card'",
    "unknown-node-type.yaml": ":6:5: node 'route': unknown construct type 'switch'",
    "version-not-a-number.yaml": ":2:1: version: Input should be a valid integer",
    "yaml-syntax-error.yaml": ":6:20: YAML syntax error: mapping values are not allowed here",
}
# Bad command lines: (arguments, what the refusal says). Those naming WAITING reach a real order.
COMMAND_LINES: list[tuple[list[str], str]] = [
    (["restock", "TEA-001", "SH", "99999999999999999999"], "is not a whole number (ASCII digits, at most 18)"),
    (["restock", "TEA-001", "SH", "9" * 5000], "'9999999999999999999999999999999999999999...' is not a whole number"),
    (["restock", "TEA-001", "SH", "-5"], "-5 must be at least 1"),
    (["restock", "TEA-001", "SH", "\u0661\u0662"], "is not a whole number"),
    (["restock", "TEA-001", "SH", "\uff11\uff12"], "is not a whole number"),
    (["restock", "TEA-001", "SH", "1.5"], "'1.5' is not a whole number"),
    (["restock", "TEA-001", "SH", "1000000001"], "is more than a bin holds (1,000,000,000)"),
    (["restock", "NO-SUCH-SKU", "SH", "1"], "unknown SKU 'NO-SUCH-SKU'"),
    (["status", "../../etc/passwd"], "'../../etc/passwd' is not an order id"),
    (["status", ""], "'' is not an order id"),
    (["status", "a" * 300], "is not an order id"),
    (["export", "--out", "exports", "a/b"], "'a/b' is not an order id"),
    (["merge", WAITING, "--into", "../x"], "'../x' is not an order id"),
    (["status", "no-such-order"], "no order 'no-such-order'"),
    (["review", WAITING, "--decision", "ship-it"], "'ship-it' is not an outcome of 'manual_review'"),
    (["review", WAITING, "--decision", "approve", "--agent", "amy"], "unrecognized arguments: --agent amy"),
    (["review", WAITING, "--decision", "approve", "--node", "a\x1b[31mmy"], "must not contain the control character U+001B"),
    (["review", WAITING, "--decision", "approve", "--role", "warehouse_supervisor"], "unrecognized arguments: --role"),
    (["review", WAITING, "--decision", "approve", "--changes", '{"phone":"1"}'], "only with the 'edit' decision"),
    (["event", WAITING, "scanned", "--data", "{bad"], "--data: malformed JSON"),
    (["event", WAITING, "scanned", "--data", "[1]"], "--data: expected a JSON object, got list"),
    (["event", WAITING, "scanned", "--data", '{"a":1,"a":2}'], "--data: duplicate key 'a'"),
    (["event", WAITING, "scanned", "--data", '{"a":' + "9" * 5000 + "}"], "--data: a number of 5,000 digits"),
    (["event", WAITING, "scanned", "--data", "[" * 100_000], "--data: the JSON is nested too deeply"),
    (["event", WAITING, "paid", "--data", json.dumps({"blob": "x" * MAX_MESSAGE_BYTES})], "bytes; an order takes at most 65,536"),
    (["event", WAITING, "na\nme"], "must not contain the control character U+000A"),
    (["event", WAITING, "no_such_event"], "has no receive for event 'no_such_event'"),
    (["cancel", WAITING], "the following arguments are required: --reason"),
    (["list", "--limit", "-1"], "-1 must be at least 1"),
    (["list", "--limit", "abc"], "'abc' is not a whole number"),
    (["list", "--promise-before", "yesterday"], "--promise-before"),
    (["export", "--out", "exports", "--query", "') OR (WorkflowType = 'Other'"], "query"),
    (["lint", "/nonexistent/def.yaml"], "/nonexistent/def.yaml: cannot read: No such file or directory"),
    (["start", "/nonexistent/orders.json"], "/nonexistent/orders.json: no such file"),
    (["audit", "--file", "/nonexistent/history.json"], "/nonexistent/history.json: no such file"),
    (["--address", "not a host", "status", WAITING], "--address 'not a host' is not HOST:PORT"),
    (["--address", "127.0.0.1:1", "status", WAITING], "cannot reach Temporal at 127.0.0.1:1"),
    (["carrier-outage", "SF"], "one of the arguments --reason --clear is required"),
    (["no-such-command"], "invalid choice: 'no-such-command'"),
    (["server", "--port", "70000"], "70000 is not a TCP port (1-65535)"),
]


def _corpus_ids(path: Path) -> set[str]:
    """The order ids a corpus file names (it may be too broken to parse, so they are found as text)."""
    return set(re.findall(r"corpus-[A-Za-z0-9_-]+", path.read_bytes().decode("utf-8", errors="replace")))


def _refusal(result: subprocess.CompletedProcess, stream: str = "stderr") -> str:
    """The refusal's one line, after checking that it is one line, with a failing exit and no traceback."""
    text = getattr(result, stream)
    assert result.returncode != 0, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr and "unexpected error" not in result.stderr, result.stderr
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


@pytest.fixture(scope="module")
async def waiting(client: Client, worker, tmp_path_factory, address: str):
    """The order the bad command lines are aimed at, started as a user starts one, before they run."""
    path = tmp_path_factory.mktemp("corpus") / "waiting.json"
    path.write_text(json.dumps(order_data(order_id=WAITING, phone="12345")))
    assert (await cli("start", str(path), address=address)).returncode == 0
    handle = client.get_workflow_handle(workflow_id(WAITING), result_type=OrderResult)
    await wait_until(handle, awaiting_decision)
    return handle


@pytest.fixture(scope="module")
async def outcomes(tmp_path_factory, address: str, store: Store, waiting, console) -> dict:
    """Every case run once, four at a time (each is a process of its own), with the store around them."""
    good = tmp_path_factory.mktemp("corpus") / "good.json"
    good.write_text(json.dumps(order_data(order_id="corpus-good-order-under-bad-definition")))
    cases: dict[str, list[str]] = {}
    for name in ORDER_FILES:
        cases[f"orders/{name}"] = ["start", str(CORPUS / "orders" / name)]
    for name in CSV_FILES:
        cases[f"csv/{name}"] = ["start", str(CORPUS / "csv" / name)]
    for name in DEFINITION_FILES:
        cases[f"lint {name}"] = ["lint", str(CORPUS / "definitions" / name)]
        cases[f"start --process {name}"] = ["start", str(good), "--process", str(CORPUS / "definitions" / name)]
    for index, (args, _) in enumerate(COMMAND_LINES):
        cases[f"command {index}"] = args
    before = store.stock_levels()
    slots = asyncio.Semaphore(4)

    async def run(args: list[str]) -> subprocess.CompletedProcess:
        async with slots:  # signed in, so that what is refused is the command, not the caller
            return await cli(*args, address=address, signed=console.of("olga" if args[0] == "event" else "amy"))

    results = await asyncio.gather(*(run(args) for args in cases.values()))
    return {"results": dict(zip(cases, results, strict=True)), "stock_before": before, "stock_after": store.stock_levels()}


@pytest.mark.parametrize("name, expected", ORDER_FILES.items(), ids=list(ORDER_FILES))
def test_a_bad_order_file_is_refused_in_one_line(outcomes, name, expected):
    result = outcomes["results"][f"orders/{name}"]
    assert expected in _refusal(result) and result.stdout == ""


@pytest.mark.parametrize("name, expected", CSV_FILES.items(), ids=list(CSV_FILES))
def test_a_bad_csv_file_is_refused_in_one_line(outcomes, name, expected):
    result = outcomes["results"][f"csv/{name}"]
    assert expected in _refusal(result) and result.stdout == ""


@pytest.mark.parametrize("name, expected", DEFINITION_FILES.items(), ids=list(DEFINITION_FILES))
def test_a_bad_definition_is_refused_in_one_line_by_lint_and_by_start(outcomes, name, expected):
    linted = _refusal(outcomes["results"][f"lint {name}"], stream="stdout")
    started = _refusal(outcomes["results"][f"start --process {name}"])
    path = str(CORPUS / "definitions" / name)
    assert linted.startswith(path) and expected in linted
    assert path in started and expected in started


@pytest.mark.parametrize("index", range(len(COMMAND_LINES)), ids=[" ".join(a)[:50] for a, _ in COMMAND_LINES])
def test_a_bad_command_line_is_refused_in_one_line(outcomes, index):
    args, expected = COMMAND_LINES[index]
    refusal = _refusal(
        outcomes["results"][f"command {index}"], stream="stdout" if args[0] == "lint" else "stderr"
    )  # lint reports on stdout
    assert expected in refusal, refusal


async def test_nothing_of_the_corpus_started_and_the_store_is_unchanged(outcomes, client: Client):
    assert outcomes["stock_after"] == outcomes["stock_before"]
    named = {"corpus-good-order-under-bad-definition"}.union(
        *(_corpus_ids(CORPUS / kind / name) for kind, files in (("orders", ORDER_FILES), ("csv", CSV_FILES)) for name in files)
    )
    assert len(named) > 50
    assert [order_id for order_id in sorted(named) if await exists(client, order_id)] == []


async def test_the_order_the_bad_commands_were_aimed_at_still_completes(outcomes, waiting, store: Store, address: str, console):
    view = await wait_until(waiting, awaiting_decision)
    assert view.decisions == [] and view.events == [] and view.refused_signal_count == 0
    approved = await cli(
        "review", WAITING, "--decision", "approve", "--reason", "called the customer", address=address, signed=console.of("amy")
    )
    assert approved.returncode == 0, approved.stderr
    await deliver(waiting)
    assert (await settled(waiting, store)).status == "completed"
