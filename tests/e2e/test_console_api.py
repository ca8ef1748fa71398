"""The JSON API under /api against the real server: tokens, the inbox by role, claim and review, its schema."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from orderops.client import OrderClient
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.order import Order
from orderops.people import People
from orderops.proof import new_key, trusted_keys
from tests.helpers import ROOT, awaiting_decision, definition, order_data, status, wait_until, waiting_for

PASSWORD = "correct horse battery"


@pytest.fixture
async def api(client, worker, tmp_path):
    people = People(tmp_path / "people.db")
    for person_id, roles in (
        ("amy.chen", ["support_agent"]),
        ("bo.wu", ["support_agent"]),
        ("wes.li", ["warehouse_supervisor"]),
        ("olga.ops", ["ops"]),
    ):
        people.add(person_id, person_id.title(), roles, PASSWORD)
    orders = OrderClient(client, signer=new_key(tmp_path / "keys"))
    app = create_app(orders, people, catalog(ROOT / "process_defs"), secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        yield http, orders, trusted_keys(tmp_path / "keys")


async def bearer(http: httpx.AsyncClient, person_id: str) -> dict[str, str]:
    answer = await http.post("/api/tokens", json={"person_id": person_id, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def test_the_api_needs_a_token_and_its_schema_lists_every_route(api):
    http, _, _ = api
    assert (await http.post("/api/tokens", json={"person_id": "amy.chen", "password": "wrong one here"})).status_code == 401
    assert (await http.get("/api/inbox")).status_code == 401
    assert (await http.get("/api/inbox", headers={"Authorization": "Bearer forged"})).status_code == 401
    extra = await http.post("/api/tokens", json={"person_id": "amy.chen", "password": PASSWORD, "admin": True})
    assert extra.status_code == 422
    paths = (await http.get("/api/openapi.json")).json()["paths"]
    assert {"/api/tokens", "/api/inbox", "/api/orders/{order_id}", "/api/orders/{order_id}/review", "/hooks/{source}"} <= set(paths)
    assert "/signin" not in paths  # the pages are not the API


async def test_claim_and_review_through_the_api_with_the_orders_own_checks(api):
    http, orders, keys = api
    order = Order.model_validate(order_data(order_id="api-review", customer_id="c-api-review", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    amy, bo, wes = [await bearer(http, p) for p in ("amy.chen", "bo.wu", "wes.li")]

    deadline, rows = time.monotonic() + 20, []
    while not rows and time.monotonic() < deadline:
        rows = [r for r in (await http.get("/api/inbox", headers=amy)).json()["rows"] if r["order_id"] == "api-review"]
        await asyncio.sleep(0.2)
    assert rows and rows[0]["node"] == "manual_review" and rows[0]["role"] == "support_agent"
    assert rows[0]["waiting"]["codes"] == ["phone_invalid"] and rows[0]["waiting"]["customer"] == "L* W**"
    assert rows[0]["waiting"]["phone"] == "****" and rows[0]["waiting"]["amount"] == "181.50"
    assert [r for r in (await http.get("/api/inbox", headers=wes)).json()["rows"] if r["order_id"] == "api-review"] == []

    shown = (await http.get("/api/orders/api-review", headers=amy)).text
    assert "Li Wei" not in shown and "12345" not in shown  # no customer fields; the finding masks the phone
    task = {"node": "manual_review"}
    assert (await http.post("/api/orders/api-review/claim", json=task, headers=amy)).json()["claimed_by"] == "amy.chen"
    held = await http.post("/api/orders/api-review/review", json={**task, "decision": "approve"}, headers=bo)
    assert held.status_code == 409 and "claimed by amy.chen" in held.json()["detail"]
    wrong_role = await http.post("/api/orders/api-review/review", json={**task, "decision": "approve"}, headers=wes)
    assert wrong_role.status_code == 409 and "does not hold the role 'support_agent'" in wrong_role.json()["detail"]
    not_an_outcome = await http.post("/api/orders/api-review/review", json={**task, "decision": "ship-it"}, headers=amy)
    assert not_an_outcome.status_code == 409 and "'ship-it' is not an outcome" in not_an_outcome.json()["detail"]
    done = await http.post("/api/orders/api-review/review", json={**task, "decision": "approve", "reason": "ok"}, headers=amy)
    assert done.status_code == 200 and (done.json()["agent"], done.json()["next"]) == ("amy.chen", "stock_gate")
    await handle.terminate("test done")


async def test_events_address_changes_and_cancellations_through_the_api_by_role(api):
    http, orders, keys = api
    order = Order.model_validate(order_data(order_id="api-acts", customer_id="c-api-acts", paid=False))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, waiting_for("paid"))
    amy, olga = await bearer(http, "amy.chen"), await bearer(http, "olga.ops")

    paid = {"name": "paid", "data": {"provider": "alipay"}}
    not_ops = await http.post("/api/orders/api-acts/events", json=paid, headers=amy)
    assert not_ops.status_code == 403 and not_ops.json()["detail"] == "event is for the roles ops; amy.chen holds none"
    bad_feedback = await http.post("/api/orders/api-acts/events", json={"name": "feedback", "data": {"rating": 9}}, headers=olga)
    assert bad_feedback.status_code == 422
    assert (await status(handle)).waiting_for_events == ["paid"]  # nothing refused reached the order
    sent = await http.post("/api/orders/api-acts/events", json=paid, headers=olga)
    assert sent.status_code == 200 and sent.json() == {"event": "paid", "outcome": "waiting"}

    view = await wait_until(handle, waiting_for("scanned"))
    assert [e.sent_by for e in view.events if e.name == "paid"] == ["olga.ops"]  # proven, not typed
    move = {"address": {"province": "Zhejiang", "city": "Hangzhou", "street": "1 West Lake Road", "postcode": "310000"}, "reason": "moved"}
    blank = await http.post("/api/orders/api-acts/address", json={**move, "address": {**move["address"], "city": " "}}, headers=amy)
    assert blank.status_code == 422
    moved = await http.post("/api/orders/api-acts/address", json=move, headers=amy)
    assert moved.status_code == 200 and moved.json()["address"]["city"] == "Hangzhou"
    assert (await http.post("/api/orders/api-acts/cancel", json={"reason": "x"}, headers=await bearer(http, "wes.li"))).status_code == 403
    cancelled = await http.post("/api/orders/api-acts/cancel", json={"reason": "customer called"}, headers=amy)
    assert cancelled.status_code == 200, cancelled.text
    assert (await handle.result()).status == "cancelled"


async def test_a_token_ends_when_its_holder_signs_out(api):
    http, _, _ = api
    amy = await bearer(http, "amy.chen")
    assert (await http.get("/api/inbox", headers=amy)).status_code == 200
    assert (await http.delete("/api/tokens", headers=amy)).status_code == 204
    assert (await http.get("/api/inbox", headers=amy)).status_code == 401


async def test_the_inbox_pages_and_filters_with_one_listing_request_a_page(api):
    http, orders, keys = api
    region = f"paging-{int(time.time() * 1000) % 10**9}"  # this test's orders only: the session has others waiting
    handles = []
    for number in range(3):
        order = Order.model_validate(order_data(order_id=f"api-page-{number}-{region}", phone="12345"))
        handles.append(await orders.start(order, definition("standard.yaml"), variables={}, trusted_keys=keys))
    for handle in handles:
        await wait_until(handle, awaiting_decision)
    amy = await bearer(http, "amy.chen")
    # The order's region search attribute comes from its promise; narrow by this test's order ids instead.
    seen: list[str] = []
    url: str | None = "/api/inbox?per_page=1&node=manual_review"
    deadline = time.monotonic() + 30
    while url and time.monotonic() < deadline:
        answer = (await http.get(url, headers=amy)).json()
        assert len(answer["rows"]) <= 1
        seen += [r["order_id"] for r in answer["rows"]]
        url = answer["next"]
    assert {f"api-page-{n}-{region}" for n in range(3)} <= set(seen)
    assert len(seen) == len(set(seen))  # no order on two pages
    stale = await http.get("/api/inbox?page=bm90LWEtdG9rZW4=", headers=amy)
    assert stale.status_code == 400 and "cannot be shown" in stale.json()["detail"]
    assert (await http.get("/api/inbox?risk=sometimes", headers=amy)).status_code == 422
    breached = (await http.get("/api/inbox?risk=breached&node=manual_review", headers=amy)).json()["rows"]
    assert not {r["order_id"] for r in breached} & set(seen[:3]) or all(r["breached"] for r in breached)
    for handle in handles:
        await handle.terminate("test done")
