"""Sync: a new commit re-applies only what changed; CRDs and their resources in one sync."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.engine.conftest import Fleet
from tests.integration.engine.support import (
    Space,
    cli,
    configmap,
    deployment,
    history_json,
    live,
    one_line,
    register_local,
    service,
    snapshot,
    status_json,
    write_files,
)

pytestmark = pytest.mark.cluster


def test_new_commit_configures_only_the_changed_object(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    ns = space.namespace
    app = space.app("web")
    folder = write_files(
        tmp_path / "web",
        {
            "config.yaml": [
                configmap("settings", ns, {"mode": "blue"}),
                configmap("features", ns, {"beta": "off"}),
            ],
            "web.yaml": [deployment("web", ns), service("web", ns)],
        },
    )
    assert cli("app", "add", app, "--local", str(folder)).exit_code == 0

    first = cli("sync", app, "--wait", "--timeout", "120")
    assert first.exit_code == 0, first.output
    for name in fleet.cluster_names:
        assert f"{app} revision 1 -> {name}: Ready (4 created, 0 configured, 0 unchanged" in (
            first.stdout
        ), first.output
    before = snapshot(fleet.sandbox, space)

    # The next "commit" changes one value of one ConfigMap.
    write_files(
        folder,
        {
            "config.yaml": [
                configmap("settings", ns, {"mode": "green"}),
                configmap("features", ns, {"beta": "off"}),
            ]
        },
    )
    second = cli("sync", app, "--wait", "--timeout", "120")
    assert second.exit_code == 0, second.output
    for name in fleet.cluster_names:
        assert (
            f"{app} revision 2 -> {name}: Ready (0 created, 1 configured, 3 unchanged, 0 pruned)"
            in second.stdout
        ), second.output
    after = snapshot(fleet.sandbox, space)
    for index, name in enumerate(fleet.cluster_names):
        assert live(fleet.sandbox, index, "v1", "ConfigMap", "settings", ns)["data"] == {
            "mode": "green"
        }
        changed = {k for k in before[name] if before[name][k] != after[name].get(k)}
        # The ConfigMap, and the inventory is rewritten only when its entries change: not here.
        assert changed == {"ConfigMap/settings"}, (name, changed)

    # The history says the same, per cluster and revision.
    syncs = history_json(app)
    latest = [s for s in syncs if s["revision"] == 2]
    assert sorted(s["cluster"] for s in latest) == sorted(fleet.cluster_names)
    for s in latest:
        assert s["outcome"] == "succeeded"
        assert s["counts"]["configured"] == 1
        assert s["counts"]["unchanged"] == 3
        assert s["counts"]["created"] == 0
        assert "1 configured, 3 unchanged" in s["message"]
    [entry] = [a for a in status_json()["apps"] if a["name"] == app]
    assert entry["counts"] == {"Ready": 3}
    assert {d["revision"] for d in entry["deployments"].values()} == {2}

    # An idle sync writes nothing and makes no new revision.
    third = cli("sync", app)
    assert third.exit_code == 0, third.output
    assert "revision 2 ->" in third.stdout
    assert "(0 created, 0 configured, 4 unchanged, 0 pruned)" in third.stdout
    assert snapshot(fleet.sandbox, space) == after


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\nreplicas: 1\n",
    "templates/config.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-greeting
data:
  greeting: {{ .Values.greeting | quote }}
  cluster: {{ .Values.cluster | default "none" | quote }}
""",
    "templates/deployment.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: main
          image: registry.example/hello:1.0
""",
}


def test_helm_chart_values_change_configures_only_what_it_renders_differently(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    app = space.app("hello")
    appflow_yaml = f"namespace: {space.namespace}\nhelm:\n  chart: chart\n  releaseName: hello\n"
    folder = write_files(
        tmp_path / "hello",
        {"appflow.yaml": appflow_yaml, **{f"chart/{k}": v for k, v in CHART.items()}},
    )
    register_local(fleet, app, folder)

    report = asyncio.run(fleet.engine.sync(app))
    assert report.ok, [str(e) for e in report.blocked]
    assert sorted(r.cluster for r in report.results) == sorted(fleet.cluster_names)
    # The app's namespace is part of it; the test made it beforehand, so it is configured.
    assert {r.plan.summary() for r in report.results} == {"2 created, 1 configured"}

    write_files(folder, {"appflow.yaml": appflow_yaml + "  values:\n    greeting: servus\n"})
    report = asyncio.run(fleet.engine.sync(app))
    assert report.ok, [str(e) for e in report.blocked]
    assert report.revision is not None
    assert report.revision.number == 2
    assert {r.plan.summary() for r in report.results} == {"1 configured, 2 unchanged"}
    for result in report.results:
        [change] = [c for c in result.plan.changes if c.action.value == "configured"]
        assert str(change.ref) == f"ConfigMap/{space.namespace}/hello-greeting"
        assert "data.greeting" in change.reason
    for index in range(len(fleet.cluster_names)):
        cm = live(fleet.sandbox, index, "v1", "ConfigMap", "hello-greeting", space.namespace)
        assert cm["data"]["greeting"] == "servus"
        assert cm["metadata"]["labels"]["appflow.dev/app"] == app


def test_crd_and_its_custom_resources_in_one_sync(
    fleet: Fleet, space: Space, tmp_path: Path
) -> None:
    group = f"e{space.suffix}.example.com"
    crd_name = f"gadgets.{group}"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd_name},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    gadgets = [
        {
            "apiVersion": f"{group}/v1",
            "kind": "Gadget",
            "metadata": {"name": f"g{i}", "namespace": space.namespace},
            "spec": {"size": i},
        }
        for i in range(3)
    ]
    app = space.app("gadgets")
    # The custom resources sort before the CRD in the folder: the engine orders them.
    folder = write_files(tmp_path / "gadgets", {"a-gadgets.yaml": gadgets, "z-crd.yaml": [crd]})
    register_local(fleet, app, folder)
    try:
        result = cli("sync", app)
        assert result.exit_code == 0, result.output
        for name in fleet.cluster_names:
            assert f"-> {name}: Ready (4 created" in one_line(result.stdout), result.output
        for index in range(len(fleet.cluster_names)):
            found = live(
                fleet.sandbox,
                index,
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                crd_name,
                "",
            )
            conditions = {c["type"]: c["status"] for c in found["status"]["conditions"]}
            assert conditions["Established"] == "True"
            for i in range(3):
                gadget = live(
                    fleet.sandbox, index, f"{group}/v1", "Gadget", f"g{i}", space.namespace
                )
                assert gadget["spec"] == {"size": i}

        # The second sync finds everything unchanged, CRD included.
        again = cli("sync", app)
        assert again.exit_code == 0, again.output
        assert one_line(again.stdout).count("(0 created, 0 configured, 4 unchanged") == 3
    finally:
        for index in range(len(fleet.cluster_names)):
            kube = fleet.sandbox.kube(index)
            try:
                kube.delete_sync("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd_name)
            finally:
                kube.close()
