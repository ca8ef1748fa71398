"""The CEL cost estimate beside the measured time, for the expression shapes it has to bound.

For each shape and size it prints the estimate (orderops.process.cost.cost), the time the CEL
library took, and their ratio; the estimate is meant to stay at or above the measurement (ratio
>= 1) so that an expression it lets through runs within MAX_COST_NS. Sizes stop where one run
would pass a second. Run: `.venv/bin/python bench/cel_cost.py`.
A benchmark, not a test: it asserts nothing about speed (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from orderops.process.cost import MAX_COST_NS, cost
from orderops.process.expressions import compile_expression

Data = Callable[[int], dict[str, Any]]


def _items(n: int) -> dict[str, Any]:
    return {"order": {"items": [{"sku": f"S{i}", "quantity": i % 7 + 1} for i in range(n)]}}


def _numbers(n: int) -> dict[str, Any]:
    return {"event": {"values": list(range(n))}}


SHAPES: list[tuple[str, str, Data, list[int]]] = [
    ("all", "order.items.all(i, i.quantity > 0)", _items, [1_000, 10_000, 100_000]),
    ("exists", "order.items.exists(i, i.sku == 'none')", _items, [1_000, 10_000, 100_000]),
    ("map", "size(event.values.map(v, v + 1)) > 0", _numbers, [1_000, 3_000, 10_000]),
    ("filter", "size(event.values.filter(v, v > 1)) > 0", _numbers, [1_000, 3_000, 10_000]),
    ("in list", "event.values.all(v, v in event.values)", _numbers, [300, 1_000, 3_000]),
    ("nested all", "event.values.all(a, event.values.all(b, a + b >= 0))", _numbers, [100, 300, 1_000]),
    ("nested map", "size(event.values.map(a, event.values.map(b, a + b))) > 0", _numbers, [30, 100, 300]),
    ("nested exists", "order.items.exists(a, order.items.exists(b, a.sku == b.sku && a != b))", _items, [30, 100, 300]),
    ("conversion", "size(event.values) > 0", _numbers, [10_000, 100_000]),
]


def measure(source: str, variables: dict[str, Any]) -> float:
    program = compile_expression(source)
    start = time.perf_counter()
    program.execute(variables)
    return time.perf_counter() - start


def main() -> None:
    print(f"budget {MAX_COST_NS / 1e6:.0f} ms; ratio = estimate / measured (>= 1 is safe)")
    print(f"{'shape':<15}{'n':>8}{'estimate ms':>14}{'measured ms':>14}{'ratio':>8}  allowed")
    lowest = float("inf")
    for name, source, data, sizes in SHAPES:
        for n in sizes:
            variables = data(n)
            estimate = cost(source, variables)
            measured = measure(source, variables)
            ratio = estimate / 1e9 / measured
            lowest = min(lowest, ratio)
            allowed = "yes" if estimate <= MAX_COST_NS else "no"
            print(f"{name:<15}{n:>8}{estimate / 1e6:>14.1f}{measured * 1e3:>14.1f}{ratio:>8.1f}  {allowed}")
    print(f"lowest ratio {lowest:.2f}")


if __name__ == "__main__":
    main()
