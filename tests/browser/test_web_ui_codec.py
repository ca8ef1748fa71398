"""The Temporal Web UI shows a customer's name decrypted for a signed-in support agent, through the
console's codec server, and ciphertext without it: a dev server of its own with --ui-codec-endpoint,
the console beside it, Playwright driving Debian's Chromium."""

from __future__ import annotations

import asyncio
import os

import pytest
import uvicorn
from playwright.async_api import async_playwright
from temporalio.testing import WorkflowEnvironment

from activities.store import Store
from orderops import search_attributes as sa
from orderops.client import OrderClient
from orderops.codec import data_converter
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.order import Order
from orderops.people import People
from orderops.proof import new_key
from orderops.server import temporal_binary
from orderops.worker import build_worker
from tests import support
from tests.browser.test_console_browser import CHROMIUM, PASSWORD
from tests.helpers import ROOT, awaiting_decision, definition, free_port, order_data, wait_until

NAME = "Ouyang Mingyue"


@pytest.fixture
async def ui_and_console(store: Store, tmp_path):
    assert CHROMIUM.exists(), "the browser tests drive Debian's Chromium: apt-get install chromium (.ci/run does)"
    console_port, ui_port = free_port(), free_port()
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        search_attributes=sa.ALL,
        data_converter=data_converter(),
        ui=True,
        ui_port=ui_port,
        dev_server_extra_args=["--ui-codec-endpoint", f"http://127.0.0.1:{console_port}/codec"],
    )
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], PASSWORD)
    orders = OrderClient(environment.client, signer=new_key(tmp_path / "keys"))
    origins = frozenset({f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"})
    app = create_app(orders, people, catalog(ROOT / "process_defs"), secure_cookies=False, ui_origins=origins)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=console_port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with build_worker(environment.client, store, extra_activities=support.extra_activities()):
            while not server.started:
                await asyncio.sleep(0.05)
            yield orders, f"http://127.0.0.1:{console_port}", f"http://127.0.0.1:{ui_port}"
    finally:
        server.should_exit = True
        await serving
        await environment.shutdown()


async def test_the_web_ui_shows_the_customer_decrypted_only_to_a_signed_in_agent(ui_and_console):
    orders, console, ui = ui_and_console
    order = Order.model_validate(order_data(customer_name=NAME, phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"))
    await wait_until(handle, awaiting_decision)
    page_of_order = f"{ui}/namespaces/default/workflows/{handle.id}/{(await handle.describe()).run_id}/history"

    shots = os.environ.get("ORDEROPS_SCREENSHOTS")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])

        async def shown(signed_in: bool) -> str:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            page = await context.new_page()
            if signed_in:
                await page.goto(console + "/signin")
                await page.fill("#person_id", "amy.chen")
                await page.fill("#password", PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(console + "/")
            # The UI's own codec setting "Include cross-origin credentials", so the console's cookie goes along.
            await page.goto(ui + "/")
            await page.evaluate(
                """endpoint => {
                    localStorage.setItem('endpoint', JSON.stringify(endpoint));
                    localStorage.setItem('includeCredentials', 'true');
                    localStorage.setItem('overrideRemoteCodecConfiguration', 'true');
                }""",
                console + "/codec",
            )
            await page.goto(page_of_order)
            await page.get_by_text("Event History").first.wait_for(timeout=30_000)
            text = ""
            for _ in range(100):
                text = await page.locator("body").inner_text()
                # The UI's answer either way: the order's input decrypted, or its codec failure banner.
                if NAME in text or "Codec Server could not connect" in text:
                    break
                await asyncio.sleep(0.2)
            if shots:
                await page.screenshot(path=f"{shots}/web-ui-{'decrypted' if signed_in else 'encrypted'}.png")
            await context.close()
            return text

        assert NAME in await shown(signed_in=True)
        anonymous = await shown(signed_in=False)
        assert NAME not in anonymous and "Codec Server could not connect" in anonymous
        await browser.close()
    await handle.terminate("test done")
