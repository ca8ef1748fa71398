"""The CEL cost estimate: what it finds in an expression and how it grows with the data."""

from __future__ import annotations

import pytest

from orderops.process.cost import MAX_COST_NS, comprehensions, cost, nesting_depth
from orderops.process.expressions import ExpressionError, compile_expression, evaluate, referenced_variables
from orderops.process.lint import lint_text


def test_comprehensions_are_found_with_their_variable_receiver_and_nesting():
    found = comprehensions("order.items.all(i, i.quantity > 0) && xs.exists(a, ys.map(b, b + a).size() > 0)")
    assert [(c.name, c.variable, c.receiver, c.enclosing) for c in found] == [
        ("all", "i", ("order", "items"), ()),
        ("exists", "a", ("xs",), ()),
        ("map", "b", ("ys",), (1,)),
    ]
    assert [c.body_walks for c in found] == [False, False, True]


def test_macro_names_inside_text_are_not_comprehensions():
    assert comprehensions("'x.all(i, true)' == name") == []
    assert nesting_depth("a.all(x, x > 0)") == 1
    assert nesting_depth("a.all(x, b.all(y, c.exists(z, z == x + y)))") == 3


def test_a_comprehension_variable_is_not_a_referenced_variable():
    assert referenced_variables("order.items.all(item, item.quantity > limit)") == {"order", "limit"}


def test_cost_grows_linearly_for_all_and_quadratically_for_map_and_nesting():
    def at(source: str, n: int) -> int:
        return cost(source, {"xs": list(range(n))})

    linear = at("xs.all(x, x >= 0)", 10_000) / at("xs.all(x, x >= 0)", 1_000)
    quadratic = at("size(xs.map(x, x + 1)) > 0", 10_000) / at("size(xs.map(x, x + 1)) > 0", 1_000)
    nested = at("xs.all(a, xs.all(b, a >= b))", 1_000) / at("xs.all(a, xs.all(b, a >= b))", 100)
    assert 5 < linear < 15
    assert quadratic > 50 and nested > 50


def test_a_path_through_a_bound_variable_uses_the_sizes_of_what_it_walks():
    orders = {"batches": [{"lines": list(range(500))} for _ in range(4)]}
    inner = cost("batches.all(b, b.lines.all(l, l >= 0))", orders)
    flat = cost("batches.all(b, true)", orders)
    assert inner > flat + 4 * 500 * 100  # four batches of 500 steps each, not one step per batch


def test_evaluate_refuses_an_expression_over_its_budget_without_naming_values():
    data = {"xs": list(range(5_000))}
    with pytest.raises(ExpressionError) as refused:
        evaluate("xs.all(a, xs.all(b, a + b >= 0))", data, MAX_COST_NS)
    message = str(refused.value)
    assert "would take about" in message and "at most 200 ms" in message and "4999" not in message
    assert evaluate("xs.all(a, a >= 0)", data, MAX_COST_NS) is True
    assert evaluate("xs.all(a, a >= 0)", data) is True  # no budget: runs as before


def test_lint_refuses_three_nested_comprehensions_at_their_line():
    text = """id: deep
version: 1
variables:
  xs: [1]
start: check
nodes:
  - id: check
    type: exclusive
    branches:
      - when: xs.all(a, xs.all(b, xs.exists(c, c == a + b)))
        next: done
    default: done
  - id: done
    type: end
    status: completed
"""
    definition, problems = lint_text(text, None)
    assert definition is None
    [problem] = problems
    assert problem.line == 10
    assert "nests 3 comprehensions" in problem.message and "at most 2" in problem.message


@pytest.mark.parametrize(
    "source",
    [
        "order.items.all(order, order.quantity > 0) && order.paid",  # a comprehension variable shadowing a variable
        "has(order.paid) && size(received_events) == 1",
        "order.items.exists(i, i.sku == sku) ? limit : 0",
        "missing_name == 1",  # fails the same way with or without the other variables
    ],
)
def test_an_expression_handed_only_the_names_it_reads_gives_what_the_whole_map_gives(source):
    variables = {
        "order": {"items": [{"sku": "TEA-001", "quantity": 2}], "paid": True},
        "received_events": ["paid"],
        "sku": "TEA-001",
        "limit": 3,
        "unrelated": {"big": list(range(1000))},
    }
    try:
        whole = compile_expression(source).execute(variables)
    except Exception:  # the CEL runtime's own error over the whole map: the same refusal over the names read
        with pytest.raises(ExpressionError):
            evaluate(source, variables)
    else:
        assert evaluate(source, variables) == whole
