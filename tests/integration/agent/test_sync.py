"""Agents apply what the hub released with the engine's stages, report per-object health and
Fleet's counts, validate staged revisions before anything is released (two-phase publish),
and fetch only the content they lack."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest

from appflow.kube.client import KubeCluster
from appflow.model import content as fmt
from appflow.model.agent import release_decision
from appflow.model.hub import API_VERSION
from tests.integration.agent.conftest import Hub, register_fleet, status_of, wait_for
from tests.integration.agent.publish import deployment, desired, write_deployment

pytestmark = pytest.mark.cluster


def app_objects(namespace: str, *, value: str, replicas: int = 1) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace},
            "data": {"greeting": value},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                },
            },
        },
    ]


def live_value(hub: Hub, edge: int, namespace: str) -> str | None:
    kube = hub.fleet.edge_kube(edge)
    try:
        cm = kube.get_sync("v1", "ConfigMap", "settings", namespace)
    finally:
        kube.close()
    return None if cm is None else str((cm.get("data") or {}).get("greeting"))


def ready(hub: Hub, cluster: str, app: str, revision: int) -> bool:
    status = status_of(hub, cluster, app)
    return status.get("state") == "Ready" and status.get("appliedRevision") == revision


def publish_everywhere(hub: Hub, names: list[str], app: str, ns: str) -> None:
    """Revision 1 of the app, staged and released on every cluster; wait until all Ready."""
    kube = hub.fleet.hub_kube()
    try:
        for cluster in names:
            rev1 = desired(kube, hub.workspace, app_objects(ns, value="one"), revision=1)
            write_deployment(
                kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev1, released=rev1
            )
    finally:
        kube.close()
    for cluster in names:
        wait_for(
            lambda c=cluster: ready(hub, c, app, 1), timeout=120, what=f"Ready r1 on {cluster}"
        )


def test_released_revisions_apply_and_report_ready_and_staged_ones_wait(hub: Hub) -> None:
    names = register_fleet(hub)
    app, ns = f"web-{secrets.token_hex(3)}", f"web-{secrets.token_hex(3)}"
    publish_everywhere(hub, names, app, ns)
    kube = hub.fleet.hub_kube()
    try:
        for edge in range(3):
            assert live_value(hub, edge, ns) == "one"
        status = status_of(hub, names[0], app)
        assert status["resourceCounts"]["ready"] == 3
        assert status["resourceCounts"]["desiredReady"] == 3
        assert status["failing"] == []
        (entry,) = status["history"]
        assert entry["outcome"] == "succeeded"
        assert entry["revision"] == 1
        assert entry["writer"] == f"agent/{names[0]}"
        assert entry["counts"]["created"] == 3

        # r2 only staged: every agent validates it, none applies it.
        for cluster in names:
            rev1 = deployment(kube, workspace=hub.workspace, cluster=cluster, app=app)["spec"][
                "released"
            ]
            rev2 = desired(
                kube, hub.workspace, app_objects(ns, value="two"), revision=2, base=rev1["index"]
            )
            write_deployment(
                kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev2, released=rev1
            )
        for cluster in names:
            wait_for(
                lambda c=cluster: (status_of(hub, c, app).get("staged") or {}).get("revision") == 2,
                timeout=60,
                what=f"r2 validated on {cluster}",
            )
        results = {c: (status_of(hub, c, app)["staged"]["result"], "") for c in names}
        assert set(r for r, _ in results.values()) == {"Validated"}
        for edge in range(3):
            assert live_value(hub, edge, ns) == "one"
        decision = release_decision(results, online=set(names))
        assert decision.release == frozenset(names)
        # Released: applied everywhere.
        for cluster in names:
            spec = deployment(kube, workspace=hub.workspace, cluster=cluster, app=app)["spec"]
            write_deployment(
                kube,
                workspace=hub.workspace,
                cluster=cluster,
                app=app,
                staged=spec["staged"],
                released=spec["staged"],
            )
        for cluster in names:
            wait_for(
                lambda c=cluster: ready(hub, c, app, 2),
                timeout=90,
                what=f"{app} Ready r2 on {cluster}",
            )
        for edge in range(3):
            assert live_value(hub, edge, ns) == "two"
        history = status_of(hub, names[1], app)["history"]
        assert [e["id"] for e in history] == [1, 2]
        assert history[1]["counts"]["configured"] == 1
    finally:
        kube.close()


def test_a_revision_refused_on_one_cluster_of_three_is_applied_on_none(hub: Hub) -> None:
    names = register_fleet(hub)
    app, ns = f"cfg-{secrets.token_hex(3)}", f"cfg-{secrets.token_hex(3)}"
    publish_everywhere(hub, names, app, ns)
    kube = hub.fleet.hub_kube()
    try:
        # r2 renders differently per cluster (per-cluster values): on the third, a replica
        # count the API server refuses.
        for index, cluster in enumerate(names):
            rev1 = deployment(kube, workspace=hub.workspace, cluster=cluster, app=app)["spec"][
                "released"
            ]
            objects = app_objects(ns, value="two", replicas=-1 if index == 2 else 2)
            rev2 = desired(kube, hub.workspace, objects, revision=2, base=rev1["index"])
            write_deployment(
                kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev2, released=rev1
            )
        staged = {}
        for cluster in names:
            staged[cluster] = wait_for(
                lambda c=cluster: (
                    (status_of(hub, c, app).get("staged") or {})
                    if (status_of(hub, c, app).get("staged") or {}).get("revision") == 2
                    else None
                ),
                timeout=60,
                what=f"r2 judged on {cluster}",
            )
        assert staged[names[0]]["result"] == staged[names[1]]["result"] == "Validated"
        assert staged[names[2]]["result"] == "Rejected"
        assert "Deployment.apps/" in staged[names[2]]["message"]
        assert "replicas" in staged[names[2]]["message"]
        decision = release_decision(
            {c: (s["result"], s.get("message", "")) for c, s in staged.items()}, online=set(names)
        )
        assert decision.release == frozenset()
        assert set(decision.rejected) == {names[2]}
        # The hub releases nothing; the agents apply nothing of r2, anywhere.
        for edge in range(3):
            assert live_value(hub, edge, ns) == "one"
        for cluster in names:
            status = status_of(hub, cluster, app)
            assert status["appliedRevision"] == 1
            assert [e["revision"] for e in status["history"]] == [1]
    finally:
        kube.close()


def many_objects(namespace: str, count: int, *, changed: int | None = None) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    for i in range(count - 1):
        kind = ("ConfigMap", "Service", "Deployment")[i % 3]
        name = f"part-{i:03d}"
        if kind == "ConfigMap":
            value = "changed" if i == changed else "original"
            obj: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace},
                "data": {
                    "value": value,
                    "config.yaml": "\n".join(f"key{k}: value{k}" for k in range(20)),
                },
            }
        elif kind == "Service":
            obj = {
                "apiVersion": "v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
                },
            }
        else:
            obj = {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": f"registry.example.com/{name}:1.0",
                                    "ports": [{"containerPort": 8080}],
                                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                }
                            ]
                        },
                    },
                },
            }
        objects.append(obj)
    return objects


def stored_size(kube: KubeCluster, workspace: str, digest: str) -> int:
    obj = kube.get_sync(API_VERSION, "AppFlowContent", digest, workspace) or {}
    import base64

    return len(base64.b64decode(str((obj.get("spec") or {}).get("data", ""))))


def fetched(log: str) -> list[int]:
    return [int(m) for m in re.findall(r"fetched (\d+) bytes of content", log)]


def test_a_one_object_change_to_a_200_object_app_downloads_under_5_percent(hub: Hub) -> None:
    names = register_fleet(hub)
    cluster = names[0]
    agent = next(p for p in hub.processes if p.log.name.startswith("agent-0"))
    app, ns = f"big-{secrets.token_hex(3)}", f"big-{secrets.token_hex(3)}"
    kube = hub.fleet.hub_kube()
    try:
        rev1 = desired(kube, hub.workspace, many_objects(ns, 200), revision=1)
        write_deployment(
            kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev1, released=rev1
        )
        wait_for(
            lambda: status_of(hub, cluster, app).get("appliedRevision") == 1,
            timeout=180,
            what="r1 applied",
        )
        first = fetched(agent.text())
        index = fmt.read_index(
            fmt.Blob(media="index", data=_content(kube, hub.workspace, rev1["index"]))
        )
        bundle = stored_size(kube, hub.workspace, rev1["index"]) + sum(
            stored_size(kube, hub.workspace, d) for d, _ in index.chunks
        )
        assert sum(first) == bundle  # the first sync fetches the whole bundle, once

        rev2 = desired(
            kube, hub.workspace, many_objects(ns, 200, changed=0), revision=2, base=rev1["index"]
        )
        write_deployment(
            kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev2, released=rev2
        )
        wait_for(
            lambda: status_of(hub, cluster, app).get("appliedRevision") == 2,
            timeout=120,
            what="r2 applied",
        )
        second = sum(fetched(agent.text())) - sum(first)
        print(
            f"\nfull bundle {bundle} bytes; after a one-object change the agent fetched {second} bytes ({100 * second / bundle:.2f} %)"
        )
        assert 0 < second <= 0.05 * bundle
        kube_edge = hub.fleet.edge_kube(0)
        try:
            assert (kube_edge.get_sync("v1", "ConfigMap", "part-000", ns) or {})["data"][
                "value"
            ] == "changed"
        finally:
            kube_edge.close()
        history = status_of(hub, cluster, app)["history"]
        assert history[-1]["counts"] == {
            "created": 0,
            "configured": 1,
            "unchanged": 199,
            "pruned": 0,
        }
    finally:
        kube.close()


def _content(kube: KubeCluster, workspace: str, digest: str) -> bytes:
    obj = kube.get_sync(API_VERSION, "AppFlowContent", digest, workspace) or {}
    return fmt.decompress(str(obj["spec"]["data"]), digest=digest)


def test_drift_without_self_heal_is_reported_modified_and_left_alone(hub: Hub) -> None:
    names = register_fleet(hub)
    cluster = names[0]
    app, ns = f"drift-{secrets.token_hex(3)}", f"drift-{secrets.token_hex(3)}"
    kube = hub.fleet.hub_kube()
    try:
        rev1 = desired(
            kube,
            hub.workspace,
            app_objects(ns, value="one"),
            revision=1,
            options={"selfHeal": False},
        )
        write_deployment(
            kube, workspace=hub.workspace, cluster=cluster, app=app, staged=rev1, released=rev1
        )
    finally:
        kube.close()
    wait_for(lambda: ready(hub, cluster, app, 1), timeout=120, what="Ready r1")
    edge = hub.fleet.edge_kube(0)
    try:
        edge.patch_sync("v1", "ConfigMap", "settings", ns, {"data": {"greeting": "by hand"}})
    finally:
        edge.close()
    status = wait_for(
        lambda: (
            status_of(hub, cluster, app)
            if status_of(hub, cluster, app).get("state") == "Modified"
            else None
        ),
        timeout=60,
        what="the drift reported",
    )
    assert f"ConfigMap/{ns}/settings" in status["message"]
    assert status["resourceCounts"]["modified"] == 1
    assert live_value(hub, 0, ns) == "by hand"
    assert [e["trigger"] for e in status["history"]] == ["watch"]
