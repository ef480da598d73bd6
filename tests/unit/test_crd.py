"""The hub's CRDs, generated from appflow's JSON Schemas (one source of truth)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from appflow.hub.crds import (
    crd_file_name,
    crd_manifest_of,
    crd_manifests,
    crd_yaml,
    schema_documents,
)
from appflow.model import records
from appflow.model.crd import CrdSchemaError, leaf_paths, registry_resolver, structural
from appflow.model.hub import KINDS, cluster_namespace

CHART_CRDS = Path(__file__).resolve().parents[2] / "appflow" / "charts" / "appflow-hub" / "crds"


def _schema(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        out.append((path, node))
        for key, value in node.items():
            out.extend(_walk(value, f"{path}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_walk(value, f"{path}/{i}"))
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_node_is_structural(kind: Any) -> None:
    schema = _schema(crd_manifest_of(kind))
    for path, node in _walk(schema):
        assert not {"$ref", "if", "then", "propertyNames", "$defs"} & set(node), path
        assert node.get("additionalProperties") is not False, path
        if (
            path.endswith(("/properties", "/x-kubernetes-validations"))
            or "/x-kubernetes-validations/" in path
        ):
            continue
        if "/anyOf/" in path or "/oneOf/" in path:
            continue
        if "type" not in node:
            assert node.get("x-kubernetes-int-or-string") or node.get(
                "x-kubernetes-preserve-unknown-fields"
            ), f"{kind.kind}{path} has no type"


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_every_field_has_a_description_for_kubectl_explain(kind: Any) -> None:
    schema = _schema(crd_manifest_of(kind))
    own = [
        (p, node) for p, node in leaf_paths(schema) if p not in ("apiVersion", "kind", "metadata")
    ]
    missing = [p for p, node in own if not node.get("description")]
    assert not missing, f"{kind.kind}: fields without a description: {missing}"


def test_the_appflow_definition_is_appflow_yaml_schema() -> None:
    app = _schema(crd_manifest_of(next(k for k in KINDS if k.kind == "AppFlow")))
    definition = app["properties"]["spec"]["properties"]["definition"]
    assert set(definition["properties"]) == set(
        schema_documents()["appflow.schema.json"]["properties"]
    )
    rollout = definition["properties"]["rollout"]["properties"]
    assert rollout["maxUnavailable"]["x-kubernetes-int-or-string"] is True
    assert rollout["maxUnavailable"]["pattern"] == "^(100|[1-9]?[0-9])%$"
    values = definition["properties"]["helm"]["properties"]["values"]
    assert values["x-kubernetes-preserve-unknown-fields"] is True


@pytest.mark.parametrize(
    ("definition", "choices"),
    [
        ("clusterSpec/properties/kind", records.CLUSTER_KINDS),
        ("clusterStatus/properties/state", records.CLUSTER_STATES),
        ("deploymentState", records.DEPLOYMENT_STATES),
        ("historyEntry/properties/trigger", records.SYNC_TRIGGERS),
        ("historyEntry/properties/outcome", records.SYNC_OUTCOMES),
        ("appFlowStatus/properties/rollout/properties/state", records.ROLLOUT_STATES),
    ],
)
def test_enums_match_the_records(definition: str, choices: tuple[str, ...]) -> None:
    node: Any = schema_documents()["hub.schema.json"]["$defs"]
    for part in definition.split("/"):
        node = node[part]
    assert tuple(node["enum"]) == choices


def test_content_kind_matches_the_content_format() -> None:
    from appflow.model.content import MediaType

    node = schema_documents()["hub.schema.json"]["$defs"]["appFlowContentSpec"]
    assert tuple(node["properties"]["mediaType"]["enum"]) == get_args(MediaType)


def test_the_chart_carries_the_generated_crds() -> None:
    for manifest, kind in zip(crd_manifests(), KINDS, strict=True):
        path = CHART_CRDS / crd_file_name(kind)
        assert path.is_file(), f"{path} is missing: run `make crds`"
        assert path.read_text() == crd_yaml(manifest), f"{path} is stale: run `make crds`"


def _convert(schema: dict[str, Any]) -> dict[str, Any]:
    return structural(schema, file="t.json", resolve=registry_resolver({"t.json": schema}))


def test_if_then_becomes_a_cel_rule_with_a_message() -> None:
    out = _convert(
        {
            "type": "object",
            "properties": {"mode": {"enum": ["push", "pull"]}, "secret": {"type": "string"}},
            "if": {"required": ["mode"], "properties": {"mode": {"const": "push"}}},
            "then": {"required": ["secret"]},
        }
    )
    (rule,) = out["x-kubernetes-validations"]
    assert rule["rule"] == '!(has(self.mode) && self.mode in ["push"]) || (has(self.secret))'
    assert rule["message"] == "secret must be set when mode is push"
    assert rule["fieldPath"] == ".secret"
    assert out["properties"]["mode"]["type"] == "string"


def test_reserved_words_are_escaped_in_cel() -> None:
    out = _convert(
        {
            "type": "object",
            "properties": {"namespace": {"type": "string"}, "a-b": {"type": "string"}},
            "not": {"required": ["namespace", "a-b"]},
        }
    )
    assert (
        out["x-kubernetes-validations"][0]["rule"]
        == "!(has(self.__namespace__) && has(self.a__dash__b))"
    )


def test_an_untranslatable_keyword_is_refused_with_its_path() -> None:
    with pytest.raises(CrdSchemaError, match=r"field spec\.x.*'patternProperties'"):
        structural(
            {"type": "object", "properties": {"x": {"type": "object", "patternProperties": {}}}},
            file="t.json",
            resolve=registry_resolver({}),
            path="spec",
        )


def test_a_pattern_re2_cannot_run_is_refused_or_left_to_the_controller() -> None:
    schema = {"type": "string", "description": "A path.", "pattern": "^(?!/).+$"}
    with pytest.raises(CrdSchemaError, match=r"'\(\?!', which the API server's RE2 cannot run"):
        _convert(schema)
    deferred: list[str] = []
    out = structural(
        schema,
        file="t.json",
        resolve=registry_resolver({}),
        path="spec.x",
        defer=frozenset({"pattern"}),
        deferred=deferred,
    )
    assert "pattern" not in out
    assert (
        out["description"]
        == "A path. Its pattern is checked by appflow when it reads the resource."
    )
    assert deferred == ["spec.x:pattern"]
    plain = structural(
        {"type": "string", "pattern": "^[a-z]+$"},
        file="t.json",
        resolve=registry_resolver({}),
        defer=frozenset({"pattern"}),
    )
    assert plain["pattern"] == "^[a-z]+$"


def test_what_the_api_server_cannot_check_is_listed() -> None:
    deferred: list[str] = []
    for kind in KINDS:
        crd_manifest_of(kind, deferred=deferred)
    checks = {item.rsplit(":", 1)[1] for item in deferred}
    assert checks <= {"propertyNames", "pattern"}
    assert any(item.endswith("matchLabels:propertyNames") for item in deferred)


def test_a_recursive_ref_is_refused() -> None:
    schema = {
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}}
    }
    with pytest.raises(CrdSchemaError, match="recursive"):
        structural(
            schema["$defs"]["node"], file="t.json", resolve=registry_resolver({"t.json": schema})
        )


def test_cluster_namespaces_are_short_distinct_labels() -> None:
    a = cluster_namespace("a", "c-b")
    b = cluster_namespace("a-c", "b")
    assert a != b
    long = cluster_namespace("w" * 40, "x" * 63)
    assert len(long) <= 63
    assert all(ch.isalnum() or ch == "-" for ch in long)
    assert not long.startswith("-")
    assert cluster_namespace("appflow", "berlin-1").startswith("appflow-c-berlin-1-")


def test_crd_yaml_round_trips() -> None:
    for manifest in crd_manifests():
        assert yaml.safe_load(crd_yaml(manifest)) == json.loads(json.dumps(manifest))
