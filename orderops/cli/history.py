"""orderops audit, export, replay: what auditors and release checks read from order histories."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from orderops.cli.common import CliError, UsageError, order_client, out, write
from orderops.client import OrderQuery
from orderops.history.replay import replay as replay_histories
from orderops.history.show import print_timeline
from orderops.history.timeline import HistoryError, build_timeline, load_history_file
from orderops.order import workflow_id
from workflows import OrderWorkflow


async def audit(args) -> int:
    if (args.order_id is None) == (args.file is None):
        raise UsageError("audit takes an ORDER_ID or --file HISTORY.json (one of the two)")
    if args.file:
        history = load_history_file(args.file)
    else:
        history = await (await order_client(args)).history(args.order_id)
    timeline = build_timeline(history)
    if args.json:
        print(timeline.model_dump_json(indent=2))
    else:
        print_timeline(out, timeline)
    return 0


async def export(args) -> int:
    if not args.order_ids and not args.query:
        raise UsageError("export takes ORDER_ID... or --query 'VISIBILITY QUERY'")
    target = Path(args.out)
    client = await order_client(args)
    workflow_ids = [workflow_id(o) for o in args.order_ids] + (
        await client.workflow_ids(OrderQuery().raw(args.query)) if args.query else []
    )
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {target}: {err.strerror or err}") from None
    for wf_id in dict.fromkeys(workflow_ids):
        history = await client.history(wf_id.removeprefix("order-"))
        path = target / f"{wf_id}.json"
        write(path, history.to_json().encode())
        print(path)
    return 0


def _history_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(path.glob("*.json"))
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{name}: no such file or directory")
    return files


async def replay(args) -> int:
    if not args.paths and not args.query:
        raise UsageError("replay takes history FILES, a DIR of them, or --query 'VISIBILITY QUERY'")
    files = _history_files(args.paths)
    client = await order_client(args) if args.query else None
    workflow_ids = await client.workflow_ids(OrderQuery().raw(args.query)) if client else []
    total = len(files) + len(workflow_ids)
    if total == 0:
        raise CliError("no histories to replay")

    async def histories():
        for path in files:
            try:
                yield str(path), load_history_file(path)
            except HistoryError as err:
                yield str(path), err  # reported as INVALID, and the other files still replay
        for wf_id in workflow_ids:
            assert client is not None  # workflow ids come from a query, which needs the client
            yield f"query: {wf_id}", await client.temporal.get_workflow_handle(wf_id).fetch_history()

    columns = [TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=total < 20) as progress:
        task = progress.add_task("replay", total=total)
        outcomes = await replay_histories(histories(), [OrderWorkflow], on_each=lambda _: progress.advance(task))
    for outcome in outcomes:
        if outcome.ok:
            print(f"ok        {outcome.workflow_id}  ({outcome.source})")
        elif outcome.invalid:
            print(f"INVALID   {outcome.workflow_id}  ({outcome.source}): {outcome.error}")
        else:
            where = f"at event {outcome.event_id}" if outcome.event_id else "at an unknown event"
            node = f" (node {outcome.node})" if outcome.node else ""
            print(f"DIVERGED  {outcome.workflow_id}  ({outcome.source}) {where}{node}: {outcome.error}")
    diverged = sum(not o.ok and not o.invalid for o in outcomes)
    invalid = sum(o.invalid for o in outcomes)
    print(f"{len(outcomes) - diverged - invalid} ok, {diverged} diverged" + (f", {invalid} invalid" if invalid else ""))
    return 1 if diverged or invalid else 0
