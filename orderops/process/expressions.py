"""CEL conditions and mappings: compiled once, evaluated without `eval`."""

from __future__ import annotations

import sys
import types
from functools import lru_cache
from typing import Any

# `import cel` runs the package's __init__, which imports its interactive REPL (typer, rich,
# prompt_toolkit, pygments: 0.12 s, half of a lint's start-up); orderops never uses it, so
# an empty module stands in for it (bench/startup.py measures the difference).
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

from orderops.process.cost import comprehensions, cost  # noqa: E402


class ExpressionError(ValueError):
    pass


# Far above any real condition; the CEL parser overflows the native stack (and kills the process) on
# expressions hundreds of times longer, so they are refused before it sees them.
MAX_EXPRESSION_LENGTH = 4096


@lru_cache(maxsize=512)
def compile_expression(source: str) -> Any:
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(f"expression is {len(source)} characters long; at most {MAX_EXPRESSION_LENGTH} are accepted")
    try:
        return cel.compile(source)
    except ValueError as err:
        # The library's message spans several lines with a caret diagram; keep the first.
        first = str(err).splitlines()[0]
        raise ExpressionError(first.replace("Failed to parse expression", "invalid CEL expression")) from None


# The functions this CEL runtime has (found by calling each; standard CEL's others, such as
# `lowerAscii`, `split` or `max`, parse but fail when they run). Operators are named `_+_`, `@in`, `!_`.
FUNCTIONS = frozenset(
    [
        "bytes",
        "contains",
        "double",
        "duration",
        "dyn",
        "endsWith",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getFullYear",
        "getHours",
        "getMilliseconds",
        "getMinutes",
        "getMonth",
        "getSeconds",
        "int",
        "matches",
        "size",
        "startsWith",
        "string",
        "timestamp",
        "type",
        "uint",
    ]
)


def unknown_functions(source: str) -> list[str]:
    """The functions `source` calls that the runtime does not have: each would fail the expression when it runs."""
    called = compile_expression(source).functions()
    return sorted(f for f in called if f[0] not in "_@!-" and f not in FUNCTIONS)


def referenced_variables(source: str) -> set[str]:
    # A comprehension binds its own variable (`items.all(i, i.quantity > 0)`); CEL's static
    # analysis lists it among the referenced names, so lint must not ask for it.
    bound = {c.variable for c in comprehensions(source) if c.variable}
    return set(compile_expression(source).variables()) - bound


@lru_cache(maxsize=512)
def _read_names(source: str) -> frozenset[str]:
    # Every name CEL sees in the expression, comprehension variables included: a superset of what it
    # reads, so handing it only these leaves every result as it was.
    return frozenset(compile_expression(source).variables())


def evaluate(source: str, variables: dict[str, Any], budget_ns: int | None = None) -> Any:
    """Run `source` over `variables`; with a budget, refuse first when its estimated cost exceeds it."""
    # CEL converts every variable it is given on every call: an order's whole map took about 280 us
    # where the few names an expression reads take 13 us (docs/performance.md).
    names = _read_names(source)
    variables = {name: value for name, value in variables.items() if name in names}
    if budget_ns is not None:
        estimate = cost(source, variables)
        if estimate > budget_ns:
            raise ExpressionError(
                f"expression would take about {estimate // 1_000_000} ms over this order's data; at most {budget_ns // 1_000_000} ms are allowed"
            )
    try:
        return compile_expression(source).execute(variables)
    except ExpressionError:
        raise
    except Exception as err:  # the CEL runtime raises KeyError/TypeError/ValueError/RuntimeError
        raise ExpressionError(f"evaluating {source!r} failed: {type(err).__name__}: {err}") from None
