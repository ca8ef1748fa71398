"""Diagrams of a process definition: Mermaid text, or Graphviz DOT for SVG and PNG.

Each construct has its own shape, conditions and outcomes label the edges, and
an order's path through the process can be coloured in.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Collection

from orderops.process.constructs import CONSTRUCTS, construct, edges
from orderops.process.model import ExclusiveGateway, Node, ParallelGateway, ProcessDefinition

FORMATS = ("mermaid", "dot", "svg", "png")
VISITED = "#c8e6c9"
CURRENT = "#fff59d"


class RenderError(Exception):
    pass


def _label(node: Node) -> str:
    return construct(node).label(node)


def _edge_label(node: Node, field_name: str) -> str:
    if isinstance(node, ExclusiveGateway) and field_name.startswith("branches."):
        return node.branches[int(field_name.split(".")[1])].when
    if field_name.startswith("outcomes."):
        return field_name.removeprefix("outcomes.")
    return {"on_timeout": "timeout", "on_error": "error", "on_breach": "breach", "default": "default", "join": "join"}.get(field_name, "")


def graph_edges(definition: ProcessDefinition) -> list[tuple[str, str, str]]:
    ids = {n.id for n in definition.nodes}
    out = []
    for node in definition.nodes:
        for field_name, target in edges(node):
            if target in ids and not (isinstance(node, ParallelGateway) and field_name == "join"):
                out.append((node.id, target, _edge_label(node, field_name)))
    return out


# -- Mermaid --------------------------------------------------------------------

_MERMAID_SHAPES = {t: c.mermaid_shape for t, c in CONSTRUCTS.items()}


def _mermaid_text(text: str) -> str:
    # '#' first: Mermaid reads '#...;' as an entity, so a literal one must become one.
    return text.replace("#", "#35;").replace('"', "#quot;").replace("\n", "<br/>")


def mermaid(definition: ProcessDefinition, visited: Collection[str] = (), current: Collection[str] = ()) -> str:
    key = {node.id: f"n{i}" for i, node in enumerate(definition.nodes)}
    lines = ["flowchart TD", f'  start(("start")) --> {key[definition.start]}']
    for node in definition.nodes:
        opening, closing = _MERMAID_SHAPES[node.type]
        lines.append(f"  {key[node.id]}{opening}{_mermaid_text(_label(node))}{closing}")
    for source, target, label in graph_edges(definition):
        arrow = f'-->|"{_mermaid_text(label)}"|' if label else "-->"
        lines.append(f"  {key[source]} {arrow} {key[target]}")
    lines.append(f"  classDef visited fill:{VISITED},stroke:#2e7d32")
    lines.append(f"  classDef current fill:{CURRENT},stroke:#f9a825")
    for name, ids in (("visited", visited), ("current", current)):
        members = [key[i] for i in ids if i in key]
        if members:
            lines.append(f"  class {','.join(members)} {name}")
    return "\n".join(lines) + "\n"


# -- Graphviz ---------------------------------------------------------------------

_DOT_SHAPES = {t: c.dot_shape for t, c in CONSTRUCTS.items()}


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(definition: ProcessDefinition, visited: Collection[str] = (), current: Collection[str] = ()) -> str:
    lines = [
        f'digraph "{_dot_text(definition.id)}" {{',
        f'  label="{_dot_text(f"{definition.id} v{definition.version}")}"; labelloc=t; rankdir=TB;',
        '  node [fontname="Helvetica", fontsize=10, fillcolor=white]; edge [fontname="Helvetica", fontsize=9];',
        # A name no node id can have (ids have no spaces), so the start marker never collides.
        '  " start" [shape=point, width=0.2, label=""];',
        f'  " start" -> "{_dot_text(definition.start)}";',
    ]
    for node in definition.nodes:
        fill = CURRENT if node.id in current else VISITED if node.id in visited else "white"
        lines.append(f'  "{_dot_text(node.id)}" [{_DOT_SHAPES[node.type]}, fillcolor="{fill}", label="{_dot_text(_label(node))}"];')
    for source, target, label in graph_edges(definition):
        lines.append(f'  "{_dot_text(source)}" -> "{_dot_text(target)}" [label="{_dot_text(label)}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def graphviz(dot_source: str, output_format: str) -> bytes:
    """SVG or PNG through Graphviz's `dot`, which the system provides (Debian: graphviz)."""
    binary = shutil.which("dot")
    if binary is None:
        raise RenderError(f"--format {output_format} needs Graphviz's `dot` (apt-get install graphviz); --format mermaid needs nothing")
    done = subprocess.run([binary, f"-T{output_format}"], input=dot_source.encode(), capture_output=True, timeout=60)
    if done.returncode != 0:
        raise RenderError(f"dot failed: {done.stderr.decode(errors='replace').strip().splitlines()[0]}")
    return done.stdout


def render(definition: ProcessDefinition, output_format: str, visited: Collection[str] = (), current: Collection[str] = ()) -> bytes:
    if output_format == "mermaid":
        return mermaid(definition, visited, current).encode()
    source = dot(definition, visited, current)
    return source.encode() if output_format == "dot" else graphviz(source, output_format)
