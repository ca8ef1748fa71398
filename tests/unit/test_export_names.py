"""orderops export's file names: one safe name in --out per workflow id, distinct for distinct ids, readable back."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orderops.cli.history import MAX_NAME, history_file_name

ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=300)


@pytest.mark.parametrize(
    ("wf_id", "name"),
    [
        ("order-1001", "order-1001.json"),
        ("order-TB_4001.v2", "order-TB_4001.v2.json"),
        ("../../x", "%2E.%2F..%2Fx.json"),
        ("..", "%2E..json"),
        (".hidden", "%2Ehidden.json"),
        ("a/b", "a%2Fb.json"),
        ("a%2Fb", "a%252Fb.json"),
        ("a\\b c", "a%5Cb%20c.json"),
        ("訂單", "%E8%A8%82%E5%96%AE.json"),
        ("a~b", "a%7Eb.json"),
    ],
)
def test_names(wf_id, name):
    assert history_file_name(wf_id) == name


@given(ids)
def test_a_name_is_one_file_in_the_directory_and_gives_the_id_back(wf_id):
    name = history_file_name(wf_id)
    assert name.endswith(".json") and len(name) <= MAX_NAME
    assert "/" not in name and "\\" not in name and "\0" not in name and not name.startswith(".")
    assert name.isascii() and name.isprintable()
    if "~" not in name:
        assert unquote(name.removesuffix(".json"), errors="strict") == wf_id


@given(ids, ids)
def test_distinct_ids_get_distinct_names(one, other):
    if one != other:
        assert history_file_name(one) != history_file_name(other)


def test_long_ids_are_cut_with_a_hash_of_the_whole_id():
    one, other = "order-" + "x" * 300, "order-" + "x" * 299 + "y"
    assert history_file_name(one) != history_file_name(other)
    assert history_file_name(one).startswith("order-xxx") and "~" in history_file_name(one)
    assert len(history_file_name("/" * 300)) <= MAX_NAME
    assert "%" not in history_file_name("/" * 300).split("~")[0][-2:]  # no %XX cut in two
