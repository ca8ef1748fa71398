"""Who decided is proven, not typed: an order started with trusted keys takes only what one of them signed.

Each case is a real order on the dev server. What is sent without a valid proof (a plain update or
signal, a signature of another key, an altered payload, a signature used twice, a role the signer
did not vouch for) is refused, kept among the order's refused messages, and changes nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from orderops.client import OrderClient
from orderops.client.errors import ClientError
from orderops.messages import ExternalEvent, ReviewDecision
from orderops.order import Order
from orderops.proof import Actor, Signer, new_key, trusted_keys
from tests.helpers import awaiting_decision, definition, order_data, wait_until, waiting_for

AMY = Actor(id="amy.chen", name="Amy Chen", roles=["support_agent"], via="console")
PAY = Actor(id="svc-pay", name="payment provider", roles=["event_source"], via="hook:payments")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[Signer, dict[str, str]]:
    folder = tmp_path_factory.mktemp("keys")
    return new_key(folder), trusted_keys(folder)


async def started(client: Client, keys, order_id: str, **overrides) -> tuple[OrderClient, WorkflowHandle]:
    signer, trusted = keys
    orders = OrderClient(client, signer=signer)
    order = Order.model_validate(order_data(order_id=order_id, customer_id=f"c-{order_id}", **overrides))
    return orders, await orders.start(order, definition("standard.yaml"), trusted_keys=trusted)


async def test_a_signed_decision_is_taken_and_records_who_proved_it(client, worker, keys):
    orders, handle = await started(client, keys, "proof-approve", phone="12345")
    await wait_until(handle, awaiting_decision)
    # The agent typed is replaced by the signed-in person: free text claims nobody.
    receipt = await orders.acting_as(AMY).decide("proof-approve", ReviewDecision(decision="approve", agent="someone-else"))
    assert (receipt.agent, receipt.next) == ("amy.chen", "stock_gate")
    view = await wait_until(handle, waiting_for("scanned"))
    [decision] = view.decisions
    assert (decision.agent, decision.roles, decision.proven_by, decision.via) == ("amy.chen", ["support_agent"], keys[0].key_id, "update")
    assert view.refused_signals == []
    await handle.terminate("test done")


def signed(keys, order_id: str, event: ExternalEvent, actor: Actor = PAY) -> ExternalEvent:
    proof = keys[0].sign(f"order-{order_id}", "event", event, actor, datetime.now(UTC))
    return event.model_copy(update={"proof": proof})


async def test_unproven_decisions_are_refused_and_kept_and_the_order_still_waits(client, worker, keys, tmp_path):
    orders, handle = await started(client, keys, "proof-refused", phone="12345")
    await wait_until(handle, awaiting_decision)
    approve = ReviewDecision(decision="approve", agent="definitely-not-staff")

    with pytest.raises(ClientError, match="review carries no proof of who sent it"):
        await OrderClient(client).decide("proof-refused", approve)  # a plain update
    await handle.signal("review", approve)  # a plain signal

    stranger = OrderClient(client, signer=new_key(tmp_path)).acting_as(AMY)
    with pytest.raises(ClientError, match="which this order does not trust"):
        await stranger.decide("proof-refused", approve)

    good = keys[0].sign("order-proof-refused", "review", approve.model_copy(update={"agent": "amy.chen"}), AMY, datetime.now(UTC))
    altered = ReviewDecision(decision="reject", agent="amy.chen", proof=good)  # signed as approve, sent as reject
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update("review", altered)
    assert "signature does not match what it says" in str(failed.value.cause)

    for_another = ReviewDecision(decision="approve", agent="amy.chen", role="warehouse_supervisor")
    with pytest.raises(ClientError, match="does not hold the role 'warehouse_supervisor'"):
        await orders.acting_as(AMY).decide("proof-refused", for_another)

    refused = await wait_until(handle, lambda v: len(v.refused_signals) == 5)
    assert [r.name for r in refused.refused_signals] == ["review"] * 5
    assert "no proof" in refused.refused_signals[1].reason  # the plain signal
    assert refused.pending_user_tasks and refused.decisions == []  # nothing was decided
    await handle.terminate("test done")  # its history, refusals and all, replays in the replay step


async def test_a_signature_is_taken_once(client, worker, keys):
    _, handle = await started(client, keys, "proof-once", paid=False)
    await wait_until(handle, waiting_for("paid"))
    paid = signed(keys, "proof-once", ExternalEvent(name="paid", data={"provider": "alipay"}))
    await handle.signal("event", paid)
    await handle.signal("event", paid)  # captured and sent again
    view = await wait_until(handle, lambda v: v.refused_signals != [])
    assert [e.name for e in view.events] == ["paid"] and view.events[0].sent_by == "svc-pay"
    assert "taken once already with this very signature" in view.refused_signals[0].reason
    await handle.terminate("test done")


async def test_a_forged_payment_does_not_move_an_unpaid_order(client, worker, keys):
    _, handle = await started(client, keys, "proof-forged-pay", paid=False)
    await wait_until(handle, waiting_for("paid"))
    await handle.signal("event", ExternalEvent(name="paid", data={"provider": "forged-by-anyone"}))
    other = signed(keys, "another-order", ExternalEvent(name="paid", data={"provider": "alipay"}))  # signed for another order
    await handle.signal("event", other)
    view = await wait_until(handle, lambda v: len(v.refused_signals) == 2)
    assert view.waiting_for_events == ["paid"] and view.events == []
    assert "no proof" in view.refused_signals[0].reason and "signature does not match" in view.refused_signals[1].reason
    await handle.terminate("test done")
