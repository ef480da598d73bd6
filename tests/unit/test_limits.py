"""The limits on parsed documents, as functions (issue 10, item 11); see test_input_limits.py."""

from __future__ import annotations

import pytest

from appflow.errors import ConfigError, RenderError
from appflow.model.limits import MIB, Limits, document_problem, human_size, parse_size
from appflow.render.documents import parse_json_documents, parse_yaml_documents
from tests.unit.limits_support import DEEP, alias_bomb, set_limits

# -- the checks themselves ------------------------------------------------------------------


def test_a_plain_tree_within_the_limits_passes() -> None:
    doc = {"a": [1, 2, {"b": {"c": "d"}}], "e": "f"}
    assert document_problem(doc, Limits()) is None


def test_nesting_past_the_limit_is_named() -> None:
    doc: list[object] = []
    inner = doc
    for _ in range(10):
        nxt: list[object] = []
        inner.append(nxt)
        inner = nxt
    assert document_problem(doc, Limits(max_yaml_depth=11)) is None
    assert "nested more than 5 levels" in str(document_problem(doc, Limits(max_yaml_depth=5)))


def test_shared_containers_are_counted_as_expanded() -> None:
    leaf = ["x"] * 10
    doc = {"a": [leaf] * 10, "b": [leaf] * 10}  # 200 strings, 21 distinct containers
    assert document_problem(doc, Limits(max_yaml_nodes=1000)) is None
    assert "aliases are expanded" in str(document_problem(doc, Limits(max_yaml_nodes=150)))


def test_a_document_that_contains_itself_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    assert "contains itself" in str(document_problem({"a": loop}, Limits()))


def test_sizes_read_as_kubernetes_writes_them() -> None:
    assert parse_size("8Mi", setting="X") == 8 * MIB
    assert parse_size("1.5M", setting="X") == 1_500_000
    assert parse_size("100", setting="X") == 100
    with pytest.raises(ConfigError, match="APPFLOW_MAX_FILE_BYTES='lots'"):
        Limits.from_settings({"APPFLOW_MAX_FILE_BYTES": "lots"})
    assert human_size(1536 * 1024) == "1.5 MiB"


# -- YAML and JSON as renders parse them ------------------------------------------------------


def test_an_alias_bomb_is_refused_before_anything_walks_it() -> None:
    with pytest.raises(RenderError) as info:
        parse_yaml_documents(alias_bomb(12), file="bomb.yaml")
    text = str(info.value)
    assert text.startswith("bomb.yaml:1: document 1 is refused: it holds more than 1000000 values")
    assert "APPFLOW_MAX_YAML_NODES" in text


def test_yaml_nested_fifty_thousand_levels_is_a_clear_error() -> None:
    with pytest.raises(RenderError, match=r"deep\.yaml"):
        parse_yaml_documents("a: " + "[" * DEEP + "]" * DEEP, file="deep.yaml")


def test_json_nested_fifty_thousand_levels_is_a_clear_error() -> None:
    with pytest.raises(RenderError, match="nested more than 128 levels deep"):
        parse_json_documents("[" * DEEP + "]" * DEEP, file="deep.json")


def test_limits_are_the_operators_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "a: " + "[" * 20 + "]" * 20
    assert parse_yaml_documents(text, file="x.yaml")
    set_limits(monkeypatch, max_yaml_depth="10")
    with pytest.raises(RenderError, match="nested more than 10 levels deep"):
        parse_yaml_documents(text, file="x.yaml")
