"""The audit timeline as an auditor reads it in a terminal: one line per happening, in time order."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.markup import escape

from orderops.history.timeline import Timeline, duration_text


def _clock(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if at else ""


def _seconds(start: datetime | None, end: datetime | None) -> str:
    if not (start and end):
        return ""
    return f"{(end - start).total_seconds():.3f}s"


def _lines(timeline: Timeline) -> list[tuple[datetime, int, str]]:
    """(time, tie-breaker, text): sorted afterwards so every kind interleaves by time."""
    lines: list[tuple[datetime, int, str]] = []
    for visit in timeline.nodes:
        if visit.type == "end":
            took = ""
        else:
            took = f", left after {_seconds(visit.entered_at, visit.left_at)}" if visit.left_at else ", still here"
        lines.append((visit.entered_at, visit.event_id, f"[bold]▶ {escape(visit.node)}[/] ({visit.type}){took}"))
    for run in timeline.activities:
        label = ("undo" if run.compensation else "activity") + (" (local)" if run.local else "")
        text = f"  {label} {escape(run.activity)} at {escape(run.node)}: {run.outcome}"
        if run.attempts:
            # A local activity's history carries only the time of the workflow task that recorded it.
            took = "" if run.local else _seconds(run.scheduled_at, run.closed_at)
            text += f" after {run.attempts} attempt{'s' if run.attempts != 1 else ''}" + (f", {took}" if took else "")
        if run.retry_delays_s:
            text += f"; retry delays by policy {', '.join(f'{d:g}s' for d in run.retry_delays_s)}, last attempt started {run.waited_s:g}s after scheduling"
        if run.last_retried_failure:
            text += f"; failure before the last attempt: {escape(run.last_retried_failure)}"
        if run.failure:
            text += f"; [red]failure: {escape(run.failure)}[/]"
        lines.append((run.scheduled_at, run.scheduled_event_id, text))
    for timer in timeline.timers:
        text = f"  timer {escape(timer.purpose)} ({duration_text(timer.duration_s)}, due {_clock(timer.due_at)}): {timer.outcome}"
        lines.append((timer.started_at, timer.event_id, text))
    for d in timeline.decisions:
        state = {True: "", False: " [red](ignored: not a valid decision then)[/]", None: " (signal; taken if valid)"}[d.accepted]
        reason = f': "{escape(d.reason)}"' if d.reason else ""
        lines.append(
            (
                d.at,
                d.event_id,
                f"  [green]decision[/] at {escape(d.node or '?')}: {escape(d.decision)} by {escape(d.agent)} ({escape(d.role)}) via {d.via}{reason}{state}",
            )
        )
    for e in timeline.events:
        lines.append((e.at, e.event_id, f"  event {escape(e.name)}: {escape(e.summary)}"))
    if timeline.at_risk_at:
        lines.append((timeline.at_risk_at, 0, "  [yellow]marked at risk[/]"))
    if timeline.breached_at:
        lines.append((timeline.breached_at, 0, "  [red]marked breached[/]: a deadline passed first"))
    for c in timeline.cancellations:
        how = "orderops cancel" if c.via == "update" else "temporal workflow cancel"
        lines.append((c.at, c.event_id, f"  [yellow]cancellation requested[/] by {escape(c.by)} ({how}): {escape(c.reason)}"))
    return sorted(lines, key=lambda line: (line[0], line[1]))


def print_timeline(console: Console, timeline: Timeline) -> None:
    p = timeline.process
    console.print(f"[bold]Order {escape(timeline.order_id)}[/] (workflow {escape(timeline.workflow_id)})")
    console.print(f"process: {escape(p.id)} v{p.version}  sha256 {p.sha256}")
    console.print(f"         from {escape(p.path)}")
    if p.promise_policy_sha256:
        console.print(f"         promise policy sha256 {p.promise_policy_sha256}")
    console.print(f"started: {_clock(timeline.started_at)}   closed: {_clock(timeline.closed_at) or 'still running'}")
    if timeline.promise:
        promise = timeline.promise
        console.print(
            f"promise: ship by {promise['ship_by']}, deliver by {promise['deliver_by']} ({promise['tier']}, {promise['service_level']})"
        )
    for at, _, text in _lines(timeline):
        console.print(f"{_clock(at)}  {text}", soft_wrap=True)
    ending = f"[bold]final status: {timeline.status}[/]"
    if timeline.end_node:
        ending += f" at {escape(timeline.end_node)}"
    if timeline.reason:
        ending += f" ({escape(timeline.reason)})"
    console.print(ending if timeline.closed_at else f"[bold]status: {timeline.status}[/] (still running)")
