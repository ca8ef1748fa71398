"""The console over HTTP against the real server: sign-in, the lockout, CSRF, the inbox by role, a decision.

The app runs in-process (httpx's ASGI transport); its orders run on the session's dev server and
worker, started with the console's own key as the one they trust.
"""

from __future__ import annotations

import asyncio
import html
import re
import shutil
import time

import httpx
import pytest

from orderops.client import OrderClient
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.order import Order
from orderops.people import MAX_FAILURES, People
from orderops.process.render import CURRENT, VISITED
from orderops.proof import new_key, trusted_keys
from tests.helpers import ROOT, awaiting_decision, definition, order_data, status, wait_until, waiting_for

PASSWORD = "correct horse battery"


@pytest.fixture
async def console(client, worker, tmp_path):
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], PASSWORD)
    people.add("wes.li", "Wes Li", ["warehouse_supervisor"], PASSWORD)
    people.add("bo.wu", "Bo Wu", ["support_agent"], PASSWORD)
    people.add("ada.ops", "Ada Ops", ["ops"], PASSWORD)
    signer = new_key(tmp_path / "keys")
    orders = OrderClient(client, signer=signer)
    app = create_app(orders, people, catalog(ROOT / "process_defs"), secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        yield http, orders, trusted_keys(tmp_path / "keys")


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, person_id: str, password: str = PASSWORD) -> httpx.Response:
    form = await http.get("/signin")
    return await http.post("/signin", data={"person_id": person_id, "password": password, "csrf": csrf_of(form)})


async def inbox_until(http: httpx.AsyncClient, order_id: str, timeout: float = 20) -> httpx.Response:
    """The inbox once it lists the order (visibility takes a moment to see a new step)."""
    deadline = time.monotonic() + timeout
    while True:
        page = await http.get("/")
        if order_id in page.text or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.2)


async def test_sign_in_refuses_a_wrong_password_locks_after_repeats_and_needs_the_forms_token(console):
    http, _, _ = console
    assert (await http.get("/")).headers["location"] == "/signin"
    wrong = await sign_in(http, "amy.chen", "not her password")
    assert wrong.status_code == 401 and "wrong person id or password" in wrong.text
    forged = await http.post("/signin", data={"person_id": "amy.chen", "password": PASSWORD, "csrf": "0" * 32})
    assert forged.status_code == 403 and "session" not in forged.headers.get("set-cookie", "")
    for _ in range(MAX_FAILURES):
        await sign_in(http, "wes.li", "guess")
    locked = await sign_in(http, "wes.li")
    assert locked.status_code == 401 and "locked until" in locked.text
    signed = await sign_in(http, "amy.chen")
    assert signed.status_code == 303 and "HttpOnly" in signed.headers["set-cookie"] and "SameSite=strict" in signed.headers["set-cookie"]
    assert "Waiting for you" in (await http.get("/")).text


