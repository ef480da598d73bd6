"""fleet.yaml read as Fleet documents it: chart forms, namespaces, per-target choices, and the
fields real repositories use (pure logic: model, the request a cluster gets, path checks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from appflow.engine.desired import options_for, render_request, values_from_refs, with_app_namespace
from appflow.engine.stages.types import SyncOptions
from appflow.errors import ConfigError, RenderError
from appflow.model.appdef import (
    AppDefinition,
    ClusterTarget,
    Dependency,
    LabelSelector,
    RolloutSpec,
    ValuesFrom,
    named_paths,
)
from appflow.model.capabilities import Capabilities
from appflow.model.deps import resolve_dependency_states
from appflow.model.objects import ANNOTATION_REPLACE, ANNOTATION_TAKE_OWNERSHIP
from appflow.model.rollout import partitions_allowed_to_fail
from appflow.model.targeting import ClusterInfo, select_clusters
from appflow.render.documents import force_namespace
from appflow.render.kustomize import kustomization_folders
from appflow.sources.appdef import load_app_definitions
from tests.unit.test_fleet_yaml import fleet

CLUSTERS = [
    ClusterInfo(name="dev-1", labels={"env": "dev"}),
    ClusterInfo(name="test-1", labels={"env": "test"}),
    ClusterInfo(name="prod-1", labels={"env": "prod"}),
]


def request_for(app: AppDefinition, cluster: ClusterInfo, root: Path, **extra: Any) -> Any:
    return render_request(
        app,
        repo_root=root,
        source_digest="d",
        cluster=cluster,
        groups={},
        capabilities=Capabilities(kube_version="v1.30.0"),
        **extra,
    )


# -- chart forms (items 4 and 5) -------------------------------------------------------------


def test_an_oci_repo_without_a_chart_is_the_chart_itself(tmp_path: Path) -> None:
    app = fleet("helm:\n  repo: oci://registry.example/charts/web\n  version: 1.2.0\n")
    assert app.kind == "helm"
    assert app.helm is not None
    assert (app.helm.chart, app.helm.repo) == ("oci://registry.example/charts/web", None)
    chart = request_for(app, CLUSTERS[0], tmp_path).helm
    assert (chart.name, chart.repo, chart.version) == (
        "oci://registry.example/charts/web",
        None,
        "1.2.0",
    )


def test_an_https_repo_without_a_chart_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("helm:\n  repo: https://charts.example.com\n")
    assert (info.value.where.field, info.value.where.line) == ("helm.repo", 2)
    assert "helm.chart must name the chart in it" in str(info.value)


def test_a_chart_url_is_downloaded_not_a_path(tmp_path: Path) -> None:
    app = fleet("helm:\n  chart: https://charts.example.com/web-1.0.0.tgz\n")
    assert app.kind == "helm"
    assert named_paths(app) == []
    chart = request_for(app, CLUSTERS[0], tmp_path).helm
    assert (chart.url, chart.path) == ("https://charts.example.com/web-1.0.0.tgz", None)


def test_go_getter_forms_are_named_unsupported() -> None:
    for chart in ("git::https://github.com/x/y//chart", "git@github.com:x/y//chart"):
        with pytest.raises(ConfigError, match="go-getter sources are not read"):
            fleet(f"helm:\n  chart: '{chart}'\n")


# -- timeoutSeconds and disableDependencyUpdate (items 6 and 7) ------------------------------


@pytest.mark.parametrize(("value", "waits"), [(0, False), (-1, False), (30, True)])
def test_timeout_seconds_zero_or_less_means_do_not_wait(value: int, waits: bool) -> None:
    app = fleet(f"helm:\n  chart: c\n  timeoutSeconds: {value}\n")
    assert app.sync_policy.timeout_seconds == value
    assert app.sync_policy.waits is waits
    options = options_for(app, SyncOptions(wait=True, wait_timeout=300.0))
    assert options.wait is waits
    if waits:
        assert options.wait_timeout == value


def test_timeout_seconds_must_be_a_number() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("helm:\n  chart: c\n  timeoutSeconds: soon\n")
    assert (info.value.where.field, info.value.where.line) == ("helm.timeoutSeconds", 3)


def test_disable_dependency_update_reaches_the_chart_reference(tmp_path: Path) -> None:
    (tmp_path / "site" / "c").mkdir(parents=True)
    app = fleet("helm:\n  chart: c\n  disableDependencyUpdate: true\n")
    assert app.helm is not None
    assert app.helm.dependency_update is False
    assert request_for(app, CLUSTERS[0], tmp_path).helm.dependency_update is False
    assert fleet("helm:\n  chart: c\n").helm.dependency_update is True  # type: ignore[union-attr]


# -- namespaces (item 15) --------------------------------------------------------------------


def test_fleet_namespace_forces_and_customizations_override_it(tmp_path: Path) -> None:
    app = fleet(
        """
