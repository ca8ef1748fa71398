"""orderops login and logout against the session's `orderops console`: the deciding commands act as who signed in."""

from __future__ import annotations

import json
import stat

import httpx

from orderops.order import workflow_id
from orderops.proof import trusted_keys
from tests.helpers import awaiting_decision, cli, order_data, run_cli, status, wait_until


async def test_login_keeps_a_token_the_deciding_commands_use_and_logout_ends_it(tmp_path, client, worker, address, console):
    orders = tmp_path / "order.json"
    order = order_data(phone="12345")
    orders.write_text(json.dumps(order))
    assert (await cli("start", str(orders), address=address)).returncode == 0  # it trusts the console's key only
    handle = client.get_workflow_handle(workflow_id(order["order_id"]))
    await wait_until(handle, awaiting_decision)
    mine = {"ORDEROPS_HOME": str(tmp_path / "amy")}  # where this person's CLI keeps its sign-in

    wrong = run_cli("login", "amy", "--console", console.url, "--password-stdin", stdin="not the password\n", extra_env=mine)
    assert (wrong.returncode, wrong.stderr.strip()) == (1, "orderops: wrong person id or password")
    signed_in = run_cli("login", "amy", "--console", console.url, "--password-stdin", stdin="a session password\n", extra_env=mine)
    assert signed_in.returncode == 0, signed_in.stderr
    assert signed_in.stdout.startswith(f"signed in to {console.url} as amy (support_agent) until ")
    kept = tmp_path / "amy" / "credentials.json"
    token = json.loads(kept.read_text())["token"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and token not in signed_in.stdout

    decided = await cli("review", order["order_id"], "--decision", "approve", "--reason", "called the customer", extra_env=mine)
    assert decided.returncode == 0, decided.stderr
    assert decided.stdout.startswith(f"order {order['order_id']}: approve by amy recorded at manual_review")
    [decision] = (await status(handle)).decisions
    assert (decision.agent, decision.roles) == ("amy", ["support_agent"]) and decision.proven_by in trusted_keys()  # the console's key

    out = run_cli("logout", extra_env=mine)
    assert (out.returncode, out.stdout.strip()) == (0, f"signed out of {console.url} (amy)")
    assert not kept.exists()
    assert httpx.get(f"{console.url}/api/inbox", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    after = run_cli("cancel", order["order_id"], "--reason", "test over", extra_env=mine)
    assert after.returncode == 1 and after.stderr.startswith("orderops: not signed in to the console at ")
    await handle.terminate("test over")
