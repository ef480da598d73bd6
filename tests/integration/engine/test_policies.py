"""Operator policies on real clusters: guard rails (item 13) and helm lookup (item 10).

Guard rails are checked on every target before any write: a sync that breaks a
policy of one cluster touches no cluster, and says which policy and rule.
A chart's lookup needs an operator's policy, works on every sync, and reads
only the app's namespace unless the operator widens it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    exists,
    live,
    one_line,
    register_local,
    snapshot,
    write_files,
)

pytestmark = pytest.mark.cluster


def policy(*args: str) -> None:
    result = cli("policy", "set", *args)
    assert result.exit_code == 0, result.output


def refused_everywhere(fleet: Fleet, space: Space, app: str) -> str:
    """Sync APP, which must be refused without a change on any cluster; its message."""
    before = snapshot(fleet.sandbox, space)
    result = cli("sync", app)
    assert result.exit_code == 1, result.output
    assert snapshot(fleet.sandbox, space) == before, "a refused sync touched a cluster"
    return one_line(result.output)


# -- item 13: guard rails ---------------------------------------------------------------------


@pytest.fixture
def other_namespace(fleet: Fleet, space: Space) -> Iterator[str]:
    """A second namespace on every cluster, deleted afterwards with all in it."""
    name = f"other-{space.suffix}"
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            kube.apply_sync({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        finally:
            kube.close()
    yield name
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            kube.delete_sync("v1", "Namespace", name)
        finally:
            kube.close()


def test_an_object_outside_the_allowed_namespaces_is_refused_on_every_cluster(
    fleet: Fleet, space: Space, tmp_path: Path, other_namespace: str
) -> None:
    app = space.app("rails")
    stray = f"stray-{space.suffix}"
    folder = write_files(
        tmp_path / "app",
        {
            "app.yaml": [
                configmap("mine", space.namespace, {"k": "v"}),
                configmap(stray, other_namespace, {"k": "v"}),
            ]
        },
    )
    register_local(fleet, app, folder)
    last = fleet.cluster_names[-1]
    policy("cluster", last, "--namespace", space.namespace, "--namespace", "team-*")

    text = refused_everywhere(fleet, space, app)

    assert f"ConfigMap/{other_namespace}/{stray}" in text
    assert f"writes to namespace {other_namespace!r}" in text
    assert f"rule 'namespaces' of the policy of cluster {last}" in text
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", stray, other_namespace)

    # The operator lifts the rule: the same app goes through everywhere.
    policy("cluster", last, "--any-namespace")
    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    try:
        for index in range(len(fleet.cluster_names)):
            assert live(fleet.sandbox, index, "v1", "ConfigMap", "mine", space.namespace)
    finally:
        assert cli("app", "delete", app).exit_code == 0


def test_a_group_policy_refuses_cluster_scoped_objects(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("scoped")
    cluster_role = f"reader-{space.suffix}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": cluster_role},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    folder = write_files(
        tmp_path / "app",
        {"app.yaml": [configmap("mine", space.namespace, {"k": "v"}), role]},
    )
    register_local(fleet, app, folder)
    group = f"prod-{space.suffix}"
    assert cli("group", "add", group, "-l", "env=prod").exit_code == 0
    policy("group", group, "--no-cluster-scoped")
    (listed,) = [p for p in json.loads(cli("policy", "list", "-o", "json").stdout)]
    assert (listed["scope"], listed["name"], listed["clusterScoped"]) == ("group", group, False)

    text = refused_everywhere(fleet, space, app)

    assert f"ClusterRole.rbac.authorization.k8s.io/{cluster_role}" in text
    assert f"rule 'cluster-scoped' of the policy of group {group}" in text
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            found = kube.get_sync("rbac.authorization.k8s.io/v1", "ClusterRole", cluster_role)
        finally:
            kube.close()
        assert found is None

    assert cli("policy", "remove", "group", group).exit_code == 0
    assert cli("group", "remove", group).exit_code == 0


def test_a_policy_for_something_that_does_not_exist_is_refused(fleet: Fleet) -> None:
    result = cli("policy", "set", "cluster", "no-such-cluster", "--no-cluster-scoped")
    assert result.exit_code == 1
    assert "no such cluster" in result.output


# -- item 10: helm lookup ---------------------------------------------------------------------

COPY = """{{- $source := lookup "v1" "Secret" "%(ns)s" "source" }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: copied
data:
  seen: {{ if $source }}{{ index $source.data "value" | b64dec | quote }}{{ else }}"nothing"{{ end }}
"""

LIST_ALL = """{{- $all := lookup "v1" "Secret" "" "" }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: counted
data:
  secrets: {{ len $all.items | quote }}
"""


def chart_app(folder: Path, app: str, namespace: str, template: str) -> Path:
    return write_files(
        folder,
        {
            "appflow.yaml": f"name: {app}\nnamespace: {namespace}\n"
            "helm:\n  chart: chart\n  lookup: true\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: copy\nversion: 0.1.0\n",
            "chart/templates/copy.yaml": template,
        },
    )


def put_secret(fleet: Fleet, namespace: str, value: str) -> None:
    for index in range(len(fleet.cluster_names)):
        kube = fleet.sandbox.kube(index)
        try:
            kube.apply_sync(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "source", "namespace": namespace},
                    "stringData": {"value": value},
                },
                field_manager="someone-else",
            )
        finally:
            kube.close()


def allow_lookup(fleet: Fleet, *extra: str) -> None:
    for name in fleet.cluster_names:
        policy("cluster", name, "--helm-lookup", "allow", *extra)


def test_lookup_needs_an_operators_policy(fleet: Fleet, space: Space, tmp_path: Path) -> None:
    app = space.app("asks")
    ns = space.namespace
    register_local(fleet, app, chart_app(tmp_path / "app", app, ns, COPY % {"ns": ns}))
    text = refused_everywhere(fleet, space, app)
    assert "the chart asks for helm lookup, which is not allowed here" in text
    assert "--helm-lookup allow" in text


def test_lookup_works_on_every_sync_and_reads_the_apps_namespace(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("lookup")
    ns = space.namespace
    put_secret(fleet, ns, "from-the-cluster")
    register_local(fleet, app, chart_app(tmp_path / "app", app, ns, COPY % {"ns": ns}))
    allow_lookup(fleet)
    for attempt in ("first", "second", "third"):
        result = cli("sync", app, "--wait")
        assert result.exit_code == 0, f"{attempt} sync: {result.output}"
    for index in range(len(fleet.cluster_names)):
        copied = live(fleet.sandbox, index, "v1", "ConfigMap", "copied", ns)
        assert copied["data"]["seen"] == "from-the-cluster"


def test_lookup_outside_the_apps_namespace_sees_nothing_until_widened(
    fleet: Fleet, space: Space, tmp_path: Path, other_namespace: str
) -> None:
    app = space.app("peek")
    ns = space.namespace
    put_secret(fleet, other_namespace, "another-teams-password")
    template = COPY % {"ns": other_namespace}
    register_local(fleet, app, chart_app(tmp_path / "app", app, ns, template))
    allow_lookup(fleet)
    assert cli("sync", app).exit_code == 0
    for index in range(len(fleet.cluster_names)):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "copied", ns)["data"] == {
            "seen": "nothing"
        }

    allow_lookup(fleet, "--read-namespace", other_namespace)
    assert cli("sync", app).exit_code == 0
    for index in range(len(fleet.cluster_names)):
        seen = live(fleet.sandbox, index, "v1", "ConfigMap", "copied", ns)["data"]["seen"]
        assert seen == "another-teams-password"


def test_listing_every_namespace_is_a_clear_render_error(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("everything")
    register_local(fleet, app, chart_app(tmp_path / "app", app, space.namespace, LIST_ALL))
    allow_lookup(fleet)
    text = refused_everywhere(fleet, space, app)
    assert f"helm lookup may read only namespaces {space.namespace}" in text


def test_a_helm_release_needs_an_operators_policy(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("release")
    ns = space.namespace
    folder = write_files(
        tmp_path / "app",
        {
            "appflow.yaml": f"name: {app}\nnamespace: {ns}\nhelm:\n  chart: chart\n  mode: release\n",
            "chart/Chart.yaml": "apiVersion: v2\nname: plain\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: released\ndata:\n  k: v\n",
        },
    )
    register_local(fleet, app, folder)
    text = refused_everywhere(fleet, space, app)
    assert "helm.mode release runs helm against the cluster" in text
    assert "--helm-release allow" in text
    for index in range(len(fleet.cluster_names)):
        assert not exists(fleet.sandbox, index, "v1", "ConfigMap", "released", ns)

    group = f"all-{space.suffix}"
    assert cli("group", "add", group, "-l", "env in (dev,test,prod)").exit_code == 0
    policy("group", group, "--helm-release", "allow")
    installed = cli("sync", app)
    try:
        assert installed.exit_code == 0, installed.output
        for index in range(len(fleet.cluster_names)):
            assert live(fleet.sandbox, index, "v1", "ConfigMap", "released", ns)
    finally:
        assert cli("app", "delete", app).exit_code == 0


def test_values_from_reads_only_the_apps_namespace_unless_widened(
    fleet: Fleet, space: Space, tmp_path: Path, other_namespace: str
) -> None:
    """fleet.yaml's valuesFrom reads with appflow's credentials: the same confinement as lookup."""
    app = space.app("valfrom")
    ns = space.namespace
    put_secret(fleet, other_namespace, "password: another-teams-password\n")
    folder = write_files(
        tmp_path / "app",
        {
            "fleet.yaml": yaml.safe_dump(
                {
                    "defaultNamespace": ns,
                    "helm": {
                        "chart": "./chart",
                        "valuesFrom": [
                            {
                                "secretKeyRef": {
                                    "name": "source",
                                    "namespace": other_namespace,
                                    "key": "value",
                                }
                            }
                        ],
                    },
                }
            ),
            "chart/Chart.yaml": "apiVersion: v2\nname: v\nversion: 0.1.0\n",
            "chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: copied\ndata:\n  seen: {{ toYaml .Values | quote }}\n",
        },
    )
    register_local(fleet, app, folder)
    text = refused_everywhere(fleet, space, app)
    assert f"helm.valuesFrom reads Secret {other_namespace}/source" in text
    assert f"--read-namespace {other_namespace}" in text

    for name in fleet.cluster_names:
        policy("cluster", name, "--read-namespace", other_namespace)
    synced = cli("sync", app)
    assert synced.exit_code == 0, synced.output
    for index in range(len(fleet.cluster_names)):
        seen = live(fleet.sandbox, index, "v1", "ConfigMap", "copied", ns)["data"]["seen"]
        assert "another-teams-password" in seen