namespace: shop
targetCustomizations:
  - name: prod
    clusterSelector: {matchLabels: {env: prod}}
    namespace: shop-prod
  - name: test
    clusterSelector: {matchLabels: {env: test}}
    defaultNamespace: ignored-when-forced
"""
    )
    dev, test, prod = (request_for(app, c, tmp_path) for c in CLUSTERS)
    assert (dev.namespace, dev.force_namespace) == ("shop", True)
    assert (test.namespace, test.force_namespace) == ("shop", True)
    assert (prod.namespace, prod.force_namespace) == ("shop-prod", True)


def test_default_namespace_only_fills_in(tmp_path: Path) -> None:
    app = fleet(
        "defaultNamespace: shop\ntargetCustomizations:\n"
        "  - clusterName: prod-1\n    defaultNamespace: shop-prod\n"
    )
    dev, _, prod = (request_for(app, c, tmp_path) for c in CLUSTERS)
    assert (dev.namespace, dev.force_namespace) == ("shop", False)
    assert (prod.namespace, prod.force_namespace) == ("shop-prod", False)


def test_forcing_a_namespace_moves_namespaced_objects_and_refuses_cluster_scoped() -> None:
    objects = (
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "x"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}},
    )
    moved = force_namespace(objects, "shop")
    assert [o["metadata"]["namespace"] for o in moved] == ["shop", "shop"]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}
    with pytest.raises(RenderError) as info:
        force_namespace(({**role, "metadata": {"name": "reader"}},), "shop")
    assert "ClusterRole reader is cluster-scoped" in str(info.value)
    assert "use defaultNamespace" in str(info.value)


def test_namespace_labels_and_annotations_mark_the_created_namespace() -> None:
    app = fleet(
        "defaultNamespace: shop\nnamespaceLabels: {team: a}\nnamespaceAnnotations: {x: y}\n"
    )
    assert (app.namespace_labels, app.namespace_annotations) == ({"team": "a"}, {"x": "y"})
    used = ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "shop"}},)
    created = with_app_namespace(used, "shop", labels={"team": "a"}, annotations={"x": "y"})[0]
    assert created["kind"] == "Namespace"
    assert created["metadata"]["labels"] == {"team": "a"}
    # Shared: owned by no app (apps deploying into one namespace are no conflict).
    assert created["metadata"]["annotations"] == {
        "x": "y",
        "appflow.dev/shared": "true",
        "appflow.dev/prune": "false",
    }
    # Asked-for labels are set even on a namespace Kubernetes made itself.
    assert with_app_namespace((), "default", labels={"team": "a"})[0]["metadata"]["name"] == (
        "default"
    )
    assert with_app_namespace((), "default") == ()


# -- per-target choices (items 2 and 13) -----------------------------------------------------


def test_per_target_kustomize_dirs_choose_what_each_cluster_builds(tmp_path: Path) -> None:
    app = fleet(
        """
targetCustomizations:
  - clusterSelector: {matchLabels: {env: dev}}
    kustomize: {dir: overlays/dev}
  - clusterSelector: {matchLabels: {env: prod}}
    kustomize: {dir: overlays/prod}
