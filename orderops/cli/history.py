"""orderops audit, export, replay: what auditors and release checks read from order histories."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from temporalio.service import RPCError

from orderops.cli.common import CliError, UsageError, order_client, out, write
from orderops.client import ClientError, OrderQuery
from orderops.codec import CodecError, plain
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


# A file name keeps these characters of a workflow id; every other byte of its UTF-8 becomes %XX.
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
# Longer names are cut, with a hash of the whole id (names stay under the usual 255-byte limit).
MAX_NAME = 200


def history_file_name(wf_id: str) -> str:
    """`<workflow id>.json`, safe as one file name in --out, and distinct for distinct ids.

    Letters, digits, `_`, `.` and `-` stay as they are (`order-1001.json`); every other byte
    of the id's UTF-8, `%` and `/` included, is written `%XX`, as is a leading `.`, so a name
    can neither leave the directory nor be `.` or `..`, and `urllib.parse.unquote` gives the
    id back. An id whose name would exceed MAX_NAME characters keeps its first part and ends
    in `~` and 16 hex digits of its sha256 (`~` is otherwise always encoded, so no other id's
    name looks like that).
    """
    encoded = "".join(
        char
        if char in _KEPT and not (index == 0 and char == ".")
        else "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        for index, char in enumerate(wf_id)
    )
    if len(encoded) + len(".json") > MAX_NAME:
        digest = hashlib.sha256(wf_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        head = encoded[: MAX_NAME - len(".json") - 17]
        head = head[: head.rfind("%")] if "%" in head[-2:] else head  # never cut an %XX in two
        encoded = f"{head}~{digest}"
    return f"{encoded}.json"


def _shown(wf_id: str) -> str:
    """An id for a one-line message: control characters escaped, long ones cut."""
    text = wf_id if wf_id.isprintable() else repr(wf_id)[1:-1]
    return text if len(text) <= 120 else text[:117] + "..."


async def export(args) -> int:
    """Each history to --out/<history_file_name>; an id that fails is one line on stderr and the rest still export."""
    if not args.order_ids and not args.query:
        raise UsageError("export takes ORDER_ID... or --query 'VISIBILITY QUERY'")
    target = Path(args.out)
    query = OrderQuery().raw(args.query) if args.query else None  # a bad filter is refused before connecting
    client = await order_client(args)
    # Order ids given by hand are read as orders (a missing one says so); the query's workflow ids as they are.
    wanted = {workflow_id(o): o for o in args.order_ids}
    found = await client.workflow_ids(query) if query is not None else []
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CliError(f"cannot create {target}: {err.strerror or err}") from None
    written: list[Path] = []
    failed = 0
    for wf_id in dict.fromkeys([*wanted, *found]):
        try:
            if wf_id in wanted:
                history = await client.history(wanted[wf_id])
            else:
                history = await client.temporal.get_workflow_handle(wf_id).fetch_history()
            path = target / history_file_name(wf_id)
            if path.exists() and any(_same_file(path, other) for other in written):
                # Only on a case-insensitive file system: order-A and order-a are one file there.
                raise CliError(f"{path.name} is the file just written for another workflow id (a case-insensitive file system?)")
            write(path, (history if args.encrypted else plain(history)).to_json().encode())
        except (ClientError, CodecError, RPCError, OSError) as err:
            failed += 1
            message = err.message if isinstance(err, RPCError) else str(err)
            print(f"orderops: export {_shown(wf_id)}: {message}", file=sys.stderr)
            continue
        written.append(path)
        print(path)
    if failed:
        print(f"orderops: {failed} of {failed + len(written)} histories not exported", file=sys.stderr)
    return 1 if failed else 0


def _same_file(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def _history_files(paths: list[str]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.glob("*.json") if p.is_file())
        elif path.exists():
            files.append(path)
        else:
            raise CliError(f"{name}: no such file or directory")
    return files


async def replay(args) -> int:
    if not args.paths and not args.query:
        raise UsageError("replay takes history FILES, a DIR of them, or --query 'VISIBILITY QUERY'")
    files = _history_files(args.paths)
    query = OrderQuery().raw(args.query) if args.query else None  # a bad filter is refused before connecting
    client = await order_client(args) if query is not None else None
    workflow_ids = await client.workflow_ids(query) if client and query is not None else []
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
        outcomes = await replay_histories(histories(), [OrderWorkflow], on_each=lambda _: progress.advance(task), sandboxed=not args.fast)
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
