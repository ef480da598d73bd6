"""Values merge precedence and Fleet-style ${ } templates per cluster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appflow.errors import ConfigError
from appflow.model.values import has_templates, merge_values, render_templated_values

LABELS = {"region": "eu", "site": "berlin", "kubernetes.io/arch": "arm64"}


def render(values: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return render_templated_values(values, cluster_name="berlin-1", cluster_labels=LABELS, **kw)


def test_merge_precedence_chart_files_inline_customization() -> None:
    chart = {"image": {"repository": "nginx", "tag": "1.0"}, "replicas": 1, "ports": [80, 443]}
    files = {"image": {"tag": "1.1"}, "ports": [8080]}
    inline = {"replicas": 2, "extra": {"a": 1}}
    customization = {"replicas": 3, "image": {"pullPolicy": "Always"}}
    assert merge_values(chart, files, inline, customization) == {
        "image": {"repository": "nginx", "tag": "1.1", "pullPolicy": "Always"},
        "replicas": 3,
        "ports": [8080],  # lists are replaced, not appended
        "extra": {"a": 1},
    }


def test_null_deletes_a_key_as_helm_does() -> None:
    assert merge_values({"a": {"b": 1, "c": 2}, "d": 4}, {"a": {"b": None}, "d": None}) == {
        "a": {"c": 2}
    }


def test_merge_does_not_modify_inputs() -> None:
    base = {"a": {"b": [1]}}
    layer = {"a": {"c": 2}}
    merged = merge_values(base, layer)
    merged["a"]["b"].append(9)
    assert base == {"a": {"b": [1]}}
    assert layer == {"a": {"c": 2}}


def test_a_map_replaces_a_scalar_and_a_scalar_replaces_a_map() -> None:
    assert merge_values({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert merge_values({"a": {"b": 2}}, {"a": 1}) == {"a": 1}


scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans())
keys = st.text(alphabet="abc", min_size=1, max_size=2)
values_trees = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda children: st.dictionaries(keys, children, max_size=3),
    max_leaves=10,
)
value_maps = st.dictionaries(keys, values_trees, max_size=4)


@given(value_maps)
def test_merging_with_empty_is_identity(values: dict[str, Any]) -> None:
    assert merge_values(values, {}) == values
    assert merge_values({}, values) == values
    assert merge_values(values) == values


@given(value_maps, value_maps)
def test_later_layer_wins_on_scalar_keys(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge_values(a, b)
    for key, value in b.items():
        if not isinstance(value, dict):
            assert merged[key] == value
    for key in a.keys() - b.keys():
        assert merged[key] == a[key]


@given(value_maps, value_maps, value_maps)
def test_layers_apply_one_after_another(
    a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]
) -> None:
    # Helm coalesces layer by layer, so merging is a left fold. It is not
    # associative: a scalar in b replaced by a map in c differs from c's map
    # merged into a's map first.
    assert merge_values(a, b, c) == merge_values(merge_values(a, b), c)


def test_a_map_replacing_a_scalar_starts_afresh() -> None:
    assert merge_values({"a": {"x": 0}}, {"a": 0}, {"a": {}}) == {"a": {}}


def test_templates_in_values_and_keys() -> None:
    values = {
        "cluster": "${ .ClusterName }",
        "host": "web.${ .ClusterLabels.site }.example.com",
        "arch": '${ index .ClusterLabels "kubernetes.io/arch" }',
        "${ .ClusterLabels.region }": {"enabled": True},
        "list": ["${ .ClusterLabels.region | upper }", 3],
        "quoted": "${ .ClusterName | quote }",
        "untouched": "$HOME {x}",
    }
    assert render(values) == {
        "cluster": "berlin-1",
        "host": "web.berlin.example.com",
        "arch": "arm64",
        "eu": {"enabled": True},
        "list": ["EU", 3],
        "quoted": '"berlin-1"',
        "untouched": "$HOME {x}",
    }


def test_default_makes_a_label_optional() -> None:
    assert render({"zone": '${ .ClusterLabels.zone | default "a" }'}) == {"zone": "a"}
    assert render({"zone": '${ get .ClusterLabels "site" | default "a" }'}) == {"zone": "berlin"}


def test_unknown_label_names_value_path_label_and_cluster() -> None:
    with pytest.raises(ConfigError) as info:
        render({"ingress": {"hosts": ["${ .ClusterLabels.zone }"]}})
    err = info.value
    assert (err.where.cluster, err.where.field) == ("berlin-1", "helm.values.ingress.hosts[0]")
    assert str(err).startswith(
        "cluster berlin-1, field helm.values.ingress.hosts[0]: cluster berlin-1 has no label 'zone'"
    )
    assert 'append | default "VALUE"' in str(err)


def test_missing_label_through_index_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match="has no label 'tier'"):
        render({"t": '${ index .ClusterLabels "tier" | lower }'})


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("${ .ClusterValues.x }", ".ClusterValues (Fleet templateValues) is not supported"),
        ("${ now }", "function 'now' is not supported"),
        ("${ .Nope }", "unknown field .Nope"),
        ("${ .ClusterNamespace }", ".ClusterNamespace is not known"),
        ("${ .ClusterLabels }", "a whole map cannot be placed in a string"),
        ("${ .ClusterName | }", "empty command in pipeline"),
    ],
)
def test_bad_templates_are_explained(template: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        render({"v": template})
    assert fragment in str(info.value)
    assert info.value.where.field == "helm.values.v"


def test_annotations_and_namespace_when_given() -> None:
    out = render(
        {"a": "${ .ClusterAnnotations.owner }", "n": "${ .ClusterNamespace }"},
        cluster_annotations={"owner": "ops"},
        cluster_namespace="fleet-default",
    )
    assert out == {"a": "ops", "n": "fleet-default"}


def test_has_templates() -> None:
    assert has_templates({"a": ["x", {"b": "${ .ClusterName }"}]})
    assert not has_templates({"a": ["x", {"b": "$ {y}"}]})
