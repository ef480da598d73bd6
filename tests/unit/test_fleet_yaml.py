"""fleet.yaml: Fleet's documented fields are honoured, the rest is named clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appflow.errors import ConfigError
from appflow.model.appdef import (
    AppDefinition,
    ClusterTarget,
    Dependency,
    LabelSelector,
    from_fleet_document,
)
from appflow.sources.appdef import load_app_definitions, load_yaml_with_positions

DATA = Path(__file__).parent / "testdata" / "appdef"


def fleet(text: str, *, default_kind: Any = "yaml") -> AppDefinition:
    doc, positions = load_yaml_with_positions(text, file="site/fleet.yaml")
    return from_fleet_document(
        doc or {},
        path="site",
        file="site/fleet.yaml",
        default_name="site",
        default_kind=default_kind,
        positions=positions,
    )


def test_fleet_yaml_with_target_customizations_is_read() -> None:
    (app,) = load_app_definitions(DATA / "repo", paths=("apps/edge-agent",))
    assert (app.name, app.kind, app.origin) == ("apps-edge-agent", "helm", "fleet.yaml")
    assert app.namespace == "edge"
    assert app.labels == {"role": "agent"}
    assert app.helm is not None
    assert (app.helm.repo, app.helm.chart, app.helm.version, app.helm.release_name) == (
        "https://charts.example.com",
        "edge-agent",
        "~1.4",
        "agent",
    )
    assert app.helm.values == {"clusterName": "${ .ClusterName }"}
    eu, everything = app.customizations
    assert eu.target == ClusterTarget(
        name="eu", selector=LabelSelector(match_labels={"region": "eu"})
    )
    assert eu.helm_values == {"replicas": 2}
    # Fleet: `clusterSelector: {}` matches every cluster.
    assert everything.target.selector == LabelSelector()
    assert everything.namespace == "edge-default"
    assert app.depends_on == (Dependency(selector=LabelSelector(match_labels={"role": "base"})),)
    # paused: changes wait for a manual sync.
    assert app.sync_policy.auto is False
    assert app.targets == ()  # no targets: every cluster


def test_harmless_fleet_fields_become_warnings_with_line() -> None:
    (app,) = load_app_definitions(DATA / "repo", paths=("apps/edge-agent",))
    assert app.warnings == (
        "apps/edge-agent/fleet.yaml:27: diff is ignored: appflow compares by server-side apply "
        "field ownership, so compare patches are not needed",
    )


def test_unsupported_field_names_field_file_and_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_app_definitions(DATA / "unsupported-fleet")
    err = info.value
    assert (err.where.file, err.where.line, err.where.field) == (
        "app/fleet.yaml",
        4,
        "downstreamResources",
    )
    assert str(err).startswith(
        "app/fleet.yaml:4:1, field downstreamResources: fleet.yaml field downstreamResources "
        "is not supported"
    )
    assert "management cluster" in str(err)


@pytest.mark.parametrize(
    ("text", "field", "line"),
    [
        ("imageScans:\n  - image: x\n", "imageScans", 1),
        ("downstreamResources:\n  - {kind: Secret, name: s}\n", "downstreamResources", 1),
        ("helm:\n  chart: c\n  templateValues: {a: b}\n", "helm.templateValues", 3),
        (
            "targetCustomizations:\n  - name: a\n    clusterName: x\n    helm:\n      version: '2'\n",
            "targetCustomizations[0].helm.version",
            5,
        ),
        (
            "targetCustomizations:\n  - clusterGroupSelector:\n      matchLabels: {a: b}\n",
            "targetCustomizations[0].clusterGroupSelector",
            2,
        ),
        (
            "targetCustomizations:\n  - clusterName: a\n    correctDrift: {enabled: true}\n",
            "targetCustomizations[0].correctDrift",
            3,
        ),
        ("helm:\n  chart: git::https://x/y\n", "helm.chart", 2),
    ],
)
def test_each_rejected_field_is_named(text: str, field: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        fleet(text)
    assert info.value.where.field == field
    assert info.value.where.line == line
    assert "is not supported by appflow" in str(info.value)


def test_rejected_fields_set_to_off_are_accepted() -> None:
    app = fleet("helm:\n  chart: c\n  templateValues: {}\nimageScans: []\ndownstreamResources:\n")
    assert app.kind == "helm"
    assert app.warnings == ()


@pytest.mark.parametrize("field", ["takeOwnership", "force", "timeoutSeconds", "atomic"])
def test_top_level_helm_options_in_a_customization_are_named_as_such(field: str) -> None:
    with pytest.raises(ConfigError) as info:
        fleet(f"targetCustomizations:\n  - clusterName: a\n    helm:\n      {field}: 1\n")
    assert info.value.where.field == f"targetCustomizations[0].helm.{field}"
    assert info.value.where.line == 4
    assert "is supported at the top level only" in str(info.value)
    assert "check the spelling" not in str(info.value)


def test_unknown_field_is_reported_as_such() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("defaultNamespace: a\nhelmm:\n  chart: c\n")
    assert str(info.value).startswith(
        "site/fleet.yaml:2:1, field helmm: unknown field 'helmm' in fleet.yaml"
    )


def test_fleet_mappings_to_sync_policy_rollout_and_targets() -> None:
    app = fleet(
        """
