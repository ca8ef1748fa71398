"""The console in a real browser: Playwright driving Debian's Chromium (`apt-get install chromium`).

A person signs in, sees only the tasks of their roles, claims one, decides it, and watches the order
move on. With ORDEROPS_SCREENSHOTS=DIR the inbox and the task page are saved there (docs/ holds the
ones the docs show).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import async_playwright, expect

from orderops.client import OrderClient
from orderops.console.app import create_app
from orderops.console.inbox import catalog
from orderops.order import Order
from orderops.people import People
from orderops.proof import new_key, trusted_keys
from tests.helpers import ROOT, awaiting_decision, definition, order_data, wait_until, waiting_for

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery"


@pytest.fixture
async def console_url(client, worker, tmp_path):
    assert CHROMIUM.exists(), "the browser tests drive Debian's Chromium: apt-get install chromium (.ci/run does)"
    people = People(tmp_path / "people.db")
    people.add("amy.chen", "Amy Chen", ["support_agent"], PASSWORD)
    people.add("wes.li", "Wes Li", ["warehouse_supervisor"], PASSWORD)
    orders = OrderClient(client, signer=new_key(tmp_path / "keys"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(orders, people, catalog(ROOT / "process_defs"), secure_cookies=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{port}", orders, trusted_keys(tmp_path / "keys")
    server.should_exit = True
    await serving


async def test_an_agent_signs_in_claims_and_decides_in_the_browser(console_url):
    url, orders, keys = console_url
    order = Order.model_validate(order_data(order_id="browser-approve", customer_id="c-browser-approve", phone="12345"))
    handle = await orders.start(order, definition("standard.yaml"), trusted_keys=keys)
    await wait_until(handle, awaiting_decision)
    shots = os.environ.get("ORDEROPS_SCREENSHOTS")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1200, "height": 800})

        async def sign_in(person_id: str) -> None:
            await page.goto(url + "/")
            await expect(page).to_have_url(url + "/signin")
            await page.fill("#person_id", person_id)
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(url + "/")

        await sign_in("amy.chen")
        link = page.get_by_role("link", name="browser-approve")
        for _ in range(100):  # visibility may take a moment to list the order's new step
            if await link.count():
                break
            await asyncio.sleep(0.2)
            await page.reload()
        await expect(link).to_be_visible()
        if shots:
            await page.screenshot(path=f"{shots}/console-inbox.png")
        await page.click("text=Sign out")

        await sign_in("wes.li")  # the order is listed by now, but not for his role
        await expect(page.get_by_text("Waiting for you")).to_be_visible()
        await expect(page.get_by_role("link", name="browser-approve")).to_have_count(0)
        await page.click("text=Sign out")

        await sign_in("amy.chen")
        await link.click()
        await expect(page.get_by_text("phone_invalid")).to_be_visible()
        await page.get_by_role("button", name="Claim").click()
        await expect(page.get_by_role("status")).to_contain_text("you hold manual_review until")
        diagram = page.locator("img.diagram")
        await diagram.scroll_into_view_if_needed()
        await page.wait_for_function("() => document.querySelector('img.diagram').complete")
        drawn = await diagram.evaluate("img => img.naturalWidth")
        assert drawn > 0 if shutil.which("dot") else drawn == 0  # the order's path, where Graphviz is installed
        if shots:
            await page.screenshot(path=f"{shots}/console-task.png", full_page=True)
        await page.fill("#reason-manual_review", "called the customer")
        await page.get_by_role("button", name="approve", exact=True).click()
        await expect(page.get_by_role("status")).to_contain_text("approve taken at manual_review: the order goes on to stock_gate")
        await browser.close()

    view = await wait_until(handle, waiting_for("scanned"))  # the order moved on to picking
    assert [(d.agent, d.reason) for d in view.decisions] == [("amy.chen", "called the customer")]
    await handle.terminate("test done")
