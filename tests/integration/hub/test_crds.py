"""The hub's CRDs on a real API server: what it refuses, what kubectl shows and explains."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from appflow.errors import ApplyError
from appflow.hub.crds import crd_manifests
from appflow.model.crd import leaf_paths
from appflow.model.hub import API_VERSION, KINDS
from tests.integration.hub.conftest import Hub

EXAMPLES = Path(__file__).resolve().parents[3] / "repos-example"


def _app(namespace: str, name: str, definition: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AppFlow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**spec, "definition": definition},
    }


def _refusal(hub: Hub, manifest: dict[str, Any], *verb: str) -> str:
    verb = verb or ("apply", "--server-side")
    done = hub.kubectl(*verb, "-f", "-", stdin=yaml.safe_dump(manifest), check=False)
    assert done.returncode != 0, f"the API server accepted {manifest}"
    return done.stderr


BAD_APPS: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    (
        "percent over 100",
        {"rollout": {"maxUnavailable": "150%"}},
        {},
        "spec.definition.rollout.maxUnavailable",
    ),
    (
        "partition size zero",
        {"rollout": {"autoPartitionSize": 0}},
        {},
        "spec.definition.rollout.autoPartitionSize",
    ),
    (
        "In without values",
        {
            "targets": [
                {"clusterSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}
            ]
        },
        {},
        "spec.definition.targets[0].clusterSelector.matchExpressions[0].values: Invalid value:"
        " values must be set with at least 1 item(s) when operator is In or NotIn",
    ),
    (
        "Exists with values",
        {
            "targetCustomizations": [
                {
                    "clusterSelector": {
                        "matchExpressions": [{"key": "gpu", "operator": "Exists", "values": ["x"]}]
                    }
                }
            ]
        },
        {},
        "spec.definition.targetCustomizations[0].clusterSelector.matchExpressions[0].values",
    ),
    (
        "dependency by name and selector",
        {"dependsOn": [{"name": "mqtt", "selector": {}}]},
        {},
        "spec.definition.dependsOn[0]",
    ),
    (
        "unknown field",
        {"helm": {"chart": "web", "vaules": {}}},
        {},
        ".spec.definition.helm.vaules: field not declared in schema",
    ),
    ("bad namespace", {"namespace": "Web_App"}, {}, "spec.definition.namespace"),
    (
        "repo and catalog",
        {},
        {"repo": "r", "catalog": {"entry": "x"}},
        "repo and catalog cannot be set together",
    ),
    (
        "path without repo",
        {},
        {"path": "apps/web"},
        "spec.repo: Invalid value: repo must be set when path is set",
    ),
]


@pytest.mark.cluster
@pytest.mark.parametrize(
    ("case", "definition", "spec", "expected"), BAD_APPS, ids=[c[0] for c in BAD_APPS]
)
def test_a_bad_appflow_is_refused_naming_the_field(
    hub_crds: Hub,
    hub_namespace: str,
    case: str,
    definition: dict[str, Any],
    spec: dict[str, Any],
    expected: str,
) -> None:
    error = _refusal(hub_crds, _app(hub_namespace, "web", definition, **spec))
    assert expected in error, error
    assert hub_crds.kubectl("get", "appflows", "-n", hub_namespace, "-o", "name").stdout == ""


@pytest.mark.cluster
def test_a_refusal_through_appflow_names_the_field(hub_crds: Hub, hub_namespace: str) -> None:
    kube = hub_crds.kube()
    try:
        with pytest.raises(ApplyError, match=r"spec\.definition\.rollout\.maxUnavailable"):
            kube.apply_sync(_app(hub_namespace, "web", {"rollout": {"maxUnavailable": "101%"}}))
    finally:
        kube.close()


@pytest.mark.cluster
def test_bad_clusters_are_refused(hub_crds: Hub, hub_namespace: str) -> None:
    def cluster(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "Cluster",
            "metadata": {"name": name, "namespace": hub_namespace},
            "spec": spec,
        }

    push = _refusal(hub_crds, cluster("berlin-1", {"kind": "eve-k", "mode": "push"}))
    assert (
        "spec.kubeconfigSecretRef: Invalid value: kubeconfigSecretRef must be set when mode is push"
        in push
    )
    kind = _refusal(hub_crds, cluster("berlin-1", {"kind": "k3s", "mode": "pull"}))
    assert 'spec.kind: Unsupported value: "k3s"' in kind
    long_name = _refusal(hub_crds, cluster("c" * 64, {"kind": "imported", "mode": "pull"}))
    assert "the name must be a DNS-1123 label" in long_name


@pytest.mark.cluster
def test_every_example_definition_is_accepted(hub_crds: Hub, hub_namespace: str) -> None:
    """What appflow.yaml's schema accepts, the CRD accepts: every appflow.yaml in repos-example."""
    files = sorted(EXAMPLES.rglob("appflow.yaml"))
    assert len(files) >= 3
    for i, path in enumerate(files):
        definition = yaml.safe_load(path.read_text())
        manifest = _app(
            hub_namespace,
            f"example-{i}",
            definition,
            repo="examples",
            path=str(path.parent.relative_to(EXAMPLES)),
        )
        hub_crds.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest))


