"""Replay throughput: `orderops replay` (sandboxed, and --fast) against the SDK's default Replayer.

All three replay the same histories (default: the golden histories in tests/golden) through the
current OrderWorkflow, in one process, rounds interleaved; each must replay every history without a
divergence. Prints histories/s (min and median over the rounds), the ratios to the SDK's Replayer,
and the load average before and after.

    .venv/bin/python bench/replay.py                    # tests/golden, 5 rounds
    .venv/bin/python bench/replay.py --rounds 3 DIR     # any directory of exported histories
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orderops.codec import data_converter
from orderops.history.replay import replay
from orderops.history.timeline import load_history_file
from workflows import OrderWorkflow

ROOT = Path(__file__).resolve().parent.parent


async def sdk_default(histories: list[WorkflowHistory]) -> None:
    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    replayer = Replayer(workflows=[OrderWorkflow], data_converter=data_converter())
    async with replayer.workflow_replay_iterator(each()) as results:
        async for result in results:
            assert result.replay_failure is None, f"{result.history.workflow_id}: {result.replay_failure}"


def orderops_replay(sandboxed: bool) -> Callable[[list[WorkflowHistory]], Awaitable[None]]:
    async def run(histories: list[WorkflowHistory]) -> None:
        async def each() -> AsyncIterator[tuple[str, WorkflowHistory | Exception]]:
            for history in histories:
                yield history.workflow_id, history

        outcomes = await replay(each(), [OrderWorkflow], sandboxed=sandboxed)
        failed = [o for o in outcomes if not o.ok]
        assert not failed, failed[0]

    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", nargs="?", default=str(ROOT / "tests" / "golden"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    histories = [load_history_file(path) for path in sorted(Path(args.directory).glob("*.json"))]
    sides: dict[str, Callable[[list[WorkflowHistory]], Awaitable[None]]] = {
        "SDK Replayer (default sandbox)": sdk_default,
        "orderops replay": orderops_replay(sandboxed=True),
        "orderops replay --fast": orderops_replay(sandboxed=False),
    }
    load_before = os.getloadavg()[0]
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, run in sides.items():
            started = time.perf_counter()
            await run(histories)
            rates[name].append(len(histories) / (time.perf_counter() - started))
    base = statistics.median(rates["SDK Replayer (default sandbox)"])
    print(f"{len(histories)} histories from {args.directory}, {args.rounds} interleaved rounds, {os.cpu_count()} cores")
    print(f"{'':32} {'min h/s':>8} {'median h/s':>11} {'vs SDK':>7}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:32} {min(values):8.1f} {median:11.1f} {median / base:6.2f}x")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    asyncio.run(main())
