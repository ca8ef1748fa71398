"""What changes between two versions of a definition, node by node and edge by edge."""

from __future__ import annotations

from pydantic import BaseModel

from orderops.process.model import ProcessDefinition
from orderops.process.render import graph_edges


class NodeChange(BaseModel):
    node: str
    fields: list[str]


class DefinitionDiff(BaseModel):
    old: str
    new: str
    added_nodes: list[str]
    removed_nodes: list[str]
    changed_nodes: list[NodeChange]
    added_edges: list[str]
    removed_edges: list[str]
    other_changes: list[str]

    @property
    def affected_nodes(self) -> set[str]:
        """Nodes where an order of the old version would now be somewhere different."""
        return set(self.removed_nodes) | {c.node for c in self.changed_nodes}

    @property
    def empty(self) -> bool:
        return not (
            self.added_nodes or self.removed_nodes or self.changed_nodes or self.added_edges or self.removed_edges or self.other_changes
        )


def _edge_text(edge: tuple[str, str, str]) -> str:
    source, target, label = edge
    return f"{source} -> {target}" + (f" [{label}]" if label else "")


def _setting_changes(path: str, before, after) -> list[str]:
    """Each changed setting by its dotted path (`variables.delivery.max_attempts: 3 -> 4`), not the whole block."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for key in sorted(before.keys() | after.keys(), key=str):
            if key not in after:
                changes.append(f"{path}.{key}: removed")
            elif key not in before:
                changes.append(f"{path}.{key}: added {after[key]!r}")
            else:
                changes += _setting_changes(f"{path}.{key}", before[key], after[key])
        return changes
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [change for i, (b, a) in enumerate(zip(before, after, strict=True)) for change in _setting_changes(f"{path}.{i}", b, a)]
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def diff(old: ProcessDefinition, new: ProcessDefinition) -> DefinitionDiff:
    old_nodes, new_nodes = old.node_map(), new.node_map()
    changed = []
    for node_id in old_nodes.keys() & new_nodes.keys():
        before, after = old_nodes[node_id].model_dump(), new_nodes[node_id].model_dump()
        fields = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if fields:
            changed.append(NodeChange(node=node_id, fields=fields))
    old_edges, new_edges = set(graph_edges(old)), set(graph_edges(new))
    other = [
        f"{name}: {getattr(old, name)!r} -> {getattr(new, name)!r}"
        for name in ("id", "start", "events", "address_changes_until", "cancel_until", "promise_policy", "priority", "at_risk_activity")
        if getattr(old, name) != getattr(new, name)
    ]
    other += _setting_changes("variables", old.variables, new.variables)
    return DefinitionDiff(
        old=f"{old.id} v{old.version}",
        new=f"{new.id} v{new.version}",
        added_nodes=sorted(new_nodes.keys() - old_nodes.keys()),
        removed_nodes=sorted(old_nodes.keys() - new_nodes.keys()),
        changed_nodes=sorted(changed, key=lambda c: c.node),
        added_edges=sorted(_edge_text(e) for e in new_edges - old_edges),
        removed_edges=sorted(_edge_text(e) for e in old_edges - new_edges),
        other_changes=other,
    )