@pytest.mark.cluster
def test_content_is_immutable(hub_crds: Hub, hub_namespace: str) -> None:
    from appflow.kube.content import content_manifest
    from appflow.model.content import Blob

    manifest = content_manifest(Blob(media="objects", data=b'{"a":1}\n'), namespace=hub_namespace)
    hub_crds.kubectl("create", "-f", "-", stdin=yaml.safe_dump(manifest))
    changed = content_manifest(Blob(media="objects", data=b'{"a":2}\n'), namespace=hub_namespace)
    changed["metadata"]["name"] = manifest["metadata"]["name"]
    changed["metadata"]["resourceVersion"] = hub_crds.kubectl(
        "get",
        "appflowcontents",
        manifest["metadata"]["name"],
        "-n",
        hub_namespace,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ).stdout
    error = _refusal(hub_crds, changed, "replace")
    assert "content is immutable" in error


@pytest.mark.cluster
def test_kubectl_get_shows_useful_columns(hub_crds: Hub, hub_namespace: str) -> None:
    kube = hub_crds.kube()
    try:
        kube.apply_sync(
            {
                "apiVersion": API_VERSION,
                "kind": "Cluster",
                "metadata": {
                    "name": "berlin-1",
                    "namespace": hub_namespace,
                    "labels": {"env": "prod"},
                },
                "spec": {"kind": "eve-k", "mode": "pull"},
            }
        )
        kube.apply_sync(
            _app(hub_namespace, "web", {"namespace": "web"}, repo="retail", path="apps/web")
        )
        status_writes = [
            (
                "clusters",
                "berlin-1",
                {
                    "state": "Online",
                    "kubernetesVersion": "v1.31.2+k3s1",
                    "nodeCount": 3,
                    "display": {"readyApps": "1/1"},
                    "lastSeen": "2026-01-01T00:00:00Z",
                },
            ),
            (
                "appflows",
                "web",
                {"revision": 7, "display": {"readyClusters": "1/1", "state": "Ready"}},
            ),
        ]
        for plural, name, status in status_writes:
            hub_crds.kubectl(
                "patch",
                plural,
                name,
                "-n",
                hub_namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                yaml.safe_dump({"status": status}),
            )
    finally:
        kube.close()
    out = hub_crds.kubectl("get", "appflows,clusters", "-A").stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    headers = [line for line in lines if line[0] == "NAMESPACE"]
    assert ["NAMESPACE", "NAME", "REPO", "PATH", "REVISION", "READY", "STATE", "AGE"] in headers
    assert [
        "NAMESPACE",
        "NAME",
        "KIND",
        "MODE",
        "STATE",
        "VERSION",
        "NODES",
        "APPS-READY",
        "LAST-SEEN",
        "AGE",
    ] in headers
    rows = {(line[0], line[1]): line for line in lines if line[0] == hub_namespace}
    assert rows[(hub_namespace, "appflow.appflow.dev/web")][2:7] == [
        "retail",
        "apps/web",
        "7",
        "1/1",
        "Ready",
    ]
    assert rows[(hub_namespace, "cluster.appflow.dev/berlin-1")][2:8] == [
        "eve-k",
        "pull",
        "Online",
        "v1.31.2+k3s1",
        "3",
        "1/1",
    ]


def _explain_targets() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for manifest, kind in zip(crd_manifests(), KINDS, strict=True):
        schema = manifest["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for path, node in leaf_paths(schema):
            out.append((kind.plural, path, str(node.get("description", ""))))
    return out


@pytest.mark.cluster
def test_kubectl_explain_works_on_every_field(hub_crds: Hub) -> None:
    targets = _explain_targets()
    assert len(targets) > 300

    def explain(target: tuple[str, str, str]) -> str | None:
        plural, path, description = target
        done = hub_crds.kubectl("explain", f"{plural}.{path}", check=False)
        first_words = " ".join(description.split()[:4])
        flat = " ".join(done.stdout.split())
        if done.returncode != 0 or first_words not in flat:
            return f"{plural}.{path}: rc={done.returncode} {done.stderr.strip()[:200]}"
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for p in pool.map(explain, targets) if p]
    assert not problems, problems[:10]