async def test_an_agent_sees_the_waiting_order_decides_it_and_the_order_records_who(console):
    http, orders, keys = console
    order = Order.model_validate(order_data(order_id="console-approve", customer_id="c-console-approve", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)

    await sign_in(http, "wes.li")
    assert "console-approve" not in (await inbox_until(http, "console-approve", timeout=2)).text  # not his role
    page = await http.get("/orders/console-approve")
    refused = await http.post(
        "/orders/console-approve/decide", data={"node": "manual_review", "decision": "approve", "csrf": csrf_of(page)}
    )
    assert refused.status_code == 409 and "does not hold the role 'support_agent'" in html.unescape(refused.text)

    await http.post("/signout", data={"csrf": csrf_of(page)})
    await sign_in(http, "amy.chen")
    inbox = await inbox_until(http, "console-approve")
    assert "console-approve" in inbox.text and "manual_review" in inbox.text
    page = await http.get("/orders/console-approve")
    assert "phone_invalid" in page.text and "Li Wei" not in page.text  # findings shown, the customer masked
    stale = await http.post("/orders/console-approve/decide", data={"node": "manual_review", "decision": "approve", "csrf": "f" * 32})
    assert stale.status_code == 403
    done = await http.post(
        "/orders/console-approve/decide",
        data={"node": "manual_review", "decision": "approve", "reason": "called the customer", "csrf": csrf_of(page)},
    )
    assert done.status_code == 200 and "approve taken at manual_review: the order goes on to stock_gate" in done.text
    view = await status(handle)
    [decision] = view.decisions
    assert (decision.agent, decision.proven_by, decision.reason) == ("amy.chen", next(iter(keys)), "called the customer")
    assert len(view.refused_signals) == 1  # wes's attempt, kept
    await handle.terminate("test done")


async def test_signing_out_ends_the_session(console):
    http, _, _ = console
    await sign_in(http, "amy.chen")
    page = await http.get("/")
    assert (await http.post("/signout", data={"csrf": csrf_of(page)})).headers["location"] == "/signin"
    assert (await http.get("/")).headers["location"] == "/signin"


async def test_a_claimed_task_is_decided_only_by_its_holder_until_released(console):
    http, orders, keys = console
    order = Order.model_validate(order_data(order_id="console-claim", customer_id="c-console-claim", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    task = {"node": "manual_review"}

    await sign_in(http, "amy.chen")
    page = await http.get("/orders/console-claim")
    claimed = await http.post("/orders/console-claim/claim", data={**task, "action": "claim", "csrf": csrf_of(page)})
    assert claimed.status_code == 200 and "you hold manual_review until" in claimed.text
    await http.post("/signout", data={"csrf": csrf_of(claimed)})

    await sign_in(http, "bo.wu")
    page = await http.get("/orders/console-claim")
    assert "Held by amy.chen" in page.text
    refused = await http.post("/orders/console-claim/decide", data={**task, "decision": "approve", "csrf": csrf_of(page)})
    assert refused.status_code == 409 and "is claimed by amy.chen until" in html.unescape(refused.text)
    stolen = await http.post("/orders/console-claim/claim", data={**task, "action": "claim", "csrf": csrf_of(page)})
    assert stolen.status_code == 409 and "is claimed by amy.chen" in html.unescape(stolen.text)
    await http.post("/signout", data={"csrf": csrf_of(page)})

    await sign_in(http, "amy.chen")
    page = await http.get("/orders/console-claim")
    released = await http.post("/orders/console-claim/claim", data={**task, "action": "release", "csrf": csrf_of(page)})
    assert "manual_review released" in released.text
    await http.post("/signout", data={"csrf": csrf_of(released)})

    await sign_in(http, "bo.wu")
    page = await http.get("/orders/console-claim")
    done = await http.post("/orders/console-claim/decide", data={**task, "decision": "approve", "csrf": csrf_of(page)})
    assert done.status_code == 200 and "approve taken at manual_review" in done.text
    assert [d.agent for d in (await status(handle)).decisions] == ["bo.wu"]
    await handle.terminate("test done")


async def test_the_edit_form_fixes_a_phone_with_the_clis_models_and_refuses_a_bad_one_inline(console):
    http, orders, keys = console
    order = Order.model_validate(order_data(order_id="console-edit", customer_id="c-console-edit", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    await sign_in(http, "amy.chen")
    page = await http.get("/orders/console-edit")
    form = {"node": "manual_review", "csrf": csrf_of(page)}
    empty = await http.post("/orders/console-edit/edit", data=form)
    assert empty.status_code == 400 and "change the phone, the address or an item line" in empty.text
    no_city = await http.post("/orders/console-edit/edit", data={**form, "street": "1 Main Road"})
    assert no_city.status_code == 400 and "address.province:" in html.unescape(no_city.text)
    fixed = await http.post("/orders/console-edit/edit", data={**form, "phone": "13812345678", "reason": "called, new number"})
    assert fixed.status_code == 200 and "edit taken at manual_review: the order goes on to checks" in fixed.text
    view = await wait_until(handle, waiting_for("scanned"))  # reviewed again, clean this time, and on to picking
    assert [(d.decision, d.agent, d.changes) for d in view.decisions] == [("edit", "amy.chen", {"phone": "13812345678"})]
    await handle.terminate("test done")


async def test_the_edit_form_changes_item_lines_and_the_page_draws_the_orders_path(console):
    http, orders, keys = console
    order = Order.model_validate(order_data(order_id="console-items", customer_id="c-console-items", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    await sign_in(http, "amy.chen")
    page = await http.get("/orders/console-items")
    assert 'name="sku" value="TEA-001"' in page.text and 'src="/orders/console-items/diagram.svg"' in page.text
    rows = {"sku": ["TEA-001", "MUG-002", ""], "quantity": ["2", "1", ""], "unit_price": ["68.00", "45.50", ""]}
    form = {"node": "manual_review", "csrf": csrf_of(page), "phone": "13812345678"}
    bad = await http.post("/orders/console-items/edit", data={**form, **rows, "quantity": ["two", "1", ""]})
    assert bad.status_code == 400 and "item line 1: quantity 'two' is not a whole number" in html.unescape(bad.text)
    none_left = await http.post("/orders/console-items/edit", data={**form, **rows, "quantity": ["0", "0", ""]})
    assert none_left.status_code == 400 and "items: List should have at least 1 item" in html.unescape(none_left.text)

    diagram = await http.get("/orders/console-items/diagram.svg")
    if shutil.which("dot"):
        assert diagram.headers["content-type"] == "image/svg+xml" and diagram.text.lstrip().startswith("<?xml")
        assert VISITED in diagram.text and CURRENT in diagram.text  # the path so far, and manual_review where it waits
    else:
        assert diagram.status_code == 503 and "needs Graphviz's `dot`" in diagram.text

    changed = {"sku": ["TEA-001", "MUG-002", "BOOK-006"], "quantity": ["3", "0", "1"], "unit_price": ["68.00", "45.50", "59.00"]}
    fixed = await http.post("/orders/console-items/edit", data={**form, **changed, "reason": "customer wants more tea, no mug"})
    assert fixed.status_code == 200, html.unescape(fixed.text)[-800:]
    view = await wait_until(handle, waiting_for("scanned"))
    assert sorted((i.sku, i.quantity) for i in view.order.items) == [("BOOK-006", 1), ("TEA-001", 3)]
    assert view.decisions[0].changes["items"][0] == {"sku": "TEA-001", "quantity": 3, "unit_price": "68.00"}
    await handle.terminate("test done")


async def test_a_form_or_page_missing_a_field_is_refused_in_one_line(console):
    http, _, _ = console
    await sign_in(http, "amy.chen")
    page = await http.get("/")
    missing = await http.post("/orders/nope/decide", data={"csrf": csrf_of(page), "node": "manual_review"})
    assert (missing.status_code, missing.text) == (400, "decision: Field required (go back and try again)")
    bad_filter = await http.get("/?risk=sometimes")
    assert bad_filter.status_code == 400 and bad_filter.text.startswith("risk: Input should be")


async def test_the_definitions_page_lists_each_served_definition_with_its_diagram(console):
    http, _, _ = console
    assert (await http.get("/definitions")).headers["location"] == "/signin"
    await sign_in(http, "amy.chen")
    page = await http.get("/definitions")
    assert "standard v5" in page.text and "returns v1" in page.text and "manual_review (support_agent)" in page.text
    assert 'src="/definitions/standard.svg"' in page.text
    missing = await http.get("/definitions/nope.svg")
    assert missing.status_code == 404 and "no definition 'nope'" in missing.json()["detail"]
    drawn = await http.get("/definitions/returns.svg")
    assert drawn.status_code == (200 if shutil.which("dot") else 503)
    if drawn.status_code == 200:
        assert "approve_return" in drawn.text and VISITED not in drawn.text  # no order, no path


async def test_the_kpi_report_orders_at_risk_and_audits_are_for_ops_and_auditors_only(console):
    http, orders, keys = console
    order = Order.model_validate(order_data(order_id="console-audit", customer_id="c-console-audit", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    await sign_in(http, "amy.chen")
    assert (await http.get("/report")).status_code == 403
    assert (await http.get("/at-risk")).status_code == 403
    assert (await http.get("/orders/console-audit/audit")).status_code == 403
    page = await http.get("/")
    await http.post("/signout", data={"csrf": csrf_of(page)})
    await sign_in(http, "ada.ops")
    audited = await http.get("/orders/console-audit/audit")
    assert audited.status_code == 200 and "process: standard v5" in audited.text and "manual_review" in audited.text
    assert (await http.get("/orders/no-such-order/audit")).status_code == 404
    at_risk = await http.get("/at-risk")
    assert at_risk.status_code == 200 and "Orders at risk or past a deadline" in at_risk.text
    report = await http.get("/report")
    assert report.status_code == 200 and "<title>orderops KPIs</title>" in report.text and "target 98%" in report.text
    await handle.terminate("test done")
