"""What a CEL expression may cost: a bound computed before it runs, from its text and its data.

CEL has no loops but its comprehension macros (`all`, `exists`, `exists_one`, `map`, `filter`), so
an expression's work is bounded by the sizes of the collections those macros walk, multiplied where
they nest. The bound is computed from the expression and the values it is given, the same on every
replay, so an order whose expression would run for seconds fails that step instead of stalling its
workflow task (the SDK's deadlock detector gives a task 2 s).

The estimate is in nanoseconds of this project's reference machine (2 cores), about twice what the
CEL library in use was measured to take there (bench/cel_cost.py prints both, shape by shape):
- every value handed to CEL is converted first: a number about 200 ns, a text about 1.3 us, a map
  with its keys several us (an order item of two fields about 7 us);
- a step of a comprehension a few hundred ns; comparing with or joining a collection inside it
  walks that collection, about 30 ns an element;
- `map` and `filter` copy their result at each step: about 30-60 ns times the square of the length
  (10,000 numbers take 3 s), times the length of each element when they produce lists.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

COMPREHENSIONS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_COPYING = frozenset({"map", "filter"})

# A tenth of the deadlock detector's 2 s, so the few expressions of one step stay far below it.
MAX_COST_NS = 200_000_000
# Deeper nesting multiplies the sizes of three collections: no condition on an order needs it.
MAX_COMPREHENSION_DEPTH = 2

_SCALAR_NS = 400
_TEXT_NS = 2_600
_MAP_NS = 8_000
_STEP_NS = 700
_WALK_NS = 60
_COPY_NS = 130
_LITERALS = frozenset({"true", "false", "null"})

_TOKEN = re.compile(
    r"""
    (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<number>[0-9][0-9A-Za-z_.]*)
    |(?P<punct>\S)
    """,
    re.VERBOSE | re.DOTALL,
)
_CLOSING = {"(": ")", "[": "]", "{": "}"}


@dataclass
class Comprehension:
    name: str
    variable: str | None  # the name its first argument binds
    receiver: tuple[str, ...] | None  # the plain path it walks, such as order.items; None when computed
    enclosing: tuple[int, ...]  # the comprehensions whose body holds this one (indexes)
    # Its own body compares or joins with `in`, `==`, `!=` or `+`, each of which may walk a collection.
    body_walks: bool = field(default=False)


def comprehensions(source: str) -> list[Comprehension]:
    """Every comprehension macro in the expression, with the path it walks and the ones it sits in."""
    tokens = [(m.lastgroup or "", m.group()) for m in _TOKEN.finditer(source)]
    found: list[Comprehension] = []
    stack: list[int | None] = []  # per open bracket: the comprehension it opened, if any
    for i, (kind, text) in enumerate(tokens):
        if text in _CLOSING and kind == "punct":
            opened = None
            if text == "(" and i >= 2 and tokens[i - 1][1] in COMPREHENSIONS and tokens[i - 2][1] == ".":
                variable = tokens[i + 1][1] if i + 2 < len(tokens) and tokens[i + 1][0] == "ident" and tokens[i + 2][1] == "," else None
                enclosing = tuple(f for f in stack if f is not None)
                found.append(Comprehension(tokens[i - 1][1], variable, _receiver(tokens, i - 2), enclosing))
                opened = len(found) - 1
            stack.append(opened)
        elif text in _CLOSING.values() and kind == "punct":
            if stack:
                stack.pop()
        elif _walks(tokens, i):
            innermost = next((f for f in reversed(stack) if f is not None), None)
            if innermost is not None:
                found[innermost].body_walks = True
    return found


def _walks(tokens: list[tuple[str, str]], i: int) -> bool:
    kind, text = tokens[i]
    if kind == "ident":
        return text == "in"
    if text == "=" and i >= 1 and tokens[i - 1][1] in ("=", "!"):
        # Compared with a literal it compares one value, not a collection.
        return not (_literal(tokens, i - 2) or _literal(tokens, i + 1))
    if text == "+":
        # Next to a number or a string it adds numbers or joins text, not lists.
        neighbours = (tokens[i - 1][0] if i >= 1 else "", tokens[i + 1][0] if i + 1 < len(tokens) else "")
        return not {"number", "string"} & set(neighbours)
    return False


def _literal(tokens: list[tuple[str, str]], i: int) -> bool:
    if not 0 <= i < len(tokens):
        return False
    kind, text = tokens[i]
    return kind in ("number", "string") or text in _LITERALS


def _receiver(tokens: list[tuple[str, str]], dot: int) -> tuple[str, ...] | None:
    """The path before `.macro(`: `order.items` gives ('order', 'items'); a call or an index gives None."""
    path: list[str] = []
    i = dot - 1
    while i >= 0 and tokens[i][0] == "ident":
        path.insert(0, tokens[i][1])
        if i >= 2 and tokens[i - 1][1] == "." and tokens[i - 2][0] == "ident":
            i -= 2
        elif i >= 1 and tokens[i - 1][1] in (".", ")", "]"):
            return None
        else:
            return tuple(path)
    return None


def nesting_depth(source: str) -> int:
    return max((len(c.enclosing) + 1 for c in comprehensions(source)), default=0)


def _walk(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, Mapping):
            stack.extend(current.values())
        elif isinstance(current, list | tuple):
            stack.extend(current)


def _elements(value: Any) -> list[Any]:
    """What a comprehension over `value` binds its variable to: a list's items, a map's keys."""
    if isinstance(value, Mapping):
        return list(value)
    return list(value) if isinstance(value, list | tuple) else []


def _conversion(value: Any) -> int:
    if isinstance(value, Mapping):
        return _MAP_NS
    if isinstance(value, str | bytes):
        return _TEXT_NS + len(value)
    return _SCALAR_NS


def _length(value: Any) -> int:
    return len(value) if isinstance(value, Mapping | list | tuple) else 0


def cost(source: str, variables: Mapping[str, Any]) -> int:
    """An upper estimate, in nanoseconds, of evaluating `source` over `variables`."""
    found = comprehensions(source)
    conversion = 0
    largest = 0
    for value in _walk(variables):
        conversion += _conversion(value) + (_TEXT_NS * len(value) if isinstance(value, Mapping) else 0)
        largest = max(largest, _length(value))
    # A collection written into the expression has at most one element per comma; `+` can join lists.
    unknown = max(largest, source.count(",") + 1) * (1 + source.count("+"))

    def resolve(path: tuple[str, ...] | None, depth: int = 0) -> list[Any] | None:
        """The values `path` can denote (several when it starts at a comprehension's variable)."""
        if path is None or depth > len(found):
            return None
        binder = next((c for c in found if c.variable == path[0]), None)
        if binder is not None:
            walked = resolve(binder.receiver, depth + 1)
            if walked is None:
                return None
            candidates = [e for v in walked for e in _elements(v)]
        elif path[0] in variables:
            candidates = [variables[path[0]]]
        else:
            return None
        for name in path[1:]:
            if not all(isinstance(c, Mapping) and name in c for c in candidates):
                return None
            candidates = [c[name] for c in candidates]
        return candidates

    sizes = []
    for comprehension in found:
        candidates = resolve(comprehension.receiver)
        sizes.append(unknown if candidates is None else max(map(_length, candidates), default=0))
    total = conversion + len(source) * _SCALAR_NS
    for index, comprehension in enumerate(found):
        n = sizes[index]
        work = n * (_STEP_NS + (largest * _WALK_NS if comprehension.body_walks else 0))
        if comprehension.name in _COPYING:
            # Each step copies what it has produced so far; a list made by an inner map is copied whole.
            produced = [sizes[i] for i, inner in enumerate(found) if index in inner.enclosing and inner.name in _COPYING]
            work += n * n * _COPY_NS * max(produced, default=1)
        for outer in comprehension.enclosing:
            work *= max(sizes[outer], 1)
        total += work
    return total