"""
    )
    assert app.kind == "yaml"
    dev, test, prod = (request_for(app, c, tmp_path) for c in CLUSTERS)
    assert (dev.kind, dev.kustomize_dir) == ("kustomize", "overlays/dev")
    assert (test.kind, test.kustomize_dir) == ("yaml", None)
    assert (prod.kind, prod.kustomize_dir) == ("kustomize", "overlays/prod")


def test_helm_with_kustomize_dirs_post_renders_per_target(tmp_path: Path) -> None:
    app = fleet(
        """
helm:
  chart: https://charts.example.com/guestbook-0.0.0.tgz
kustomize:
  dir: overlays/base
targetCustomizations:
  - clusterName: prod-1
    kustomize: {dir: overlays/prod}
"""
    )
    dev, _, prod = (request_for(app, c, tmp_path) for c in CLUSTERS)
    assert (dev.kind, dev.kustomize_dir) == ("helm", "overlays/base")
    assert (prod.kind, prod.kustomize_dir) == ("helm", "overlays/prod")


def test_do_not_deploy_takes_clusters_out_of_the_targets() -> None:
    app = fleet(
        """
targetCustomizations:
  - name: not-on-prod
    clusterSelector: {matchLabels: {env: prod}}
    doNotDeploy: true
  - name: everything-else
    clusterSelector: {}
"""
    )
    assert [c.name for c in select_clusters(app, CLUSTERS)] == ["dev-1", "test-1"]


def test_values_from_is_read_with_fleet_defaults() -> None:
    app = fleet(
        """
helm:
  chart: oci://r.example/c
  valuesFrom:
    - configMapKeyRef: {name: site-values}
    - secretKeyRef: {name: creds, namespace: vault, key: extra.yaml}
targetCustomizations:
  - clusterName: prod-1
    namespace: prod-ns
    helm:
      valuesFrom:
        - configMapKeyRef: {name: prod-values}
"""
    )
    refs, namespace = values_from_refs(app, CLUSTERS[0], {})
    assert refs == (
        ValuesFrom(kind="ConfigMap", name="site-values"),
        ValuesFrom(kind="Secret", name="creds", namespace="vault", key="extra.yaml"),
    )
    assert namespace == "default"
    refs, namespace = values_from_refs(app, CLUSTERS[2], {})
    assert refs[-1] == ValuesFrom(kind="ConfigMap", name="prod-values")
    assert namespace == "prod-ns"


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("{configMapKeyRef: {name: a}, secretKeyRef: {name: b}}", "exactly one of"),
        ("{configMapKeyRef: {key: a}}", "is required"),
        ("{configMapRef: {name: a}}", "unknown field 'configMapRef'"),
    ],
)
def test_bad_values_from_entries_are_named(entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        fleet(f"helm:\n  chart: c\n  valuesFrom:\n    - {entry}\n")
    assert problem in str(info.value)
    assert info.value.where.line == 4


def test_force_and_take_ownership_mark_every_object_of_any_kind(tmp_path: Path) -> None:
    app = fleet("helm:\n  takeOwnership: true\n  force: true\n")
    assert app.kind == "yaml"  # Fleet applies these deploy options to every bundle
    request = request_for(app, CLUSTERS[0], tmp_path)
    assert dict(request.object_annotations) == {
        ANNOTATION_REPLACE: "true",
        ANNOTATION_TAKE_OWNERSHIP: "true",
    }
    assert dict(request_for(fleet(""), CLUSTERS[0], tmp_path).object_annotations) == {}


def test_skip_schema_validation_reaches_the_request(tmp_path: Path) -> None:
    (tmp_path / "site" / "c").mkdir(parents=True)
    app = fleet("helm:\n  chart: c\n  skipSchemaValidation: true\n")
    assert request_for(app, CLUSTERS[0], tmp_path).skip_schema_validation is True


def test_accepted_states_make_a_dependency_met_in_them() -> None:
    app = fleet(
        """
dependsOn:
  - name: db
    acceptedStates: [Ready, Modified]
  - selector: {matchLabels: {role: base}}
    acceptedStates: [Pending, Ready]
