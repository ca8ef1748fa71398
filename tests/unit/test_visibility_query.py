"""OrderQuery.raw: an operator's filter stays inside its parentheses, or is refused in one line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderops.client import InvalidRequest, OrderQuery
from orderops.client.visibility import UnsafeQuery, check_raw

ACCEPTED = [
    "ProcessVersion = 3",
    "ProcessVersion = 1 AND OrderStatus = 'completed'",
    "(Region = 'remote' OR (ServiceLevel = 'express')) AND AtRisk = true",
    "CustomerName = 'a) OR (b'",  # parentheses inside a string are text
    'CustomerName = "a) OR (b"',
    "`Custom Field` = 'x'",
    "`odd``)name` = 1",  # a doubled backquote is one backquote, still inside the name
    "Note = 'it''s) here'",  # a doubled quote stays inside the string
    "Note = 'back\\\\'",  # an escaped backslash, then the closing quote
    "Note = 'a\\') OR (b'",  # an escaped quote does not end the string
    'Note = "a\\") OR (b"',
    'Note = "it\'s"',
    "ProcessVersion = -1",
    "Note = 'x -- y # z /* w */'",  # comment marks inside a string are text
    "OrderStatus IN ('a', 'b')\n  AND\tProcessVersion >= 2",
]

REFUSED = [
    ("ProcessVersion = 3) OR (WorkflowType = 'Other'", "closes a parenthesis the filter did not open"),
    (") OR (WorkflowType = 'Other'", "column 1 closes"),
    ("a = 1) OR WorkflowType = 'Other' AND (b = 2", "closes"),
    ("(a = 1", "1 '(' not closed"),
    ("((a = 1)", "1 '(' not closed"),
    ("Note = 'open", "single-quoted string opened at column 8 is not closed"),
    ('Note = "open', "double-quoted string opened at column 8 is not closed"),
    ("`open = 1", "backquoted name opened at column 1 is not closed"),
    ("Note = 'ends in an escape\\'", "not closed"),  # \' is a quote inside the string
    ("Note = 'x\\", "not closed"),
    ("`a\\` = 1) OR (1 = 1", "closes"),  # no backslash escapes in a backquoted name
    ("a = 1 -- ) OR (b = 1", "comment at column 7"),
    ("/* ( */ a = 1) OR (b = 1 /* ) */", "comment at column 1"),
    ("a = 1 # )", "comment"),
    ("a = 1\x00", "control character"),
]


@pytest.mark.parametrize("query", ACCEPTED)
def test_filters_that_stay_inside_their_parentheses_are_kept_as_written(query):
    assert str(OrderQuery().raw(query)) == f"WorkflowType = 'OrderWorkflow' AND ({query})"


@pytest.mark.parametrize(("query", "reason"), REFUSED)
def test_filters_that_would_escape_are_refused_in_one_line(query, reason):
    with pytest.raises(UnsafeQuery) as refused:
        OrderQuery().raw(query)
    message = str(refused.value)
    assert reason in message
    assert message.startswith("--query: ") and "\n" not in message
    assert isinstance(refused.value, InvalidRequest)  # the CLI's one line, exit status 2


def test_no_filter_adds_nothing():
    assert str(OrderQuery().raw(None)) == str(OrderQuery().raw("")) == "WorkflowType = 'OrderWorkflow'"


def _depths(query: str) -> list[int]:
    """Parenthesis depth after each character outside quotes, by a second, independent reading."""
    depths, depth, quote, escaped = [], 0, None, False
    for char in query:
        if quote is None:
            if char in "'\"`":
                quote = char
            elif char in "()":
                depth += 1 if char == "(" else -1
                depths.append(depth)
        elif escaped:
            escaped = False
        elif char == "\\" and quote != "`":
            escaped = True
        elif char == quote:
            # A doubled quote reads as a close and an immediate reopen: the same as staying inside.
            quote = None
    return [*depths, depth] if quote is None else [-1]


@given(st.text(alphabet="()'\"`\\ a=", max_size=30))
def test_accepted_filters_never_leave_their_parentheses(query):
    try:
        check_raw(query)
    except UnsafeQuery:
        return
    depths = _depths(query)
    assert min(depths, default=0) >= 0
    assert depths[-1] == 0
