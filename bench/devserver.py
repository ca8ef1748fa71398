"""The embedded Temporal server a benchmark runs on its own ports, a worker of the tree under test, the CPU
their processes use, and stopping them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from activities.store import Store
from orderops import server
from orderops.codec import Keyring
from orderops.config import SAMPLES_DIR
from orderops.connect import Unreachable, connect

TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """What a trial runs on: its dev server, a client of it, the tree's `orderops worker`, the warehouse store."""

    dev: subprocess.Popen
    client: Client
    worker: subprocess.Popen
    store: Store


@asynccontextmanager
async def stack(home: Path, port: int, ui_port: int, tree: Path | None, stock: int) -> AsyncIterator[Stack]:
    """A store seeded with `stock` more TEA-001 at SH, a dev server, and a worker of `tree` (None: this tree)
    in `home`; both processes are killed on the way out."""
    (home / "labels").mkdir(parents=True)
    store = Store(home / "warehouse.db", home / "labels")
    store.seed(SAMPLES_DIR / "warehouse.yaml")
    store.receive_stock("TEA-001", "SH", stock)
    dev, client = await start_dev_server(port, ui_port, home / "temporal.db", home / "temporal-server.log")
    worker = None
    try:
        with open(home / "worker.log", "ab") as log:
            # The benchmark's own codec keys: the worker must read the orders it starts.
            env = {**os.environ, "ORDEROPS_HOME": str(home), "TEMPORAL_ADDRESS": f"127.0.0.1:{port}", **Keyring.load().as_env()}
            if tree is not None:
                env["PYTHONPATH"] = str(tree)  # before the editable install on sys.path: the baseline's code
            launch = "import sys; from orderops.cli import main; main()"
            worker = subprocess.Popen(
                [sys.executable, "-c", launch, "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree or ROOT
            )
        yield Stack(dev, client, worker, store)
    finally:
        for process in (worker, dev):
            stop(process, signal.SIGKILL)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


async def start_dev_server(port: int, ui_port: int, db: Path, log: Path) -> tuple[subprocess.Popen, Client]:
    """Start `temporal server start-dev` and return it with a client, once it answers (60 s at most)."""
    with open(log, "ab") as out:
        process = subprocess.Popen(server.command(port=port, ui_port=ui_port, db=db), stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            sys.exit(f"the dev server exited with {process.returncode}; see {log}")
        try:
            return process, await connect(f"127.0.0.1:{port}", "default")
        except Unreachable:
            if time.monotonic() > deadline:
                stop(process, signal.SIGKILL)
                raise
            await asyncio.sleep(0.2)


def stop(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Send `sig` to a process still running, then wait for it; kill it if it has not gone in `timeout` s."""
    if process is not None and process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