"""
    )
    assert app.depends_on[0] == Dependency(name="db", accepted_states=("Ready", "Modified"))
    assert app.depends_on[1].accepted_states == ("WaitApplied", "Ready")
    db = AppDefinition(name="db", path="db", kind="yaml", labels={"role": "base"})
    net = AppDefinition(name="net", path="net", kind="yaml", labels={"role": "base"})
    states = resolve_dependency_states([app, db, net])["site"]
    # db is named twice: both entries must hold.
    assert states == {"db": frozenset({"Ready"}), "net": frozenset({"WaitApplied", "Ready"})}


def test_an_unknown_accepted_state_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        fleet("dependsOn:\n  - name: db\n    acceptedStates: [Done]\n")
    assert info.value.where.field == "dependsOn[0].acceptedStates[0]"
    assert "'Done' is not a deployment state" in str(info.value)


def test_max_unavailable_partitions() -> None:
    app = fleet("rolloutStrategy:\n  maxUnavailablePartitions: 1\n  autoPartitionSize: 1\n")
    assert app.rollout.max_unavailable_partitions == 1
    assert partitions_allowed_to_fail(app.rollout, 3) == 1
    assert partitions_allowed_to_fail(RolloutSpec(), 3) == 0
    assert partitions_allowed_to_fail(RolloutSpec(max_unavailable_partitions="50%"), 4) == 2


def test_override_targets_still_select() -> None:
    app = fleet("overrideTargets:\n  - clusterSelector: {matchLabels: {env: dev}}\n")
    assert app.targets == (
        ClusterTarget(name="target000", selector=LabelSelector(match_labels={"env": "dev"})),
    )


# -- every path a definition names stays in the source (issue 10 item 8) ---------------------


def _repo(tmp_path: Path, fleet_yaml: str, files: dict[str, str] | None = None) -> Path:
    root = tmp_path / "repo"
    app = root / "app"
    app.mkdir(parents=True)
    (app / "fleet.yaml").write_text(fleet_yaml)
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    for name, text in (files or {}).items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    return root


def test_a_missing_customization_folder_names_file_line_and_folder(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        "targetCustomizations:\n  - clusterName: a\n    kustomize:\n      dir: overlays/staging\n",
    )
    with pytest.raises(ConfigError) as info:
        load_app_definitions(root)
    err = info.value
    assert (err.where.file, err.where.line, err.where.field) == (
        "app/fleet.yaml",
        4,
        "targetCustomizations[0].kustomize.dir",
    )
    assert "kustomize folder app/overlays/staging does not exist" in str(err)


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("kustomize:\n  dir: ../../..\n", "kustomize.dir"),
        ("kustomize:\n  dir: /etc\n", "kustomize.dir"),
        ("helm:\n  chart: ../../outside-chart\n", "helm.chart"),
        ("helm:\n  chart: c\n  valuesFiles: [/etc/hostname]\n", "helm.valuesFiles[0]"),
        (
            "targetCustomizations:\n  - clusterName: a\n    helm:\n      valuesFiles: [../../x.yaml]\n",
            "targetCustomizations[0].helm.valuesFiles[0]",
        ),
        ("targetCustomizations:\n  - clusterName: a\n    yaml: {overlays: [..]}\n", None),
    ],
)
def test_paths_outside_the_source_are_refused(
    tmp_path: Path, yaml_text: str, field: str | None
) -> None:
    outside = tmp_path / "outside-chart"
    outside.mkdir()
    (outside / "Chart.yaml").write_text("apiVersion: v2\nname: o\nversion: 1.0.0\n")
    root = _repo(tmp_path, yaml_text, {"c/Chart.yaml": "apiVersion: v2\nname: c\nversion: 1.0.0\n"})
    with pytest.raises(ConfigError) as info:
        load_app_definitions(root)
    if field is not None:
        assert info.value.where.field == field
        assert "points outside the repository" in str(info.value)
    assert info.value.where.file == "app/fleet.yaml"


def test_a_symlink_out_of_the_source_is_refused(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "kustomization.yaml").write_text("resources: []\n")
    root = _repo(tmp_path, "kustomize:\n  dir: linked\n")
    os.symlink(host, root / "app" / "linked")
    with pytest.raises(ConfigError, match="points outside the repository"):
        load_app_definitions(root)


def test_a_kustomization_reaching_out_of_the_source_is_refused(tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "kustomization.yaml").write_text("resources: [secret.yaml]\n")
    root = tmp_path / "repo"
    (root / "base").mkdir(parents=True)
    (root / "base" / "kustomization.yaml").write_text("resources: [cm.yaml]\n")
    overlay = root / "overlays" / "dev"
    overlay.mkdir(parents=True)
    (overlay / "kustomization.yaml").write_text(
        "resources:\n  - ../../base\n  - ../../../host\npatches:\n  - path: p.yaml\n"
    )
    with pytest.raises(RenderError) as info:
        kustomization_folders(overlay, root=root)
    err = info.value
    assert (err.where.file, err.where.line, err.where.field) == (
        "overlays/dev/kustomization.yaml",
        3,
        "resources[1]",
    )
    assert "'../../../host' points outside the source" in str(err)
    (overlay / "kustomization.yaml").write_text("resources:\n  - ../../base\n")
    assert kustomization_folders(overlay, root=root) == [overlay, root / "base"]


def test_a_folder_without_kustomization_is_named(tmp_path: Path) -> None:
    root = _repo(tmp_path, "kustomize:\n  dir: plain\n", {"plain/cm.yaml": "a: b\n"})
    with pytest.raises(ConfigError) as info:
        load_app_definitions(root)
    assert "kustomize folder app/plain has no kustomization.yaml" in str(info.value)
    assert info.value.where.line == 2


def test_fleet_targets_are_target_customizations_before_the_others(tmp_path: Path) -> None:
    # Fleet appends targetCustomizations to fleet.yaml's older `targets` and reads
    # both as customizations (fleet-examples' multi-cluster repositories use `targets`).
    app = fleet(
        """
