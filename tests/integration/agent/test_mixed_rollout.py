"""One rollout over push and pull clusters (issue 13, item 6): an app whose partitions hold
clusters of both kinds goes through one partition order. A NotReady push cluster in the first
partition holds the pull cluster of the second, and a NotReady pull cluster in the first holds
the push and pull clusters of the second; every target validated before anything was written,
and `rollout status` shows one rollout over both kinds. dependsOn holds an app on each cluster,
push or pull, until what it depends on is Ready there."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from appflow.errors import AppflowError
from appflow.model.hub import API_VERSION
from tests.helpers import widget_crd, write_held_app
from tests.integration.agent.conftest import Hub, register_fleet, spec_of, status_of, wait_for
from tests.integration.agent.test_journeys import agent_of
from tests.integration.agent.test_rollout import EXAMPLES, label_nodes, rollout

pytestmark = pytest.mark.cluster

DEV_FIRST = [
    {"name": "dev", "clusterSelector": {"matchLabels": {"env": "dev"}}},
    {"name": "prod", "clusterSelector": {"matchLabels": {"env": "prod"}}},
]


def live_deployment(hub: Hub, edge: int, namespace: str) -> dict[str, Any] | None:
    kube = hub.fleet.edge_kube(edge)
    try:
        return kube.get_sync("apps/v1", "Deployment", "web", namespace)
    finally:
        kube.close()


def at_r1(hub: Hub, cluster: str, app: str, state: str) -> bool:
    """Whether APP's Deployment on CLUSTER shows STATE with revision 1 applied."""
    status = status_of(hub, cluster, app)
    return status.get("state") == state and status.get("appliedRevision") == 1


def request_phase(hub: Hub, app: str) -> str:
    kube = hub.fleet.hub_kube()
    try:
        obj = kube.get_sync(API_VERSION, "AppFlow", app, hub.workspace) or {}
    finally:
        kube.close()
    return str(((obj.get("status") or {}).get("syncRequest") or {}).get("phase") or "")


def test_push_and_pull_clusters_go_through_one_partition_order(hub: Hub, tmp_path: Path) -> None:
    names = register_fleet(hub)
    dev_pull, prod_pull = names[0], names[1]
    # The third edge leaves pull mode and joins by kubeconfig, in partition 'dev'.
    hub.hub_cli("cluster", "remove", names[2])
    agent_of(hub, 2).stop()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=dev")
    suffix = secrets.token_hex(3)
    # A: 'dev' (a pull and the push cluster) then 'prod' (a pull cluster); the push cluster's
    # pods have no node until the test labels it.  B: 'prod' first, then 'dev'; the prod pull
    # cluster's pods have no node.
    a, b = f"mixa-{suffix}", f"mixb-{suffix}"
    label_a, label_b = f"mixa-{suffix}.test/ready", f"mixb-{suffix}.test/ready"
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    rollout_of = {"maxUnavailable": 1, "healthTimeoutSeconds": 900}
    write_held_app(
        repo / "mixed" / "a",
        app=a,
        ns=a,
        node_label=label_a,
        rollout={**rollout_of, "partitions": DEV_FIRST},
    )
    write_held_app(
        repo / "mixed" / "b",
        app=b,
        ns=b,
        node_label=label_b,
        rollout={**rollout_of, "partitions": list(reversed(DEV_FIRST))},
    )
    label_nodes(hub, 0, label_a)
    label_nodes(hub, 1, label_a)
    label_nodes(hub, 0, label_b)
    label_nodes(hub, 2, label_b)
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "mixed")
    # Each sync lasts its whole rollout: asked in the background.
    kubeconfig = str(hub.kubeconfig)
    hub.process(f"sync-{a}", "--hub", kubeconfig, "sync", a)
    hub.process(f"sync-{b}", "--hub", kubeconfig, "sync", b)

    # A: partition 'dev' goes one cluster at a time (maxUnavailable 1), the push cluster first
    # (name order): applied, not Ready. Its pull neighbour in 'dev' waits for it, and the
    # prod pull cluster too, though both validated revision 1 before anything was written.
    wait_for(
        lambda: (
            live_deployment(hub, 2, a) is not None
            and status_of(hub, "push-1", a).get("state") in ("WaitApplied", "NotReady")
        ),
        timeout=240,
        what=f"{a} applied on push-1 and not Ready there",
    )
    for cluster in (dev_pull, prod_pull):
        assert (status_of(hub, cluster, a).get("staged") or {}).get("result") == "Validated"
    # B: its first partition is the prod pull cluster, applied and NotReady; nothing of B on
    # the push cluster nor released to the dev pull cluster, though both validated it.
    wait_for(
        lambda: at_r1(hub, prod_pull, b, "NotReady"),
        timeout=180,
        what=f"{b} applied, NotReady, on {prod_pull}",
    )
    assert (status_of(hub, dev_pull, b).get("staged") or {}).get("result") == "Validated"
    record_a = wait_for(
        lambda: (r := rollout(hub, a)).get("state") == "Progressing" and r,
        timeout=60,
        what=f"the rollout of {a} recorded",
    )
    # One rollout over both kinds: the push cluster and a pull one in partition 'dev'.
    assert [(p["name"], sorted(p["clusters"])) for p in record_a["partitions"]] == [
        ("dev", sorted([dev_pull, "push-1"])),
        ("prod", [prod_pull]),
    ]
    assert record_a["current"] == 0
    for cluster in (dev_pull, prod_pull):
        assert "released" not in spec_of(hub, cluster, a), cluster
        assert status_of(hub, cluster, a).get("appliedRevision") is None
    assert rollout(hub, b)["current"] == 0
    assert "released" not in spec_of(hub, dev_pull, b)
    assert live_deployment(hub, 2, b) is None, "B reached the push cluster of its 2nd partition"

    # The push cluster becomes Ready: A's dev pull cluster, then its prod one, get it.
    label_nodes(hub, 2, label_a)
    wait_for(
        lambda: at_r1(hub, dev_pull, a, "Ready"),
        timeout=300,
        what=f"{a} Ready r1 on {dev_pull} once push-1 is Ready",
    )
    wait_for(
        lambda: at_r1(hub, prod_pull, a, "Ready"),
        timeout=300,
        what=f"{a} Ready r1 on {prod_pull} once partition 'dev' is Ready",
    )
    wait_for(lambda: rollout(hub, a).get("state") == "Complete", timeout=120, what=f"{a} done")
    assert [p["state"] for p in rollout(hub, a)["partitions"]] == ["Ready", "Ready"]
    wait_for(lambda: request_phase(hub, a) == "Succeeded", timeout=120, what=f"{a}'s sync done")
    # B is still held by its NotReady pull cluster the whole time.
    assert live_deployment(hub, 2, b) is None
    assert "released" not in spec_of(hub, dev_pull, b)

    # The pull cluster of B's first partition becomes Ready: the push and the pull cluster of
    # its second partition get it.
    label_nodes(hub, 1, label_b)
    wait_for(
        lambda: status_of(hub, "push-1", b).get("state") == "Ready",
        timeout=300,
        what=f"{b} Ready on push-1 once {prod_pull} is Ready",
    )
    wait_for(
        lambda: at_r1(hub, dev_pull, b, "Ready"),
        timeout=180,
        what=f"{b} Ready r1 on {dev_pull}",
    )
    wait_for(lambda: rollout(hub, b).get("state") == "Complete", timeout=120, what=f"{b} done")
    wait_for(lambda: request_phase(hub, b) == "Succeeded", timeout=120, what=f"{b}'s sync done")


