"""Recovery after a worker restart: N orders in flight, the worker SIGKILLed, a new one started.

For each worker setting (max_concurrent_workflow_tasks / max_cached_workflows / workflow task polls)
it starts N standard orders on an embedded `temporal server start-dev` of its own (ports 7611 and
8611, everything in a temporary directory), lets a loader worker (always --load-slots slots) bring
them in flight: most parked at the picker's scan, every tenth from the fourth at a manual review,
and every tenth from the eighth given its scan just before the kill, so that its workflow tasks and
activities are under way. Then the loader is SIGKILLed, a worker with the setting under test starts
(`orderops worker`, limits from the ORDEROPS_MAX_* variables of orderops/worker.py), and every
parked order gets its next event at once (the scan, or the agent's approval): all of them must replay
their histories on one worker. It prints, per setting:

- recovered: seconds from the new worker's start until every parked order has taken its event and
  reached its next wait (nothing pending in `describe`), and until every order has (the orders cut
  mid-activity may wait for their activity's 1-minute start_to_close timeout);
- the workflow tasks recorded after the kill: WORKFLOW_TASK_TIMED_OUT of the new worker's tasks,
  start-to-close (the issue's failure) and schedule-to-start (on its sticky queue, waiting for a
  slot), apart from those the kill left (a task the killed worker had started, or one waiting on its
  sticky queue: 10 s, whatever the setting); WORKFLOW_TASK_FAILED; the p50 / p99 / max of
  WorkflowTaskStarted -> Completed and of Scheduled -> Started (waiting for a slot);
- the new worker's peak and final RSS.

Settings are `default` (the SDK's: 100 slots, 1000 cached, 5 polls), `project` (orderops/worker.py's
constants) or SLOTS[/CACHE[/POLLS]]; rounds interleave them, in a rotated order each round.
Run: `.venv/bin/python bench/recovery.py [--orders 150] [--settings default,4,8,16,8/100] [--rounds 1]`.
A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.helpers, for the orders the tests use

from temporalio.api.enums.v1 import EventType, TimeoutType  # noqa: E402
from temporalio.client import Client  # noqa: E402

from activities import ACTIVITY_NAMES  # noqa: E402
from activities.store import Store  # noqa: E402
from bench.devserver import start_dev_server, stop  # noqa: E402
from orderops.client import OrderClient  # noqa: E402
from orderops.codec import Keyring  # noqa: E402
from orderops.config import SAMPLES_DIR  # noqa: E402
from orderops.messages import ExternalEvent, OrderStatusView, ReviewDecision  # noqa: E402
from orderops.order import Order, workflow_id  # noqa: E402
from orderops.process.lint import load_definition  # noqa: E402
from orderops.worker import LIMIT_ENV, MAX_CACHED_WORKFLOWS, MAX_CONCURRENT_WORKFLOW_TASK_POLLS, MAX_CONCURRENT_WORKFLOW_TASKS  # noqa: E402
from tests.helpers import order_data, scan_of  # noqa: E402

PORT, UI_PORT = 7611, 8611
ORDEROPS = str(Path(sys.executable).parent / "orderops")
SDK_DEFAULTS = (100, 1000, 5)  # temporalio 1.x: max_concurrent_workflow_tasks, max_cached_workflows, workflow task polls
RPC = 16  # describes, queries and signals under way at once from this process
POLL_S = 1.0  # how often the orders still on their way are described


@dataclass(frozen=True)
class Setting:
    name: str
    slots: int
    cache: int
    polls: int

    @classmethod
    def parse(cls, text: str) -> Setting:
        if text == "default":
            return cls("SDK default", *SDK_DEFAULTS)
        if text == "project":
            return cls("project", MAX_CONCURRENT_WORKFLOW_TASKS, MAX_CACHED_WORKFLOWS, MAX_CONCURRENT_WORKFLOW_TASK_POLLS)
        parts = [int(p) for p in text.split("/")]
        slots, cache, polls = (parts + [MAX_CACHED_WORKFLOWS, MAX_CONCURRENT_WORKFLOW_TASK_POLLS][len(parts) - 1 :])[:3]
        return cls(text, slots, cache, polls)

    def env(self) -> dict[str, str]:
        values = {
            "max_concurrent_workflow_tasks": self.slots,
            "max_cached_workflows": self.cache,
            "max_concurrent_workflow_task_polls": self.polls,
        }
        return {LIMIT_ENV[name]: str(value) for name, value in values.items()}


@dataclass
class Tracked:
    order: Order
    kind: str  # parked (scan after the restart), review (approval after the restart), mid (scan just before the kill)
    length_at_kill: int = 0
    at_rest_s: float | None = None  # seconds after the new worker started

    @property
    def wid(self) -> str:
        return workflow_id(self.order.order_id)


@dataclass
class Result:
    setting: Setting
    parked_s: float | None
    all_s: float | None
    start_to_close_timeouts: int
    schedule_to_start_timeouts: int
    left_by_kill: int  # timeouts of tasks the killed worker had started or whose sticky queue was its own
    failed: int
    run_ms: list[float]
    wait_ms: list[float]
    tasks: int
    peak_rss_mb: float
    rss_mb: float
    load_timeouts: int  # start-to-close timeouts while the loader brought the orders in flight
    notes: list[str] = field(default_factory=list)


def rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident set of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Bench:
    def __init__(self, folder: Path, orders: int, load_slots: int, timeout: float):
        self.folder, self.count, self.load_slots, self.timeout = folder, orders, load_slots, timeout
        self.server: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.client: Client
        self.gate = asyncio.Semaphore(RPC)
        self.snapshot = load_definition(ROOT / "process_defs" / "standard.yaml", ACTIVITY_NAMES)

    async def start_server(self) -> None:
        self.server, self.client = await start_dev_server(PORT, UI_PORT, self.folder / "temporal.db", self.folder / "temporal-server.log")

    def start_worker(self, home: Path, setting: Setting) -> subprocess.Popen:
        env = {
            **os.environ,
            "ORDEROPS_HOME": str(home),
            "TEMPORAL_ADDRESS": f"127.0.0.1:{PORT}",
            **setting.env(),
            **Keyring.load().as_env(),
        }
        with open(home / "worker.log", "ab") as log:
            self.worker = subprocess.Popen([ORDEROPS, "worker"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        return self.worker

    async def rpc(self, coroutine):
        async with self.gate:
            return await coroutine

    async def describe(self, t: Tracked):
        return await self.rpc(self.client.get_workflow_handle(t.wid).describe())

    def at_rest(self, description, after: int) -> bool:
        """The order took something after the history had `after` events, and waits: no task or activity pending."""
        raw = description.raw_description
        return description.history_length > after and not raw.pending_activities and not raw.HasField("pending_workflow_task")

    async def wait_at_rest(self, tracked: list[Tracked], started: float, after: dict[str, int], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        waiting = [t for t in tracked if t.at_rest_s is None]
        while waiting:
            if time.monotonic() > deadline:
                print(f"  {len(waiting)} orders not at rest within {self.timeout:g} s ({what}), e.g. {waiting[0].wid}", file=sys.stderr)
                return
            descriptions = await asyncio.gather(*(self.describe(t) for t in waiting))
            now = time.monotonic() - started
            for t, d in zip(waiting, descriptions, strict=True):
                if self.at_rest(d, after[t.wid]):
                    t.at_rest_s = now
            waiting = [t for t in waiting if t.at_rest_s is None]
            if waiting:
                await asyncio.sleep(POLL_S)

    async def trial(self, index: int, setting: Setting) -> Result:
        home = self.folder / f"trial-{index}"
        (home / "labels").mkdir(parents=True)
        store = Store(home / "warehouse.db", home / "labels")
        store.seed(SAMPLES_DIR / "warehouse.yaml")
        store.receive_stock("TEA-001", "SH", 2 * self.count)  # what `orderops restock` does, before any order waits
        store.receive_stock("MUG-002", "SH", self.count)
        tracked = []
        for i in range(self.count):
            kind = "review" if i % 10 == 3 else "mid" if i % 10 == 7 else "parked"
            data = order_data(
                order_id=f"rec{index}-{i:03d}", customer_id=f"rec{index}-c{i:03d}", phone="12345" if kind == "review" else "13800138001"
            )
            tracked.append(Tracked(Order.model_validate(data), kind))
        loader = Setting("loader", self.load_slots, MAX_CACHED_WORKFLOWS, MAX_CONCURRENT_WORKFLOW_TASK_POLLS)
        self.start_worker(home, loader)
        orders = OrderClient(self.client)
        await asyncio.gather(*(self.rpc(orders.start(t.order, self.snapshot)) for t in tracked))
        await self.wait_at_rest(tracked, time.monotonic(), {t.wid: 0 for t in tracked}, "brought in flight")
        views: list[OrderStatusView] = await asyncio.gather(*(self.rpc(orders.status(t.order.order_id)) for t in tracked))
        notes = []
        for t, view in zip(tracked, views, strict=True):
            want = "manual_review" if t.kind == "review" else "await_scan"
            if want not in view.current_nodes:
                notes.append(f"{t.order.order_id} ({t.kind}) at {view.current_nodes}, not {want}")
        load_histories = await asyncio.gather(*(self.rpc(self.client.get_workflow_handle(t.wid).fetch_history()) for t in tracked))
        load_timeouts = sum(
            1
            for h in load_histories
            for e in h.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
            and e.workflow_task_timed_out_event_attributes.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
        )

        def scan(t: Tracked):
            return self.client.get_workflow_handle(t.wid).signal("event", ExternalEvent(name="scanned", data=scan_of(t.order)))

        mid = [t for t in tracked if t.kind == "mid"]
        await asyncio.gather(*(self.rpc(scan(t)) for t in mid))
        await asyncio.sleep(0.3)  # their workflow tasks and activities under way
        stop(self.worker, signal.SIGKILL)
        lengths = await asyncio.gather(*(self.describe(t) for t in tracked))
        for t, d in zip(tracked, lengths, strict=True):
            t.length_at_kill = d.history_length
            t.at_rest_s = None

        started = time.monotonic()
        worker = self.start_worker(home, setting)
        approve = ReviewDecision(decision="approve", agent="bench", reason="called the customer")
        sends = [
            self.client.get_workflow_handle(t.wid).signal("review", approve) if t.kind == "review" else scan(t)
            for t in tracked
            if t.kind != "mid"
        ]
        await asyncio.gather(*(self.rpc(s) for s in sends))
        # A mid-activity order counts from the kill: anything it records afterwards is recovery.
        after = {t.wid: t.length_at_kill if t.kind != "mid" else 0 for t in tracked}
        await self.wait_at_rest(tracked, started, after, setting.name)
        parked = [t.at_rest_s for t in tracked if t.kind != "mid"]
        everyone = [t.at_rest_s for t in tracked]
        peak, current = rss_mb(worker.pid)

        histories = await asyncio.gather(*(self.rpc(self.client.get_workflow_handle(t.wid).fetch_history()) for t in tracked))
        new_identity = f"{worker.pid}@"
        s2c = s2s = left = failed = 0
        run_ms: list[float] = []
        wait_ms: list[float] = []
        for t, history in zip(tracked, histories, strict=True):
            events = {e.event_id: e for e in history.events}
            # The new worker's sticky queues: where the tasks it started had been scheduled.
            new_queues = {
                events[e.workflow_task_started_event_attributes.scheduled_event_id].workflow_task_scheduled_event_attributes.task_queue.name
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
                and e.workflow_task_started_event_attributes.identity.startswith(new_identity)
            }
            for e in history.events:
                if e.event_id <= t.length_at_kill:
                    continue
                kind = e.event_type
                if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                    attributes = e.workflow_task_timed_out_event_attributes
                    if attributes.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
                        mine = events[attributes.started_event_id].workflow_task_started_event_attributes.identity.startswith(new_identity)
                        s2c += mine
                    else:
                        queue = events[attributes.scheduled_event_id].workflow_task_scheduled_event_attributes.task_queue.name
                        mine = queue in new_queues
                        s2s += mine
                    left += not mine
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failed += 1
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    begun = events[e.workflow_task_completed_event_attributes.started_event_id]
                    run_ms.append((e.event_time.ToDatetime() - begun.event_time.ToDatetime()).total_seconds() * 1e3)
                elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    scheduled = events[e.workflow_task_started_event_attributes.scheduled_event_id]
                    wait_ms.append((e.event_time.ToDatetime() - scheduled.event_time.ToDatetime()).total_seconds() * 1e3)
        stop(worker, signal.SIGKILL)
        return Result(
            setting,
            None if None in parked else max(p for p in parked if p is not None),
            None if None in everyone else max(p for p in everyone if p is not None),
            s2c,
            s2s,
            left,
            failed,
            run_ms,
            wait_ms,
            len(run_ms),
            peak,
            current,
            load_timeouts,
            notes,
        )


def show(result: Result) -> str:
    def seconds(value: float | None) -> str:
        return "  timeout" if value is None else f"{value:8.1f}s"

    def spread(values: list[float]) -> str:
        return f"{percentile(values, 0.5) / 1e3:6.2f} {percentile(values, 0.99) / 1e3:6.2f} {max(values, default=0) / 1e3:6.2f}"

    s = result.setting
    return (
        f"{s.name:<12}{s.slots:>6}{s.cache:>6}{s.polls:>6}  {seconds(result.parked_s)} {seconds(result.all_s)}"
        f"{result.start_to_close_timeouts:>6}{result.schedule_to_start_timeouts:>6}{result.left_by_kill:>6}{result.failed:>6}{result.tasks:>7}"
        f"   {spread(result.run_ms)}   {spread(result.wait_ms)}  {result.peak_rss_mb:6.0f} {result.rss_mb:6.0f}{result.load_timeouts:>6}"
    )


HEADER = (
    f"{'setting':<12}{'slots':>6}{'cache':>6}{'polls':>6}  {'parked':>9} {'all':>9}{'s2c':>6}{'s2s':>6}{'kill':>6}{'fail':>6}{'tasks':>7}"
    f"   {'run s p50    p99    max':<22}   {'wait s p50   p99    max':<22}  {'peakMB':>6} {'endMB':>6}{'load':>6}"
)
LEGEND = """\
parked / all: seconds from the new worker's start until every parked order (all orders, with those cut
  mid-activity) took its event and waits again; s2c / s2s: WORKFLOW_TASK_TIMED_OUT of the new worker's
  tasks, start-to-close (the 10 s limit) / schedule-to-start (on its sticky queue, 10 s); kill: timeouts
  of tasks the killed worker had started or that waited on its sticky queue (10 s, whatever the setting);
  fail: WORKFLOW_TASK_FAILED; tasks: workflow tasks completed after the kill; run: WorkflowTaskStarted
  -> Completed; wait: Scheduled -> Started; peakMB / endMB: the new worker's peak and final RSS;
  load: start-to-close timeouts while the loader brought the orders in flight"""


async def run(args: argparse.Namespace) -> None:
    settings = [Setting.parse(text) for text in args.settings.split(",")]
    with tempfile.TemporaryDirectory(prefix="orderops-recovery-") as folder:
        bench = Bench(Path(folder), args.orders, args.load_slots, args.timeout)
        try:
            await bench.start_server()
            load_before = os.getloadavg()
            results: list[Result] = []
            began = time.monotonic()
            for round_ in range(args.rounds):
                rotated = settings[round_ % len(settings) :] + settings[: round_ % len(settings)]
                for setting in rotated:
                    result = await bench.trial(len(results), setting)
                    results.append(result)
                    print(f"round {round_ + 1}: {show(result)}", file=sys.stderr)
                    for note in result.notes[:5]:
                        print(f"  note: {note}", file=sys.stderr)
            load_after = os.getloadavg()
        finally:
            stop(bench.worker, signal.SIGKILL)
            stop(bench.server)
    print(
        f"{os.cpu_count()} cores, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after;"
        f" {args.orders} orders in flight per restart, {args.rounds} round(s), {time.monotonic() - began:.0f} s"
    )
    print(HEADER)
    for setting in settings:
        for result in results:
            if result.setting == setting:
                print(show(result))
    if args.rounds > 1:
        print("medians over rounds:")
        for setting in settings:
            mine = [r for r in results if r.setting == setting]
            done = [r.parked_s for r in mine if r.parked_s is not None]
            print(
                f"  {setting.name:<12} parked {statistics.median(done) if done else float('nan'):.1f} s,"
                f" s2c timeouts {statistics.median(r.start_to_close_timeouts for r in mine):g},"
                f" run p99 {statistics.median(percentile(r.run_ms, 0.99) for r in mine) / 1e3:.2f} s"
            )
    print(LEGEND)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150, help="orders in flight at each restart")
    parser.add_argument("--settings", default="default,4,8,16,8/100", help="comma-separated: default, project or SLOTS[/CACHE[/POLLS]]")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of all the settings")
    parser.add_argument("--load-slots", type=int, default=8, help="workflow task slots of the worker that brings the orders in flight")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the orders to come to rest, per phase")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