targets:
  - name: dev
    clusterSelector: {matchLabels: {env: dev}}
    kustomize: {dir: overlays/dev}
targetCustomizations:
  - name: everything
    clusterSelector: {}
    kustomize: {dir: overlays/all}
"""
    )
    assert [c.target.name for c in app.customizations] == ["dev", "everything"]
    assert [p.field for p in named_paths(app)] == [
        ("targets", 0, "kustomize", "dir"),
        ("targetCustomizations", 0, "kustomize", "dir"),
    ]
    dev, test, _ = (request_for(app, c, tmp_path) for c in CLUSTERS)
    assert (dev.kustomize_dir, test.kustomize_dir) == ("overlays/dev", "overlays/all")
    with pytest.raises(ConfigError) as info:
        fleet("targets:\n  - clusterName: a\n    helm:\n      chart: x\n")
    assert info.value.where.field == "targets[0].helm.chart"
    assert "per-cluster charts are not supported" in str(info.value)


def test_fleet_values_files_merge_over_inline_values_and_ciphertext_is_refused(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    (site / "c").mkdir(parents=True)
    (site / "prod.yaml").write_text("replicas: 5\ntier: large\n")
    app = fleet(
        "helm:\n  chart: c\n  values: {replicas: 3, tier: small}\n  valuesFiles: [prod.yaml]\n"
    )
    request = request_for(app, CLUSTERS[0], tmp_path)
    # Fleet merges valuesFiles over the inline values; helm gets one merged layer.
    assert dict(request.values) == {"replicas": 5, "tier": "large"}
    assert request.values_files == ()
    (site / "prod.yaml").write_text("replicas: ENC[AES256_GCM,data:x]\nsops: {version: 3.9.0}\n")
    with pytest.raises(ConfigError, match="SOPS-encrypted") as info:
        request_for(app, CLUSTERS[0], tmp_path)
    assert info.value.where.file == "site/prod.yaml"