def test_a_revision_a_pull_cluster_refuses_is_written_on_no_push_cluster(
    hub: Hub, tmp_path: Path
) -> None:
    # A kind only the push cluster serves: its dry run passes there, the pull clusters' agents
    # refuse it. One fleet-wide validation: nothing is written on the push cluster either.
    names = register_fleet(hub)
    hub.hub_cli("cluster", "remove", names[2])
    agent_of(hub, 2).stop()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=dev")
    suffix = secrets.token_hex(3)
    group = f"mix{suffix}.test"
    edge = hub.fleet.edge_kube(2)
    try:
        edge.apply_sync(widget_crd(group))

        def served() -> bool:
            edge.invalidate_discovery()  # a kind added a moment ago
            try:
                return edge.list_sync(f"{group}/v1", "Widget", namespace="default") is not None
            except AppflowError:
                return False

        wait_for(served, timeout=120, what="the Widget kind served on the push cluster")
    finally:
        edge.close()
    app = f"mixw-{suffix}"
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    write_held_app(
        repo / "mixed" / "w",
        app=app,
        ns=app,
        node_label=None,
        rollout={"maxUnavailable": 1, "partitions": DEV_FIRST},
    )
    (repo / "mixed" / "w" / "widget.yaml").write_text(
        f"apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {app}\n"
    )
    hub.start_controller()
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "mixed")
    hub.process(f"sync-{app}", "--hub", str(hub.kubeconfig), "sync", app)
    for cluster in names[:2]:
        wait_for(
            lambda c=cluster: (
                (status_of(hub, c, app).get("staged") or {}).get("result") == "Rejected"
            ),
            timeout=240,
            what=f"{app} refused by the agent of {cluster}",
        )
    wait_for(lambda: request_phase(hub, app) == "Failed", timeout=240, what=f"{app}'s sync refused")
    # Refused everywhere: nothing on the push cluster, nothing released to a pull cluster.
    kube = hub.fleet.edge_kube(2)
    try:
        assert kube.get_sync("v1", "Namespace", app) is None
    finally:
        kube.close()
    assert live_deployment(hub, 2, app) is None
    for cluster in names[:2]:
        assert "released" not in spec_of(hub, cluster, app), cluster


