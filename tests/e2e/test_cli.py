"""The `orderops` command as users run it: clear one-line errors, nothing lost or started by mistake."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from activities.store import Store
from orderops.limits import MAX_ORDER_FILE_BYTES
from orderops.messages import OrderResult, OrderStatusView
from orderops.order import Order, workflow_id
from tests.helpers import KNOWN_ACTIVITIES, ROOT, awaiting_decision, cli, definition, exists, order_data, run_cli, settled, wait_until


def write(tmp_path: Path, content) -> Path:
    path = tmp_path / "orders.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.pop("phone"), "field 'phone': missing"),
        (lambda o: o.update(items=[]), "field 'items': List should have at least 1 item"),
        (lambda o: o["items"][0].update(quantity=0), "field 'items.0.quantity': Input should be greater than 0"),
        (lambda o: o["items"][1].update(quantity=-3), "field 'items.1.quantity': Input should be greater than 0"),
        (lambda o: o["address"].pop("city"), "field 'address.city': missing"),
        (lambda o: o.update(colour="red"), "field 'colour': Extra inputs are not permitted"),
    ],
    ids=["missing-field", "empty-items", "zero-quantity", "negative-quantity", "missing-nested", "unknown-field"],
)
async def test_start_refuses_invalid_orders_and_starts_none(tmp_path, client, worker, address, mutate, message):
    good, bad = order_data(), order_data()
    mutate(bad)
    result = await cli("start", str(write(tmp_path, [good, bad])), address=address)
    assert result.returncode == 1
    assert message in result.stderr and "order #2" in result.stderr
    assert result.stderr.rstrip().endswith("no order was started")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not await exists(client, good["order_id"])


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"order_id": "x",', "orders.json:1:18: malformed JSON: Expecting property name enclosed in double quotes"),
        ("", "orders.json: no orders in the file"),
        ("[1]", "order #1: expected a JSON object, got int"),
    ],
)
def test_start_reports_malformed_files_in_one_line(tmp_path, address, content, message):
    result = run_cli("start", str(write(tmp_path, content)), address=address)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["orders.json", "orders.csv", "-"])
def test_start_reads_no_order_file_past_its_limit(tmp_path, address, name):
    text = " " * MAX_ORDER_FILE_BYTES + "[]"  # a valid JSON document, one byte past the limit with its first bracket
    if name == "-":
        result = run_cli("start", "-", address=address, stdin=text)
    else:
        (tmp_path / name).write_text(text)
        result = run_cli("start", str(tmp_path / name), address=address)
    shown = "<stdin>" if name == "-" else str(tmp_path / name)
    assert (result.returncode, result.stderr) == (
        1,
        f"orderops: {shown} is more than {MAX_ORDER_FILE_BYTES:,} bytes, the most an order file may be; split it\n",
    )


async def test_start_json_lines_then_duplicate_is_refused(tmp_path, client, worker, address):
    first, second = order_data(), order_data()
    path = write(tmp_path, json.dumps(first) + "\n" + json.dumps(second) + "\n")
    result = await cli("start", str(path), address=address)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [workflow_id(first["order_id"]), workflow_id(second["order_id"])]

    again = await cli("start", str(write(tmp_path, first)), address=address)
    assert again.returncode == 1
    assert again.stderr.strip() == f"orderops: {tmp_path / 'orders.json'}: already submitted: {first['order_id']}; no order was started"
    for order in (first, second):
        await client.get_workflow_handle(workflow_id(order["order_id"])).cancel()


async def test_review_and_status_from_the_command_line(tmp_path, worker, address, console):
    order = order_data(phone="12345")
    assert (await cli("start", str(write(tmp_path, order)), address=address)).returncode == 0
    oid = order["order_id"]

    amy = console.of("amy")
    wrong = await cli("review", oid, "--decision", "maybe", address=address, signed=amy)
    # The first review may arrive before the order reaches the user task; both answers are immediate and clear.
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr

    status = None
    for _ in range(200):
        status = json.loads((await cli("status", oid, "--json", address=address)).stdout)
        if status["pending_user_tasks"]:
            break
        await asyncio.sleep(0.1)
    assert status["status"] == "awaiting_review"
    assert status["pending_user_tasks"][0]["details"] == [{"code": "phone_invalid", "reason": "phone '****' is not a valid mobile number"}]
    pending = (await cli("status", oid, address=address)).stdout
    assert "  - phone_invalid: phone '****' is not a valid mobile number" in pending
    assert "ships to: Shanghai Shanghai Pudong 88 Century Avenue 200120" in pending and "items: TEA-001 x2, MUG-002 x1 (181.50)" in pending

    wrong = await cli("review", oid, "--decision", "maybe", address=address, signed=amy)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == "orderops: refused: 'maybe' is not an outcome of 'manual_review'; allowed: approve, edit, merge, reject"

    # Nobody decides as whoever they type: the name comes from the sign-in, and the role from the person.
    typed = await cli("review", oid, "--decision", "approve", "--agent", "amy", address=address)
    assert typed.returncode == 2 and "unrecognized arguments: --agent amy" in typed.stderr
    anonymous = await cli("review", oid, "--decision", "approve", address=address)
    assert anonymous.returncode == 1 and anonymous.stderr.startswith("orderops: not signed in to the console at ")
    forged = await cli("review", oid, "--decision", "approve", address=address, signed={**amy, "ORDEROPS_TOKEN": "made-up"})
    assert forged.returncode == 1 and "refused the token" in forged.stderr
    other_role = await cli("review", oid, "--decision", "approve", address=address, signed=console.of("wes"))
    assert other_role.returncode == 1 and "wes does not hold the role 'support_agent'" in other_role.stderr

    ok = await cli("review", oid, "--decision", "reject", "--reason", "fraud", address=address, signed=amy)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == f"order {oid}: reject by amy recorded at manual_review; next: notify_rejected"

    text = await cli("status", oid, address=address)
    assert text.returncode == 0
    assert "decision: manual_review -> reject by amy (support_agent)" in text.stdout


async def test_unknown_order_gets_a_clear_message(address, worker, console):
    for command in (
        ["status", "nope"],
        ["review", "nope", "--decision", "approve"],
        ["event", "nope", "delivered"],
        ["cancel", "nope", "--reason", "x"],
    ):
        result = await cli(*command, address=address, signed=console.of("olga"))
        assert result.returncode == 1
        assert result.stderr.strip() == "orderops: no order 'nope' (no workflow order-nope)"


async def test_event_name_and_payload_are_checked(tmp_path, client, worker, address, store: Store, console):
    order = order_data()
    olga = console.of("olga")
    assert (await cli("start", str(write(tmp_path, order)), address=address)).returncode == 0
    oid = order["order_id"]
    bad_json = await cli("event", oid, "delivered", "--data", "{signer:", address=address, signed=olga)
    assert (bad_json.returncode, bad_json.stderr.strip()) == (
        1,
        "orderops: --data: malformed JSON: Expecting property name enclosed in double quotes at column 2",
    )
    unknown = await cli("event", oid, "teleported", address=address, signed=olga)
    assert unknown.returncode == 1
    assert (
        unknown.stderr.strip()
        == f"orderops: order {oid}'s process has no receive for event 'teleported'; it accepts: address_changed, delivered, delivery_failed, delivery_refused, delivery_rescheduled, feedback, in_transit, lost, out_for_delivery, paid, restocked, scanned"
    )
    sent = await cli("event", oid, "delivered", "--data", '{"signer": "Li"}', address=address, signed=olga)
    assert sent.returncode == 0 and "event 'delivered' delivered to order" in sent.stdout
    cancelled = await cli("cancel", oid, "--reason", "test", address=address, signed=olga)
    assert cancelled.returncode == 0, cancelled.stderr
    await settled(client.get_workflow_handle(workflow_id(oid), result_type=OrderResult), store)
    after = await cli("event", oid, "feedback", "--data", '{"rating": 4}', address=address, signed=olga)
    assert (after.returncode, after.stderr.strip()) == (1, f"orderops: order {oid} has already ended (cancelled); nothing changed")


def test_unreachable_server_is_one_line():
    result = run_cli("--address", "127.0.0.1:1", "list")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "orderops: cannot reach Temporal at 127.0.0.1:1 (namespace default): start one with `orderops server`"
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_are_one_line():
    result = run_cli("list", "--limit", "zero")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "orderops list: error: argument --limit: 'zero' is not a whole number (ASCII digits, at most 18) (see orderops list --help)"
    )


async def test_list_by_status_from_visibility(tmp_path, client, worker, address):
    order = order_data(phone="12345")
    assert (await cli("start", str(write(tmp_path, order)), address=address)).returncode == 0
    rows = []
    for _ in range(200):  # visibility is eventually consistent
        listed = await cli("list", "--status", "awaiting_review", "--json", address=address)
        rows = [r for r in json.loads(listed.stdout) if r["order_id"] == order["order_id"]]
        if rows:
            break
        await asyncio.sleep(0.2)
    assert rows and rows[0]["step"] == "manual_review" and rows[0]["process"] == "standard v5"
    await client.get_workflow_handle(workflow_id(order["order_id"])).cancel()


async def test_start_refuses_a_file_with_a_resubmitted_order_and_starts_none(tmp_path, client, worker, address):
    old, new = order_data(), order_data()
    assert (await cli("start", str(write(tmp_path, old)), address=address)).returncode == 0
    mixed = await cli("start", str(write(tmp_path, [new, old])), address=address)
    assert mixed.returncode == 1
    assert mixed.stderr.strip().endswith(f"already submitted: {old['order_id']}; no order was started")
    assert not await exists(client, new["order_id"])
    await client.get_workflow_handle(workflow_id(old["order_id"])).cancel()


@pytest.mark.parametrize("field, value", [("paid", "yes"), ("items", [{"sku": "TEA-001", "quantity": "2", "unit_price": "1"}])])
async def test_start_does_not_coerce_payment_or_quantities(tmp_path, address, field, value):
    result = await cli("start", str(write(tmp_path, order_data(**{field: value}))), address=address)
    assert result.returncode == 1 and "no order was started" in result.stderr


async def test_global_options_also_work_after_the_command(address, worker):
    result = await cli("list", "--address", address, "--limit", "1", "--json")
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_new_commands_check_their_input_before_any_server():
    blank = run_cli("--address", "127.0.0.1:1", "change-address", "A1", "--province", " ", "--city", "Hangzhou", "--street", "1 Road")
    assert (blank.returncode, blank.stderr.strip()) == (1, "orderops: invalid address: field 'address': province must not be blank")
    postcode = run_cli(
        "--address",
        "127.0.0.1:1",
        "change-address",
        "A1",
        "--province",
        "Zhejiang",
        "--city",
        "Hangzhou",
        "--street",
        "1 Road",
        "--postcode",
        "31",
    )
    assert postcode.stderr.strip() == "orderops: invalid address: field 'address': postcode '31' is not 6 digits"
    itself = run_cli("--address", "127.0.0.1:1", "merge", "A1", "--into", "A1")
    assert (itself.returncode, itself.stderr.strip()) == (2, "orderops: an order cannot be merged into itself")
    unknown = run_cli("carrier-outage", "FastCat", "--reason", "down")
    assert unknown.returncode == 1 and unknown.stderr.strip().startswith(
        "orderops: no carrier 'FastCat' in standard.yaml (carriers: CityCourier"
    )
    quantity = run_cli("restock", "LAMP-007", "SH", "0")
    assert quantity.returncode == 2 and "0 must be at least 1" in quantity.stderr


async def test_an_event_is_sent_even_when_no_worker_answers(client, address, console):
    from orderops.client import OrderClient
    from orderops.process.lint import load_definition

    order = Order.model_validate(order_data())
    snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", KNOWN_ACTIVITIES)
    handle = await OrderClient(client, task_queue="nobody-polls-this").start(order, snapshot)
    status = await cli("status", order.order_id, address=address)
    assert (
        status.returncode == 1 and "no worker answered the status query" in status.stderr and len(status.stderr.strip().splitlines()) == 1
    )
    sent = await cli("event", order.order_id, "paid", "--data", '{"provider": "alipay"}', address=address, signed=console.of("olga"))
    assert sent.returncode == 0, sent.stderr
    assert "no worker is running to check it, one applies it when it starts" in sent.stdout
    signals = [e for e in (await handle.fetch_history()).events if e.HasField("workflow_execution_signaled_event_attributes")]
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in signals] == ["event"]
    await handle.terminate("test over")


def test_documented_event_payloads_are_checked_before_sending():
    rating = run_cli("--address", "127.0.0.1:1", "event", "A1", "feedback", "--data", '{"rating": 7}')
    assert (rating.returncode, rating.stderr.strip()) == (
        1,
        "orderops: invalid 'feedback' event: field 'data': rating: Input should be less than or equal to 5",
    )
    scan = run_cli("--address", "127.0.0.1:1", "event", "A1", "scanned", "--data", '{"items": [{"sku": "TEA-001", "quantity": "2"}]}')
    assert scan.returncode == 1 and scan.stderr.strip().startswith("orderops: invalid 'scanned' event: field 'data': items.0.quantity")
    edit = run_cli("--address", "127.0.0.1:1", "review", "A1", "--decision", "edit")
    assert (edit.returncode, edit.stderr.strip()) == (2, "orderops: --decision edit needs --changes: the corrected fields as JSON")


async def test_a_finished_orders_status_is_read_from_its_result_without_a_worker(client, address, store):
    from orderops.client import OrderClient
    from orderops.messages import ReviewDecision
    from orderops.worker import build_worker

    queue = f"finished-{uuid.uuid4().hex[:8]}"
    order = Order.model_validate(order_data())
    orders = OrderClient(client, task_queue=queue)
    async with build_worker(client, store, task_queue=queue):
        handle = await orders.start(order, definition("decide_or_timeout.yaml"))
        await wait_until(handle, awaiting_decision)
        await orders.decide(order.order_id, ReviewDecision(decision="approve", agent="amy", reason="fine", node="decide"))
        await handle.result()
    # No worker polls this queue now: a query would go unanswered, the result answers at once.
    shown = await cli("status", order.order_id, "--json", address=address)
    assert shown.returncode == 0, shown.stderr
    view = OrderStatusView.model_validate_json(shown.stdout)
    assert (view.status, view.current_nodes, view.pending_user_tasks) == ("completed", [], [])
    assert [d.decision for d in view.decisions] == ["approve"] and view.order == order


async def test_list_streams_more_rows_than_one_chunk_as_a_table_and_as_json(tmp_path, client, address):
    from orderops.cli.orders import LIST_CHUNK
    from orderops.client import OrderClient
    from orderops.process.lint import load_definition

    process = f"list-{uuid.uuid4().hex[:8]}"
    definition = tmp_path / "listed.yaml"
    definition.write_text((ROOT / "tests" / "definitions" / "retry.yaml").read_text().replace("id: test-retry", f"id: {process}", 1))
    snapshot = load_definition(definition, KNOWN_ACTIVITIES)
    assert snapshot.id == process
    count = LIST_CHUNK + 20
    orders = OrderClient(client, task_queue="nobody-polls-this")  # the orders stay as started: nothing changes the listing
    handles = await asyncio.gather(*(orders.start(Order.model_validate(order_data()), snapshot) for _ in range(count)))
    try:
        for _ in range(200):  # visibility is eventually consistent
            listed = await cli("list", "--process", process, "--limit", str(count + 5), "--json", address=address)
            assert listed.returncode == 0, listed.stderr
            rows = json.loads(listed.stdout)
            if len(rows) == count:
                break
            await asyncio.sleep(0.2)
        assert {r["order_id"] for r in rows} == {h.id.removeprefix("order-") for h in handles}
        assert {(r["status"], r["process"]) for r in rows} == {("accepted", f"{process} v1")}
        table = await cli("list", "--process", process, "--limit", str(count + 5), address=address)
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["order", "status", "step", "process", "promise", "region", "service", "flags", "started"]
        assert lines[-1] == f"{count} order(s)"
        body = lines[1:-1]  # the header once, however many chunks were drawn
        assert [line.split()[0] for line in body] == [r["order_id"] for r in rows]
        assert len({line.index(" accepted ") for line in body}) == 1  # every chunk keeps the first one's columns
    finally:
        await asyncio.gather(*(h.terminate("test over") for h in handles))
    bad = await cli("list", "--process", "Standard; drop", address=address)
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "orderops: --process 'Standard; drop': a definition's id: lower-case letters, digits, _ and - (e.g. standard)",
    )
