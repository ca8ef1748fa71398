"""Customer data encrypted in Temporal: nothing readable in a raw history, every orderops reader decrypts,
keys rotate under running orders, and the console's codec server answers only people allowed to read it."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from activities.store import Store
from orderops.client import OrderClient
from orderops.codec import KEY_ID, KEYS_ENV, Keyring, data_converter, key_dir, new_key
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.messages import ReviewDecision
from orderops.people import People
from orderops.proof import new_key as new_signing_key
from orderops.server import temporal_binary
from tests.helpers import AGENT, ROOT, cli, deliver, free_port, run_cli, settled, shipped, signed, status, wait_until, waiting_for

NAME, PHONE, STREET = "张小明", "13912345678", "77 Secret Garden Road"
WRONG_PHONE = "23912345678"  # not a mobile number: the order waits for a person, with a finding that names it
SECRETS = (NAME, PHONE, WRONG_PHONE, STREET)


def encodings(text: str) -> list[bytes]:
    """The ways a payload could carry the text: UTF-8, JSON's escapes, and base64 at each of its three alignments."""
    raw = text.encode()
    found = [raw, json.dumps(text).strip('"').encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"x" * shift + raw)[4 if shift else 0 :].rstrip(b"=")
        found.append(encoded[: len(encoded) - 4])  # the middle, unaffected by what comes after
    return found


def leaks(blob: bytes) -> list[str]:
    return [f"{text!r} as {form!r}" for text in SECRETS for form in encodings(text) if form in blob]


def customer() -> dict:
    return {
        "customer_name": NAME,
        "phone": PHONE,
        "address": {"province": "Zhejiang", "city": "Hangzhou", "district": "Xihu", "street": STREET, "postcode": "310000"},
    }


