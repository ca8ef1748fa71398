"""The embedded Temporal server a benchmark runs on its own ports, the CPU its processes use, and stopping them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from temporalio.client import Client

from orderops import server
from orderops.connect import Unreachable, connect

TICK = os.sysconf("SC_CLK_TCK")


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
