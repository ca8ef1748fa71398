"""The activity catalogue (activities/catalogue.py) and docs/activities.md, generated from it; the activities' typed contract."""

from __future__ import annotations

import typing
from typing import get_type_hints

import pytest
from pydantic import BaseModel

from activities import ACTIVITY_CLASSES, ACTIVITY_NAMES
from activities.catalogue import REGENERATE, entries, markdown
from activities.defn import contract
from orderops.order import tally
from tests.helpers import ROOT

DOC = ROOT / "docs" / "activities.md"


def test_docs_activities_md_is_generated_from_the_code():
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        f"docs/activities.md is out of date with the activities; regenerate it: {REGENERATE}"
    )


def test_every_activity_is_catalogued_once_with_a_summary():
    names = [e.name for e in entries()]
    assert sorted(names) == sorted(ACTIVITY_NAMES), f"catalogue and ACTIVITY_NAMES differ; regenerate with: {REGENERATE}"
    assert len(names) == len(set(names))
    assert [e.name for e in entries() if not e.summary] == [], "every activity needs a docstring: its first line is its summary"


@pytest.mark.parametrize("name", sorted(ACTIVITY_NAMES))
def test_every_activity_appears_in_the_page_with_its_input_and_result_fields(name: str):
    [entry] = [e for e in entries() if e.name == name]
    page = DOC.read_text(encoding="utf-8")
    start = page.find(f"\n### {name}\n")
    assert start >= 0, f"docs/activities.md has no section for {name}; regenerate it: {REGENERATE}"
    end = page.find("\n### ", start + 1)
    section = page[start:end]
    assert entry.inputs and entry.results, name
    assert "order" in [f.name for f in entry.inputs]
    for field in entry.inputs + tuple(f for r in entry.results for f in r.fields):
        assert f"| `{field.name}` | `{field.type.replace('|', chr(92) + '|')}` |" in section, (
            f"{name}: field {field.name} is missing from docs/activities.md; regenerate it: {REGENERATE}"
        )


def test_the_catalogue_says_what_a_field_takes():
    [reserve] = [e for e in entries() if e.name == "reserve_stock"]
    policy = {f.name: f for f in reserve.inputs}["policy"]
    assert (policy.type, policy.required, policy.default) == ("StockPolicy", False, "{}")
    assert [r.model for r in reserve.results] == ["Reserved", "Short"]
    [wave] = [e for e in entries() if e.name == "join_wave"]
    assert {f.name: f for f in wave.inputs}["picking"].required
    [book] = [e for e in entries() if e.name == "book_carrier"]
    assert {f.name: f.type for f in book.inputs}["carriers"] == "list[Carrier]"
    assert reserve.inputs_text == "order: Order (required)\npolicy: StockPolicy (default {})"
    assert reserve.results_text.splitlines()[1] == "Short: status, short, summary"


def test_the_registered_function_decodes_to_a_dict_so_a_mistake_is_a_non_retryable_invalid_input():
    """Temporal's worker turns a decoding failure into a retryable "Failed decoding arguments": validation must not happen there."""
    for cls in ACTIVITY_CLASSES:
        for fn in vars(cls).values():
            definition = getattr(fn, "__temporal_activity_definition", None)
            if definition is not None:
                assert definition.arg_types == [dict], definition.name


def test_every_activity_takes_its_arguments_model_and_returns_result_models():
    """Temporal registers a function taking the dict (decoding never fails on content, so a mistake can fail as InvalidInput);
    the method as written takes the model and returns a model."""
    for cls in ACTIVITY_CLASSES:
        for fn in vars(cls).values():
            if not hasattr(fn, "__temporal_activity_definition"):
                continue
            c = contract(fn)
            assert get_type_hints(fn)["payload"] is dict, c.name
            assert issubclass(c.args, BaseModel), c.name
            members = typing.get_args(c.result) or (c.result,)
            assert all(isinstance(m, type) and issubclass(m, BaseModel) for m in members), c.name


def test_tally_sums_quantities_per_sku_from_items_or_rows():
    class Line:
        def __init__(self, sku: str, quantity: int):
            self.sku, self.quantity = sku, quantity

    assert tally([Line("B", 1), Line("A", 2), Line("B", 3)]) == {"B": 4, "A": 2}
    assert list(tally([{"sku": "B", "quantity": 1}, {"sku": "A", "quantity": 2}])) == ["B", "A"]
    assert tally([]) == {}
