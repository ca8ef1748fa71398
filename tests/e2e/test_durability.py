"""Orders survive a restart of both the server and the worker (`orderops server` persistence)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

from activities.store import Store
from orderops import server
from orderops.client import OrderClient
from orderops.config import SAMPLES_DIR
from orderops.connect import Unreachable, connect
from orderops.messages import ExternalEvent, OrderResult, ReviewDecision
from orderops.order import Order
from orderops.process.lint import load_definition
from orderops.worker import build_worker
from tests.helpers import KNOWN_ACTIVITIES, ROOT, awaiting_decision, order_data, settled, shipped, status, wait_until, waiting_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start_server(port: int, ui_port: int, db: Path) -> tuple[subprocess.Popen, object]:
    command = server.command(port=port, ui_port=ui_port, db=db)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with asyncio.timeout(60):
        while True:
            try:
                return process, await connect(f"127.0.0.1:{port}", "default")
            except Unreachable:
                await asyncio.sleep(0.2)


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


async def test_order_survives_server_and_worker_restart(tmp_path: Path):
    port, ui_port, db = free_port(), free_port(), tmp_path / "temporal.db"
    store = Store(tmp_path / "warehouse.db", tmp_path / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", KNOWN_ACTIVITIES)
    order = Order.model_validate(order_data(phone="12345"))

    process, client = await start_server(port, ui_port, db)
    try:
        async with build_worker(client, store):
            handle = await OrderClient(client).start(order, snapshot)
            await wait_until(handle, awaiting_decision)
    finally:
        stop_server(process)

    process, client = await start_server(port, ui_port, db)
    try:
        async with build_worker(client, store):
            handle = client.get_workflow_handle(handle.id, result_type=OrderResult)
            view = await wait_until(handle, awaiting_decision)
            assert view.pending_user_tasks[0].node == "manual_review"
            await handle.execute_update("review", ReviewDecision(decision="approve", agent="amy"))
            await shipped(handle)
            await handle.signal("event", ExternalEvent(name="delivered"))
            await wait_until(handle, waiting_for("feedback"))
            await handle.signal("event", ExternalEvent(name="feedback", data={"rating": 4}))
            result = await settled(handle, store)
            assert result.status == "completed"
            assert [s.node for s in (await status(handle)).steps][:2] == ["promise", "checks"]
    finally:
        stop_server(process)


async def test_the_embedded_server_starts_in_a_fresh_clone_without_a_state_directory(tmp_path: Path, monkeypatch):
    fresh = tmp_path / "fresh-home"
    monkeypatch.setenv("ORDEROPS_HOME", str(fresh))
    port = free_port()
    process = server.start(port=port, ui_port=free_port())
    try:
        for _ in range(300):
            try:
                await connect(f"127.0.0.1:{port}", "default")
                break
            except Unreachable:
                assert process.poll() is None, (fresh / "temporal-server.log").read_text()[-2000:]
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("the embedded server never answered")
        assert (fresh / "temporal-server.log").exists() and (fresh / "temporal.db").exists()
    finally:
        process.terminate()
        process.wait(timeout=30)
