"""`make run`: the demo drives every sample scenario to its expected end, logging as documented."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from temporalio.testing import ActivityEnvironment

from activities.envelope import log_context
from tests.conftest import cli


async def test_demo_ends_every_order_in_its_expected_state(address, worker, home: Path):
    log = home / "demo.log"
    log.unlink(missing_ok=True)
    result = await cli("--log-format", "json", "demo", address=address)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "All 10 orders ended as expected." in result.stdout
    for final in ("completed", "rejected", "failed", "cancelled"):
        assert f"│ {final}" in result.stdout
    # The KPIs of the demo's own orders follow: ten orders, one of them cancelled after acceptance.
    kpi_rows = [line for line in result.stdout.splitlines() if line.startswith("│ all ")]
    assert kpi_rows and "│ 10 " in kpi_rows[0] and "10.0%" in kpi_rows[0]

    # Worker log lines are JSON, each activity line with the order, node and attempt. (The demo's
    # worker shares the task queue with the session's, so it logs only the activities it ran.)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    activity_lines = [line for line in lines if "activity" in line]
    assert activity_lines
    assert all({"order_id", "node", "attempt", "timestamp", "level"} <= line.keys() for line in activity_lines)


def test_compensation_log_lines_name_the_node_they_undo():
    info = dataclasses.replace(
        ActivityEnvironment().info, activity_id="undo-reserve_stock-7", workflow_id="order-A1", attempt=2, activity_type="release_stock"
    )
    assert log_context(info) == {
        "order_id": "A1", "node": "reserve_stock", "attempt": 2, "activity": "release_stock", "compensation": True
    }
