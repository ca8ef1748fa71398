"""orderops schema, diff, render, activities: process definitions and what they may call."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from orderops.cli.common import CliError, UsageError, order_client, write
from orderops.process.lint import load


def schema(args) -> int:
    from orderops.process.model import ProcessDefinition
    from orderops.promise import PromisePolicy

    model = PromisePolicy if args.promise_policy else ProcessDefinition
    text = json.dumps(model.model_json_schema(), indent=2) + "\n"
    if args.out:
        write(Path(args.out), text.encode())
        print(args.out)
    else:
        sys.stdout.write(text)
    return 0


async def diff(args) -> int:
    from orderops import search_attributes as sa
    from orderops.client import ClientError, OrderQuery
    from orderops.connect import Unreachable
    from orderops.process.diff import diff as compare

    # Either version may name activities this install does not have (removed, or not yet deployed).
    old_def, old = load(Path(args.old), None)
    new_def, _ = load(Path(args.new), None)
    changes = compare(old_def, new_def)
    print(f"{changes.old} -> {changes.new}" + ("  (no change)" if changes.empty else ""))
    for title, items in (
        ("added nodes", changes.added_nodes),
        ("removed nodes", changes.removed_nodes),
        ("changed nodes", [f"{c.node} ({', '.join(c.fields)})" for c in changes.changed_nodes]),
        ("added edges", changes.added_edges),
        ("removed edges", changes.removed_edges),
        ("other changes", changes.other_changes),
    ):
        for item in items:
            print(f"  {title}: {item}")
    if not changes.affected_nodes:
        return 0
    try:
        client = await order_client(args)
    except Unreachable as err:
        print(f"in-flight orders: not checked ({err})")
        return 0
    query = OrderQuery().running().where("ProcessId", old.id).where("ProcessVersion", old.version)
    waiting = []
    try:
        async for wf in client.temporal.list_workflows(str(query)):
            steps = set((wf.typed_search_attributes.get(sa.CURRENT_STEP) or "").split("+"))
            if steps & changes.affected_nodes:
                waiting.append(f"{wf.id.removeprefix('order-')} at {'+'.join(sorted(steps & changes.affected_nodes))}")
    except ClientError as err:
        print(f"in-flight orders: not checked ({err})")
        return 0
    print(f"in-flight orders of {changes.old} at removed or changed nodes: {len(waiting)}")
    for line in waiting:
        print(f"  {line}")
    if waiting:
        print("  (they keep running under the version they started with)")
    return 0


async def render(args) -> int:
    from orderops.history.diagram import definition_of, order_diagram
    from orderops.history.timeline import build_timeline
    from orderops.process.render import RenderError
    from orderops.process.render import render as draw

    if args.file is None and args.order is None:
        raise UsageError("render takes a definition FILE, --order ORDER_ID, or both")
    if args.format == "png" and not args.out:
        raise UsageError("--format png writes binary data: give --out FILE.png")
    definition, snapshot = load(Path(args.file), None) if args.file else (None, None)
    try:
        if args.order is None:
            assert definition is not None  # a FILE, or the usage error above
            data = draw(definition, args.format)
        else:
            timeline = build_timeline(await (await order_client(args)).history(args.order))
            if snapshot is not None and snapshot.sha256 != timeline.process.sha256:
                print(
                    f"orderops: note: order {args.order} ran under {timeline.process.id} v{timeline.process.version} "
                    f"(sha256 {timeline.process.sha256[:12]}), not {args.file}; drawing that one",
                    file=sys.stderr,
                )
                definition = definition_of(timeline)
            data = order_diagram(timeline, args.format, definition)
    except RenderError as err:
        raise CliError(str(err)) from None
    if args.out:
        write(Path(args.out), data)
        print(args.out)
    else:
        sys.stdout.write(data.decode())
    return 0


def activities(args) -> int:
    from activities.catalogue import entries, markdown

    if args.markdown:
        sys.stdout.write(markdown())
        return 0
    from rich.table import Table

    from orderops.cli.common import out

    table = Table("activity", "what it does", "input", "result", title="Activities a definition may call")
    for entry in entries():
        table.add_row(entry.name, entry.summary, entry.inputs_text, entry.results_text)
    out.print(table)
    return 0
