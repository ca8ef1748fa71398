"""Event sources prove who they are: a webhook unsigned, badly signed, stale or for another source's
event is refused and changes nothing; a valid one moves the order, once per event id."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from orderops.client import OrderClient
from orderops.console.app import create_app
from orderops.console.hooks import signature
from orderops.console.inbox import catalog
from orderops.order import Order
from orderops.people import People
from orderops.proof import new_key, trusted_keys
from tests.helpers import ROOT, definition, order_data, status, wait_until, waiting_for

SECRET = "a-test-secret-of-the-payment-provider"


@pytest.fixture
async def hooks(client, worker, tmp_path, monkeypatch):
    monkeypatch.setenv("ORDEROPS_HOOK_SECRET_PAYMENTS", SECRET)
    orders = OrderClient(client, signer=new_key(tmp_path / "keys"))
    app = create_app(orders, People(tmp_path / "people.db"), catalog(ROOT / "process_defs"), secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        yield http, orders, trusted_keys(tmp_path / "keys")


def post(http: httpx.AsyncClient, source: str, payload: dict, *, secret: str = SECRET, age_s: int = 0, signed: bool = True):
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()) - age_s)
    headers = {"X-Orderops-Timestamp": timestamp, "Content-Type": "application/json"}
    if signed:
        headers["X-Orderops-Signature"] = signature(secret.encode(), timestamp, body)
    return http.post(f"/hooks/{source}", content=body, headers=headers)


async def test_only_a_signed_fresh_payment_moves_an_unpaid_order_and_only_once(hooks):
    http, orders, keys = hooks
    order = Order.model_validate(order_data(order_id="hook-paid", customer_id="c-hook-paid", paid=False))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, waiting_for("paid"))
    paid = {"id": "evt-1", "order_id": "hook-paid", "event": "paid", "data": {"provider": "alipay"}}

    unsigned = await post(http, "payments", paid, signed=False)
    forged = await post(http, "payments", {**paid, "data": {"provider": "forged"}}, secret="guessed")
    stale = await post(http, "payments", paid, age_s=600)
    assert [r.status_code for r in (unsigned, forged, stale)] == [401, 401, 401]
    assert "more than 300 s from now" in stale.json()["detail"]
    not_its_event = await post(http, "payments", {**paid, "event": "delivered"})
    assert not_its_event.status_code == 403 and "does not report 'delivered'" in not_its_event.json()["detail"]
    bad = await post(http, "payments", {**paid, "order_id": "../etc"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("order_id:")
    assert (await status(handle)).waiting_for_events == ["paid"]  # nothing above reached the order

    taken = await post(http, "payments", paid)
    again = await post(http, "payments", paid)
    assert (taken.status_code, taken.json()["delivery"], again.json()["delivery"]) == (200, "waiting", "duplicate")
    view = await wait_until(handle, lambda v: "paid" not in v.waiting_for_events)
    assert [(e.name, e.sent_by) for e in view.events] == [("paid", "hook:payments")] and view.refused_signals == []
    await handle.terminate("test done")


async def test_an_unknown_source_is_not_found(hooks):
    http, _, _ = hooks
    assert (await post(http, "bank", {"id": "x", "order_id": "a", "event": "paid"})).status_code == 404


async def test_a_body_over_64_kib_is_refused_before_it_is_read_whole(hooks):
    http, _, _ = hooks
    huge = {"id": "evt-huge", "order_id": "hook-paid", "event": "paid", "data": {"pad": "x" * 70_000}}
    answer = await post(http, "payments", huge)
    assert answer.status_code == 413 and "over 65536 bytes" in answer.json()["detail"]
