"""A claim lasts CLAIM_TTL on the order's own clock: after it, another holder of the role may decide."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orderops.client import OrderClient
from orderops.client.errors import ClientError
from orderops.messages import ReviewDecision
from orderops.order import Order
from orderops.proof import Actor, new_key, trusted_keys
from tests.helpers import awaiting_decision, definition, fast_forward, order_data, wait_until
from workflows.order import CLAIM_TTL

AMY = Actor(id="amy.chen", name="Amy Chen", roles=["support_agent"], via="console")
BO = Actor(id="bo.wu", name="Bo Wu", roles=["support_agent"], via="console")


async def test_a_claim_ends_after_its_time_and_another_agent_may_then_decide(ts_env, ts_worker, tmp_path):
    orders = OrderClient(ts_env.client, signer=new_key(tmp_path))
    order = Order.model_validate(order_data(order_id="claim-expires", customer_id="c-claim-expires", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=trusted_keys(tmp_path))
    await wait_until(handle, awaiting_decision)
    receipt = await orders.acting_as(AMY).claim("claim-expires", "manual_review", "support_agent")
    assert receipt.claimed_by == "amy.chen" and receipt.until is not None
    with pytest.raises(ClientError, match=r"claimed by amy\.chen"):
        await orders.acting_as(BO).decide("claim-expires", ReviewDecision(decision="approve", agent="bo.wu"))
    await fast_forward(ts_env, handle, CLAIM_TTL + timedelta(minutes=1))
    taken = await orders.acting_as(BO).decide("claim-expires", ReviewDecision(decision="approve", agent="bo.wu"))
    assert (taken.agent, taken.next) == ("bo.wu", "stock_gate")
    await handle.terminate("test done")