def objects_of(hub: Hub, edge: int, namespace: str) -> list[str]:
    """What an app put in NAMESPACE on an edge: the namespace and its Deployments (what
    Kubernetes adds to a namespace by itself is not the app's)."""
    kube = hub.fleet.edge_kube(edge)
    try:
        found = [f"Namespace/{namespace}"] if kube.get_sync("v1", "Namespace", namespace) else []
        found += [
            f"Deployment/{d['metadata']['name']}"
            for d in kube.list_sync("apps/v1", "Deployment", namespace=namespace)
        ]
        return found
    finally:
        kube.close()


def released_nowhere(hub: Hub, clusters: list[str], app: str) -> None:
    for cluster in clusters:
        assert "released" not in spec_of(hub, cluster, app), cluster
        assert status_of(hub, cluster, app).get("appliedRevision") is None, cluster


def test_depends_on_holds_push_and_pull_clusters_alike(hub: Hub, tmp_path: Path) -> None:
    names = register_fleet(hub)
    pulls = names[:2]
    # The third edge leaves pull mode and joins by kubeconfig.
    hub.hub_cli("cluster", "remove", names[2])
    agent_of(hub, 2).stop()
    push = hub.fleet.edges[2]
    hub.hub_cli("cluster", "add", "push-1", "--kubeconfig", str(push.kubeconfig), "-l", "env=dev")
    suffix = secrets.token_hex(3)
    base, top = f"base-{suffix}", f"top-{suffix}"
    label = f"deps-{suffix}.test/ready"
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLES, repo)
    write_held_app(repo / "deps" / "base", app=base, ns=base, node_label=label)
    # 'top' itself runs anywhere: only its dependency is held by the node label.
    write_held_app(
        repo / "deps" / "top", app=top, ns=top, node_label=None, dependsOn=[{"name": base}]
    )
    hub.start_controller()
    # Both apps sync by themselves (syncPolicy.auto), in whatever order the controller takes.
    hub.hub_cli("repo", "add", "examples", str(repo), "--path", "deps")
    for cluster in [*pulls, "push-1"]:
        wait_for(
            lambda c=cluster: status_of(hub, c, base).get("state") == "NotReady",
            timeout=240,
            what=f"{base} applied, NotReady, on {cluster} (its pod has no node)",
        )

    # base is NotReady everywhere: top is validated on the pull clusters but released on
    # none, and the push cluster waits for base too, with nothing of top written there.
    for cluster in pulls:
        wait_for(
            lambda c=cluster: (
                (status_of(hub, c, top).get("staged") or {}).get("result") == "Validated"
            ),
            timeout=180,
            what=f"{top} validated on {cluster}",
        )
    wait_for(
        lambda: status_of(hub, "push-1", top).get("state") == "WaitApplied",
        timeout=120,
        what=f"{top} WaitApplied on push-1",
    )
    assert base in str(status_of(hub, "push-1", top).get("message")), status_of(hub, "push-1", top)
    assert objects_of(hub, 2, top) == []
    released_nowhere(hub, pulls, top)

    # Ready on the push cluster: top is applied there, and only there.
    label_nodes(hub, 2, label)
    wait_for(
        lambda: status_of(hub, "push-1", top).get("state") == "Ready",
        timeout=300,
        what=f"{top} Ready on push-1 once {base} is Ready there",
    )
    assert objects_of(hub, 2, top) == [f"Namespace/{top}", "Deployment/web"]
    for cluster in pulls:
        assert status_of(hub, cluster, base).get("state") == "NotReady", cluster
    released_nowhere(hub, pulls, top)
    # A whole sync asked now, whose push cluster is no longer held, delivers to it and
    # releases to no pull cluster either.
    hub.process(f"sync-{top}", "--hub", str(hub.kubeconfig), "sync", top)
    wait_for(
        lambda: request_phase(hub, top) in ("Succeeded", "Failed"),
        timeout=240,
        what=f"the sync of {top} asked done",
    )
    released_nowhere(hub, pulls, top)

    # Ready on one pull cluster: top is released there; the other one is still held.
    label_nodes(hub, 0, label)
    wait_for(
        lambda: (
            status_of(hub, pulls[0], top).get("state") == "Ready"
            and status_of(hub, pulls[0], top).get("appliedRevision")
            == (spec_of(hub, pulls[0], top).get("released") or {}).get("revision")
        ),
        timeout=300,
        what=f"{top} released and Ready on {pulls[0]} once {base} is Ready there",
    )
    assert status_of(hub, pulls[1], base).get("state") == "NotReady"
    released_nowhere(hub, pulls[1:], top)
    assert status_of(hub, "push-1", top).get("state") == "Ready"
