"""`make run`: the console beside the demo, where a person signs in and decides an order left for them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import ROOT

LINE = re.compile(r"sign in as demo\.agent / (\S+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_leaves_orders_for_a_person_who_signs_in_and_decides_one(address, worker, home: Path):
    port = free_port()
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    command = [str(Path(sys.executable).parent / "orderops"), "demo", "--orders", "1", "--console", "--console-port", str(port)]
    demo = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stdout is not None
        printed, password = [], None
        while password is None:
            line = demo.stdout.readline()
            assert line, "the demo ended before serving the console:\n" + "".join(printed) + demo.stderr.read()[-2000:]
            printed.append(line)
            if found := LINE.search(line):
                password = found.group(1)
        assert any(f"Console: http://127.0.0.1:{port}" in line for line in printed)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            form = http.get("/signin")
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
            assert http.post("/signin", data={"person_id": "demo.agent", "password": password, "csrf": csrf}).status_code == 303
            deadline, inbox = time.monotonic() + 30, ""
            while "people-" not in inbox and time.monotonic() < deadline:
                inbox = http.get("/").text
                time.sleep(0.2)
            order_id = re.search(r'href="/orders/(people-[\w-]+)"', inbox).group(1)
            page = http.get(f"/orders/{order_id}")
            csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
            done = http.post(f"/orders/{order_id}/decide", data={"node": "manual_review", "decision": "approve", "csrf": csrf})
            assert done.status_code == 200 and "approve taken at manual_review" in done.text
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=60)
    assert code in (0, 130), demo.stderr.read()[-2000:]