async def test_a_finished_orders_raw_history_holds_none_of_the_customers_data(start, store: Store, address, tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    order, handle = await start(**{**customer(), "phone": WRONG_PHONE})
    view = await wait_until(handle, lambda view: bool(view.pending_user_tasks))
    assert view.pending_user_tasks[0].details[0]["reason"] == "phone '239****5678' is not a valid mobile number"
    await handle.execute_update("review", signed(handle, "review", ReviewDecision(decision="approve", agent="amy"), AGENT))
    await deliver(handle)
    result = await settled(handle, store)
    assert result.status == "completed" and result.order.customer_name == NAME  # the client decrypts

    raw = await handle.fetch_history()  # as Temporal keeps it, nothing decoded
    blob = b"".join(event.SerializeToString() for event in raw.events) + raw.to_json().encode()
    assert leaks(blob) == []
    logged = caplog.text + capsys.readouterr().out  # the worker's log lines: the SDK's records and orderops's own
    assert leaks(logged.encode()) == [] and "order reviewed" in logged
    shown = subprocess.run(
        [temporal_binary(), "workflow", "show", "--workflow-id", handle.id, "--address", address, "--output", "json"],
        capture_output=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert leaks(shown.stdout) == [] and base64.b64encode(b"binary/encrypted") in shown.stdout  # metadata, as JSON shows bytes

    # Every reader of orderops decrypts; an export keeps the ciphertext only when asked to.
    audit = await cli("audit", order.order_id, address=address)
    assert audit.returncode == 0 and "completed" in audit.stdout
    for flags, readable in (([], True), (["--encrypted"], False)):
        out = tmp_path / ("encrypted" if flags else "plain")
        exported = await cli("export", order.order_id, "--out", str(out), *flags, address=address)
        assert exported.returncode == 0, exported.stderr
        [path] = out.iterdir()
        assert (leaks(path.read_bytes()) != []) is readable
        from_file = await cli("audit", "--file", str(path))
        assert from_file.returncode == 0 and "completed" in from_file.stdout, from_file.stderr
        replayed = await cli("replay", str(path))
        assert replayed.returncode == 0, replayed.stderr + replayed.stdout


async def test_an_order_started_under_the_old_key_finishes_and_reads_after_a_rotation(start, client, store: Store, address):
    order, handle = await start(**customer())
    await wait_until(handle, waiting_for("scanned"))
    old_key = Keyring.load().current
    rotated = new_key()
    os.utime(key_dir() / f"{rotated}.key", ns=(2**62, 2**62))  # the newest, for every keyring read from now on
    try:
        # A client of the new key sends the scan; the worker, which read the keys before, reads it all the same.
        after = OrderClient(await type(client).connect(address, data_converter=data_converter()))
        assert isinstance(after.temporal.data_converter.payload_codec, type(client.data_converter.payload_codec))
        await shipped(after.handle(order.order_id))
        await deliver(handle)
        assert (await settled(handle, store)).status == "completed"
        history = await handle.fetch_history()
        used = {
            p.metadata[KEY_ID].decode()
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
            for p in e.workflow_execution_signaled_event_attributes.input.payloads
        }
        assert rotated in used and old_key in {
            p.metadata[KEY_ID].decode() for p in history.events[0].workflow_execution_started_event_attributes.input.payloads
        }
        shown = await cli("status", order.order_id, address=address)
        assert shown.returncode == 0 and "Hangzhou" in shown.stdout
    finally:
        os.utime(key_dir() / f"{rotated}.key")  # back to now: later keys stay newer


@pytest.fixture
async def codec_console(client, worker, tmp_path):
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], "correct horse battery")
    people.add("wes.li", "Wes Li", ["warehouse_supervisor"], "correct horse battery")
    orders = OrderClient(client, signer=new_signing_key(tmp_path / "keys"))
    app = create_app(orders, people, catalog(ROOT / "process_defs"), secure_cookies=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console") as http:
        yield http, people


async def test_the_codec_server_decrypts_only_for_people_whose_role_reads_customer_data(codec_console, start):
    http, people = codec_console
    _, handle = await start(**customer())
    view = await status(handle)
    raw = await handle.fetch_history()
    sent = json_format.MessageToJson(Payloads(payloads=raw.events[0].workflow_execution_started_event_attributes.input.payloads))
    ui = {"Origin": "http://127.0.0.1:8233", "Content-Type": "application/json", "X-Namespace": "default"}

    nobody = await http.post("/codec/decode", content=sent, headers=ui)
    assert nobody.status_code == 401 and nobody.headers["access-control-allow-origin"] == "http://127.0.0.1:8233"
    wes = {**ui, "Authorization": f"Bearer {people.issue_token('wes.li', 'cli')}"}
    assert (await http.post("/codec/decode", content=sent, headers=wes)).status_code == 403
    amy = {**ui, "Authorization": f"Bearer {people.issue_token('amy.chen', 'cli')}"}
    decoded = await http.post("/codec/decode", content=sent, headers=amy)
    assert decoded.status_code == 200 and decoded.headers["access-control-allow-credentials"] == "true"
    [payload] = json_format.Parse(decoded.content, Payloads()).payloads
    assert NAME in payload.data.decode() and view.order.customer_name == NAME
    other_site = await http.post("/codec/decode", content=sent, headers={**amy, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other_site.headers  # the browser keeps the answer from that page
    preflight = await http.options("/codec/decode", headers={"Origin": "http://localhost:8233", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and "x-namespace" in preflight.headers["access-control-allow-headers"]
    garbled = await http.post("/codec/decode", content=b"{payloads: nope", headers=amy)
    assert garbled.status_code == 400 and "not a codec request" in garbled.json()["detail"]
    encoded = await http.post("/codec/encode", content=decoded.content, headers=amy)
    assert encoded.status_code == 200 and leaks(encoded.content) == []
    await handle.terminate("test done")


def test_keys_are_made_rotated_and_listed_in_the_home_and_refused_in_one_line_when_bad(tmp_path):
    home = {"ORDEROPS_HOME": str(tmp_path)}
    made = run_cli("keys", "new", extra_env=home)
    assert made.returncode == 0 and f"made in {tmp_path / 'codec-keys'}" in made.stdout, made.stderr
    again = run_cli("keys", "new", extra_env=home)
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"orderops: {tmp_path / 'codec-keys'} already holds 1 key(s); `orderops keys rotate` adds one",
    )
    rotated = run_cli("keys", "rotate", extra_env=home)
    assert rotated.returncode == 0 and "encrypts from now on" in rotated.stdout
    listed = run_cli("keys", "list", extra_env=home).stdout.splitlines()
    assert len(listed) == 2 and listed[-1].endswith("encrypts and decrypts") and listed[0].endswith("decrypts")
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (tmp_path / "codec-keys").glob("*.key"))
    from_env = {**home, KEYS_ENV: "ops1=" + base64.b64encode(b"k" * 32).decode()}
    refused = run_cli("keys", "rotate", extra_env=from_env)
    assert refused.returncode == 1 and "the keys come from ORDEROPS_CODEC_KEYS" in refused.stderr
    bad = run_cli("--address", "127.0.0.1:1", "status", "A1", extra_env={**home, KEYS_ENV: "ops1=zz"})
    assert (bad.returncode, bad.stderr.strip()) == (1, "orderops: ORDEROPS_CODEC_KEYS key 'ops1': not base64")


def test_a_web_ui_served_elsewhere_is_let_in_by_ui_origin_and_a_bad_origin_is_one_line(address: str, tmp_path):
    port = free_port()
    env = {**os.environ, "ORDEROPS_UI_ORIGINS": "https://ops.example.com:8443"}
    command = [str(Path(sys.executable).parent / "orderops"), "console", "--address", address, "--port", str(port)]
    with (tmp_path / "console.log").open("w") as log:
        process = subprocess.Popen(
            [*command, "--ui-origin", "https://Temporal.Example.com"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/signin", timeout=2)
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "console.log").read_text()
                time.sleep(0.1)
        for origin, allowed in [
            ("https://temporal.example.com", True),
            ("https://ops.example.com:8443", True),
            ("http://localhost:8233", True),
            ("https://temporal.example.com.evil.example", False),
        ]:
            preflight = httpx.options(f"{url}/codec/decode", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}, timeout=5)
            assert (preflight.headers.get("access-control-allow-origin") == origin) is allowed, origin
    finally:
        process.terminate()
        process.wait(timeout=30)
    refused = run_cli("console", "--ui-origin", "temporal.example.com", address=address)
    assert refused.returncode == 2 and "'temporal.example.com' is not a web origin like https://" in refused.stderr.splitlines()[-1]
    refused = run_cli("console", "--port", str(free_port()), address=address, extra_env={"ORDEROPS_UI_ORIGINS": "https://a.example/path"})
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        "orderops: ORDEROPS_UI_ORIGINS: 'https://a.example/path' is not a web origin like https://temporal.example.com[:port]",
    )
