"""`--log-format json` in the worker: one JSON line per event, also for exceptions raised in workflow code.

The log call and the handler run inside the workflow sandbox, where reading source files
for a traceback is refused; these run a real worker with the project's logging on the
session's server, on a task queue of their own.
"""

from __future__ import annotations

from temporalio import workflow

# The sandbox re-imports this module for the probe workflow: the rest passes through as it is.
with workflow.unsafe.imports_passed_through():
    import asyncio
    import io
    import json
    import logging
    import uuid
    from datetime import timedelta

    import pytest
    import structlog
    from temporalio.client import Client
    from temporalio.worker import Worker

    from orderops import logs


@workflow.defn(name="LogsJsonProbe", sandboxed=True)
class LogsJsonProbe:
    @workflow.run
    async def run(self, fail_task: bool) -> str:
        try:
            try:
                raise KeyError("sku")
            except KeyError as err:
                raise ValueError("probe failure") from err
        except ValueError:
            workflow.logger.exception("step failed unexpectedly", extra={"node": "probe", "when": workflow.now(), "stuff": {1, 2}})
        if fail_task:
            raise RuntimeError("workflow task failure on purpose")  # fails every workflow task, until terminated
        return "done"


@pytest.fixture
def configured():
    """The project's logging, configured as `orderops --log-format F` does, writing to a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, structlog.get_config())
    buffer = io.StringIO()

    def configure(log_format: str) -> io.StringIO:
        logs.configure(log_format, "info")
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)  # the one logs.configure installs, on sys.stderr
        handler.setStream(buffer)
        return buffer

    try:
        yield configure
    finally:
        root.handlers[:], level, config = saved
        root.setLevel(level)
        structlog.configure(**config)


async def run_probe(client: Client, buffer: io.StringIO, fail_task: bool = False) -> None:
    queue = f"logs-probe-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[LogsJsonProbe]):
        handle = await client.start_workflow(
            LogsJsonProbe.run, fail_task, id=f"logs-probe-{uuid.uuid4()}", task_queue=queue, execution_timeout=timedelta(seconds=60)
        )
        if not fail_task:
            assert await handle.result() == "done"
            return
        for _ in range(200):  # the first failed workflow task is logged at once
            if "workflow task failure on purpose" in buffer.getvalue():
                break
            await asyncio.sleep(0.05)
        await handle.terminate("test over")


def json_lines(text: str) -> list[dict]:
    assert "--- Logging error ---" not in text, text[:3000]
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not one JSON line: {line[:300]!r}\n{text[:3000]}")
    return events


async def test_exception_logged_in_workflow_code_is_one_json_line(client: Client, configured):
    buffer = configured("json")
    await run_probe(client, buffer)
    events = json_lines(buffer.getvalue())
    [failed] = [e for e in events if e["event"] == "step failed unexpectedly"]
    assert (failed["level"], failed["node"], failed["stuff"]) == ("error", "probe", [1, 2])
    assert failed["when"].startswith("20")
    exception = failed["exception"]
    assert exception.index("KeyError: 'sku'") < exception.index("direct cause") < exception.index("ValueError: probe failure")
    assert 'test_json_logs.py", line' in exception  # where it happened; no source read inside the sandbox


async def test_failed_workflow_task_is_one_json_line(client: Client, configured):
    buffer = configured("json")
    await run_probe(client, buffer, fail_task=True)
    events = json_lines(buffer.getvalue())
    failures = [e for e in events if "RuntimeError: workflow task failure on purpose" in e.get("exception", "")]
    assert failures, buffer.getvalue()[:3000]
    assert all(f["level"] == "warning" for f in failures)


async def test_console_format_prints_the_exception_under_its_line(client: Client, configured):
    buffer = configured("console")
    await run_probe(client, buffer)
    text = buffer.getvalue()
    assert "--- Logging error ---" not in text, text[:3000]
    line = next(line for line in text.splitlines() if "step failed unexpectedly" in line)
    assert "node=probe" in line
    assert text.index("step failed unexpectedly") < text.index("ValueError: probe failure")