keepResources: true
correctDrift:
  enabled: true
overrideTargets:
  - name: prod
    clusterSelector:
      matchLabels: {env: prod}
rolloutStrategy:
  maxUnavailable: 15%
  autoPartitionSize: 10%
  partitions:
    - name: canary
      clusterGroup: canaries
      maxUnavailable: 10%
helm:
  chart: ./chart
  atomic: true
  disablePreProcess: true
  timeoutSeconds: 120
"""
    )
    # Fleet's keepResources keeps objects when the app is deleted; pruning stays on.
    policy = app.sync_policy
    assert (policy.auto, policy.prune, policy.self_heal, policy.keep_resources) == (
        True,
        True,
        True,
        True,
    )
    assert app.targets == (
        ClusterTarget(name="prod", selector=LabelSelector(match_labels={"env": "prod"})),
    )
    assert app.rollout.max_unavailable == "15%"
    assert app.rollout.auto_partition_size == "10%"
    assert app.rollout.partitions[0].target.cluster_group == "canaries"
    assert app.rollout.auto_rollback is True
    assert app.helm is not None
    assert (app.helm.chart, app.helm.templating, app.sync_policy.timeout_seconds) == (
        "./chart",
        False,
        120,
    )


def test_impossible_rollout_numbers_are_rejected() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("rolloutStrategy:\n  maxUnavailable: 150%\n")
    assert info.value.where.field == "rolloutStrategy.maxUnavailable"
    assert "not '150%'" in str(info.value)


def test_namespace_is_forced_and_default_namespace_is_a_default() -> None:
    # Fleet: `namespace` assigns every object to it; defaultNamespace only fills in.
    app = fleet("namespace: shop\ndefaultNamespace: other\n")
    assert (app.namespace, app.force_namespace) == ("shop", "shop")
    assert app.warnings == ()
    app = fleet("defaultNamespace: other\n")
    assert (app.namespace, app.force_namespace) == ("other", None)


def test_values_only_helm_section_does_not_make_a_chart() -> None:
    assert fleet("helm:\n  values: {a: 1}\n").kind == "yaml"
    assert fleet("helm:\n  values: {a: 1}\n", default_kind="helm").kind == "helm"
    assert fleet("kustomize:\n  dir: overlays/prod\n").kind == "kustomize"


def test_chart_with_kustomize_dir_is_post_rendered_by_it() -> None:
    app = fleet("kustomize:\n  dir: k\n", default_kind="helm")
    assert app.kind == "helm"
    assert app.kustomize is not None
    assert app.kustomize.dir == "k"
    # A remote chart beside a kustomization.yaml: Fleet post-renders with the folder's.
    app = fleet("helm:\n  chart: oci://r.example/c\n", default_kind="kustomize")
    assert app.kind == "helm"
    assert app.kustomize is not None
    assert app.kustomize.dir == "."


def test_unquoted_numeric_version_asks_for_quotes() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("helm:\n  chart: c\n  version: 1.10\n")
    assert "must be a string, not the number 1.1" in str(info.value)
    assert 'quote it: version: "1.10"' in str(info.value)


def test_empty_fleet_yaml_is_a_plain_bundle(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "fleet.yaml").write_text("")
    (app,) = load_app_definitions(tmp_path)
    assert (app.name, app.kind, app.namespace, app.origin) == ("b", "yaml", "default", "fleet.yaml")


def test_dependency_needs_exactly_one_of_name_or_selector() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("dependsOn:\n  - {}\n")
    assert info.value.where.field == "dependsOn[0]"
    assert "give exactly one of name or selector" in str(info.value)
