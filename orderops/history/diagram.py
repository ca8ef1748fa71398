"""An order's path drawn on the definition it ran under: the nodes it visited, and where it stands."""

from __future__ import annotations

from orderops.history.timeline import HistoryError, Timeline
from orderops.process.model import ProcessDefinition
from orderops.process.render import render
from orderops.process.runtime import parse_for_run


def definition_of(timeline: Timeline) -> ProcessDefinition:
    """The definition as the workflow read it from its input (today's lint may be stricter)."""
    definition, problems = parse_for_run(timeline.definition_source)
    if definition is None:
        raise HistoryError(f"order {timeline.order_id}'s definition cannot be read: {problems[0].format(timeline.process.path)}")
    return definition


def order_diagram(timeline: Timeline, output_format: str, definition: ProcessDefinition | None = None) -> bytes:
    """The diagram with the order's path coloured; `definition` when the caller has it, else the order's own."""
    return render(definition or definition_of(timeline), output_format, timeline.visited(), timeline.current())
