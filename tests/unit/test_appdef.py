"""Discovery and appflow.yaml loading: what a user sees for good and bad repositories."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from appflow.errors import ConfigError
from appflow.model.appdef import (
    ClusterTarget,
    Dependency,
    LabelRequirement,
    LabelSelector,
    from_appflow_document,
)
from appflow.sources.appdef import (
    default_app_name,
    load_app_definitions,
    load_schema,
    load_yaml_with_positions,
    validate_appflow_document,
)

DATA = Path(__file__).parent / "testdata" / "appdef"


@pytest.fixture(scope="module")
def repo_apps() -> dict[str, object]:
    return {app.path: app for app in load_app_definitions(DATA / "repo")}


def test_discovery_finds_each_kind_of_app_folder_and_nothing_else(
    repo_apps: dict[str, object],
) -> None:
    assert sorted(repo_apps) == [
        "apps/Plain_Manifests",
        "apps/bare-chart",
        "apps/edge-agent",
        "apps/kust",
        "apps/web",
        "fleet-nested",
        "fleet-nested/child",
    ]


def test_discovery_kinds_origins_and_default_names() -> None:
    apps = {a.path: a for a in load_app_definitions(DATA / "repo")}
    summary = {p: (a.name, a.kind, a.origin) for p, a in apps.items()}
    assert summary["apps/Plain_Manifests"] == ("apps-plain-manifests", "yaml", "defaults")
    assert summary["apps/bare-chart"] == ("apps-bare-chart", "helm", "defaults")
    assert summary["apps/kust"] == ("apps-kust", "kustomize", "defaults")
    assert summary["apps/web"] == ("web", "helm", "appflow.yaml")
    assert summary["fleet-nested"] == ("fleet-nested", "yaml", "fleet.yaml")
    # Fleet: a nested fleet.yaml is a bundle of its own, even below another bundle.
    assert summary["fleet-nested/child"] == ("inner-bundle", "yaml", "fleet.yaml")
    assert apps["apps/kust"].kustomize is not None
    assert apps["apps/kust"].kustomize.dir == "."
    assert apps["apps/bare-chart"].helm is not None
    assert apps["apps/bare-chart"].helm.chart == "."


def test_paths_limit_the_scan_and_bad_paths_are_named() -> None:
    apps = load_app_definitions(DATA / "repo", paths=("fleet-nested",))
    assert [a.name for a in apps] == ["fleet-nested", "inner-bundle"]
    with pytest.raises(ConfigError, match="path 'nope/' is not a folder in the repository"):
        load_app_definitions(DATA / "repo", paths=("nope/",))
    with pytest.raises(ConfigError, match=r"path '\.\./\.\.' is outside the repository"):
        load_app_definitions(DATA / "repo", paths=("../..",))


def test_appflow_yaml_is_read_into_the_model() -> None:
    (web,) = load_app_definitions(DATA / "repo", paths=("apps/web",))
    assert web.definition_file == "apps/web/appflow.yaml"
    assert web.namespace == "retail"
    assert web.labels == {"tier": "frontend"}
    assert web.helm is not None
    assert web.helm.chart == "."
    assert web.helm.mode == "template"
    assert web.helm.values_files == ("values-common.yaml",)
    assert web.helm.values == {"replicas": 2, "site": "${ .ClusterLabels.site }"}
    assert web.targets == (
        ClusterTarget(name="eu", selector=LabelSelector(match_labels={"region": "eu"})),
        ClusterTarget(name="target001", cluster_name="lab-1"),
    )
    (berlin,) = web.customizations
    assert berlin.target.selector == LabelSelector(
        match_expressions=(LabelRequirement(key="site", operator="In", values=("berlin",)),)
    )
    assert berlin.helm_values == {"replicas": 3}
    assert web.depends_on == (Dependency(name="edge-agent"),)
    assert (web.sync_policy.auto, web.sync_policy.prune, web.sync_policy.self_heal) == (
        True,
        True,
        True,
    )
    assert web.rollout.max_unavailable == "25%"
    assert web.rollout.partitions[0].target.cluster_group == "canaries"
    assert web.rollout.partitions[0].max_unavailable == 0
    assert web.rollout.health_timeout_seconds == 300


def test_bad_yaml_names_file_line_and_column() -> None:
    with pytest.raises(ConfigError) as info:
        load_app_definitions(DATA / "bad-yaml")
    text = str(info.value)
    assert text.startswith("app/appflow.yaml:5:14: invalid YAML: expected ',' or ']'")
    assert "flow sequence on line 4" in text
    assert info.value.where.line == 5


def test_schema_violations_are_all_reported_with_line_and_field_path() -> None:
    with pytest.raises(ConfigError) as info:
        load_app_definitions(DATA / "schema-violation")
    err = info.value
    assert err.where.file == "app/appflow.yaml"
    assert (err.where.line, err.where.field) == (4, "rollout.maxUnavailable")
    text = str(err)
    assert "5 schema violations in appflow.yaml" in text
    assert (
        "app/appflow.yaml:4: rollout.maxUnavailable: '150%' is not valid: expected a number" in text
    )
    assert (
        "app/appflow.yaml:5: rollout.healthTimeoutSeconds: 0 is less than the minimum of 1" in text
    )
    assert "app/appflow.yaml:7: syncPolicy.prune: 'yes' is not of type 'boolean'" in text
    assert (
        "app/appflow.yaml:13: targets[0].clusterSelector.matchExpressions[0].operator: 'Near'"
        in text
    )
    assert "app/appflow.yaml:17: helm.colour: unknown field 'colour'" in text


@pytest.mark.parametrize(
    ("doc", "field", "fragment"),
    [
        ({"rollout": {"maxUnavailable": -1}}, "rollout.maxUnavailable", "-1 is not valid"),
        ({"rollout": {"maxUnavailable": "101%"}}, "rollout.maxUnavailable", "'101%' is not valid"),
        ({"rollout": {"autoPartitionSize": 0}}, "rollout.autoPartitionSize", "0 is not valid"),
        ({"namespace": "Retail_NS"}, "namespace", "expected a DNS-1123 label"),
        ({"helm": {"repo": "ftp://x"}}, "helm.repo", "'ftp://x' is not valid"),
        ({"helm": {"mode": "apply"}}, "helm.mode", "'apply' is not one of"),
        ({"dependsOn": [{"name": "a", "selector": {}}]}, "dependsOn[0]", "unknown field"),
        (
            {
                "targets": [
                    {"clusterSelector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}
                ]
            },
            "targets[0].clusterSelector.matchExpressions[0]",
            "'values' is a required property",
        ),
    ],
)
def test_schema_rejects_impossible_values(
    doc: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_appflow_document(doc, file="appflow.yaml")
    assert info.value.where.field is not None
    assert info.value.where.field.startswith(field)
    assert fragment in str(info.value)


def test_schema_accepts_boundaries() -> None:
    for value in (0, 7, "0%", "100%", "5%"):
        validate_appflow_document({"rollout": {"maxUnavailable": value}}, file="appflow.yaml")


def test_schema_is_valid_2020_12_with_descriptions_on_every_field() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    missing: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                if key not in ("if", "then", "else"):  # constraints, not fields
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(schema, "$")
    assert missing == []


def test_duplicate_app_names_name_both_folders() -> None:
    with pytest.raises(ConfigError, match="two apps are named 'same': folders 'a' and 'b'"):
        load_app_definitions(DATA / "duplicate")


def test_duplicate_keys_are_an_error_with_both_lines() -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_with_positions("helm:\n  values: {}\n  values: {a: 1}\n", file="x/appflow.yaml")
    assert str(info.value).startswith(
        "x/appflow.yaml:3:3, field helm.values: key 'values' appears twice"
    )
    assert "first on line 2" in str(info.value)


def test_positions_record_keys_and_list_items() -> None:
    _, positions = load_yaml_with_positions("a:\n  b:\n    - x\n    - y: 1\n", file="f")
    assert positions[("a",)] == (1, 1)
    assert positions[("a", "b")] == (2, 3)
    assert positions[("a", "b", 1)] == (4, 7)
    assert positions[("a", "b", 1, "y")] == (4, 7)


def test_appflow_fleet_side_by_side_prefers_appflow(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "appflow.yaml").write_text("namespace: a\n")
    (tmp_path / "app" / "fleet.yaml").write_text("defaultNamespace: b\n")
    (app,) = load_app_definitions(tmp_path)
    assert (app.origin, app.namespace) == ("appflow.yaml", "a")
    assert app.warnings == ("app/fleet.yaml is ignored: appflow.yaml is in the same folder",)


def test_kind_conflicts_are_explained() -> None:
    with pytest.raises(ConfigError, match="helm is set but source is kustomize"):
        from_appflow_document(
            {"source": "kustomize", "helm": {"values": {}}},
            path="p",
            file="p/appflow.yaml",
            default_name="p",
        )
    with pytest.raises(ConfigError, match="both helm and kustomize are set"):
        from_appflow_document(
            {"helm": {"chart": "c"}, "kustomize": {"dir": "k"}},
            path="p",
            file="p/appflow.yaml",
            default_name="p",
        )
    with pytest.raises(ConfigError, match="target 'target000' selects no cluster"):
        from_appflow_document({"targets": [{}]}, path="p", file="p/appflow.yaml", default_name="p")


def test_kind_inferred_from_folder_when_no_section(tmp_path: Path) -> None:
    app_dir = tmp_path / "svc"
    app_dir.mkdir()
    (app_dir / "kustomization.yml").write_text("resources: []\n")
    (app_dir / "appflow.yaml").write_text("syncPolicy:\n  prune: false\n")
    (app,) = load_app_definitions(tmp_path)
    assert (app.name, app.kind, app.sync_policy.prune) == ("svc", "kustomize", False)


def test_keep_resources_is_its_own_switch_next_to_prune(tmp_path: Path) -> None:
    app_dir = tmp_path / "edge"
    app_dir.mkdir()
    (app_dir / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (app_dir / "appflow.yaml").write_text("syncPolicy:\n  keepResources: true\n")
    (app,) = load_app_definitions(tmp_path)
    assert (app.sync_policy.keep_resources, app.sync_policy.prune) == (True, True)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("apps/Web_Frontend", "apps-web-frontend"),
        ("a//b..c", "a-b-c"),
        ("", "myrepo"),
    ],
)
def test_default_app_name_is_a_dns_label(path: str, name: str) -> None:
    assert default_app_name(path, root_name="MyRepo") == name


def test_long_default_names_are_cut_with_a_hash() -> None:
    a = default_app_name("x" * 70 + "/one")
    b = default_app_name("x" * 70 + "/two")
    assert len(a) <= 63
    assert len(b) <= 63
    assert a != b


def test_a_path_holding_a_nul_character_is_a_config_error(tmp_path: Path) -> None:
    # Found by test_fuzz: Path.resolve() raised ValueError ("embedded null byte").
    app_dir = tmp_path / "web"
    app_dir.mkdir()
    (app_dir / "appflow.yaml").write_text('helm:\n  chart: "./ch\\0art"\n')
    with pytest.raises(ConfigError) as info:
        load_app_definitions(tmp_path)
    assert "NUL character" in str(info.value)
    assert "helm.chart" in str(info.value)
